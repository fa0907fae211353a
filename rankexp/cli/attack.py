"""``rankexp attack VICTIM attack=NAME``: an adversarial attack on a ranker, measured."""

from __future__ import annotations

import typer

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries

ROWS = (("success_rate", "success rate", "{:.1%}"), ("top10_rate", "top-10 rate", "{:.1%}"), ("top50_rate", "top-50 rate", "{:.1%}"),
        ("avg_boost", "average rank boost", "{:+.1f}"), ("perturbation_pct", "perturbation (% words)", "{:.2f}"),
        ("similarity", "semantic similarity", "{:.3f}"), ("kendall_tau", "Kendall's tau before/after", "{:.3f}"),
        ("victim_queries", "victim queries (total)", "{:d}"), ("victim_queries_per_target", "victim queries per target", "{:.1f}"))


def measures_table(a: dict):
    from rich.table import Table

    title = (f"{a['name']} on {a['victim']} · {a['dataset']} {a['queries_label']}: {a['targets']} targets "
             f"(ranks {a['ranks'][0]}-{a['ranks'][1]}, seed {a['seed']}) of {a['queries']} queries")
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for key, label, fmt in ROWS:
        v = a.get(key)
        t.add_row(label, "—" if v is None else fmt.format(v))
    return t


def register(app: typer.Typer) -> None:
    @app.command(context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")
    def attack(
        ctx: typer.Context,
        victim: str = typer.Argument(..., help="bm25 (the first stage's BM25), a rankexp run directory, a .ckpt, a Hugging Face "
                                                "cross-encoder or a sentence-transformers bi-encoder."),
        overrides: Overrides = None,
        force: bool = typer.Option(False, "--force", help="Start over even when the attack run is complete or partial."),
        debug: Debug = False,
    ) -> None:
        """Attack VICTIM with [bold]attack=NAME[/] (conf/attack/) and report success rate, top-10/50 rates, rank
        boost, perturbation, semantic similarity, Kendall's tau and victim queries.

        Targets: per attacked query (test split), [bold]attack.targets.per_query[/] documents at victim ranks
        [bold]attack.targets.ranks[/] (default 51-100), seeded by [bold]attack.seed[/]. Results go to
        outputs/attacks/<id>/; a run cut off continues when the same command is run again.
        Examples: [bold]rankexp attack bm25 attack=prada data=vaswani[/],
        [bold]rankexp attack outputs/runs/<id> attack=pat attack.seed=1 attack.max_queries=20[/],
        [bold]rankexp attack all-MiniLM-L6-v2 attack=topic data=vaswani attack.white_box=true[/].
        """
        with handled(debug):
            quiet_libraries()
            from rankexp import api

            result = api.attack(victim, all_overrides(overrides, ctx), force=force)
            a = result.metrics["attack"]
            console.print(measures_table(a))
            how = "complete already (--force to redo)" if result.skipped else f"wall {a['wall_s']:.0f}s" + (
                f", {result.resumed} targets resumed" if result.resumed else "")
            console.print(f"attack run {result.run_id} · {how} · files in {result.path}")
