"""The result of a comparison: systems (seed groups and reference rows), paired tests against a
baseline, and correlations between system orderings; the per-query correlation of two run files.
Plain dataclasses; every renderer (:mod:`rankexp.eval.compare.render`) reads them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from rankexp.tracking.store import StoredRun

__all__ = ["UP", "DOWN", "LOWER_IS_BETTER", "higher_is_better", "direction", "System", "Comparison", "OrderingCorrelation", "CompareResult", "RunPairCorrelation", "jsonable"]

UP, DOWN = "▲", "▼"

# Measures where a lower value is the better one: an attack's cost and visibility (rankexp/attacks/measures.py):
# the share of words it changed and the victim queries it spent. Every ranking measure is higher-is-better.
LOWER_IS_BETTER = frozenset({"perturbation_pct", "victim_queries_per_target", "victim_queries"})


def higher_is_better(measure: str) -> bool:
    return measure not in LOWER_IS_BETTER


def direction(measure: str) -> float:
    """+1 for a higher-is-better measure, -1 for a LOWER_IS_BETTER one: ``direction(m) * value`` orders best first."""
    return 1.0 if higher_is_better(measure) else -1.0


@dataclass
class System:
    """A group of runs that differ only in seed, or the first-stage pseudo-system."""

    label: str
    kind: str  # "group", "first_stage" or "untrained"
    run_ids: list[str]
    seeds: list[Any]
    summaries: dict[str, dict]  # measure -> significance.summarize(...) over seeds
    perquery: dict[str, dict[str, float]]  # measure -> qid -> mean over seeds
    dev: dict | None = None  # {"measure", **summarize(dev.best over seeds)}
    dev_curve: dict | None = None  # {"measure", "points": [{"step", **summarize(value over seeds)}]}
    config: dict[str, Any] = field(default_factory=dict)  # the differing config keys -> value
    runs: list[StoredRun] = field(default_factory=list, repr=False)
    fidelity: dict | None = None  # distillation: {"teacher", measure -> summarize(...) over seeds, "scoring_s", "cache_hits", ...}

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def n_queries(self) -> int:
        return max((len(v) for v in self.perquery.values()), default=0)

    def mean(self, measure: str) -> float:
        return self.summaries[measure]["mean"]


@dataclass
class Comparison:
    """One paired test: ``system`` against ``baseline`` on ``measure`` (per-query means over seeds)."""

    system: str
    baseline: str
    measure: str
    test: str
    mean_diff: float  # mean over queries of (system - baseline); > 0: the system is better (< 0 for LOWER_IS_BETTER)
    n_queries: int
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    note: str | None = None

    @property
    def marker(self) -> str:
        if not self.significant:
            return ""
        return UP if (self.mean_diff > 0) == higher_is_better(self.measure) else DOWN


@dataclass
class OrderingCorrelation:
    """Agreement between two orderings of the same systems (best first)."""

    reference: str  # e.g. "nDCG@10" (tau_ap's reference ordering)
    estimate: str  # e.g. "AP"
    systems: list[str]
    kendall_tau: float
    tau_ap: float
    rbo: float
    reference_order: list[str] = field(default_factory=list)
    estimate_order: list[str] = field(default_factory=list)


@dataclass
class CompareResult:
    systems: list[System]
    measures: list[str]
    baseline: str
    test: str
    correction: str
    alpha: float
    comparisons: list[Comparison]
    correlations: list[OrderingCorrelation]
    differing_keys: list[str]
    n_queries: int
    notes: list[str] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    unit: str = "queries"  # what a paired test pairs on: "queries", or "targets" for attack runs

    def system(self, label: str) -> System:
        for s in self.systems:
            if s.label == label:
                return s
        raise KeyError(label)

    def comparison(self, system: str, measure: str) -> Comparison | None:
        for c in self.comparisons:
            if c.system == system and c.measure == measure:
                return c
        return None

    def best(self, measure: str) -> set[str]:
        """The labels of the systems with the best mean on ``measure`` (the highest; the lowest for a
        LOWER_IS_BETTER measure; all of them on a tie)."""
        means = [(s.mean(measure), s.label) for s in self.systems if measure in s.summaries]
        scored = [(direction(measure) * v, label) for v, label in means if v is not None and not math.isnan(v)]
        if not scored:
            return set()
        top = max(v for v, _ in scored)
        return {label for v, label in scored if v >= top - 1e-12}

    def seeds_phrase(self) -> str:
        counts = sorted({s.n_seeds for s in self.systems if s.kind == "group"})
        if not counts:
            return "0 seeds"
        if len(counts) == 1:
            return f"{counts[0]} seed" + ("s" if counts[0] != 1 else "")
        return f"{counts[0]}–{counts[-1]} seeds"

    def tested(self) -> int:
        return sum(1 for c in self.comparisons if c.p_value is not None)

    def legend(self) -> str:
        corr = "no correction" if self.correction == "none" else f"{self.correction}-corrected over {self.tested()} comparisons"
        lower = sorted({c.measure for c in self.comparisons if not higher_is_better(c.measure)})
        lower_note = f"; lower is better for {', '.join(lower)}" if lower else ""
        return (f"{UP}/{DOWN}: significantly better/worse than {self.baseline} "
                f"(paired {self.test}, {corr}, α = {self.alpha:g}{lower_note}); mean ± std over seeds, [95% CI]")

    def tests_line(self) -> str:
        """What the paired tests ran on: the queries (attack runs: targets) every system shares, or, when
        the systems were evaluated on different sets, the range of shared counts over the tests."""
        line = f"tests on per-{'target' if self.unit == 'targets' else 'query'} means over {self.seeds_phrase()} · "
        counts = sorted({c.n_queries for c in self.comparisons})
        if not counts or counts == [self.n_queries]:
            return line + f"{self.n_queries} {self.unit}"
        span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        return line + f"{span} {self.unit} per test (those each system shares with {self.baseline}; {self.n_queries} shared by all)"

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "baseline": self.baseline, "test": self.test, "correction": self.correction, "alpha": self.alpha,
            "measures": self.measures, "n_queries": self.n_queries,
            "tests_on": f"per-query means over seeds ({self.seeds_phrase()})",
            "differing_keys": self.differing_keys,
            "systems": [{"label": s.label, "kind": s.kind, "run_ids": s.run_ids, "seeds": s.seeds,
                         "n_seeds": s.n_seeds, "n_queries": s.n_queries, "config": s.config,
                         "measures": s.summaries, "dev": s.dev, "dev_curve": s.dev_curve, "fidelity": s.fidelity} for s in self.systems],
            "comparisons": [{**asdict(c), "marker": c.marker} for c in self.comparisons],
            "correlations": [asdict(c) for c in self.correlations],
            "notes": self.notes,
            "excluded": [{"run": r, "status": st} for r, st in self.excluded],
        })


@dataclass
class RunPairCorrelation:
    run_a: str
    run_b: str
    per_query: dict[str, dict[str, float]]  # qid -> {kendall_tau, tau_ap, rbo, n_common, n_docs}
    means: dict[str, float]
    only_in_a: list[str]
    only_in_b: list[str]
    depth: int | None
    p: float
    queries: dict[str, int] = field(default_factory=dict)  # measure -> queries its mean is over
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> {reason: queries left out}

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj
