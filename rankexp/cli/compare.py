"""``rankexp compare``: mean ± std over seeds, paired tests against a baseline, system-ordering correlation."""

from __future__ import annotations

from typing import List, Optional, Tuple

import typer
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
                print(cmp.render_text(result, fmt), end="")


def print_result(result, selection=None) -> None:
    from rankexp.eval.compare.render.rich_table import comparison_renderables

    datasets = sorted({str(r.metrics.get("dataset")) for r in (selection.runs if selection else [])})
    for item in comparison_renderables(result, datasets):
        console.print(item, highlight=False)


def print_run_pair(rc) -> None:
    from rankexp.eval.compare.render.rich_table import run_pair_renderables

    for item in run_pair_renderables(rc):
        console.print(item, highlight=False)
