"""A run's life in its directory: one owner at a time, signals, crash-safe checkpoints, full disks.

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

import errno
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from rankexp.errors import RankexpError

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


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


# ---------------------------------------------------------------- errors


class Interrupted(BaseException):
    """SIGTERM / SIGINT stopped the run (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it). ``exit_code`` is 128 + the signal number (143 / 130)."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum, detail)
        self.signum = int(signum)
        self.detail = detail

    @property
    def signame(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:  # pragma: no cover
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted ({self.signame})" + (f": {self.detail}" if self.detail else "")


class DiskFullError(RankexpError):
    """No space left on the device (ENOSPC/EDQUOT) while writing a file."""

    exit_code = 28  # ENOSPC


class RunLocked(RankexpError):
    """Another live process owns this run directory."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def disk_full(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT ``OSError`` in ``exc``'s cause/context chain, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):  # torch's C++ writer
            return OSError(errno.ENOSPC, "No space left on device")
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_error(exc: BaseException, path: str | os.PathLike | None = None) -> DiskFullError:
    """``disk full while writing X``: the path given, the OSError's file name, or the code location that wrote."""
    os_err = disk_full(exc) or exc
    where = path or getattr(os_err, "filename", None)
    if not where:
        tb = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        where = f"a file (in {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else "a file"
    return DiskFullError(f"disk full while writing {where} (ENOSPC: no space left on device); free space and run again to resume")


# ---------------------------------------------------------------- processes


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


# ---------------------------------------------------------------- the run lock

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


# ---------------------------------------------------------------- heartbeat


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


# ---------------------------------------------------------------- signals

_current_guard: "SignalGuard | None" = None


class SignalGuard:
    """SIGTERM/SIGINT handlers for the duration of a run (main thread only; elsewhere a no-op)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self.first_at = 0.0
        self.in_fit = False
        self.distributed = False
        self._old: dict[int, Any] = {}

    def handler(self, signum, frame) -> None:
        now = time.monotonic()
        if self.signum is not None:
            if now - self.first_at >= 1.0:  # asked again: stop now, without a checkpoint
                raise Interrupted(self.signum, "second signal, stopped without saving")
            return  # the same signal delivered twice (to the process and its group): one request
        self.signum, self.first_at = int(signum), now
        if not self.in_fit or (self.distributed and signum != signal.SIGTERM):
            raise Interrupted(signum)
        try:
            sys.stderr.write(f"\n{signal.Signals(signum).name}: saving a checkpoint at the next step, then stopping "
                             "(signal again to stop at once)\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover
            pass

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in self.SIGNALS:
            if s not in self._old:
                self._old[s] = signal.getsignal(s)
            signal.signal(s, self.handler)

    def __enter__(self) -> "SignalGuard":
        global _current_guard
        self._prev_guard = _current_guard
        _current_guard = self
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        global _current_guard
        _current_guard = self._prev_guard
        if threading.current_thread() is threading.main_thread():
            for s, h in self._old.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)


def current_guard() -> SignalGuard | None:
    return _current_guard


def guard_callback(rundir):
    """The Lightning callback that installs :class:`SafeCheckpointIO` and turns a pending signal
    into ``last.ckpt`` + :class:`Interrupted` at the next step boundary."""
    import pytorch_lightning as pl

    delay = float(os.environ.get("RANKEXP_TEST_STEP_DELAY_S", "0") or 0)

    class RunGuard(pl.Callback):
        def setup(self, trainer, pl_module, stage):
            trainer.strategy.checkpoint_io = SafeCheckpointIO()

        def on_train_start(self, trainer, pl_module):
            guard = current_guard()
            if guard is None:
                return
            guard.distributed = trainer.world_size > 1
            guard.in_fit = True
            if not guard.distributed:
                # Lightning's own SIGTERM handler stops mid-step or mid-evaluation with exit 0;
                # ours stops at a step boundary with a resumable checkpoint (Lightning restores ours on teardown)
                guard.install()
            if guard.signum is not None:  # a signal that came while the trainer was being set up
                self._stop(trainer)

        def _stop(self, trainer, at_batch_start: bool = False):
            guard = current_guard()
            if guard is None or guard.signum is None or guard.distributed:
                return
            guard.in_fit = False
            if at_batch_start:
                # Lightning counted batch N+1 as "ready" just before this hook; un-count it so the
                # checkpoint holds exactly the loop state after step N (as a checkpoint saved at the end
                # of step N's dev evaluation does): the dev evaluation schedule then resumes unshifted
                bp = trainer.fit_loop.epoch_loop.batch_progress
                bp.total.ready -= 1
                bp.current.ready -= 1
            if not rundir.readonly:
                trainer.save_checkpoint(str(rundir.checkpoints / "last.ckpt"))
            raise Interrupted(guard.signum, f"checkpoint saved at step {trainer.global_step}")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            # here step N (and its dev evaluation and checkpoints) is complete and N+1 has not begun
            self._stop(trainer, at_batch_start=True)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if delay:  # fault-injection tests: slow steps down so a signal lands mid-training
                time.sleep(delay)

        def on_train_end(self, trainer, pl_module):
            self._stop(trainer)
            guard = current_guard()
            if guard is not None:
                guard.in_fit = False

        def on_exception(self, trainer, pl_module, exception):
            guard = current_guard()
            if guard is not None:
                guard.in_fit = False

    return RunGuard()


# ---------------------------------------------------------------- checkpoints


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse directory fsync
        pass
    finally:
        os.close(fd)


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``<path>.tmp`` in the same directory, fsync, rename over ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, Exception) and disk_full(e):
            raise disk_full_error(e, path) from e
        raise


_safe_io_cls = None


def SafeCheckpointIO():
    """Lightning's torch checkpoint IO, but written to a temp file in the same directory and renamed
    (built on first use, so importing this module does not import Lightning)."""
    global _safe_io_cls
    if _safe_io_cls is None:
        try:
            from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
        except ImportError:  # pragma: no cover
            from pytorch_lightning.plugins.io import TorchCheckpointIO

        class _SafeCheckpointIO(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
                if "://" in str(path) or storage_options is not None:  # remote file systems: Lightning's writer
                    return super().save_checkpoint(checkpoint, path, storage_options)
                save_atomic(checkpoint, path)

        _safe_io_cls = _SafeCheckpointIO
    return _safe_io_cls()


def checkpoint_ok(path: str | os.PathLike) -> tuple[bool, str]:
    """Whether a torch checkpoint is complete: a zip archive whose members all pass their CRC."""
    import zipfile

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return False, "empty file"
        if not zipfile.is_zipfile(path):
            return False, "not a complete torch checkpoint (no zip directory: truncated?)"
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                return False, f"member {bad} fails its CRC check"
            if not any(n.endswith("data.pkl") for n in zf.namelist()):
                return False, "no data.pkl in the archive"
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        return False, f"unreadable ({type(e).__name__}: {e})"
    return True, ""


def quarantine(path: Path) -> Path:
    """Move a damaged file aside as ``<name>.corrupt`` (replacing an older one)."""
    dst = path.with_name(path.name + ".corrupt")
    os.replace(path, dst)
    return dst


def clean_temp(folder: Path) -> list[Path]:
    """Remove ``*.tmp`` files an interrupted save left in ``folder``."""
    removed = []
    if folder.is_dir():
        for p in folder.glob("*.tmp"):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed
