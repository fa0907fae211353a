"""BM25 first stage with bm25s, cached by content hash.

The index is cached under ``cache/bm25_index/<hash>`` keyed by (collection fingerprint, k1, b,
method, stemmer, stopwords); the top-k run under ``cache/bm25_run/<hash>`` keyed additionally by
the query texts and k. Every run and sweep member on the same collection reuses both.
Documents with score 0 (no query term) are dropped, as a term-at-a-time engine would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from rankexp.data.collection import Collection
from rankexp.errors import ConfigError
from rankexp.eval.trec_io import Run, read_run, write_run
from rankexp.tracking.cache import Cache, key_digest, read_file
from rankexp.utils.hashing import stable_hash
from rankexp.utils.progress import track


class BM25:
    """BM25 over ``collection`` (bm25s). ``k1`` >= 0, ``b`` in [0, 1]; ``stemmer`` a PyStemmer
    language name (``english``, ``porter``) or null; ``stopwords`` ``en`` or null; ``method`` one
    of bm25s' variants (``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``)."""

    name = "bm25"

    def __init__(self, k1: float = 0.9, b: float = 0.4, k: int = 1000, stemmer: str | None = "english",
                 stopwords: str | None = "en", method: str = "lucene", chunk_size: int = 2000):
        if k1 < 0 or not (0 <= b <= 1) or k < 1:
            raise ConfigError(f"first_stage: need k1 >= 0, 0 <= b <= 1, k >= 1; got k1={k1}, b={b}, k={k}")
        self.k1, self.b, self.k, self.stemmer_name, self.stopwords, self.method = k1, b, k, stemmer, stopwords, method
        self.chunk_size = chunk_size

    def params(self) -> dict:
        return {"k1": self.k1, "b": self.b, "method": self.method, "stemmer": self.stemmer_name, "stopwords": self.stopwords}

    def _stemmer(self):
        if not self.stemmer_name:
            return None
        import Stemmer

        try:
            return Stemmer.Stemmer(self.stemmer_name)
        except KeyError:
            raise ConfigError(f"first_stage.stemmer: unknown PyStemmer language {self.stemmer_name!r} (e.g. english, porter)") from None

    def _tokenize(self, texts: list[str], description: str | None = None) -> list[list[str]]:
        import bm25s

        stemmer = self._stemmer()
        chunks = [texts[i : i + self.chunk_size] for i in range(0, len(texts), self.chunk_size)]
        it = track(chunks, description) if description else chunks
        out: list[list[str]] = []
        for chunk in it:
            out.extend(bm25s.tokenize(chunk, stopwords=self.stopwords, stemmer=stemmer, return_ids=False, show_progress=False))
        return out

    def index_key(self, collection: Collection) -> dict:
        """What the index depends on (``k`` and ``chunk_size`` do not change it)."""
        return {"collection": collection.fingerprint, **self.params()}

    def run_key(self, collection: Collection, queries: Mapping[str, str]) -> dict:
        return {"index": key_digest(self.index_key(collection)), "queries": stable_hash(sorted(queries.items()), 16), "k": self.k}

    def _build_index(self, collection: Collection):
        def build(tmp: Path) -> None:
            import bm25s

            doc_ids = list(collection.docs)
            tokens = self._tokenize([collection.docs[d] for d in doc_ids], f"BM25 indexing {collection.name}")
            retriever = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
            retriever.index(tokens, show_progress=False)
            retriever.save(str(tmp / "index"))
            (tmp / "doc_ids.json").write_text(json.dumps(doc_ids))

        return build

    def index(self, collection: Collection, cache: Cache) -> Path:
        return cache.get_or_build("bm25_index", self.index_key(collection), self._build_index(collection))

    def load_index(self, collection: Collection, cache: Cache):
        """(bm25s retriever, doc ids) from the cached index; an unreadable index is rebuilt."""

        def reader(entry: Path):
            import bm25s

            return (read_file(entry / "index", lambda p: bm25s.BM25.load(str(p))),
                    read_file(entry / "doc_ids.json", lambda p: json.loads(p.read_text(encoding="utf-8"))))

        return cache.load("bm25_index", self.index_key(collection), self._build_index(collection), reader)

    def retrieve(self, collection: Collection, cache: Cache, queries: Mapping[str, str] | None = None) -> Run:
        """Top-k for every query of ``queries`` (default: all the collection's queries), cached."""
        queries = dict(queries if queries is not None else collection.queries)
        self.index(collection, cache)  # verified (and repaired) even when the run is cached
        key = self.run_key(collection, queries)

        def build(tmp: Path) -> None:
            import numpy as np

            retriever, doc_ids = self.load_index(collection, cache)
            qids = list(queries)
            q_tokens = self._tokenize([queries[q] for q in qids])
            k = min(self.k, len(doc_ids))
            run: dict[str, dict[str, float]] = {}
            for start in track(range(0, len(qids), 256), "BM25 retrieval"):
                batch = q_tokens[start : start + 256]
                # bm25s needs at least one token per query; an empty query retrieves nothing
                safe = [t if t else ["\u2400"] for t in batch]
                results, scores = retriever.retrieve(safe, k=k, show_progress=False, n_threads=1)
                for row, qid in enumerate(qids[start : start + 256]):
                    run[qid] = {doc_ids[int(i)]: float(s) for i, s in zip(results[row], scores[row]) if s > 0 and np.isfinite(s)}
            write_run(tmp / "run.trec", {q: r for q, r in run.items() if r}, tag="bm25")

        return cache.load("bm25_run", key, build, lambda entry: read_file(entry / "run.trec", read_cached_run))


def read_cached_run(path: Path) -> Run:
    """A cached run file (an empty file is an empty run)."""
    return read_run(path) if path.stat().st_size else {}
