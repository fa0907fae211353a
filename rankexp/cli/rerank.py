"""``rankexp rerank MODEL``: apply a trained run or a published ranker to a first stage's candidates."""

from __future__ import annotations

from typing import Optional

import typer

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries


def register(app: typer.Typer) -> None:
    @app.command(context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")
    def rerank(
        ctx: typer.Context,
        model: str = typer.Argument(..., help="A rankexp run directory (its best checkpoint), a .ckpt, a Hugging Face "
                                               "cross-encoder (sequence-classification head) or a sentence-transformers bi-encoder."),
        overrides: Overrides = None,
        run: Optional[str] = typer.Option(None, "--run", help="A TREC run of candidates; default: the configured first stage."),
        queries: str = typer.Option("test", "--queries", help="test, dev, train (the train command's split rule) or all."),
        out: Optional[str] = typer.Option(None, "--out", help="A .trec file, or a directory for run.trec, metrics.json and "
                                                                "perquery.tsv; default outputs/reranks/<id>/."),
        debug: Debug = False,
    ) -> None:
        """Rerank a first stage's top [bold]eval.rerank_k[/] with MODEL and evaluate it beside the first stage
        (same measures and paired t-tests as [bold]train[/]) when the queries have qrels.

        A run directory brings its own data and first stage unless the overrides name others.
        Examples: [bold]rankexp rerank outputs/runs/<id>[/], [bold]rankexp rerank all-MiniLM-L6-v2 data=vaswani[/],
        [bold]rankexp rerank path/to/hf-cross-encoder --run bm25.trec --queries all data=local data.path=DIR[/].
        """
        with handled(debug):
            quiet_libraries()
            from rankexp import api
            from rankexp.cli.run import results_table

            ovr = all_overrides(overrides, ctx)
            result = api.rerank(model, ovr, run_file=run, queries=queries, out=out)
            m = result.metrics
            title = (f"{m['dataset']} {m['split']}: {m['queries']['evaluated']} queries, top-{m['rerank_k']} of "
                     f"{m.get('baseline', {}).get('name', 'the candidates')} reranked by {m['model_source']} ({m.get('provider', '')})")
            if m.get("model"):
                console.print(results_table(m, title))
            else:
                console.print(f"{m['queries']['reranked']} queries reranked by {m['model_source']}; no qrels for them, not evaluated")
            where = result.path if result.path is not None else result.run_file
            console.print(f"{m['pairs']} pairs scored in {m['rerank_s']:.1f}s · wall {m['wall_s']:.0f}s · run {result.run_file} · "
                          f"files in {where}")
