"""``compare()``: group runs by seed, summarise each system, test every system against a
baseline and correlate the system orderings (the steps live in grouping, systems, baseline and
stats; the result model in :mod:`rankexp.eval.compare.model`)."""

from __future__ import annotations

from typing import Sequence

from rankexp.errors import ConfigError
from rankexp.eval import significance
from rankexp.eval.compare.baseline import resolve_baseline
from rankexp.eval.compare.grouping import group_labels, group_runs
from rankexp.eval.compare.model import CompareResult
from rankexp.eval.compare.stats import (RANDOMIZATION_SAMPLES, RANDOMIZATION_SEED, learned_notes, ordering_correlations,
                                        paired_comparisons)
from rankexp.eval.compare.systems import (available_measures, first_stage_system, group_systems, parse_measure_list,
                                          untrained_systems)
from rankexp.tracking.store import StoredRun

__all__ = ["compare"]


def compare(
    runs: Sequence[StoredRun],
    measures: str | Sequence[str] | None = None,
    baseline: str | None = None,
    test: str = "ttest",
    correction: str = "holm",
    alpha: float = 0.05,
    excluded: Sequence[tuple[str, str]] = (),
    n_samples: int = RANDOMIZATION_SAMPLES,
    seed: int = RANDOMIZATION_SEED,
) -> CompareResult:
    """Group ``runs`` by seed, summarise, test every system against ``baseline`` and correlate
    the system orderings. ``baseline``: a system label, a run id (or prefix), ``KEY=VALUE``
    matching one group, or ``bm25`` (the default)."""
    if not runs:
        raise ConfigError("nothing to compare: no complete runs")
    if test not in significance.TESTS:
        raise ConfigError(f"--test must be one of {', '.join(significance.TESTS)}, got {test!r}")
    if correction not in significance.CORRECTIONS:
        raise ConfigError(f"--correction must be one of {', '.join(significance.CORRECTIONS)}, got {correction!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must lie strictly between 0 and 1, got {alpha}")
    notes: list[str] = []
    measure_list = parse_measure_list(measures, available_measures(runs))
    groups = group_runs(runs)
    labels, diff = group_labels(groups)
    systems = group_systems(groups, labels, diff, measure_list)
    # attack runs (rankexp attack) have no untrained start, first stage or dev split: no training-run rows or notes
    attacks = all(r.is_attack for r in runs)
    untrained = [] if attacks else untrained_systems(runs, groups, measure_list, notes)
    systems.extend(untrained)
    notes.extend(learned_notes([s for s in systems if s.kind == "group"], untrained, measure_list[0], alpha))
    fs = None if attacks else first_stage_system(runs, measure_list, notes)
    if fs is not None:
        if any(s.label == fs.label for s in systems):
            fs.label = f"{fs.label} (first stage)"
        systems.append(fs)
    base = resolve_baseline(baseline, systems)

    comparisons, query_sets = paired_comparisons(systems, base, measure_list, test, correction, alpha, n_samples, seed)
    if len(set(query_sets)) > 1:
        notes.append("systems were evaluated on different query sets; each test uses the queries both systems share")
    qsets = [set(s.perquery[measure_list[0]]) for s in systems]
    n_queries = len(set.intersection(*qsets)) if qsets else 0
    for c in comparisons:
        if c.note:
            notes.append(f"{c.system} vs {c.baseline} on {c.measure}: {c.note}")
    # orderings of attacks by pairs of their measures (success vs words changed) answer no question: none for attacks
    correlations = [] if attacks else ordering_correlations(systems, measure_list, notes)
    return CompareResult(systems=systems, measures=measure_list, baseline=base.label, test=test, correction=correction,
                         alpha=alpha, comparisons=comparisons, correlations=correlations, differing_keys=diff,
                         n_queries=n_queries, notes=notes, excluded=list(excluded),
                         unit="targets" if attacks else "queries")
