"""``rankexp experiment list|show|run``: named studies (conf/experiment/NAME.yaml + experiments/NAME/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markdown import Markdown
from rich.table import Table

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled

app = typer.Typer(no_args_is_help=True)


def _experiment_file(name: str) -> Path:
    from rankexp.config.compose import CONF_DIR, groups
    from rankexp.errors import ConfigError

    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown experiment {name!r} (available: {', '.join(groups().get('experiment', [])) or 'none'})")
    return path


def _readme(name: str) -> Path | None:
    from rankexp.config.compose import CONF_DIR

    for root in (Path.cwd(), CONF_DIR.parent.parent):
        p = root / "experiments" / name / "README.md"
        if p.exists():
            return p
    return None


def _sweep_params(path: Path) -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    return dict(OmegaConf.to_container(OmegaConf.select(cfg, "hydra.sweeper.params") or OmegaConf.create({})))


@app.command("list")
def list_cmd(debug: Debug = False) -> None:
    """The named studies and the axes they sweep."""
    with handled(debug):
        from rankexp.config.compose import CONF_DIR

        table = Table(title="experiments (rankexp experiment run NAME)")
        table.add_column("name", no_wrap=True)
        table.add_column("sweeps", no_wrap=True)
        table.add_column("about")
        for f in sorted((CONF_DIR / "experiment").glob("*.yaml")):
            about = next((l.lstrip("# ").strip() for l in f.read_text().splitlines() if l.startswith("# ") and "@package" not in l), "")
            table.add_row(f.stem, "\n".join(f"{k}={v}" for k, v in _sweep_params(f).items()), about)
        console.print(table)


@app.command()
def show(name: str = typer.Argument(..., help="Experiment name."), debug: Debug = False) -> None:
    """The experiment's config and its README (question, command, results)."""
    with handled(debug):
        from rich.syntax import Syntax

        path = _experiment_file(name)
        console.print(Syntax(path.read_text(), "yaml", theme="ansi_dark", background_color="default"))
        readme = _readme(name)
        if readme:
            console.print(Markdown(readme.read_text()))


@app.command(context_settings=OVERRIDE_CONTEXT)
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Experiment name."),
    overrides: Overrides = None,
    launcher: str = typer.Option("basic", "--launcher", "-l", help="basic | joblib | submitit_local | submitit_slurm"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    force: bool = typer.Option(False, "--force"),
    debug: Debug = False,
) -> None:
    """Run the study as a sweep (= rankexp sweep experiment=NAME OVERRIDES…), resumable."""
    from rankexp.cli.sweep import run_sweep

    with handled(debug):
        _experiment_file(name)
    run_sweep([f"experiment={name}", *all_overrides(overrides, ctx)], None, launcher, jobs, dry_run, force, debug)
