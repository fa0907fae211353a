"""A sweep directory ``outputs/sweeps/<name>/``: its member records and its index ``sweep.json``.

Layout::

    meta.json           name, the sweep's overrides, launcher, the command
    sweep.json          meta plus its members (overrides → run id, status, what the last launch did:
                        ran / resumed / skipped / failed), assembled by :func:`write_index`
    members/<n>.json    one record per member, written by the member itself (atomic)
    plan.json           the members a dry run expanded (overrides → run id), before anything ran
    sweep.log           the member processes' output
    hydra/              Hydra's own per-job directories

A member's status comes from its run directory (:class:`rankexp.tracking.rundir.RunDir`), the
source of truth. Launching and running members is :mod:`rankexp.sweep`.
"""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from rankexp.utils.io import read_json, write_json

__all__ = ["record_member", "read_records", "write_index", "member_status"]


def record_member(sweep_dir: Path | None, record: dict) -> None:
    if sweep_dir is None:
        return
    write_json(sweep_dir / "members" / f"{record['num']}.json", record)
    write_index(sweep_dir)


def read_records(folder: Path) -> list[dict]:
    out = []
    for f in sorted(folder.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        try:
            out.append(read_json(f))
        except (json.JSONDecodeError, OSError):
            continue
    return out


def write_index(sweep_dir: Path) -> dict:
    """Assemble ``sweep.json`` from the sweep config and member records (under a lock)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(sweep_dir / ".sweep.lock")):
        meta = read_json(sweep_dir / "meta.json") if (sweep_dir / "meta.json").exists() else {}
        members = read_records(sweep_dir / "members")
        planned = {m["num"]: m for m in read_records(sweep_dir / "plan")}
        by_num = {m["num"]: m for m in members}
        merged = [by_num.get(n, {**p, "status": "queued" if p["status"] != "complete" else "complete"}) for n, p in sorted(planned.items())]
        merged += [m for n, m in sorted(by_num.items()) if n not in planned]
        for m in merged:  # the run directory is the source of truth for a member's status
            m["status"] = member_status(m)
        index = {**meta, "members": merged}
        write_json(sweep_dir / "sweep.json", index)
        return index


def member_status(m: dict) -> str:
    """A member's status: its run directory's (``dead`` when its owner is gone) unless its record
    says ``running`` and the member process is alive (it may not have taken its run yet)."""
    import socket

    from rankexp.tracking.lifecycle import pid_alive
    from rankexp.tracking.rundir import RunDir

    rd = RunDir(Path(m["run_dir"]))
    state = rd.state()
    if m.get("status") != "running":
        return state or m.get("status", "queued")
    if m.get("pid") and m.get("host") == socket.gethostname():
        return "running" if pid_alive(int(m["pid"]), m.get("started")) else ("dead" if state in (None, "running", "dead") else state)
    return "dead" if state == "dead" else "running" if state in (None, "running") else state
