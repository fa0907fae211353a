"""``rankexp report``: an offline HTML report (and optionally a W&B Report) for a sweep or runs."""

from __future__ import annotations

from typing import List, Optional

import typer

from rankexp.cli._common import Debug, console, err_console, handled, quiet_libraries
from rankexp.cli.compare import CORRECTION_HELP, TEST_HELP


def register(app: typer.Typer) -> None:
    @app.command("report", rich_help_panel="Evaluate")
    def report_cmd(
        targets: List[str] = typer.Argument(..., metavar="SWEEP_OR_RUNS...", show_default=False,
                                            help="Sweep directories or names, run directories or run ids."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (default: the sweep's report/ or outputs/reports/<hash>/)."),
        baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="A system label, a run id, KEY=VALUE matching one group, or bm25 (default)."),
        measures: Optional[str] = typer.Option(None, "--measures", "-m", help="Measures, e.g. \"nDCG@10 AP\" (default: all in the runs)."),
        test: str = typer.Option("ttest", "--test", "-t", help=TEST_HELP),
        correction: str = typer.Option("holm", "--correction", help=CORRECTION_HELP),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level for the corrected p-values."),
        wandb: bool = typer.Option(False, "--wandb", help="Also build a W&B Report: saved when online, else written as wandb_report.json."),
        output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Where run ids and sweep names are looked up (default: $RANKEXP_OUTPUT or outputs)."),
        debug: Debug = False,
    ) -> None:
        """Write a self-contained HTML report: the comparison table with significance markers, CI
        plots, per-query differences, training curves and the config diff.

        Example: [bold]rankexp report my-sweep --measures "nDCG@10 AP" --wandb[/]
        """
        with handled(debug):
            quiet_libraries()
            from rankexp.tracking.report import write_report
            from rankexp.tracking.store import resolve

            selection = resolve(targets, output_dir, warn=False)
            if selection.warning():
                err_console.print(f"[yellow]warning:[/] {selection.warning()}", highlight=False, soft_wrap=True)
            rep = write_report(selection, out, baseline=baseline, measures=measures, test=test, correction=correction,
                               alpha=alpha, wandb=wandb, output_dir=output_dir)
            r = rep.compare
            groups = sum(1 for s in r.systems if s.kind == "group")
            console.print(f"report: [bold]{rep.html}[/] ({len(selection.runs)} runs, {groups} groups, "
                          f"baseline {r.baseline}, {r.tests_line()})", highlight=False, soft_wrap=True)
            for msg in rep.messages:
                console.print(msg, highlight=False, soft_wrap=True)
