"""One owner per run directory, and whether an owner is still alive.

* :class:`RunLock` — ``<run>/.lock``, a POSIX record lock (``fcntl.lockf``) holding the owner's pid,
  host and start time. A second process on the same run refuses with one line
  (:class:`RunLocked`) or waits (``wait=True``). The kernel drops the lock when the owner dies, so
  a killed run never blocks the next attempt.
* :class:`Heartbeat` — a daemon thread that rewrites ``status`` as
  ``running (pid P, host H, since T, heartbeat T)`` every ``RANKEXP_HEARTBEAT_S`` (30) seconds;
  :meth:`RunDir.state` reads a ``running`` status whose owner is gone as ``dead``
  (:func:`pid_alive` on the same host, :func:`stale_s` without a heartbeat elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rankexp.errors import RankexpError
from rankexp.tracking.checkpoint_files import DISK_FULL, disk_full_error

__all__ = ["heartbeat_s", "stale_s", "notice", "utc_now", "parse_utc", "process_start", "pid_alive", "owner_info",
           "RunLocked", "RunLock", "Heartbeat"]


def heartbeat_s() -> float:
    return max(0.05, float(os.environ.get("RANKEXP_HEARTBEAT_S", "30")))


def stale_s() -> float:
    """A run owned by another host is dead when its heartbeat is older than this (default 4 beats, ≥ 120 s)."""
    return float(os.environ.get("RANKEXP_STALE_S") or max(120.0, 4 * heartbeat_s()))


def notice(message: str) -> None:
    """One warning line on stderr (not Python's two-line ``warnings`` format)."""
    import logging

    rankexp_log = logging.getLogger("rankexp")
    if rankexp_log.handlers:  # the CLI's console handler prints "warning: ..." itself
        rankexp_log.warning("%s", message)
        return
    try:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()
    except Exception:  # pragma: no cover - a closed stderr must not fail a run
        pass


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_utc(text: str) -> float | None:
    import calendar

    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, TypeError):
        return None


class RunLocked(RankexpError):
    """Another live process owns this run directory."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of a local process, from /proc (None where unavailable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = float(stat.rsplit(")", 1)[1].split()[19])
        boot = _boot_time()
        return boot + ticks / os.sysconf("SC_CLK_TCK") if boot is not None else None
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether local process ``pid`` exists (and, when ``since`` is given, started no later than
    ``since`` + 2 s, so a recycled pid does not count as the owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if since is not None:
        started = process_start(pid)
        if started is not None and started > since + 2:
            return False
    try:  # a zombie (exited, not yet reaped) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def owner_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), "started_ts": time.time()}


_HELD: set[str] = set()  # lock files this process holds (never reopened here: closing any fd drops a POSIX lock)


class RunLock:
    """Exclusive ownership of a run directory (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / ".lock"
        self.fd: int | None = None

    def owner(self) -> dict[str, Any]:
        """The owner recorded in the lock file (empty when unreadable)."""
        if str(self.path) in _HELD:
            return owner_info()
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def refusal(self) -> str:
        o = self.owner()
        who = f"pid {o.get('pid', '?')} on host {o.get('host', '?')} since {o.get('started', '?')}"
        return f"run {self.run_dir.name} is being trained by {who}; wait for it (--wait) or use another seed"

    def _try(self) -> bool:
        if str(self.path) in _HELD:  # POSIX locks do not exclude the process that holds them
            return False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            import fcntl

            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return False
            # a file system without locks (ENOLCK): fall back on the owner's recorded pid/heartbeat
            from rankexp.tracking.rundir import RunDir

            if RunDir(self.run_dir).state() == "running":
                return False
            notice(f"{self.path}: file locks unsupported here ({e.strerror}); relying on the heartbeat only")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        self.fd = fd
        _HELD.add(str(self.path))
        try:
            data = json.dumps(owner_info()).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as e:
            self.release()
            if e.errno in DISK_FULL:
                raise disk_full_error(e, self.path) from e
            raise
        return True

    def acquire(self, wait: bool | float = False, poll_s: float = 1.0) -> "RunLock":
        """Take the lock; refuse (:class:`RunLocked`) when another process holds it, unless ``wait``
        (True: wait as long as it takes; a number: at most that many seconds)."""
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        announced = False
        while not self._try():
            if deadline is not None and time.monotonic() >= deadline:
                raise RunLocked(self.refusal())
            if not announced:
                notice(self.refusal().split(";")[0] + "; waiting for it")
                announced = True
            time.sleep(poll_s)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)  # drops the lock
        self.fd = None
        _HELD.discard(str(self.path))

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Heartbeat:
    """Rewrites the run's ``running (...)`` status every ``heartbeat_s()`` seconds until stopped."""

    def __init__(self, rundir, interval: float | None = None):
        self.rundir, self.interval = rundir, interval or heartbeat_s()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.rundir.beat()
            except Exception:  # a beat that cannot be written (full disk) is retried next time
                pass

    def __enter__(self) -> "Heartbeat":
        if not self.rundir.readonly:
            self._thread = threading.Thread(target=self._run, name="rankexp-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()
