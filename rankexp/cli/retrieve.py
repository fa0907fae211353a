"""``rankexp retrieve``: run a first stage (BM25, a dense bi-encoder, or both fused) and evaluate it."""

from __future__ import annotations

import typer
from rich.table import Table

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries


def register(app: typer.Typer) -> None:
    @app.command(context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")
    def retrieve(
        ctx: typer.Context,
        overrides: Overrides = None,
        split: str = typer.Option("test", "--split", help="Queries to retrieve for: train, dev, test (the run's split) or all."),
        debug: Debug = False,
    ) -> None:
        """Retrieve from the whole corpus with a first stage and evaluate the run (trec_eval semantics).

        Examples: [bold]rankexp retrieve first_stage=dense data=vaswani[/] (zero-shot all-MiniLM-L6-v2),
        [bold]rankexp retrieve first_stage=dense first_stage.model=outputs/runs/<id>[/] (a trained bi-encoder),
        [bold]rankexp retrieve first_stage=hybrid first_stage.alpha=0.3[/]. Measures: eval.retrieval_measures,
        depth eval.retrieval_k.
        """
        with handled(debug):
            quiet_libraries()
            from rankexp import api

            result = api.retrieve(api.compose(all_overrides(overrides, ctx)), split)
            m = result.metrics
            table = Table(title=f"{m['dataset']} {m['split']} queries ({m['queries']['evaluated']}): "
                                f"{m['first_stage']['name']} top-{m['k']} ({m['provider']})")
            table.add_column("measure")
            table.add_column(m["first_stage"]["name"], justify="right")
            for measure, value in m["model"].items():
                table.add_row(measure, f"{value:.4f}")
            console.print(table)
            console.print(f"wall {m['wall_s']:.0f}s · files in {result.path}")
