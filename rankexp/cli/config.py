"""``rankexp config show|groups``."""

from __future__ import annotations

import typer
from rich.syntax import Syntax
from rich.table import Table

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled

app = typer.Typer(no_args_is_help=True)


def print_yaml(cfg, resolve: bool = True) -> None:
    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(cfg, resolve=resolve)
    console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


@app.command(context_settings=OVERRIDE_CONTEXT)
def show(
    ctx: typer.Context,
    overrides: Overrides = None,
    resolve: bool = typer.Option(True, "--resolve/--no-resolve", help="Resolve ${...} interpolations."),
    package: str = typer.Option(None, "--package", "-p", help="Show only this key, e.g. model or trainer."),
    debug: Debug = False,
) -> None:
    """Print the composed config (syntax-highlighted) and its run id. Example: [bold]rankexp config show data=cranfield[/]"""
    with handled(debug):
        from omegaconf import OmegaConf

        from rankexp import api
        from rankexp.errors import ConfigError

        cfg = api.compose(all_overrides(overrides, ctx))
        if package:
            node = OmegaConf.select(cfg, package)
            if node is None:
                raise ConfigError(f"--package {package!r}: no such key (top-level keys: {', '.join(cfg.keys())})")
            print_yaml(node, resolve) if OmegaConf.is_config(node) else console.print(node)
            return
        print_yaml(cfg, resolve)
        console.print(f"# run id: {api.rundir_for(cfg).run_id}", style="dim")


@app.command()
def groups(debug: Debug = False) -> None:
    """List the config groups (folders of conf/) and their options."""
    with handled(debug):
        from rankexp.config.compose import CONF_DIR
        from rankexp.config.compose import groups as list_groups

        table = Table(title=f"config groups ({CONF_DIR})")
        table.add_column("group")
        table.add_column("options")
        for group, options in list_groups().items():
            table.add_row(group, ", ".join(options))
        console.print(table)
