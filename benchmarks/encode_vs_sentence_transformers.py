"""Corpus encoding speed: rankexp's dense indexer vs sentence-transformers' ``encode``, same run.

Both encode the same documents with the same model (all-MiniLM-L6-v2, offline), the same batch
size, the same maximum length and the same number of threads; each side runs ``--repeats`` times,
interleaved, and the best time counts. Reported: docs/s for each and the ratio rankexp / ST, plus
the largest cosine distance between the two sides' embeddings (they must agree: same model, same
pooling, same normalisation).

    python benchmarks/encode_vs_sentence_transformers.py --data ../shared/data/scifact --docs 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/scifact", help="a local collection directory (corpus.jsonl)")
    ap.add_argument("--docs", type=int, default=1000, help="encode the first N documents")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RANKEXP_PROGRESS"] = "0"
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from rankexp.data.collection import Collection, read_corpus_jsonl
    from rankexp.models.biencoder import BiEncoder
    from rankexp.models.encoders import resolve_model_path
    from rankexp.retrieval.dense import encode_ids, texts_for
    from rankexp.tracking.cache import Cache

    torch.set_num_threads(args.threads)
    docs = read_corpus_jsonl(Path(args.data) / "corpus.jsonl", ["title", "text"])
    ids = list(docs)[: args.docs]
    texts = [docs[i] for i in ids]
    coll = Collection("bench", f"bench-{args.docs}-{Path(args.data).name}", {i: docs[i] for i in ids}, {"q": "x"}, {})

    st = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    st.max_seq_length = args.max_length
    ours = BiEncoder(max_length=args.max_length, pooling="mean", similarity="cos")
    import tempfile

    cache = Cache(Path(tempfile.mkdtemp(prefix="rankexp-bench-")))
    t0 = time.perf_counter()
    doc_text, _ = texts_for(ours, coll, cache)  # tokenization is cached once per collection in rankexp
    tokenize_s = time.perf_counter() - t0

    times = {"rankexp": [], "sentence_transformers": []}
    emb = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        emb["sentence_transformers"] = st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True,
                                                 normalize_embeddings=False, show_progress_bar=False)
        times["sentence_transformers"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        emb["rankexp"] = encode_ids(ours, doc_text, ids, "doc", args.batch_size)
        times["rankexp"].append(time.perf_counter() - t0)
    a, b = emb["rankexp"], emb["sentence_transformers"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    best = {k: min(v) for k, v in times.items()}
    result = {
        "model": "all-MiniLM-L6-v2", "docs": len(ids), "data": args.data, "batch_size": args.batch_size,
        "max_length": args.max_length, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "docs_per_s": {k: round(len(ids) / v, 1) for k, v in best.items()},
        "ratio_rankexp_over_st": round(best["sentence_transformers"] / best["rankexp"], 3),
        "rankexp_tokenize_once_s": round(tokenize_s, 2),
        "max_cosine_distance": float(1 - cos.min()),
        "times_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
