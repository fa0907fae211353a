"""A run's life in its directory: one owner at a time, signals, crash-safe checkpoints, full disks.

This module gathers the names of three modules, one per responsibility, so that
``from rankexp.tracking import lifecycle as lc`` keeps working:

* :mod:`rankexp.tracking.runlock` — the run lock, the heartbeat, whether an owner is alive;
* :mod:`rankexp.tracking.signals` — SIGTERM/SIGINT, :class:`Interrupted`, the Lightning guard;
* :mod:`rankexp.tracking.checkpoint_files` — atomic checkpoint writes and checks, disk-full errors.

* :class:`RunLock` — ``<run>/.lock``, a POSIX record lock (``fcntl.lockf``) holding the owner's pid,
  host and start time. A second process on the same run refuses with one line
  (:class:`RunLocked`) or waits (``wait=True``). The kernel drops the lock when the owner dies, so
  a killed run never blocks the next attempt.
* :class:`Heartbeat` — a daemon thread that rewrites ``status`` as
  ``running (pid P, host H, since T, heartbeat T)`` every ``RANKEXP_HEARTBEAT_S`` (30) seconds;
  :meth:`RunDir.state` reads a ``running`` status whose owner is gone as ``dead``.
* :class:`SignalGuard` + :func:`guard_callback` — SIGTERM/SIGINT during a run: while Lightning is
  fitting, the run stops at the next step boundary (after any dev evaluation due at that step),
  saves ``checkpoints/last.ckpt`` and raises :class:`Interrupted` (exit 128 + signal: 143 / 130);
  outside fitting it raises at once. A second signal a second or more after the first aborts
  immediately. ``rankexp train`` again resumes from that checkpoint.
* :class:`SafeCheckpointIO` — checkpoints go to ``<name>.tmp`` in the same directory, are fsynced
  and renamed over ``<name>``: a crash or a full disk never leaves a truncated ``last.ckpt``.
  :func:`checkpoint_ok` checks a checkpoint's zip structure and CRCs before resuming from it.
* :class:`DiskFullError` — ENOSPC anywhere in a run becomes ``disk full while writing X``.
"""

from __future__ import annotations

from rankexp.tracking.checkpoint_files import DISK_FULL as DISK_FULL
from rankexp.tracking.checkpoint_files import DiskFullError as DiskFullError
from rankexp.tracking.checkpoint_files import SafeCheckpointIO as SafeCheckpointIO
from rankexp.tracking.checkpoint_files import checkpoint_ok as checkpoint_ok
from rankexp.tracking.checkpoint_files import clean_temp as clean_temp
from rankexp.tracking.checkpoint_files import disk_full as disk_full
from rankexp.tracking.checkpoint_files import disk_full_error as disk_full_error
from rankexp.tracking.checkpoint_files import fsync_dir as fsync_dir
from rankexp.tracking.checkpoint_files import quarantine as quarantine
from rankexp.tracking.checkpoint_files import save_atomic as save_atomic
from rankexp.tracking.runlock import Heartbeat as Heartbeat
from rankexp.tracking.runlock import RunLock as RunLock
from rankexp.tracking.runlock import RunLocked as RunLocked
from rankexp.tracking.runlock import heartbeat_s as heartbeat_s
from rankexp.tracking.runlock import notice as notice
from rankexp.tracking.runlock import owner_info as owner_info
from rankexp.tracking.runlock import parse_utc as parse_utc
from rankexp.tracking.runlock import pid_alive as pid_alive
from rankexp.tracking.runlock import process_start as process_start
from rankexp.tracking.runlock import stale_s as stale_s
from rankexp.tracking.runlock import utc_now as utc_now
from rankexp.tracking.signals import Interrupted as Interrupted
from rankexp.tracking.signals import SignalGuard as SignalGuard
from rankexp.tracking.signals import current_guard as current_guard
from rankexp.tracking.signals import guard_callback as guard_callback

__all__ = [
    "DISK_FULL",
    "DiskFullError",
    "SafeCheckpointIO",
    "checkpoint_ok",
    "clean_temp",
    "disk_full",
    "disk_full_error",
    "fsync_dir",
    "quarantine",
    "save_atomic",
    "Heartbeat",
    "RunLock",
    "RunLocked",
    "heartbeat_s",
    "notice",
    "owner_info",
    "parse_utc",
    "pid_alive",
    "process_start",
    "stale_s",
    "utc_now",
    "Interrupted",
    "SignalGuard",
    "current_guard",
    "guard_callback",
]
