"""The run directory contract (DESIGN.md): ``outputs/runs/<run_id>/``.

config.yaml · overrides.txt · env.json · split.json · run.trec · metrics.json · perquery.tsv ·
history.jsonl · checkpoints/ · status. Every file is written atomically; results are written only
at the end, after which ``status`` becomes ``complete``. ``status`` holds one line:
``running (pid P, host H, since T, heartbeat T)``, ``complete`` or ``failed: <reason>``; a running
run whose owner is gone (same host: its pid is not alive; another host: no heartbeat for
``RANKEXP_STALE_S`` seconds) reads as ``dead``. The status file is padded to a fixed size, so on a
full disk a final status still fits in its existing blocks (overwritten in place).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.utils.io import atomic_open, read_json, write_json, write_text

RESULT_FILES = ("run.trec", "metrics.json", "perquery.tsv")
STATUS_BYTES = 512  # the status file's fixed size (see set_status)
_RUNNING = re.compile(r"^running \(pid (?P<pid>\d+), host (?P<host>[^,]*), since (?P<since>[^,]*), heartbeat (?P<heartbeat>[^)]*)\)")


@dataclass
class RunDir:
    """``readonly`` run directories (non-zero ranks of a distributed run) write nothing."""

    path: Path
    readonly: bool = False
    _status_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _final: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> str | None:
        """The status line as written (``running (pid …)``, ``complete``, ``failed: …``), or None."""
        f = self.path / "status"
        try:
            text = f.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            return None
        return text.splitlines()[0].strip() if text else None

    def owner(self) -> dict | None:
        """pid, host, since, heartbeat of a ``running`` status (None otherwise)."""
        m = _RUNNING.match(self.status() or "")
        if not m:
            return None
        from rankexp.tracking.lifecycle import parse_utc

        return {"pid": int(m["pid"]), "host": m["host"], "since": m["since"], "heartbeat": m["heartbeat"],
                "since_ts": parse_utc(m["since"]), "heartbeat_ts": parse_utc(m["heartbeat"])}

    def alive(self) -> bool | None:
        """For a ``running`` status: whether its owner still runs (None for any other status).
        Same host: its pid is alive (and not recycled); another host: a heartbeat younger than
        ``RANKEXP_STALE_S``. A bare ``running`` (older rankexp) counts as alive."""
        if self.raw_state() != "running":
            return None
        o = self.owner()
        if o is None:
            return True
        from rankexp.tracking.lifecycle import pid_alive, stale_s

        if o["host"] == socket.gethostname():
            return pid_alive(o["pid"], o["since_ts"])
        return o["heartbeat_ts"] is None or time.time() - o["heartbeat_ts"] <= stale_s()

    def raw_state(self) -> str | None:
        s = self.status()
        m = re.match(r"[A-Za-z_]+", s) if s else None
        return m.group(0) if m else (s or None)

    def state(self) -> str | None:
        """``running``, ``dead`` (running, but its owner is gone), ``complete``, ``failed`` or None."""
        s = self.raw_state()
        if s == "running" and self.alive() is False:
            return "dead"
        return s

    def describe(self) -> str:
        """The status for people: ``running (pid P, host H, heartbeat 12 s ago)``, ``dead (…)``, …"""
        s = self.status()
        if s is None:
            return "new"
        o = self.owner()
        if o is None:
            return s
        age = f"{time.time() - o['heartbeat_ts']:.0f} s ago" if o["heartbeat_ts"] else o["heartbeat"]
        if self.state() == "dead":
            return f"dead (pid {o['pid']} on host {o['host']} is gone; last heartbeat {age}; train again to resume)"
        return f"running (pid {o['pid']}, host {o['host']}, heartbeat {age})"

    def is_complete(self) -> bool:
        return self.raw_state() == "complete" and (self.path / "metrics.json").exists()

    def running_line(self) -> str:
        from rankexp.tracking.lifecycle import utc_now

        if not hasattr(self, "_since"):
            self._since = utc_now()
        return f"running (pid {os.getpid()}, host {socket.gethostname()}, since {self._since}, heartbeat {utc_now()})"

    def set_status(self, state: str, reason: str | None = None) -> None:
        """Write the status line, padded to ``STATUS_BYTES``: atomically (temp + rename) when
        possible, else (a full disk) overwritten in place, which needs no new blocks."""
        if self.readonly:
            return
        line = self.running_line() if state == "running" and reason is None else (f"{state}: {reason}" if reason else state)
        with self._status_lock:
            self._final = state != "running"
            self._write_status(line)

    def beat(self) -> None:
        """Refresh the heartbeat of a running status (the heartbeat thread)."""
        with self._status_lock:
            if self.readonly or self._final:
                return
            self._write_status(self.running_line())

    def _write_status(self, line: str) -> None:
        line = " ".join(line.split())  # one line
        data = line.encode("utf-8")[: STATUS_BYTES - 2].decode("utf-8", "ignore")
        data = (data + "\n").ljust(STATUS_BYTES - 1) + "\n"
        f = self.path / "status"
        try:
            write_text(f, data)
        except Exception as e:
            from rankexp.tracking.lifecycle import disk_full

            if not disk_full(e) or not f.exists():
                raise
            with open(f, "r+b") as fh:  # the file's blocks exist already: overwrite them
                fh.write(data.encode("utf-8"))
                fh.truncate(len(data.encode("utf-8")))
                fh.flush()
                os.fsync(fh.fileno())

    def start(self, cfg: DictConfig, overrides: Sequence[str], seed: int, fresh: bool = False) -> None:
        """Begin an attempt: the status first (so it owns its blocks before any large write),
        then config, overrides and environment. ``fresh`` (no checkpoint to resume) also clears
        the history of an earlier attempt."""
        if self.readonly:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.set_status("running")
        for name in RESULT_FILES:  # never leave results of an earlier attempt beside a new one
            (self.path / name).unlink(missing_ok=True)
        if fresh:
            (self.path / "history.jsonl").unlink(missing_ok=True)
        write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_text(self.path / "overrides.txt", "".join(f"{o}\n" for o in overrides))
        write_json(self.path / "env.json", environment(seed))

    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json")

    def write_json(self, name: str, obj: Any) -> None:
        if self.readonly:
            return
        write_json(self.path / name, obj)

    def write_perquery(self, systems: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """``systems``: system -> measure -> qid -> value, written as a long TSV."""
        if self.readonly:
            return
        from rankexp.data.collection import natural_sorted

        with atomic_open(self.path / "perquery.tsv") as fh:
            fh.write("system\tmeasure\tquery_id\tvalue\n")
            for system, measures in systems.items():
                for measure, values in measures.items():
                    for qid in natural_sorted(values):
                        fh.write(f"{system}\t{measure}\t{qid}\t{values[qid]!r}\n")

    def append_history(self, record: Mapping[str, Any]) -> None:
        if self.readonly:
            return
        f = self.path / "history.jsonl"
        try:
            with open(f, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=float) + "\n")
        except OSError as e:
            if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                from rankexp.tracking.lifecycle import disk_full_error

                raise disk_full_error(e, f) from e
            raise


def process_rank() -> int:
    """Global rank of this process in a distributed launch (0 outside one): Lightning's ddp
    launcher sets LOCAL_RANK/NODE_RANK for the processes it starts, SLURM sets SLURM_PROCID."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit() and int(os.environ[var]) > 0:
            return int(os.environ[var])
    return int(os.environ.get("NODE_RANK", "0") or 0) + int(os.environ.get("LOCAL_RANK", "0") or 0)


def read_perquery(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            system, measure, qid, value = line.rstrip("\n").split("\t")
            out.setdefault(system, {}).setdefault(measure, {})[qid] = float(value)
    return out


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except Exception:
        return None


def environment(seed: int) -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for pkg in ("rankexp", "torch", "pytorch-lightning", "transformers", "hydra-core", "ir-measures", "ir-datasets",
                "pytrec-eval-terrier", "bm25s", "wandb", "numpy", "scipy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    import torch

    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "git_commit": _git_commit(),
        "versions": versions,
        "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
