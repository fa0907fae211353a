"""The comparison as ONE table model, formatted once for every renderer (rich, markdown, LaTeX,
HTML; CSV and JSON read :func:`result_rows` and ``CompareResult.to_dict``).

:func:`comparison_table` turns a :class:`~rankexp.eval.compare.model.CompareResult` into
:class:`ComparisonTable`: one :class:`Row` per system with one :class:`Cell` per measure (mean,
best-of-column, ± std and the 95% CI for a group with more than one seed, the significance
marker), the paired tests, the system-ordering correlations and the dev curves. Numbers are
formatted here (4 decimals for measures, 3 for CI bounds and correlations); a renderer only lays
them out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rankexp.eval.compare.model import CompareResult, System

__all__ = ["FORMATS", "fmt", "fmt_p", "seeds_cell", "display_name", "Cell", "cell", "Row", "TestRow", "OrderingRow", "DevCurve",
           "ComparisonTable", "FidelityTable", "fidelity_table", "comparison_table", "result_rows", "dev_curve_rows"]

FORMATS = ("table", "csv", "json", "latex", "markdown")  # "table": rich, in the terminal


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def seeds_cell(s: System) -> str:
    return str(s.n_seeds) if s.kind in ("group", "untrained") and s.n_seeds else "–"


def display_name(result: CompareResult, s: System) -> str:
    return s.label + (" (baseline)" if s.label == result.baseline else "")


@dataclass(frozen=True)
class Cell:
    """One system × measure cell, formatted once for every renderer (rich, HTML, LaTeX, ...)."""

    mean: str
    best: bool
    std: str | None  # only for a group with more than one seed
    marker: str | None  # UP / DOWN when significant against the baseline
    ci: tuple[str, str] | None
    p_adjusted: float | None


def cell(result: CompareResult, system: System, measure: str) -> Cell:
    sm = system.summaries[measure]
    c = result.comparison(system.label, measure)
    spread = system.kind in ("group", "untrained") and sm["n"] > 1
    return Cell(fmt(sm["mean"]), system.label in result.best(measure), fmt(sm["std"]) if spread else None,
                c.marker if c and c.marker else None,
                (fmt(sm["ci95_low"], 3), fmt(sm["ci95_high"], 3)) if spread else None, c.p_adjusted if c else None)


@dataclass(frozen=True)
class Row:
    """One system: its label, whether it is the baseline, its seeds and queries, one cell per measure."""

    label: str
    kind: str
    baseline: bool
    seeds: str
    queries: int
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class TestRow:
    """One paired test against the baseline."""

    system: str
    measure: str
    delta: str  # "+0.0123"
    queries: int
    statistic: str
    p: str
    p_adjusted: str
    marker: str  # UP, DOWN or ""


@dataclass(frozen=True)
class OrderingRow:
    reference: str
    estimate: str
    systems: int
    kendall_tau: str
    tau_ap: str
    rbo: str


@dataclass(frozen=True)
class DevCurve:
    """The groups' dev measure at the union of their evaluated steps ("" where a group has none)."""

    measure: str
    steps: tuple[int, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (label, cells)


@dataclass(frozen=True)
class FidelityTable:
    """Distillation: each system's fidelity to the teacher's ranking of the test candidates
    ("mean ± std" over seeds of the per-query means), the teacher's scoring time and cache use."""

    teacher: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (label, cells)


FIDELITY_COLUMNS = (("kendall_tau", "Kendall τ"), ("tau_ap", "τ_ap"), ("rbo", "RBO"), ("top10_overlap", "top-10 overlap"))


def fidelity_table(result: CompareResult) -> FidelityTable | None:
    """``None`` unless some system has fidelity numbers (``distill=...`` runs)."""
    systems = [s for s in result.systems if s.fidelity]
    if not systems:
        return None
    teachers = sorted({t for s in systems for t in s.fidelity.get("teacher", [])})
    rows = []
    for s in systems:
        f = s.fidelity
        cells = [(fmt(f[k]["mean"], 3) + (f" ± {fmt(f[k]['std'], 3)}" if f[k]["n"] > 1 else "")) if k in f else "–"
                 for k, _ in FIDELITY_COLUMNS]
        teacher_cells = [f"{f['scoring_s']:.1f}", f"{f['cache_builds']} / {f['cache_hits']}"] if s.kind == "group" else ["", ""]
        rows.append((s.label, tuple(cells + teacher_cells)))
    return FidelityTable("; ".join(teachers), tuple(n for _, n in FIDELITY_COLUMNS) + ("teacher scoring s", "cache builds / hits"),
                         tuple(rows))


@dataclass(frozen=True)
class ComparisonTable:
    measures: tuple[str, ...]
    rows: tuple[Row, ...]
    tests: tuple[TestRow, ...]
    orderings: tuple[OrderingRow, ...]
    dev_curve: DevCurve | None
    baseline: str
    test: str
    correction: str
    alpha: float
    tested: int  # comparisons that got a p-value (the family the correction is over)
    seeds_phrase: str  # "2 seeds", "2–3 seeds"
    n_queries: int
    legend: str
    tests_line: str
    notes: tuple[str, ...]
    fidelity: FidelityTable | None = None
    unit: str = "queries"  # "targets" for attack runs


def comparison_table(result: CompareResult) -> ComparisonTable:
    """The whole comparison, formatted: what every renderer draws."""
    rows = tuple(Row(s.label, s.kind, s.label == result.baseline, seeds_cell(s), s.n_queries,
                     tuple(cell(result, s, m) for m in result.measures)) for s in result.systems)
    tests = tuple(TestRow(c.system, c.measure, f"{c.mean_diff:+.4f}" if not math.isnan(c.mean_diff) else "–", c.n_queries, fmt(c.statistic, 3), fmt_p(c.p_value),
                          fmt_p(c.p_adjusted), c.marker) for c in result.comparisons)
    orderings = tuple(OrderingRow(c.reference, c.estimate, len(c.systems), fmt(c.kendall_tau, 3), fmt(c.tau_ap, 3),
                                  fmt(c.rbo, 3)) for c in result.correlations)
    curve = dev_curve_rows(result)
    dev = None
    if curve:
        steps, crow = curve
        dev = DevCurve(crow[0][1], tuple(steps), tuple((label, tuple(cells)) for label, _, cells in crow))
    return ComparisonTable(tuple(result.measures), rows, tests, orderings, dev, result.baseline, result.test,
                           result.correction, result.alpha, result.tested(), result.seeds_phrase(), result.n_queries, result.legend(), result.tests_line(), tuple(result.notes),
                           fidelity_table(result), result.unit)


def result_rows(result: CompareResult) -> list[dict[str, Any]]:
    """One row per system and measure: the long form behind CSV."""
    rows = []
    for s in result.systems:
        for m in result.measures:
            sm = s.summaries[m]
            c = result.comparison(s.label, m)
            rows.append({
                "system": s.label, "kind": s.kind, "is_baseline": s.label == result.baseline,
                "n_seeds": s.n_seeds, "seeds": " ".join(map(str, s.seeds)), "run_ids": " ".join(s.run_ids),
                "n_queries": len(s.perquery[m]), "measure": m, "mean": sm["mean"], "std": sm["std"],
                "ci95_low": sm["ci95_low"], "ci95_high": sm["ci95_high"],
                "baseline": result.baseline, "mean_diff": c.mean_diff if c else None, "test": result.test if c else None,
                "statistic": c.statistic if c else None, "p_value": c.p_value if c else None,
                "p_adjusted": c.p_adjusted if c else None, "correction": result.correction if c else None,
                "significant": c.significant if c else None, "marker": c.marker if c else "",
            })
    return rows


def dev_curve_rows(result: CompareResult) -> tuple[list[int], list[tuple[str, str, list[str]]]] | None:
    """The dev curves of the groups as one table: the union of their steps, and per group
    (label, dev measure, cells "mean ± std" or "" where the group has no value at a step).
    ``None`` unless some group has at least two evaluated steps (one point is no curve)."""
    groups = [s for s in result.systems if s.dev_curve and len(s.dev_curve["points"]) >= 2]
    if not groups:
        return None
    steps = sorted({p["step"] for s in groups for p in s.dev_curve["points"]})
    rows = []
    for s in groups:
        at = {p["step"]: p for p in s.dev_curve["points"]}
        rows.append((s.label, s.dev_curve["measure"],
                     [(fmt(at[st]["mean"]) + (f" ± {fmt(at[st]['std'])}" if at[st]["n"] > 1 else "")) if st in at else ""
                      for st in steps]))
    return steps, rows
