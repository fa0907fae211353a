"""Stage ``write``: a finished run's files (``run.trec``, ``perquery.tsv``, ``metrics.json``).

``train`` writes a run directory (:func:`write_training_run`); ``rerank`` writes its run file and,
when it was evaluated, the same measures beside it (:func:`write_rerank`).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from rankexp.pipeline.evaluate import Evaluation, learned_verdict
from rankexp.tracking.rundir import RunDir


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_training_run(rd: RunDir, prep, fitted, prediction, ev: Evaluation) -> dict[str, Any]:
    """Write the run directory's results and return ``metrics.json``'s content."""
    from rankexp.eval.trec_io import write_run

    cfg, split, timings = prep.cfg, prep.split, prep.timings
    write_run(rd.path / "run.trec", prediction.run, tag=f"rankexp-{rd.run_id}")
    rd.write_perquery(ev.perquery_tables())
    timings["total_s"] = time.perf_counter() - prep.t_start
    base = ev.references[prep.first_stage.name]
    untrained = ev.references.get("untrained")
    metrics = {
        "run_id": rd.run_id,
        "dataset": prep.collection.name,
        "split": "test",
        "provider": ev.model.provider,
        "rerank_k": prediction.depth,
        "retrieval": {k: v for k, v in prediction.info.items() if k != "timings"},
        "queries": {"test": len(split["test"]), "evaluated": ev.model.num_queries,
                    "without_candidates": ev.model.missing_in_run, "dev": len(split["dev"]), "train": len(split["train"])},
        "model": ev.model.aggregate,
        "baseline": {"name": prep.first_stage.name, "params": prep.first_stage.params(), **base.aggregate},
        "untrained": untrained.aggregate if untrained is not None else None,
        # paired two-sided t-tests of the model against each reference row on the test queries
        "paired_ttest": ev.paired,
        "learned": learned_verdict(ev.paired.get("untrained"), prep.dev_measure),
        "dev": {"measure": prep.dev_measure, "best": fitted.best_dev, "best_step": fitted.best_step,
                "untrained": fitted.untrained_dev, "kept_start": fitted.kept_start,
                **({"wise_ft": fitted.wise_ft} if fitted.wise_ft is not None else {})},
        "train": {"steps": fitted.trainer.global_step, "groups": len(fitted.groups),
                  "group_size": len(fitted.groups[0].doc_ids) if fitted.groups else 0,
                  "negatives": prep.sampler.stats(), "peak_rss_mb": peak_rss_mb(), "throughput": fitted.throughput.summary(),
                  **{k: round(v, 4 if k.endswith("share") else 2) for k, v in timings.items()}},
        "cache": prep.cache.summary(),
        "notes": prep.collection.notes,
    }
    from rankexp.debias.diagnostics import diagnostics  # data.pooling / debias=cet: against the hidden set

    debias = diagnostics(prep, fitted, fitted.module)
    if debias is not None:
        metrics["debias"] = debias
    from rankexp.distill.teachers import fidelity_metrics  # distill: the teacher and fidelity to it

    distill = fidelity_metrics(prep, {"model": prediction.run, "untrained": untrained_run(fitted)})
    if distill is not None:
        metrics["distill"] = distill
    rd.write_json("metrics.json", metrics)
    if not cfg.train.keep_last_checkpoint:
        (rd.checkpoints / "last.ckpt").unlink(missing_ok=True)
    return metrics


def untrained_run(fitted):
    return fitted.untrained.run if getattr(fitted, "untrained", None) is not None else None


def write_rerank(out_dir: Path | None, run_file: Path, run: dict, tag: str, metrics: dict[str, Any],
                 ev: Evaluation | None) -> None:
    """``run_file`` (TREC); with an output directory also ``metrics.json`` and ``perquery.tsv``."""
    from rankexp.eval.trec_io import write_run
    from rankexp.utils.io import write_json

    run_file.parent.mkdir(parents=True, exist_ok=True)
    write_run(run_file, run, tag=tag)
    if out_dir is None:
        return
    rd = RunDir(out_dir)
    if ev is not None:
        rd.write_perquery(ev.perquery_tables())
    write_json(out_dir / "metrics.json", metrics)
