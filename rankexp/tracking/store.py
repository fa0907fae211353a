"""The local run store, read side: resolve what a user typed to run directories and load them.

``rankexp compare`` and ``rankexp report`` accept, in any mix:

* a run directory (``outputs/runs/3f0c1a9b2e``), or a directory holding run directories
  (``outputs/runs``: every run in it);
* a run id (``3f0c1a9b2e``, or a unique prefix of one), looked up in ``<output_dir>/runs``;
* a sweep directory (holding ``sweep.json``) or the ``sweep.json`` file itself;
* a sweep name, looked up in ``<output_dir>/sweeps/<name>/sweep.json``.

``sweep.json`` is ``{"name", "overrides", "launcher", "members": [{"overrides", "run_id",
"run_dir"}]}``. Results are never reported from a run whose status is not ``complete``
(DESIGN.md): such runs, and sweep members that never started, are left out and listed in
:attr:`Selection.excluded`; :func:`resolve` warns about them.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.errors import RankexpError
from rankexp.tracking.rundir import RunDir, read_perquery
from rankexp.utils.io import read_json

__all__ = ["StoredRun", "Sweep", "Selection", "resolve", "load_run", "default_output_dir"]


def default_output_dir() -> Path:
    """``paths.output_dir`` without composing the config: ``$RANKEXP_OUTPUT`` or ``outputs``."""
    return Path(os.environ.get("RANKEXP_OUTPUT") or "outputs")


@dataclass
class StoredRun:
    """One complete run directory, loaded: resolved config, overrides, metrics and per-query values."""

    path: Path
    config: DictConfig
    overrides: list[str]
    metrics: dict[str, Any]
    perquery: dict[str, dict[str, dict[str, float]]]  # system -> measure -> qid -> value
    sweep: str | None = None

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def is_attack(self) -> bool:
        """An attack run (``rankexp attack``): per-target values, no untrained start, first stage or dev split."""
        return "attack" in self.metrics

    @property
    def seed(self) -> Any:
        if self.is_attack and self.config.get("attack") is not None:  # an attack run: its target-sampling seed
            return self.config.attack.get("seed")
        return self.config.get("seed")

    @property
    def baseline_name(self) -> str:
        return str((self.metrics.get("baseline") or {}).get("name") or "bm25")

    @cached_property
    def history(self) -> list[dict[str, Any]]:
        """``history.jsonl`` records (empty when the file is missing); unreadable lines are skipped."""
        f = self.path / "history.jsonl"
        if not f.exists():
            return []
        out = []
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out


@dataclass
class Sweep:
    name: str
    path: Path  # the sweep directory
    overrides: list[str] = field(default_factory=list)
    launcher: str | None = None
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Selection:
    """What the arguments resolved to: the complete runs, the sweeps, and what was left out."""

    runs: list[StoredRun]
    sweeps: list[Sweep] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (run id or path, status)

    def warning(self) -> str | None:
        """One line naming the runs left out because they are not complete, or None."""
        if not self.excluded:
            return None
        items = ", ".join(f"{rid} ({status})" for rid, status in self.excluded)
        return f"left out {len(self.excluded)} run(s) that are not complete: {items}"


def load_run(path: Path, sweep: str | None = None) -> StoredRun:
    """Load a complete run directory; a missing or unreadable result file is one clear error."""
    path = Path(path)
    try:
        config = OmegaConf.load(path / "config.yaml")
        metrics = read_json(path / "metrics.json")
        perquery = read_perquery(path / "perquery.tsv")
    except FileNotFoundError as e:
        raise RankexpError(f"{path}: run directory is marked complete but {Path(e.filename).name} is missing") from None
    except (ValueError, OSError) as e:
        raise RankexpError(f"{path}: cannot read the run's results ({type(e).__name__}: {e})") from None
    overrides_file = path / "overrides.txt"
    overrides = [l.strip() for l in overrides_file.read_text(encoding="utf-8").splitlines() if l.strip()] if overrides_file.exists() else []
    if not isinstance(config, DictConfig):
        raise RankexpError(f"{path / 'config.yaml'}: expected a mapping")
    return StoredRun(path=path, config=config, overrides=overrides, metrics=metrics, perquery=perquery, sweep=sweep)


def _is_rundir(p: Path) -> bool:
    return p.is_dir() and any((p / f).exists() for f in ("status", "config.yaml", "metrics.json"))


def _read_sweep(sweep_json: Path) -> dict:
    try:
        data = read_json(sweep_json)
    except (ValueError, OSError) as e:
        raise RankexpError(f"{sweep_json}: not a readable sweep file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise RankexpError(f"{sweep_json}: expected a JSON object with a 'members' list")
    return data


def _member_dir(member: dict, sweep_dir: Path, runs_dir: Path) -> Path | None:
    """Where a sweep member's run directory is: its ``run_dir`` as written (absolute, relative to
    the working directory, or relative to the output dir), else ``<runs_dir>/<run_id>``."""
    candidates = []
    rd = member.get("run_dir")
    if rd:
        p = Path(rd).expanduser()
        candidates.append(p)
        if not p.is_absolute():
            candidates += [sweep_dir.parent.parent / p, sweep_dir / p]
    if member.get("run_id"):
        candidates += [sweep_dir.parent.parent / "runs" / str(member["run_id"]), runs_dir / str(member["run_id"])]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def resolve(args: Sequence[str], output_dir: str | Path | None = None, warn: bool = True) -> Selection:
    """Resolve run dirs, run ids, sweep dirs and sweep names to the complete runs they name.

    Unknown arguments raise :class:`RankexpError` (one line). Runs that are not complete are left
    out and listed in ``Selection.excluded`` (and warned about when ``warn``). At least one
    complete run must remain.
    """
    if not args:
        raise RankexpError("no runs given: pass run directories, run ids, sweep directories or sweep names")
    out = Path(output_dir) if output_dir is not None else default_output_dir()
    runs_dir, sweeps_dir = out / "runs", out / "sweeps"
    paths: list[tuple[Path, str | None]] = []  # (run dir, sweep name)
    sweeps: list[Sweep] = []
    excluded: list[tuple[str, str]] = []

    def add_sweep(sweep_json: Path) -> None:
        data = _read_sweep(sweep_json)
        sweep_dir = sweep_json.parent
        name = str(data.get("name") or sweep_dir.name)
        sw = Sweep(name=name, path=sweep_dir, overrides=[str(o) for o in data.get("overrides") or []],
                   launcher=data.get("launcher"))
        for m in data["members"]:
            m = m if isinstance(m, dict) else {}
            rid = str(m.get("run_id") or "?")
            sw.run_ids.append(rid)
            d = _member_dir(m, sweep_dir, runs_dir)
            if d is None:
                excluded.append((rid, "not started"))
            else:
                paths.append((d, name))
        sweeps.append(sw)

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_file() and p.name == "sweep.json":
            add_sweep(p)
        elif p.is_dir() and (p / "sweep.json").is_file():
            add_sweep(p / "sweep.json")
        elif _is_rundir(p):
            paths.append((p, None))
        elif p.is_dir() and any(_is_rundir(c) for c in p.iterdir()):
            paths.extend((c, None) for c in sorted(p.iterdir()) if _is_rundir(c))
        elif "/" not in arg and arg and (runs_dir / arg).is_dir():
            paths.append((runs_dir / arg, None))
        elif "/" not in arg and arg and (sweeps_dir / arg / "sweep.json").is_file():
            add_sweep(sweeps_dir / arg / "sweep.json")
        else:
            matches = sorted(runs_dir.glob(f"{arg}*")) if ("/" not in arg and arg and runs_dir.is_dir()) else []
            matches = [m for m in matches if _is_rundir(m)]
            if len(matches) == 1:
                paths.append((matches[0], None))
            elif len(matches) > 1:
                raise RankexpError(f"{arg!r} is ambiguous: it prefixes {len(matches)} run ids in {runs_dir} "
                                   f"({', '.join(m.name for m in matches[:5])}{', ...' if len(matches) > 5 else ''})")
            else:
                raise RankexpError(f"unknown run or sweep {arg!r}: not a run directory, a sweep directory, "
                                   f"a run id in {runs_dir} or a sweep name in {sweeps_dir}")

    runs: list[StoredRun] = []
    seen: set[Path] = set()
    for path, sweep in paths:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        rd = RunDir(path)
        if not rd.is_complete():
            excluded.append((rd.run_id, rd.describe() if rd.status() else "no status"))
            continue
        runs.append(load_run(path, sweep))
    selection = Selection(runs=runs, sweeps=sweeps, excluded=excluded)
    if warn and selection.excluded:
        warnings.warn(selection.warning(), stacklevel=2)
    if not runs:
        what = f" ({selection.warning()})" if selection.excluded else ""
        raise RankexpError(f"no complete runs among {' '.join(args)}{what}")
    return selection
