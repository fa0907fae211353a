"""Reading run files for a comparison: the per-query rank correlation of two TREC runs (or run
directories, using their ``run.trec``). The only part of the comparison that reads files itself;
the rest works on runs loaded by :mod:`rankexp.tracking.store`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankexp.errors import ConfigError
from rankexp.eval.compare.model import RunPairCorrelation
from rankexp.eval.correlation import run_correlation

__all__ = ["correlate_run_files"]


def correlate_run_files(a: str | Path, b: str | Path, depth: int | None = None, p: float = 0.9) -> RunPairCorrelation:
    """Per-query Kendall tau-b, tau_ap (``a`` is the reference) and RBO between two TREC runs (or
    run directories, using their ``run.trec``), with their means over queries (NaN skipped)."""
    from rankexp.eval.trec_io import read_run

    def path(x: str | Path) -> Path:
        x = Path(x)
        return x / "run.trec" if x.is_dir() else x

    if depth is not None and depth < 1:
        raise ConfigError(f"--depth must be a positive integer, got {depth}")
    if not 0 < p < 1:
        raise ConfigError(f"--rbo-p must lie strictly between 0 and 1, got {p}")
    ra, rb = read_run(path(a)), read_run(path(b))
    pq = run_correlation(ra, rb, depth=depth, p=p)
    from rankexp.data.collection import natural_sorted

    per_query = {q: dict(pq[q]) for q in natural_sorted(pq)}
    summary = pq.summary()  # each mean over the queries where it is defined, with the reasons for the others
    means = {k: v["mean"] for k, v in summary.items()}
    for k in ("n_common", "n_docs"):
        means[k] = float(np.mean([v[k] for v in per_query.values()])) if per_query else float("nan")
    return RunPairCorrelation(run_a=str(a), run_b=str(b), per_query=per_query, means=means,
                              only_in_a=list(pq.only_in_a), only_in_b=list(pq.only_in_b), depth=depth, p=p,
                              queries={k: v["queries"] for k, v in summary.items()},
                              dropped={k: v["dropped"] for k, v in summary.items()})
