"""``rankexp eval`` on a 1M-line TREC run vs ir_measures' file path (pytrec_eval provider) and ranx,
side by side in one process.

A synthetic run (``--queries`` x ``--docs`` lines, scores rounded to ``--decimals`` so there are many
ties) and synthetic graded qrels are written to a temporary directory. Each side reads both files
and computes the same measures:

* rankexp: ``rankexp.api.evaluate_run`` (what ``rankexp eval RUN --qrels Q --measures ...`` runs:
  ``read_run`` + ``read_qrels`` + ``evaluate``);
* ir_measures: ``read_trec_run`` / ``read_trec_qrels`` + ``ir_measures.pytrec_eval.iter_calc``,
  mean per measure;
* ranx: ``Qrels.from_file`` / ``Run.from_file`` (trec) + ``ranx.evaluate``.

Rounds interleave the sides; the median time counts. Reported: times, ratios, and the max abs
difference of each measure's per-query values against ir_measures (ranx breaks score ties in its
own order, trec_eval by descending document id: a known, measured difference). ir_measures'
pytrec_eval provider computes RR@10 as full-depth ``recip_rank``; the exact reference for RR@10
(trec_eval ``-M 10``) is that value where it is >= 1/10 and 0 elsewhere, reported as
``RR@10 vs recip_rank cut at 10``. Also the time of the ``rankexp eval`` command itself (a
subprocess, imports included) once.

    python benchmarks/eval_vs_ir_measures.py --queries 1000 --docs 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

MEASURES = ["nDCG@10", "RR@10", "AP", "R@100"]
RANX = {"nDCG@10": "ndcg@10", "RR@10": "mrr@10", "AP": "map", "R@100": "recall@100"}


def write_data(d: Path, nq: int, nd: int, decimals: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    run, qrels = d / "run.trec", d / "qrels.txt"
    with open(run, "w") as fr, open(qrels, "w") as fq:
        for q in range(nq):
            docs = rng.sample(range(100_000), nd)
            scores = sorted((round(rng.random() * 10, decimals) for _ in docs), reverse=True)
            fr.write("".join(f"q{q} Q0 d{doc} {r + 1} {s:.{decimals}f} synth\n" for r, (doc, s) in enumerate(zip(docs, scores))))
            judged = rng.sample(docs[:200], 15) + rng.sample(range(100_000, 100_100), 5)  # some judged docs not retrieved
            fq.write("".join(f"q{q} 0 d{doc} {rng.choice([0, 0, 1, 1, 2])}\n" for doc in judged))
    return run, qrels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--decimals", type=int, default=2, help="score rounding (fewer decimals, more ties)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cli", action="store_true", help="skip timing the `rankexp eval` subprocess")
    ap.add_argument("--out", default=str(C.RESULTS), help="append the result (one JSON line) here")
    args = ap.parse_args()
    C.setup_env(1)
    import ir_measures

    from rankexp.api import evaluate_run

    tmp = Path(tempfile.mkdtemp(prefix="rankexp-bench-eval-"))
    run_path, qrels_path = write_data(tmp, args.queries, args.docs, args.decimals, args.seed)
    lines = args.queries * args.docs

    def rankexp_side():
        ev, _ = evaluate_run(run_path, str(qrels_path), MEASURES)
        return ev.perquery

    def ir_measures_side():
        ms = [ir_measures.parse_measure(m) for m in MEASURES]
        out: dict = {str(m): {} for m in ms}
        qrels = ir_measures.read_trec_qrels(str(qrels_path))
        for metric in ir_measures.pytrec_eval.iter_calc(ms, qrels, ir_measures.read_trec_run(str(run_path))):
            out[str(metric.measure)][metric.query_id] = float(metric.value)
        return out

    sides = {"rankexp": rankexp_side, "ir_measures": ir_measures_side}
    try:
        import ranx

        def ranx_side():
            qrels = ranx.Qrels.from_file(str(qrels_path), kind="trec")
            run = ranx.Run.from_file(str(run_path), kind="trec")
            res = ranx.evaluate(qrels, run, list(RANX.values()), return_mean=False)
            return {m: dict(zip(run.keys(), map(float, res[RANX[m]]))) for m in MEASURES}

        sides["ranx"] = ranx_side
        ranx_side()  # numba compiles on first use: not part of the timing
    except ImportError:
        print("ranx is not installed (pip install ranx): not measured")
    values, times = {}, {k: [] for k in sides}
    names = list(sides)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            values[name] = sides[name]()
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1}: {name:12s} {times[name][-1]:6.2f}s", flush=True)
    ref = values["ir_measures"]
    diffs = {}
    for name in names:
        if name == "ir_measures":
            continue
        diffs[name] = {}
        for m in MEASURES:
            a, b = values[name][m], ref[m]
            assert set(a) == set(b), (name, m, len(a), len(b))
            diffs[name][m] = max(abs(a[q] - b[q]) for q in b)
            diffs[name][m + " mean"] = abs(sum(a.values()) / len(a) - sum(b.values()) / len(b))
        # ir_measures' pytrec_eval provider answers RR@10 with full-depth recip_rank; trec_eval -M 10
        # is that value where the first relevant document is within rank 10, and 0 past it
        cut = {q: (v if v >= 1 / 10 else 0.0) for q, v in ref["RR@10"].items()}
        diffs[name]["RR@10 vs recip_rank cut at 10"] = max(abs(values[name]["RR@10"][q] - cut[q]) for q in cut)
    med = {k: C.median(v) for k, v in times.items()}
    result = {"benchmark": "eval", "data": f"synthetic TREC run: {args.queries} queries x {args.docs} docs "
              f"({lines} lines, scores rounded to {args.decimals} decimals: ties), 20 judged docs per query (5 unretrieved)",
              "measures": MEASURES, "rounds": args.rounds,
              "seconds_median": {k: round(v, 2) for k, v in med.items()},
              "seconds_rounds": {k: [round(x, 2) for x in v] for k, v in times.items()},
              "ratios": {f"rankexp_speedup_vs_{k}": round(med[k] / med["rankexp"], 3) for k in names if k != "rankexp"},
              "max_abs_diff_vs_ir_measures": {k: {m: float(f"{v:.3g}") for m, v in d.items()} for k, d in diffs.items()}}
    if not args.no_cli:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "rankexp", "eval", str(run_path), "--qrels", str(qrels_path),
                            "--measures", " ".join(MEASURES), "--format", "json"], capture_output=True, text=True)
        result["rankexp_eval_command_s"] = round(time.perf_counter() - t0, 2)
        result["rankexp_eval_command_rc"] = p.returncode
    C.record(result, args.out)


if __name__ == "__main__":
    main()
