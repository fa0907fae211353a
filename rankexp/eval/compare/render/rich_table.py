"""The comparison for the terminal: rich tables (the system table with markers and CIs, the paired
tests, the system orderings, the dev curves) and the lines under them. The CLI prints what these
return; nothing here prints."""

from __future__ import annotations

from typing import Sequence

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from rankexp.eval.compare.model import DOWN, UP, CompareResult, RunPairCorrelation
from rankexp.eval.compare.render.runpair import run_pair_query_note
from rankexp.eval.compare.table import Cell, comparison_table, fmt

__all__ = ["comparison_renderables", "run_pair_renderables"]


def _markup(text: str) -> Text:
    return Text.from_markup(text, emoji=False)


def _cell(c: Cell) -> str:
    text = (f"[bold]{c.mean}[/]" if c.best else c.mean) + (f" ± {c.std}" if c.std else "")
    if c.marker:
        text += f" [{'green' if c.marker == UP else 'red'}]{c.marker}[/]"
    if c.ci:
        text += f"\n[dim][{c.ci[0]}, {c.ci[1]}][/]"
    return text


def comparison_renderables(result: CompareResult, datasets: Sequence[str] = ()) -> list[RenderableType]:
    """What ``rankexp compare`` prints, in order. ``datasets``: the runs' dataset names for the title."""
    t = comparison_table(result)
    where = f"{', '.join(datasets)} test split · " if datasets else ""
    table = Table(title=f"{where}{t.n_queries} {t.unit} · baseline {t.baseline}")
    table.add_column("system")
    table.add_column("seeds", justify="right")
    for m in t.measures:
        table.add_column(m, justify="right")
    for row in t.rows:
        table.add_row(row.label + (" [dim](baseline)[/]" if row.baseline else ""), row.seeds, *map(_cell, row.cells))
    out: list[RenderableType] = [table, _markup(t.legend), _markup(t.tests_line)]

    tests = Table(title=f"paired {t.test} vs {t.baseline}")
    adj = "p " + ("(uncorrected)" if t.correction == "none" else f"({t.correction})")
    for col, just in (("system", "left"), ("measure", "left"), ("Δ mean", "right"), ("queries", "right"),
                      ("p", "right"), (adj, "right"), ("", "left")):
        tests.add_column(col, justify=just)
    for r in t.tests:
        style = "green" if r.marker == UP else "red" if r.marker == DOWN else ""
        tests.add_row(r.system, r.measure, r.delta, str(r.queries), r.p, r.p_adjusted, f"[{style}]{r.marker}[/]" if style else "")
    out.append(tests)

    if t.orderings:
        corr = Table(title="system orderings (tau_ap: the estimate against the reference)")
        for col in ("reference", "estimate", "systems", "Kendall τ", "τ_ap", "RBO (p=0.9)"):
            corr.add_column(col, justify="left" if col in ("reference", "estimate") else "right")
        for o in t.orderings:
            corr.add_row(o.reference, o.estimate, str(o.systems), o.kendall_tau, o.tau_ap, o.rbo)
        out.append(corr)
    if t.dev_curve:
        d = t.dev_curve
        dev = Table(title=f"dev {d.measure} over training (mean ± std over seeds)")
        dev.add_column("system")
        for st in d.steps:
            dev.add_column(f"step {st}", justify="right")
        for label, cells in d.rows:
            dev.add_row(label, *cells)
        out.append(dev)
    if t.fidelity:
        f = t.fidelity
        fid = Table(title=f"fidelity to the teacher ({f.teacher}) on the test candidates (per-query means; mean ± std over seeds)")
        fid.add_column("system")
        for col in f.columns:
            fid.add_column(col, justify="right")
        for label, cells in f.rows:
            fid.add_row(label, *cells)
        out.append(fid)
    out += [_markup(f"[yellow]note:[/] {n}") for n in t.notes]
    return out


def run_pair_renderables(rc: RunPairCorrelation) -> list[RenderableType]:
    """What ``rankexp compare --runs A B`` prints: the per-query table and the lines under it."""
    table = Table(title=f"per-query rank correlation: {rc.run_a} (reference) vs {rc.run_b}"
                        + (f", top {rc.depth}" if rc.depth else ""))
    for col in ("query", "Kendall τ-b", "τ_ap", f"RBO (p={rc.p:g})", "shared docs", "docs"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q, v in rc.per_query.items():
        table.add_row(q, fmt(v["kendall_tau"], 3), fmt(v["tau_ap"], 3), fmt(v["rbo"], 3), str(int(v["n_common"])),
                      str(int(v.get("n_docs", v["n_common"]))))
    m = rc.means
    table.add_row("[bold]mean[/]", f"[bold]{fmt(m['kendall_tau'], 3)}[/]", f"[bold]{fmt(m['tau_ap'], 3)}[/]",
                  f"[bold]{fmt(m['rbo'], 3)}[/]", f"[bold]{fmt(m['n_common'], 1)}[/]", f"[bold]{fmt(m.get('n_docs'), 1)}[/]",
                  end_section=False)
    table.add_row("[dim]queries[/]", *[f"[dim]{rc.queries.get(k, 0)}[/]" for k in ("kendall_tau", "tau_ap", "rbo")], "", "")
    out: list[RenderableType] = [
        table,
        Text(f"{len(rc.per_query)} queries in both runs; {run_pair_query_note(rc)}"),
        Text("τ-b and τ_ap: over the union of the two rankings, equal (float32) scores tied, a document missing "
             "from one ranking tied below all of its documents; RBO: the two lists in trec_eval order"),
    ]
    for name, only in (("A", rc.only_in_a), ("B", rc.only_in_b)):
        if only:
            out.append(Text(f"note: {len(only)} queries only in {name}: {' '.join(only[:10])}{' ...' if len(only) > 10 else ''}",
                            style="yellow"))
    return out
