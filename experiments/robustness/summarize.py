"""Tables of the robustness study from the attack and certify run directories.

usage: python experiments/robustness/summarize.py OUTPUT_DIR [--max-queries 8] [--dataset vaswani]

Reads OUTPUT_DIR/attacks/*/metrics.json (complete runs whose attack.max_queries matches) and
OUTPUT_DIR/certify/*/metrics.json; prints markdown: one row per victim x attack with mean ± std over
the target-sampling seeds, the imitation models' facts, CertDR's rates, and one example per attack.
"""

from __future__ import annotations

import argparse
import json
import statistics as stats
from collections import defaultdict
from pathlib import Path

import yaml

MEASURES = [("success_rate", "success", 100, 1), ("top10_rate", "top-10", 100, 1), ("top50_rate", "top-50", 100, 1),
            ("avg_boost", "rank boost", 1, 1), ("perturbation_pct", "perturb. %", 1, 1),
            ("victim_queries_per_target", "victim q./target", 1, 1), ("similarity", "similarity", 1, 3),
            ("kendall_tau", "Kendall τ", 1, 3)]
ORDER = {"prada": 0, "pat": 1, "topic": 2}


def fmt(values, scale, digits):
    xs = [v * scale for v in values if v is not None]
    if not xs:
        return "–"
    m = stats.mean(xs)
    s = stats.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def victim_label(name: str) -> str:
    if name.startswith("bm25"):
        return "BM25"
    if "MiniLM" in name:
        return "bi-encoder (all-MiniLM-L6-v2)"
    return f"cross-encoder ({name})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("output_dir")
    ap.add_argument("--max-queries", type=int, default=8)
    ap.add_argument("--dataset", default="vaswani")
    a = ap.parse_args()
    root = Path(a.output_dir)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for m_path in sorted(root.glob("attacks/*/metrics.json")):
        d = m_path.parent
        if (d / "status").read_text().strip() != "complete":
            continue
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        m = json.loads(m_path.read_text())["attack"]
        if cfg["attack"].get("max_queries") != a.max_queries or m["dataset"] != a.dataset:
            continue
        m["_dir"] = d
        m["_group_size"] = (cfg["attack"].get("topic") or {}).get("group_size")
        groups[(m["victim"], m["name"])].append(m)
    if not groups:
        print("no complete attack runs matched")
        return
    print(f"### Attacks ({a.dataset}, attack.max_queries={a.max_queries}; mean ± std over the seeds; wall s includes training the imitation model in the one run that trained it)\n")
    print("| victim | attack | seeds | targets (pairs) | " + " | ".join(h for _, h, _, _ in MEASURES) + " | wall s per seed |")
    print("|---|---|---|---|" + "---|" * (len(MEASURES) + 1))
    keys = sorted(groups, key=lambda k: (0 if k[0].startswith("bm25") else 1 if "MiniLM" in k[0] else 2, ORDER.get(k[1], 9)))
    for key in keys:
        runs = sorted(groups[key], key=lambda m: m["seed"])
        tg = "/".join(str(m["targets"]) for m in runs)
        pairs = "/".join(str(m["pairs"]) for m in runs)
        cells = [fmt([m.get(k) for m in runs], sc, dg) for k, _, sc, dg in MEASURES]
        print(f"| {victim_label(key[0])} | {key[1]} | {','.join(str(m['seed']) for m in runs)} | {tg} ({pairs}) | " + " | ".join(cells) + f" | {'/'.join(str(round(m['wall_s'])) for m in runs)} |")
    print("\nRank before → after (mean over pairs, per seed):\n")
    for key in keys:
        runs = sorted(groups[key], key=lambda m: m["seed"])
        print(f"- {victim_label(key[0])} / {key[1]}: " + "; ".join(
            f"seed {m['seed']}: {m['old_rank_mean']:.1f} → {m['new_rank_mean']:.1f}" for m in runs))
    print("\n### Imitation models (one per victim, reused by every attack and seed)\n")
    seen = set()
    print("| victim | key | train q. | pairs | steps | victim queries | top-10 overlap (untrained) | RBO (untrained) | Kendall τ (untrained) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for m in groups[key]:
            im = (m.get("setup") or {}).get("imitation")
            if not im or im["key"] in seen:
                continue
            seen.add(im["key"])
            f, u = im.get("fidelity") or {}, im.get("fidelity_untrained") or {}
            cell = lambda k: f"{f.get(k, float('nan')):.3f} ({u.get(k, float('nan')):.3f})"  # noqa: E731
            print(f"| {victim_label(key[0])} | {im['key']} | {im['train_queries']} | {im['pairs']} | {im['steps']} | "
                  f"{im['victim_queries']} | {cell('top10_overlap')} | {cell('rbo')} | {cell('kendall_tau')} |")
    print("\n### Examples (seed 0: the target with the largest rank boost)\n")
    for attack in ("prada", "pat", "topic"):
        best = None
        for key in keys:
            if key[1] != attack:
                continue
            for m in groups[key]:
                if m["seed"] != 0:
                    continue
                for line in (m["_dir"] / "results.jsonl").read_text().splitlines():
                    r = json.loads(line)
                    boost = sum(p["old_rank"] - p["new_rank"] for p in r["pairs"]) / len(r["pairs"])
                    if r["changed"] and (best is None or boost > best[0]):
                        best = (boost, key[0], r)
        if best is None:
            print(f"- {attack}: no target changed")
            continue
        boost, victim, r = best
        ranks = ", ".join(f"q{p['qid']}: {p['old_rank']}→{p['new_rank']}" for p in r["pairs"])
        print(f"- **{attack}** on {victim_label(victim)}, doc {r['doc_id']} ({ranks}; {r['changed']} of {r['total_words']} words, "
              f"similarity {r['similarity']:.3f})\n  - original:  `{r['snippet']['original']}`\n  - perturbed: `{r['snippet']['perturbed']}`")
        if attack == "prada":
            print(f"  - swaps: {r['details'].get('swaps')}")
        else:
            print(f"  - trigger: `{r['details'].get('trigger')}`")
    certs = []
    for m_path in sorted(root.glob("certify/*/metrics.json")):
        m = json.loads(m_path.read_text())
        if m.get("dataset") == a.dataset:
            certs.append(m)
    if certs:
        print("\n### CertDR\n")
        print("| victim | queries | depth | N | scale | ε | CRQ@10 | CRQ@20 | trivial@10/20 | mean max Δ @10 | median margin@10 | "
              "nDCG@10 smoothed | nDCG@10 plain | texts | wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for m in certs:
            st = m["settings"]
            c10, c20 = m.get("certified@10", {}), m.get("certified@20", {})
            mm = c10.get("median_margin")
            print(f"| {victim_label(m['victim'])} | {m['queries']['certified_on']} | {st['depth']} | {st['samples']} | {st['scale']} | "
                  f"{m['epsilon']:.3f} | {m.get('CRQ@10')} | {m.get('CRQ@20')} | {c10.get('trivial')}/{c20.get('trivial')} | "
                  f"{m['mean_max_delta'].get('10', float('nan')):.3f} | {'–' if mm is None else f'{mm:.4f}'} | "
                  f"{(m.get('smoothed') or {}).get('nDCG@10', float('nan')):.4f} | {(m.get('victim_plain') or {}).get('nDCG@10', float('nan')):.4f} | "
                  f"{m.get('texts_scored')} | {m.get('wall_s')} |")


if __name__ == "__main__":
    main()
