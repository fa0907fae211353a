"""``rankexp sweep``: a Hydra multirun whose members are runs; resumable."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table

from rankexp.cli._common import OVERRIDE_CONTEXT, Debug, Overrides, all_overrides, console, handled, quiet_libraries

STYLE = {"complete": "green", "running": "yellow", "failed": "red", "dead": "red", "queued": "dim", "new": "dim"}


def member_table(index: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "overrides", "run id", "status", "last launch"):
        table.add_column(col)
    members = index.get("members", [])
    values: dict[str, set] = {}
    for m in members:
        for o in m.get("overrides", []):
            k, _, v = o.partition("=")
            values.setdefault(k, set()).add(v)
    varying = {k for k, v in values.items() if len(v) > 1} or set(values)
    for m in members:
        status = m.get("status", "?")
        shown = [o for o in m.get("overrides", []) if o.partition("=")[0] in varying]
        table.add_row(str(m.get("num")), " ".join(shown), m.get("run_id", ""), f"[{STYLE.get(status, '')}]{status}[/]",
                      m.get("action", "") + (f": {m['reason']}" if m.get("reason") else ""))
    return table


def register(app: typer.Typer) -> None:
    app.command("sweep", context_settings=OVERRIDE_CONTEXT, rich_help_panel="Run")(sweep_command)


def sweep_command(
    ctx: typer.Context,
    overrides: Overrides = None,
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Sweep name (outputs/sweeps/NAME); default: from the overrides, so re-launching the same command resumes it."),
    launcher: str = typer.Option("basic", "--launcher", "-l", help="basic (sequential) | joblib (parallel processes) | submitit_local | submitit_slurm"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel members with --launcher joblib."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the members and their run ids; run nothing."),
    force: bool = typer.Option(False, "--force", help="Re-run complete members too."),
    debug: Debug = False,
) -> None:
    """Run every combination of the overrides (Hydra sweep grammar) as separate runs.

    Example: [bold]rankexp sweep loss=pairwise,listwise seed=1,2,3 --launcher joblib -j 2[/]
    Re-launching the same command skips complete members, resumes cut-off ones and runs the rest.
    """
    run_sweep(all_overrides(overrides, ctx), name, launcher, jobs, dry_run, force, debug)


def run_sweep(ovr: list[str], name: Optional[str], launcher: str, jobs: Optional[int], dry_run: bool, force: bool, debug: bool) -> None:
    with handled(debug):
        quiet_libraries()
        from rankexp.sweep import launch
        from rankexp.errors import RankexpError

        t0 = time.perf_counter()
        if dry_run:
            sweep_dir, _ = launch(ovr, name=name, launcher=launcher, jobs=jobs, dry_run=True)
            from rankexp.utils.io import read_json

            index = read_json(sweep_dir / "sweep.json")
            console.print(member_table(index, f"sweep {index['name']}: {len(index['members'])} members (dry run)"))
            console.print(f"sweep directory: {sweep_dir}")
            return
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            def show(index: dict) -> None:
                live.update(member_table(index, f"sweep {index.get('name')}  ({launcher}, {time.perf_counter() - t0:.0f}s)"))

            sweep_dir, code = launch(ovr, name=name, launcher=launcher, jobs=jobs, force=force, on_poll=show)
        from rankexp.utils.io import read_json

        index = read_json(sweep_dir / "sweep.json")
        states = [m.get("status") for m in index["members"]]
        console.print()
        console.print(f"{states.count('complete')}/{len(states)} complete, {states.count('failed')} failed · "
                      f"{time.perf_counter() - t0:.0f}s · {sweep_dir} (log: sweep.log)")
        if code != 0 or "failed" in states:
            if code != 0 and not states:
                raise RankexpError(f"the sweep process failed (exit {code}); see {sweep_dir / 'sweep.log'}")
            raise typer.Exit(1)
