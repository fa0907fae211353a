"""``rankexp certify VICTIM``: CertDR's certified top-K robustness of a ranker's smoothed version."""

from __future__ import annotations

import typer

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries


def register(app: typer.Typer) -> None:
    @app.command(context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")
    def certify(
        ctx: typer.Context,
        victim: str = typer.Argument(..., help="bm25, a rankexp run directory, a Hugging Face cross-encoder "
                                                "or a sentence-transformers bi-encoder (as rankexp rerank)."),
        overrides: Overrides = None,
        queries: str = typer.Option("test", "--queries", help="test, dev, train (the train command's split rule) or all."),
        out: str = typer.Option(None, "--out", help="Output directory; default outputs/certify/<id>/."),
        debug: Debug = False,
    ) -> None:
        """Smooth VICTIM over random synonym substitutions (CertDR, Wu et al. CIKM 2022), certify each query's
        top-K against word substitution attacks (certify.ks, confidence 1 - certify.alpha) and report CRQ@K,
        with the smoothed ranker's measures beside the victim's own. Resumable: run it again to continue.

        Settings: certify.samples, certify.alpha, certify.ks, certify.synonyms (wordnet or a TSV),
        certify.synonyms_k, certify.depth, certify.max_queries, certify.seed ([bold]rankexp config show certify=default[/]).
        Example: [bold]rankexp certify outputs/runs/<id> certify.samples=200 certify.depth=30 certify.max_queries=10[/]
        """
        with handled(debug):
            quiet_libraries()
            from rankexp import api

            result = api.certify(victim, all_overrides(overrides, ctx), queries=queries, out=out)
            console.print(certify_summary(result.metrics))
            console.print(f"files in {result.path}")


def certify_summary(m: dict) -> str:
    ks = m["settings"]["ks"]
    crq = " · ".join(f"CRQ@{k} {m[f'CRQ@{k}']:.3f} ({m[f'certified@{k}']['queries']}/{m[f'certified@{k}']['of']})"
                     for k in ks if m.get(f"CRQ@{k}") is not None)
    lines = [f"{m['dataset']} {m['split']}: {m['queries']['certified_on']} queries, top-{m['settings']['depth']} of "
             f"{m['candidates']['name']} smoothed over N={m['settings']['samples']} substitutions of {m['victim']}",
             f"{crq or 'no query certified on'} · eps {m['epsilon']:.4f} (alpha {m['settings']['alpha']})"]
    if m.get("smoothed"):
        measures = list(m["smoothed"])
        lines.append("           " + "  ".join(f"{x:>9}" for x in measures))
        rows = [("smoothed", m["smoothed"]), ("victim", m["victim_plain"])]
        if m.get("baseline"):
            rows.append((m["baseline"]["name"], m["baseline"]))
        for name, row in rows:
            lines.append(f"{name[:10]:<10} " + "  ".join(f"{row[x]:>9.4f}" for x in measures))
    lines.append(f"{m['texts_scored']} texts scored · wall {m['wall_s']:.0f}s")
    return "\n".join(lines)
