"""Rerank pairs/s: rankexp's ``score_pairs`` (exact, and the ``eval.fast`` paths) vs
sentence-transformers' ``CrossEncoder.predict`` with the SAME weights, side by side in one process.

The cross-encoder is all-MiniLM-L6-v2 + a linear head on [CLS] (rankexp's ``CrossEncoder``; a fresh
head from ``--seed``, or the weights of a rankexp checkpoint with ``--checkpoint``). The ST model is
``CrossEncoder(all-MiniLM-L6-v2, num_labels=1)`` made to compute the same function: its BERT pooler
(dense + tanh) is replaced by the identity and its classifier gets rankexp's head weights, so the
two sides' scores must agree to float rounding (reported: max abs difference, ``activation_fn`` =
identity). Pairs: vaswani test queries x BM25 top-``--depth`` candidates, text truncated to
``--max-length`` tokens on both sides; the same batch size on both sides.

Speed: the first ``--speed-pairs`` pairs, every side once per round, rounds interleaved, median.
Quality (``--quality``): nDCG@10 (trec_eval semantics) of every side's full rerank of the test split,
and the fast paths' change against exact.

    python benchmarks/rerank_vs_sentence_transformers.py --speed-pairs 384 --rounds 3 --quality
"""

from __future__ import annotations

import argparse
import time

import _common as C


def same_weights_st(encoder, max_length):
    """A sentence-transformers CrossEncoder computing rankexp ``encoder``'s scores."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from rankexp.models.encoders import resolve_model_path

    st = CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=max_length, device="cpu")
    hf = next(m for m in st.modules() if hasattr(m, "classifier") and hasattr(m, "bert"))
    hf.bert.load_state_dict(encoder.model.state_dict(), strict=False)  # same body (the pooler is not in rankexp's)
    pooler = hf.bert.pooler
    with torch.no_grad():
        pooler.dense.weight.copy_(torch.eye(pooler.dense.weight.shape[0]))
        pooler.dense.bias.zero_()
        hf.classifier.weight.copy_(encoder.head.weight)
        hf.classifier.bias.copy_(encoder.head.bias)
    pooler.activation = torch.nn.Identity()
    st.eval()
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--depth", type=int, default=100, help="BM25 candidates per test query")
    ap.add_argument("--speed-pairs", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fast", default="int8,bf16", help="fast paths to measure (eval.fast values)")
    ap.add_argument("--quality", action="store_true", help="also rerank the whole test split: nDCG@10 per side")
    ap.add_argument("--checkpoint", default=None, help="a rankexp best.ckpt (cross-encoder) instead of a fresh head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(C.RESULTS), help="append the result (one JSON line) here")
    args = ap.parse_args()
    C.setup_env(args.threads)
    import numpy as np
    import torch

    from rankexp.eval.measures import evaluate
    from rankexp.eval.trec_io import sort_ranking
    from rankexp.models.datamodule import pair_loader
    from rankexp.models.module import score_pairs

    torch.manual_seed(args.seed)
    env = C.vaswani_setup(args.max_length)
    enc, pe, coll = env["encoder"], env["pairs"], env["collection"]
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        enc.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    enc.eval()
    st = same_weights_st(enc, args.max_length)
    test = env["split"]["test"]
    all_pairs = [(q, d) for q in test for d, _ in sort_ranking(env["fs_run"].get(q, {}))[: args.depth]]
    speed_pairs = all_pairs[: args.speed_pairs]
    fast_modes = [m for m in args.fast.split(",") if m]

    def rankexp_runner(mode):
        return lambda pairs: score_pairs(enc, pair_loader(pairs, pe, args.batch_size), device="cpu", fast=mode)

    def st_predict(pairs):
        scores = st.predict([(coll.queries[q], coll.docs[d]) for q, d in pairs], batch_size=args.batch_size,
                            activation_fn=torch.nn.Identity(), show_progress_bar=False, convert_to_numpy=True)
        run: dict = {}
        for (q, d), s in zip(pairs, np.asarray(scores).reshape(-1).tolist()):
            run.setdefault(q, {})[d] = s
        return run

    sides = {"rankexp": rankexp_runner(None), "st_predict": st_predict}
    sides.update({f"rankexp_{m}": rankexp_runner(m) for m in fast_modes})
    # token statistics (rankexp's length-sorted batches) and agreement on the speed pairs
    runs = {name: fn(speed_pairs) for name, fn in sides.items()}  # also the warm-up
    rates: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            sides[name](speed_pairs)
            rates[name].append(len(speed_pairs) / (time.perf_counter() - t0))
            print(f"round {r + 1}: {name:14s} {rates[name][-1]:7.2f} pairs/s", flush=True)

    def max_diff(a, b):
        return max(abs(a[q][d] - b[q][d]) for q, d in speed_pairs)

    med = {k: C.median(v) for k, v in rates.items()}
    result = {"benchmark": "rerank", "model": "all-MiniLM-L6-v2 cross-encoder (" +
              (f"checkpoint {args.checkpoint}" if args.checkpoint else f"zero-shot, fresh head seed {args.seed}") + ")",
              "data": f"vaswani test split x BM25 top-{args.depth}", "speed_pairs": len(speed_pairs),
              "batch_size": args.batch_size, "max_length": args.max_length, "rounds": args.rounds, "threads": args.threads,
              "pairs_per_s_median": {k: round(v, 2) for k, v in med.items()},
              "pairs_per_s_rounds": {k: [round(x, 2) for x in v] for k, v in rates.items()},
              "ratios": {"rankexp/st_predict": round(med["rankexp"] / med["st_predict"], 3),
                         **{f"rankexp_{m}/rankexp": round(med[f"rankexp_{m}"] / med["rankexp"], 3) for m in fast_modes},
                         **{f"rankexp_{m}/st_predict": round(med[f"rankexp_{m}"] / med["st_predict"], 3) for m in fast_modes}},
              "max_abs_score_diff_vs_rankexp_exact": {k: float(f"{max_diff(runs[k], runs['rankexp']):.3g}")
                                                      for k in runs if k != "rankexp"}}
    if args.quality:
        qrels = {q: coll.qrels[q] for q in test}
        ndcg, full = {}, {}
        for name in ["rankexp", *[f"rankexp_{m}" for m in fast_modes]]:
            t0 = time.perf_counter()
            full[name] = sides[name](all_pairs)
            ndcg[name] = evaluate(full[name], qrels, ["nDCG@10"], qids=test, complete=True).aggregate["nDCG@10"]
            print(f"quality: {name} nDCG@10 {ndcg[name]:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        bm25 = {q: dict(sort_ranking(env["fs_run"][q])[: args.depth]) for q in test if q in env["fs_run"]}
        ndcg["bm25"] = evaluate(bm25, qrels, ["nDCG@10"], qids=test, complete=True).aggregate["nDCG@10"]
        result["quality"] = {"queries": len(test), "pairs": len(all_pairs), "nDCG@10": {k: round(v, 4) for k, v in ndcg.items()},
                             "delta_vs_exact": {m: round(ndcg[f"rankexp_{m}"] - ndcg["rankexp"], 4) for m in fast_modes},
                             "max_abs_score_diff_vs_exact": {m: float(f"{max(abs(full[f'rankexp_{m}'][q][d] - full['rankexp'][q][d]) for q, d in all_pairs):.3g}")
                                                             for m in fast_modes}}
    C.record(result, args.out)


if __name__ == "__main__":
    main()
