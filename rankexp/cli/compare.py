"""``rankexp compare``: mean ± std over seeds, paired tests against a baseline, system-ordering correlation."""

from __future__ import annotations

from typing import List, Optional, Tuple

import typer
from rich.table import Table

from rankexp.cli._common import Debug, console, err_console, handled, quiet_libraries

TEST_HELP = "ttest (paired t-test) | wilcoxon (signed-rank) | randomization (sign-flip, 10k samples, seed 0)"
CORRECTION_HELP = "holm | bonferroni | bh (Benjamini-Hochberg) | none; over all system × measure comparisons"


def register(app: typer.Typer) -> None:
    @app.command("compare", rich_help_panel="Evaluate")
    def compare_cmd(
        targets: Optional[List[str]] = typer.Argument(None, metavar="RUNS_OR_SWEEPS...", show_default=False,
                                                      help="Run directories, run ids, sweep directories or sweep names."),
        baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="A system label, a run id, KEY=VALUE matching one group, or bm25 (default)."),
        measures: Optional[str] = typer.Option(None, "--measures", "-m", help="Measures to compare, e.g. \"nDCG@10 AP\" (default: all in the runs)."),
        test: str = typer.Option("ttest", "--test", "-t", help=TEST_HELP),
        correction: str = typer.Option("holm", "--correction", help=CORRECTION_HELP),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level for the corrected p-values."),
        fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json | latex | markdown"),
        run_files: Optional[Tuple[str, str]] = typer.Option(None, "--runs", metavar="A.trec B.trec", show_default=False,
                                                            help="Per-query Kendall tau-b / tau_ap / RBO between two TREC run files (A is tau_ap's reference; docs/compare.md gives the tie and missing-document rules)."),
        depth: Optional[int] = typer.Option(None, "--depth", help="With --runs: cut each ranking to this depth first."),
        output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Where run ids and sweep names are looked up (default: $RANKEXP_OUTPUT or outputs)."),
        debug: Debug = False,
    ) -> None:
        """Compare runs and sweeps: mean ± std and 95% CI over seeds, paired significance tests against
        a baseline (Holm-corrected), and Kendall tau / tau_ap / RBO between system orderings.

        Runs whose configs differ only in [bold]seed[/] form one system. Tests use per-query means over seeds.

        Example: [bold]rankexp compare my-sweep --measures "nDCG@10 AP" --baseline loss=pairwise[/]
        """
        with handled(debug):
            quiet_libraries()
            from rankexp.errors import ConfigError
            from rankexp.eval import compare as cmp

            if fmt not in cmp.FORMATS:
                raise ConfigError(f"--format must be one of {', '.join(cmp.FORMATS)}, got {fmt!r}")
            if run_files:
                rc = cmp.correlate_run_files(run_files[0], run_files[1], depth=depth)
                if fmt == "table":
                    print_run_pair(rc)
                else:
                    print(cmp.run_pair_text(rc, fmt), end="")
                return
            if not targets:
                raise ConfigError("give runs or sweeps to compare (run directories, run ids, sweep directories or names), or --runs A.trec B.trec")
            from rankexp.tracking.store import resolve

            selection = resolve(targets, output_dir, warn=False)
            if selection.warning():
                err_console.print(f"[yellow]warning:[/] {selection.warning()}", highlight=False, soft_wrap=True)
            result = cmp.compare(selection.runs, measures=measures, baseline=baseline, test=test, correction=correction,
                                 alpha=alpha, excluded=selection.excluded)
            if fmt == "table":
                print_result(result, selection)
            else:
                text = {"csv": cmp.to_csv, "json": cmp.to_json, "latex": cmp.to_latex, "markdown": cmp.to_markdown}[fmt](result)
                print(text, end="")


def print_result(result, selection=None) -> None:
    from rankexp.eval.compare import DOWN, UP, cell, dev_curve_rows, fmt, fmt_p, seeds_cell

    datasets = sorted({str(r.metrics.get("dataset")) for r in (selection.runs if selection else [])})
    where = f"{', '.join(datasets)} test split · " if datasets else ""
    table = Table(title=f"{where}{result.n_queries} queries · baseline {result.baseline}")
    table.add_column("system")
    table.add_column("seeds", justify="right")
    for m in result.measures:
        table.add_column(m, justify="right")
    for s in result.systems:
        name = s.label + (" [dim](baseline)[/]" if s.label == result.baseline else "")
        cells = [name, seeds_cell(s)]
        for m in result.measures:
            c = cell(result, s, m)
            text = (f"[bold]{c.mean}[/]" if c.best else c.mean) + (f" ± {c.std}" if c.std else "")
            if c.marker:
                text += f" [{'green' if c.marker == UP else 'red'}]{c.marker}[/]"
            if c.ci:
                text += f"\n[dim][{c.ci[0]}, {c.ci[1]}][/]"
            cells.append(text)
        table.add_row(*cells)
    console.print(table)
    console.print(result.legend(), highlight=False)
    console.print(result.tests_line(), highlight=False)

    tests = Table(title=f"paired {result.test} vs {result.baseline}")
    for col, just in (("system", "left"), ("measure", "left"), ("Δ mean", "right"), ("queries", "right"),
                      ("p", "right"), ("p " + ("(uncorrected)" if result.correction == "none" else f"({result.correction})"), "right"), ("", "left")):
        tests.add_column(col, justify=just)
    for c in result.comparisons:
        style = "green" if c.marker == UP else "red" if c.marker == DOWN else ""
        tests.add_row(c.system, c.measure, f"{c.mean_diff:+.4f}", str(c.n_queries), fmt_p(c.p_value), fmt_p(c.p_adjusted),
                      f"[{style}]{c.marker}[/]" if style else "")
    console.print(tests)

    if result.correlations:
        corr = Table(title="system orderings (tau_ap: the estimate against the reference)")
        for col in ("reference", "estimate", "systems", "Kendall τ", "τ_ap", "RBO (p=0.9)"):
            corr.add_column(col, justify="left" if col in ("reference", "estimate") else "right")
        for c in result.correlations:
            corr.add_row(c.reference, c.estimate, str(len(c.systems)), fmt(c.kendall_tau, 3), fmt(c.tau_ap, 3), fmt(c.rbo, 3))
        console.print(corr)
    curve = dev_curve_rows(result)
    if curve:
        steps, rows = curve
        dev = Table(title=f"dev {rows[0][1]} over training (mean ± std over seeds)")
        dev.add_column("system")
        for st in steps:
            dev.add_column(f"step {st}", justify="right")
        for label, _, cells in rows:
            dev.add_row(label, *cells)
        console.print(dev)
    for n in result.notes:
        console.print(f"[yellow]note:[/] {n}", highlight=False)


def print_run_pair(rc) -> None:
    from rankexp.eval.compare import fmt, run_pair_query_note

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
    console.print(table)
    console.print(f"{len(rc.per_query)} queries in both runs; {run_pair_query_note(rc)}", highlight=False, markup=False)
    console.print("τ-b and τ_ap: over the union of the two rankings, equal (float32) scores tied, a document missing "
                  "from one ranking tied below all of its documents; RBO: the two lists in trec_eval order",
                  highlight=False, markup=False)
    for name, only in (("A", rc.only_in_a), ("B", rc.only_in_b)):
        if only:
            console.print(f"note: {len(only)} queries only in {name}: {' '.join(only[:10])}{' ...' if len(only) > 10 else ''}",
                          highlight=False, markup=False, style="yellow")
