"""The comparison as Markdown: the system table (best of each column in bold), the legend, the paired
tests, the system orderings, the dev curves and the notes."""

from __future__ import annotations

from rankexp.eval.compare.model import CompareResult
from rankexp.eval.compare.table import Cell, ComparisonTable, comparison_table

__all__ = ["to_markdown"]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(c: Cell) -> str:
    mean = f"**{c.mean}**" if c.best else c.mean
    spread = f" ± {c.std}" if c.std else ""
    return f"{mean}{spread} {c.marker or ''}".rstrip() + (f" [{c.ci[0]}, {c.ci[1]}]" if c.ci else "")


def _tests(t: ComparisonTable) -> list[str]:
    adj = "p" if t.correction == "none" else f"p ({t.correction})"
    lines = [f"| system | measure | Δ vs {t.baseline} | p | {adj} | |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r.system} | {r.measure} | {r.delta} | {r.p} | {r.p_adjusted} | {r.marker} |" for r in t.tests]
    return lines


def to_markdown(result: CompareResult) -> str:
    t = comparison_table(result)
    head = ["system", "seeds", "queries", *t.measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in t.rows:
        name = row.label + (" (baseline)" if row.baseline else "")
        lines.append("| " + " | ".join([_escape(name), row.seeds, str(row.queries), *map(_cell, row.cells)]) + " |")
    lines += ["", t.legend + ".", "", t.tests_line + ".", ""]
    lines.append("\n".join(_tests(t)))
    if t.orderings:
        lines += ["", "System orderings:", "", "| reference | estimate | systems | Kendall τ | τ_ap | RBO |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {o.reference} | {o.estimate} | {o.systems} | {o.kendall_tau} | {o.tau_ap} | {o.rbo} |" for o in t.orderings]
    if t.dev_curve:
        d = t.dev_curve
        lines += ["", f"Dev {d.measure} over training (mean ± std over seeds, steps evaluated by every seed):", "",
                  "| system | " + " | ".join(f"step {st}" for st in d.steps) + " |", "|---|" + "---:|" * len(d.steps)]
        lines += ["| " + " | ".join([_escape(label), *cells]) + " |" for label, cells in d.rows]
    if t.fidelity:
        f = t.fidelity
        lines += ["", f"Fidelity to the teacher ({_escape(f.teacher)}) on the test candidates (per-query means; mean ± std over seeds):", "",
                  "| system | " + " | ".join(f.columns) + " |", "|---|" + "---:|" * len(f.columns)]
        lines += ["| " + " | ".join([_escape(label), *cells]) + " |" for label, cells in f.rows]
    for n in t.notes:
        lines += ["", f"Note: {n}"]
    return "\n".join(lines) + "\n"
