"""``rankexp eval``: score TREC run files (or run directories) with trec_eval semantics."""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.table import Table

from rankexp.cli._common import Debug, console, err_console, handled, quiet_libraries


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel="Evaluate")
    def eval_cmd(
        runs: List[str] = typer.Argument(..., help="TREC run files (qid Q0 doc rank score tag) or run directories."),
        qrels: Optional[str] = typer.Option(None, "--qrels", "-q", help="Qrels file, collection directory, data name (vaswani) or ir_datasets id. Run directories default to their own collection."),
        measures: str = typer.Option("nDCG@10 RR@10 AP R@100", "--measures", "-m", help="ir_measures names, space or comma separated."),
        complete: bool = typer.Option(False, "--complete", "-c", help="Count judged queries missing from the run as 0 (trec_eval -c)."),
        per_query: bool = typer.Option(False, "--per-query", help="Also print per-query values."),
        fmt: str = typer.Option("table", "--format", "-f", help="table | json | tsv"),
        lenient: bool = typer.Option(False, "--lenient", help="Accept duplicate (query, document) lines in runs and qrels, keeping the first occurrence, with one warning per file (trec_eval refuses them)."),
        debug: Debug = False,
    ) -> None:
        """Evaluate runs with ir_measures pinned to pytrec_eval (identical to trec_eval).

        Runs and qrels are read as strictly as trec_eval reads them: a duplicate (query, document)
        line is an error naming both lines unless [bold]--lenient[/]. RR@k is trec_eval's recip_rank
        with -M k (computed by rankexp: the provider has no RR@k).

        Example: [bold]rankexp eval outputs/runs/<id>/run.trec --qrels vaswani --measures "nDCG@10 RR@10 AP R@100"[/]
        """
        with handled(debug):
            quiet_libraries()
            from rich.text import Text

            from rankexp import api
            from rankexp.errors import ConfigError
            from rankexp.eval.trec_io import reading

            if fmt not in ("table", "json", "tsv"):
                raise ConfigError(f"--format must be table, json or tsv, got {fmt!r}")
            def warn(message: str) -> None:  # a Text: file:line:col must not become rich markup or an emoji
                err_console.print(Text("warning: ", style="yellow") + Text(message), soft_wrap=True)

            results = {}
            with reading(lenient=lenient, warn=warn):
                for run in runs:
                    ev, n_run = api.evaluate_run(run, qrels, measures, complete=complete)
                    results[run] = (ev, n_run)
            if fmt == "json":
                console.print_json(json.dumps({r: {"provider": ev.provider, "queries": ev.num_queries, "missing_in_run": ev.missing_in_run,
                                                   "aggregate": ev.aggregate, **({"perquery": ev.perquery} if per_query else {})}
                                               for r, (ev, _) in results.items()}))
                return
            if fmt == "tsv":
                for r, (ev, _) in results.items():
                    if per_query:
                        for m, vals in ev.perquery.items():
                            for q, v in vals.items():
                                print(f"{r}\t{m}\t{q}\t{v:.4f}")
                    for m, v in ev.aggregate.items():
                        print(f"{r}\t{m}\tall\t{v:.4f}")
                return
            first = next(iter(results.values()))[0]
            table = Table(title=f"trec_eval semantics ({first.provider})")
            table.add_column("run", overflow="fold")
            table.add_column("queries", justify="right")
            for m in first.aggregate:
                table.add_column(m, justify="right")
            for r, (ev, _) in results.items():
                table.add_row(r, str(ev.num_queries), *[f"{v:.4f}" for v in ev.aggregate.values()])
            console.print(table)
            for r, (ev, _) in results.items():
                if ev.missing_in_run:
                    note = "counted as 0" if complete else "ignored, as trec_eval does without -c"
                    console.print(f"[yellow]{r}: {ev.missing_in_run} judged queries have no ranking ({note})[/]")
                if per_query:
                    pq = Table(title=f"{r}: per query")
                    pq.add_column("query")
                    for m in ev.perquery:
                        pq.add_column(m, justify="right")
                    qids = sorted(next(iter(ev.perquery.values())), key=lambda q: (len(q), q))
                    for q in qids:
                        pq.add_row(q, *[f"{ev.perquery[m].get(q, 0.0):.4f}" for m in ev.perquery])
                    console.print(pq)
