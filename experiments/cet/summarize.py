"""The CET study's tables (experiments/cet/README.md) from its run directories.

    python experiments/cet/summarize.py RUN_DIR [RUN_DIR ...]

One row per (pool: a random hidden share or a BM25 depth, arm) over its seeds: test nDCG@10 on the FULL qrels (mean ± std, per seed),
the paired t-test against the untrained start per seed (metrics.json -> paired_ttest.untrained) and
how many seeds learned (p < 0.05 and better; how many kept the start on dev), the share of hidden positives among the training
negatives, how well the run's estimates separate hidden positives from true negatives on the
training pool (ROC AUC; CET's coupled estimate and the relevance model's own: as seen during training, and
"final": the selected model over the whole pool, metrics.json -> debias.final), and the wall time.
Dev: nDCG@10 of the untrained start and of the best checkpoint (the start when no step beats it).
One table per (dataset, model). Reference rows: BM25 (the first stage at the runs' rerank depth) and the
untrained start.
Arms: naive = debias=none with no skip; skip-top-n = debias=none with negatives.skip_top=n;
CET (selection=S) = debias=cet.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from summaries import complete_runs, ms  # noqa: E402


def arm(cfg: dict) -> str:
    debias = cfg.get("debias") or {}
    if debias.get("_target_"):
        return f"CET (selection={debias.get('selection', 'buckets')})" + (
            f" + skip-top-{cfg['negatives']['skip_top']}" if cfg["negatives"].get("skip_top") else "")
    skip = int(cfg["negatives"].get("skip_top") or 0)
    # a bi-encoder's listwise loss also takes the batch's other documents as negatives unless in_batch=false
    # (CET ignores them, and says so): such a naive run is a different arm
    enc = (cfg.get("model") or {}).get("encoder") or {}
    extra = " + in-batch negatives" if enc.get("in_batch") and model_name(cfg) == "bi-encoder" else ""
    return (f"skip-top-{skip}" if skip else "naive") + extra


def model_name(cfg: dict) -> str:
    target = str(((cfg.get("model") or {}).get("encoder") or {}).get("_target_", ""))
    return {"BiEncoder": "bi-encoder", "CrossEncoder": "cross-encoder"}.get(target.rsplit(".", 1)[-1], target or "?")


def main(dirs: list[str]) -> None:
    import yaml

    rows: dict[tuple[str, tuple[float, str], str], list[dict]] = defaultdict(list)
    starts: dict[str, dict[str, float]] = defaultdict(dict)  # (dataset, model) -> seed -> the untrained start's test nDCG@10
    bm25: dict[str, set] = defaultdict(set)
    depths: dict[str, set] = defaultdict(set)  # per table: the first stage's rerank depth
    steps = set()
    for d, m in complete_runs(dirs):
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        pooling = (cfg.get("data") or {}).get("pooling")
        if not pooling:
            print(f"skipped (no data.pooling): {d}", file=sys.stderr)
            continue
        data = f"{m.get('dataset') or cfg['data'].get('name')}, {model_name(cfg)}"
        share = pool_label(pooling, d)
        rows[(data, share, arm(cfg))].append({"seed": cfg.get("seed"), "m": m})
        if "untrained" in m:
            starts[data][str(cfg.get("seed"))] = m["untrained"]["nDCG@10"]
        bm25[data].add(round(m["baseline"]["nDCG@10"], 4))
        depths[data].add(m.get("rerank_k"))
        steps.add(cfg["trainer"]["max_steps"])
    order = ["naive", "naive + in-batch negatives", "skip-top-5", "CET (selection=model)", "CET (selection=buckets)"]
    for data in sorted({k[0] for k in rows}):
        print(f"\n{data}\n")
        print("| hidden share | arm | seeds | dev @0 → best (step) | test nDCG@10 | per seed | Δ vs start (p) per seed | learned "
              "| hidden positives among negatives | AUC, CET estimate | AUC, relevance model | final AUC, CET | final AUC, relevance "
              "| wall min |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for share in sorted({s for dd, s, _ in rows if dd == data}):
            names = {a for dd, s, a in rows if dd == data and s == share}
            for name in sorted(names, key=lambda a: order.index(a) if a in order else 9):
                print(row(share, name, sorted(rows[(data, share, name)], key=lambda r: str(r["seed"]))))
        st = starts[data]
        print(f"| – | untrained start | {','.join(sorted(st))} | | {ms(list(st.values()))} | "
              f"{' / '.join(f'{v:.4f}' for _, v in sorted(st.items()))} | | | | | | | | |")
        print(f"| – | BM25 (first stage, top {'/'.join(str(x) for x in sorted(depths[data], key=str))}) | | "
              f"| {'/'.join(f'{x:.4f}' for x in sorted(bm25[data]))} | | | | | | | | | |")
    print(f"\ntraining steps: {sorted(steps)}")


def pool_label(pooling: dict, rundir: Path) -> tuple[float, str]:
    """(sort key, label) of a run's pooling: a random share ``0.3``; a BM25 pool ``BM25 top 20 (60 %)`` with
    the share it hid (pooling.json)."""
    if pooling.get("system") == "bm25":
        import json

        rec = json.loads((rundir / "pooling.json").read_text())
        return 10 + float(rec["hidden_share"]), f"BM25 top {pooling['depth']} ({100 * rec['hidden_share']:.0f} %)"
    share = float(pooling.get("hide") or 0.0)
    return share, f"{share:g}"


def row(share: tuple[float, str], name: str, rs: list[dict]) -> str:
    nd = [r["m"]["model"]["nDCG@10"] for r in rs]
    tests = [r["m"].get("paired_ttest", {}).get("untrained", {}).get("nDCG@10") or {} for r in rs]
    delta = " / ".join(f"{t['diff']:+.3f} ({t['p']:.2g})" if t else "–" for t in tests)
    learned = sum(1 for t in tests if t and t["p"] < 0.05 and t["diff"] > 0)
    kept = sum(1 for r in rs if (r["m"].get("dev") or {}).get("kept_start"))
    deb = [r["m"].get("debias") or {} for r in rs]
    hid = [x["hidden_share_of_negatives"] for x in deb if "hidden_share_of_negatives" in x]
    auc = {k: [x["separation"][k]["roc_auc"] for x in deb
               if (x.get("separation") or {}).get(k, {}).get("roc_auc") is not None] for k in ("cet", "relevance")}
    final = {k: [x["final"][k]["roc_auc"] for x in deb
                 if (x.get("final") or {}).get(k, {}).get("roc_auc") is not None] for k in ("cet", "relevance")}
    wall = [r["m"]["train"]["total_s"] / 60 for r in rs]
    devs = " / ".join(f"{dv['untrained']:.3f} → {dv['best']:.3f} ({dv['best_step']})" if "untrained" in dv else f"{dv.get('best', 0):.3f}"
                      for dv in ((r["m"].get("dev") or {}) for r in rs))
    return (f"| {share[1]} | {name} | {','.join(str(r['seed']) for r in rs)} | {devs} | {ms(nd)} | {' / '.join(f'{x:.4f}' for x in nd)} "
            f"| {delta} | {learned} of {len(rs)}{f' ({kept} kept the start)' if kept else ''} | {ms(hid, 3)} "
            f"| {ms(auc['cet'], 3)} | {ms(auc['relevance'], 3)} | {ms(final['cet'], 3)} | {ms(final['relevance'], 3)} "
            f"| {'/'.join(f'{w:.1f}' for w in wall)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
