"""Sweeps: launching a Hydra multirun (``rankexp sweep``) and running one member of it
(:func:`run_member`, called by :mod:`rankexp.hydra_app`). The members' records and ``sweep.json``
live in the sweep directory (:mod:`rankexp.tracking.sweepdir`, which describes its layout).

This module sits beside :mod:`rankexp.api` (it calls ``api.compose`` and ``api.train``), above the
library layers; the CLI (``rankexp.cli.sweep``) only draws its live table.

Each member is a normal run (``outputs/runs/<run_id>``): a re-launched sweep skips complete
members, resumes members that were cut off from ``checkpoints/last.ckpt``, and runs the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rankexp.tracking.sweepdir import record_member, write_index
from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import write_json

log = logging.getLogger(__name__)

ENV_DIR, ENV_DRY, ENV_FORCE = "RANKEXP_SWEEP_DIR", "RANKEXP_SWEEP_DRY_RUN", "RANKEXP_FORCE"


def sweep_name(overrides: list[str]) -> str:
    """A readable, stable default name: the experiment (if any) plus a hash of the overrides."""
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    return f"{exp or 'sweep'}-{stable_hash(sorted(overrides), 8)}"


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except Exception:
        return []


def _job_num() -> int:
    from hydra.core.hydra_config import HydraConfig

    try:
        return int(HydraConfig.get().job.num)
    except Exception:
        return 0


def run_member(cfg: DictConfig) -> float | None:  # None only in a dry run
    """Run (or, in a dry run, only identify) one member; record it; never raise into Hydra."""
    from rankexp import api
    from rankexp.errors import one_line
    from rankexp.utils.quiet import quiet_libraries

    quiet_libraries(lightning=not os.environ.get(ENV_DRY))
    sweep_dir = Path(os.environ[ENV_DIR]) if os.environ.get(ENV_DIR) else None
    overrides = _task_overrides()
    num = _job_num()
    from rankexp.config.validate import validate
    from rankexp.errors import ConfigError

    if os.environ.get(ENV_DRY):  # every member's values before anything runs: the expansion stops at a bad one
        try:
            validate(cfg)
        except ConfigError as e:
            print(f"config error: member {num} ({' '.join(overrides)}): {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
    rd = api.rundir_for(cfg)
    record: dict[str, Any] = {"num": num, "overrides": overrides, "run_id": rd.run_id, "run_dir": str(rd.path)}
    if os.environ.get(ENV_DRY):
        record["status"] = rd.state() or "new"
        if sweep_dir:
            write_json(sweep_dir / "plan" / f"{num}.json", record)
        return None
    if sweep_dir is not None:  # one W&B group per sweep, tagged with the member's overrides
        from omegaconf import open_dict

        with open_dict(cfg):
            if cfg.logger.get("kind") == "wandb" and not cfg.logger.get("group"):
                cfg.logger.group = sweep_dir.name
            if cfg.logger.get("kind") == "wandb":
                cfg.logger.tags = list(cfg.logger.get("tags") or []) + [o for o in overrides if len(o) <= 64]
                if cfg.logger.get("job_type") in (None, "train"):  # job_type per technique: loss, negatives, weighting
                    parts = [str(cfg[k]._target_).rsplit(".", 1)[-1] for k in ("loss", "negatives", "curriculum")
                             if k in cfg and "_target_" in cfg[k]]
                    cfg.logger.job_type = "+".join(p for p in parts if p != "UniformWeighter")[:64]
    before = rd.state()
    resumable = (rd.checkpoints / "last.ckpt").exists()
    import socket

    record.update(status="running", started=time.time(), pid=os.getpid(), host=socket.gethostname())
    record_member(sweep_dir, record)
    try:
        validate(cfg)  # e.g. an Optuna trial's value out of range: a failed member, not a failed sweep
        result = api.train(cfg, overrides, force=bool(os.environ.get(ENV_FORCE)))
        record.update(status="complete", action="skipped" if result.skipped else ("resumed" if resumable and before != "complete" else "ran"))
        dev = (result.metrics.get("dev") or {}).get("best")
        objective = float(dev) if dev is not None else float(next(iter(result.metrics["model"].values())))
    except BaseException as e:  # task wrapper: one failed member does not stop the sweep
        from rankexp.tracking.lifecycle import Interrupted

        record.update(status="failed", action="failed", reason=one_line(e) if not isinstance(e, Interrupted) else str(e))
        if isinstance(e, Interrupted):  # SIGTERM/SIGINT (forwarded by `rankexp sweep`): stop the sweep, 143/130
            record["finished"] = time.time()
            record_member(sweep_dir, record)
            print(f"member {num} ({' '.join(overrides)}): {e}", flush=True)
            raise SystemExit(e.exit_code) from None
        if os.environ.get("RANKEXP_DEBUG") or isinstance(e, KeyboardInterrupt):
            record_member(sweep_dir, record)
            raise
        objective = float("nan")
        print(f"member {num} ({' '.join(overrides)}): failed: {record['reason']}", flush=True)
    record["finished"] = time.time()
    record_member(sweep_dir, record)
    return objective  # NaN for a failed member: Optuna records the trial as failed and goes on


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux
        pass


def _signal_group(pgid: int, signum: int, only_stragglers: bool = False) -> None:
    """Signal the child's process group; ``only_stragglers``: only if some member is still alive
    after the child itself has exited (a member process it left behind)."""
    try:
        if only_stragglers:
            os.killpg(pgid, 0)
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _install(handler) -> dict:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for s in (signal.SIGTERM, signal.SIGINT):
        old[s] = signal.getsignal(s)
        signal.signal(s, handler)
    return old


def _restore(old: dict) -> None:
    for s, h in old.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")


def hydra_command(overrides: list[str], sweep_dir: Path, launcher: str = "basic", jobs: int | None = None) -> list[str]:
    import sys

    from rankexp.errors import ConfigError

    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    extra = [f"hydra.sweep.dir={sweep_dir / 'hydra'}", "hydra.sweep.subdir=${hydra.job.num}", "hydra.job.chdir=false",
             "hydra/job_logging=none", "hydra/hydra_logging=none"]
    if launcher != "basic" and not any(o.startswith("hydra/launcher=") for o in overrides):
        extra.append(f"hydra/launcher={launcher}")
        if launcher == "joblib" and jobs:
            extra.append(f"hydra.launcher.n_jobs={jobs}")
        if launcher.startswith("submitit"):
            extra.append(f"hydra.launcher.submitit_folder={sweep_dir / 'submitit' / '%j'}")
    return [sys.executable, "-m", "rankexp.hydra_app", "-m", *overrides, *extra]


def check_overrides(overrides: list[str]) -> None:
    """Reject what would break a multirun before launching anything (and catch typos early)."""
    from rankexp import api
    from rankexp.errors import ConfigError

    single = [o.split("=", 1)[0] + "=" + _first_value(o.split("=", 1)[1]) if "=" in o else o
              for o in overrides if not o.startswith("hydra")]
    cfg = api.compose([o for o in single if not o.endswith("=__skip__")])
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if strategy == "ddp":
        raise ConfigError("trainer.strategy=ddp re-launches the whole sweep per rank inside a multirun; "
                          "use trainer.strategy=ddp_spawn, or one process per member (--launcher joblib/submitit)")


def _first_value(value: str) -> str:
    """The first member of a sweep value (for a quick single-config check)."""
    import re

    m = re.match(r"^(?:choice|range)\((.*)\)$", value)
    if m:
        inner = m.group(1).split(",")[0].strip()
        return inner
    if value.startswith(("glob(", "interval(", "tag(")):
        return "__skip__"
    from rankexp.config.compose import split_top_level

    return split_top_level(value)[0]


def launch(overrides: list[str], name: str | None = None, output_dir: Path | None = None, launcher: str = "basic",
           jobs: int | None = None, dry_run: bool = False, force: bool = False, on_poll=None, poll_s: float = 1.0) -> tuple[Path, int]:
    """Run the sweep in a subprocess; return (sweep_dir, exit code). ``on_poll(index)`` is called
    with the current ``sweep.json`` content while it runs (the CLI's live view)."""
    import shutil
    import subprocess

    from rankexp import api

    overrides = list(overrides)
    check_overrides(overrides)
    out = Path(output_dir) if output_dir else Path(api.compose([o for o in overrides if o.startswith("paths.")]).paths.output_dir)
    name = name or sweep_name(overrides)
    sweep_dir = (out / "sweeps" / name).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **{ENV_DIR: str(sweep_dir)})
    env.pop(ENV_FORCE, None)
    if force:
        env[ENV_FORCE] = "1"
    optuna = any(o.startswith("hydra/sweeper=") for o in overrides)
    # 1. expand the members (same Hydra sweep grammar, basic launcher, compose only)
    if not optuna:
        shutil.rmtree(sweep_dir / "plan", ignore_errors=True)
        dry_env = dict(env, **{ENV_DRY: "1"})
        proc = subprocess.run(hydra_command(overrides, sweep_dir / ".dry", "basic"), env=dry_env, capture_output=True, text=True)
        shutil.rmtree(sweep_dir / ".dry", ignore_errors=True)
        if proc.returncode != 0:
            from rankexp.errors import ConfigError

            tail = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
            raise ConfigError(f"sweep overrides do not expand: {tail[-1] if tail else 'hydra failed'}")
    write_json(sweep_dir / "meta.json", {"name": name, "overrides": overrides, "launcher": launcher, "jobs": jobs,
                                         "command": "rankexp sweep " + " ".join(overrides), "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})
    write_index(sweep_dir)
    if dry_run:
        return sweep_dir, 0
    # 2. run them
    env.setdefault("RANKEXP_PROGRESS", "0")
    if launcher == "joblib" and "RANKEXP_THREADS" not in env:  # parallel members must not oversubscribe the cores
        env["RANKEXP_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, jobs or os.cpu_count() or 1)))
    grace = float(os.environ.get("RANKEXP_SWEEP_GRACE_S", "120"))
    received: list[tuple[int, float]] = []  # (signal, when)

    def forward(signum, frame) -> None:
        # SIGTERM/SIGINT reach the Hydra child and its members (its own process group); they save a
        # checkpoint and stop; we wait for them. A second signal a second later escalates at once.
        again = bool(received) and time.monotonic() - received[0][1] >= 1.0
        if not received:
            received.append((signum, time.monotonic()))
        _signal_group(proc.pid, signal.SIGKILL if again else signum)

    with open(sweep_dir / "sweep.log", "a", encoding="utf-8") as logf:
        # the child leads its own process group (a terminal's Ctrl-C reaches only us; we forward it
        # to the whole group) and dies with us if we are killed outright (Linux: PR_SET_PDEATHSIG)
        proc = subprocess.Popen(hydra_command(overrides, sweep_dir, launcher, jobs), env=env, stdout=logf,
                                stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        old = _install(forward)
        try:
            while proc.poll() is None:
                if on_poll:
                    on_poll(write_index(sweep_dir))
                if received and time.monotonic() - received[0][1] > grace:
                    _signal_group(proc.pid, signal.SIGKILL)
                time.sleep(poll_s)
        except BaseException:
            _signal_group(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
        finally:
            _restore(old)
            if received:  # members in worker processes (joblib) may still be saving: give them the grace period
                while _group_alive(proc.pid) and time.monotonic() - received[0][1] < grace:
                    time.sleep(0.2)
            _signal_group(proc.pid, signal.SIGKILL, only_stragglers=True)
    if received:
        write_index(sweep_dir)
        from rankexp.tracking.lifecycle import Interrupted

        raise Interrupted(received[0][0], f"sweep stopped; members so far are in {sweep_dir / 'sweep.json'}")
    index = write_index(sweep_dir)
    if on_poll:
        on_poll(index)
    return sweep_dir, proc.returncode
