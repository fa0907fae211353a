"""``rankexp train``: one run."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries


def register(app: typer.Typer) -> None:
    @app.command(context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")
    def train(
        ctx: typer.Context,
        overrides: Overrides = None,
        force: bool = typer.Option(False, "--force", help="Re-run even if this config already has a complete run."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and run id; run nothing."),
        wait: bool = typer.Option(False, "--wait", help="If another process is training this run, wait for it instead of refusing."),
        debug: Debug = False,
    ) -> None:
        """Train a ranker, rerank the test split and evaluate it beside the first stage.

        One process trains a run at a time: a second one refuses (exit 75) unless [bold]--wait[/].
        SIGTERM/Ctrl-C save a checkpoint and exit 143/130; the same command resumes.

        Example: [bold]rankexp train data=cranfield trainer.max_steps=200 seed=2 model.lr=3e-5[/]
        """
        with handled(debug):
            quiet_libraries(lightning=not dry_run)
            from rankexp import api

            ovr = all_overrides(overrides, ctx)
            cfg = api.compose(ovr)
            rd = api.rundir_for(cfg)
            if dry_run:
                from rankexp.cli.config import print_yaml

                print_yaml(cfg)
                console.print(f"run id: [bold]{rd.run_id}[/]  ->  {rd.path}  (status: {rd.describe()})")
                return
            t0 = time.perf_counter()
            console.print(f"run [bold]{rd.run_id}[/] -> {rd.path}")
            result = api.train(cfg, ovr, force=force, wait=wait)
            if result.metrics:  # empty on the non-zero ranks of a distributed run
                print_result(result, time.perf_counter() - t0)


def print_result(result, wall: float) -> None:
    m = result.metrics
    if result.skipped:
        console.print(f"[yellow]already complete[/] ({result.path}); use --force to re-run")
    how = (f"dense retrieval top-{m['rerank_k']} of the corpus" if m.get("retrieval", {}).get("mode") == "dense retrieval"
           else f"top-{m.get('rerank_k')} reranked")
    console.print(results_table(m, f"{m.get('dataset')} test split: {m['queries']['evaluated']} queries, {how} ({m.get('provider')})"))
    verdict = m.get("learned")
    if verdict:
        what = {"yes": "[green]yes[/]: the model beats its untrained start",
                "no": "[yellow]no[/]: the model does not beat its untrained start significantly",
                "worse": "[red]no[/]: the model is significantly worse than its untrained start"}[verdict]
        console.print(f"learned: {what} on {m.get('dev', {}).get('measure')} (paired t-test, α = 0.05, "
                      f"{m['queries']['evaluated']} test queries)")
    tr = m.get("train", {})
    dev = m.get("dev", {})
    best = f"{dev['best']:.4f} @ step {dev['best_step']}" if dev.get("best") is not None else "n/a (no dev split)"
    console.print(f"dev {dev.get('measure')}: {best} · steps {tr.get('steps')} · peak RSS {tr.get('peak_rss_mb')} MB · "
                  f"wall {wall:.0f}s · files in {result.path}")


def results_table(m: dict, title: str) -> Table:
    """measure × (first stage, untrained, model, Δ with paired-test p) from a metrics.json."""
    base = m.get("baseline", {})
    name = base.get("name", "baseline")
    table = Table(title=title)
    untrained = m.get("untrained") or {}
    tests = m.get("paired_ttest") or {}
    table.add_column("measure")
    table.add_column(name, justify="right")
    if untrained:
        table.add_column("untrained", justify="right")
    table.add_column("model", justify="right")
    table.add_column(f"Δ vs {name} (p)", justify="right")
    if untrained:
        table.add_column("Δ vs untrained (p)", justify="right")

    def delta_cell(ref: str, measure: str, value: float, other: float | None) -> str:
        if other is None:
            return "-"
        d = value - other
        p = (tests.get(ref) or {}).get(measure, {}).get("p")
        text = f"{d:+.4f}" + (f" ({p:.3f})" if p is not None else "")
        style = "green" if d > 0 else "red" if d < 0 else ""
        return f"[{style}]{text}[/]" if style else text

    for measure, value in m["model"].items():
        b = base.get(measure)
        row = [measure, f"{b:.4f}" if b is not None else "-"]
        if untrained:
            row.append(f"{untrained[measure]:.4f}" if measure in untrained else "-")
        row += [f"{value:.4f}", delta_cell(name, measure, value, b)]
        if untrained:
            row.append(delta_cell("untrained", measure, value, untrained.get(measure)))
        table.add_row(*row)
    return table
