"""``rankexp wandb sync``: push the offline W&B runs of a sweep or of runs once you are online."""

from __future__ import annotations

from typing import List

import typer

from rankexp.cli._common import Debug, console, handled

app = typer.Typer(no_args_is_help=True)


@app.command()
def sync(
    targets: List[str] = typer.Argument(..., help="Sweep names/directories, run ids or run directories."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the offline W&B runs that would be pushed."),
    debug: Debug = False,
) -> None:
    """Push offline W&B runs (written under outputs/wandb) to the W&B server."""
    with handled(debug):
        from rankexp.errors import RankexpError
        from rankexp.tracking.loggers import offline_runs
        from rankexp.tracking.loggers import sync as push
        from rankexp.tracking.store import default_output_dir, resolve

        selection = resolve(targets)
        out = default_output_dir()
        folders = offline_runs([r.run_id for r in selection.runs], out)
        if not folders:
            raise RankexpError(f"no offline W&B runs under {out / 'wandb'} for {len(selection.runs)} run(s) (were they run with logger=wandb?)")
        for f in folders:
            console.print(str(f))
        if dry_run:
            console.print(f"{len(folders)} offline run(s) would be synced")
            return
        push(folders)
        console.print(f"synced {len(folders)} run(s)")
