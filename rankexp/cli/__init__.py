"""The ``rankexp`` command: a thin Typer layer over :mod:`rankexp.api`."""

from __future__ import annotations

import typer

from rankexp.cli import certify as _certify
from rankexp.cli import attack as _attack
from rankexp.cli import compare as _compare
from rankexp.cli import config as _config
from rankexp.cli import data as _data
from rankexp.cli import evaluate as _evaluate
from rankexp.cli import experiment as _experiment
from rankexp.cli import report as _report
from rankexp.cli import rerank as _rerank
from rankexp.cli import retrieve as _retrieve
from rankexp.cli import run as _run
from rankexp.cli import sweep as _sweep
from rankexp.cli import wandb_cmd as _wandb
from rankexp.cli._common import Debug, set_debug

app = typer.Typer(
    name="rankexp",
    help="Neural ranking experiments: train rankers with techniques from the literature, evaluate with trec_eval semantics.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(debug: Debug = False) -> None:
    set_debug(debug, reset=True)  # one invocation's --debug never leaks into the next


_run.register(app)
_rerank.register(app)
_attack.register(app)
_certify.register(app)
_retrieve.register(app)
_sweep.register(app)
_evaluate.register(app)
_compare.register(app)
_report.register(app)
app.add_typer(_config.app, name="config", help="Show the composed configuration and the config groups.", rich_help_panel="Inspect")
app.add_typer(_experiment.app, name="experiment", help="Named studies: list, show, run (a resumable sweep).", rich_help_panel="Run")
app.add_typer(_wandb.app, name="wandb", help="Push offline W&B runs once you are online.", rich_help_panel="Evaluate")
app.add_typer(_data.app, name="data", help="List collections and show their statistics.", rich_help_panel="Inspect")


def main() -> None:
    app()
