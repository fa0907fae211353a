"""The distillation study's table (experiments/distillation/README.md) from its run directories.

    python experiments/distillation/summarize.py RUN_DIR [RUN_DIR ...]

One row per (student, distill) over its seeds: test nDCG@10 mean ± std and per seed, the paired
t-test against the untrained start (metrics.json -> paired_ttest.untrained) per seed, how many
seeds learned (p < 0.05 and better), fidelity to the teacher on the test candidates (Kendall τ,
top-10 overlap; the untrained start's in brackets), the teacher-scoring time and cache reuse, and
the run's wall time. Reference rows: BM25 (the first stage) and each student's untrained start.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from summaries import complete_runs, ms  # noqa: E402


def student(cfg: str) -> str:
    return "cross-encoder, 2 layers" if "distillation_cross" in cfg or "cross_encoder" in cfg else "bi-encoder, 2 layers"


def main(dirs: list[str]) -> None:
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    refs: dict[str, dict[str, float]] = defaultdict(dict)  # student -> seed -> the untrained start's nDCG@10
    bm25 = set()
    depths = set()  # the reranking depths of the runs (the BM25 row says which)
    for d, m in complete_runs(dirs):
        ov = dict(l.split("=", 1) for l in (d / "overrides.txt").read_text().split() if "=" in l)
        if not ov.get("experiment", "").startswith("distillation"):
            print(f"skipped (not a distillation study member): {d}", file=sys.stderr)
            continue
        who = student(ov.get("experiment", "") + " " + ov.get("model", ""))
        rows[(who, ov.get("distill", "none"))].append({"seed": ov.get("seed"), "m": m})
        refs[who][str(ov.get("seed"))] = m["untrained"]["nDCG@10"]
        bm25.add(round(m["baseline"]["nDCG@10"], 4))
        depths.add(m.get("rerank_k"))
    order = ["none", "margin_mse", "kl", "pld"]
    print("| student | distill | seeds | test nDCG@10 | per seed | Δ vs start (p) per seed | learned | fidelity τ (start) | top-10 overlap (start) "
          "| teacher scoring s | cache builds/hits | wall min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for who in sorted({w for w, _ in rows}):
        for kind in sorted({k for w, k in rows if w == who}, key=lambda k: order.index(k) if k in order else 9):
            rs = sorted(rows[(who, kind)], key=lambda r: str(r["seed"]))
            nd = [r["m"]["model"]["nDCG@10"] for r in rs]
            tests = [r["m"]["paired_ttest"]["untrained"]["nDCG@10"] for r in rs]
            learned = sum(1 for t in tests if t["p"] < 0.05 and t["diff"] > 0)
            dist = [r["m"].get("distill") or {} for r in rs]
            fid = [d["fidelity"] for d in dist if "fidelity" in d]
            tau = ms([f["model"]["mean"]["kendall_tau"] for f in fid], 3)
            tau0 = ms([f["untrained"]["mean"]["kendall_tau"] for f in fid if "untrained" in f], 3)
            ov10 = ms([f["model"]["mean"]["top10_overlap"] for f in fid], 3)
            ov0 = ms([f["untrained"]["mean"]["top10_overlap"] for f in fid if "untrained" in f], 3)
            scoring = "/".join(f"{d['scoring_s']:.0f}" for d in dist if "scoring_s" in d) or "–"
            cache = "/".join(f"{d.get('cache_builds', 0)}b{d.get('cache_hits', 0)}h" for d in dist if d) or "–"
            deltas = " / ".join(f"{t['diff']:+.3f} ({t['p']:.2g})" for t in tests)
            wall = "/".join(f"{r['m']['train']['total_s'] / 60:.1f}" for r in rs)
            print(f"| {who} | {kind} | {','.join(str(r['seed']) for r in rs)} | {ms(nd)} | {' / '.join(f'{x:.4f}' for x in nd)} "
                  f"| {deltas} | {learned} of {len(rs)} "
                  f"| {tau} ({tau0}) | {ov10} ({ov0}) | {scoring} | {cache} | {wall} |")
        seeds = sorted(refs[who])  # a start with a fresh head (the cross-encoder) differs per seed
        starts = [refs[who][k] for k in seeds]
        print(f"| {who} | untrained start | {','.join(seeds)} | {ms(starts)} | {' / '.join(f'{x:.4f}' for x in starts)} | | | | | | | |")
    print(f"| BM25 (first stage; students rerank its top {' / '.join(map(str, sorted(d for d in depths if d)))}) | | | {' / '.join(map(str, sorted(bm25)))} | | | | | | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
