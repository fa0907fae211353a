"""``train``: prepare → build → fit → predict → evaluate → write, for one run directory.

Locks, signals and statuses are :func:`rankexp.api.train`'s; this is the work inside them.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rankexp.pipeline.build import build_module
from rankexp.pipeline.evaluate import evaluate_beside, first_stage_top
from rankexp.pipeline.fit import fit
from rankexp.pipeline.predict import predict_split
from rankexp.pipeline.prepare import prepare
from rankexp.pipeline.write import write_training_run
from rankexp.tracking.rundir import RunDir


def run_training(cfg: DictConfig, rd: RunDir, resume: Path | None):
    """Train, rank the test split, evaluate beside the first stage and the untrained start, write.
    Returns ``(metrics, logger)``; ``metrics`` is empty on the non-zero ranks of a distributed run."""
    from rankexp.tracking.loggers import log_final, summary_extras

    prep = prepare(cfg, rd)
    module = build_module(prep)
    fitted = fit(prep, module, rd, resume)
    if not fitted.trainer.is_global_zero:
        return {}, fitted.logger
    # the kept start's test ranking is the untrained one already computed (same weights): not scored twice
    prediction = fitted.untrained if fitted.kept_start else predict_split(prep, fitted.module.encoder, fitted.mode)
    prep.timings.update(prediction.info.get("timings", {}))
    test = prep.split["test"]
    references = {prep.first_stage.name: first_stage_top(prep.fs_run, test, prediction.depth),
                  "untrained": fitted.untrained.run if fitted.untrained is not None else None}
    ev = evaluate_beside(prediction.run, references, {q: prep.collection.qrels[q] for q in test}, test, prediction.measures)
    metrics = write_training_run(rd, prep, fitted, prediction, ev)
    log_final(fitted.logger, ev.aggregates(), ev.perquery_tables(), summary_extras(metrics))
    return metrics, fitted.logger
