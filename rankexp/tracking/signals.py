"""SIGTERM/SIGINT during a run: stop at a step boundary with a resumable checkpoint.

:class:`SignalGuard` + :func:`guard_callback`: while Lightning is fitting, the run stops at the next
step boundary (after any dev evaluation due at that step), saves ``checkpoints/last.ckpt`` and
raises :class:`Interrupted` (exit 128 + signal: 143 / 130); outside fitting it raises at once. A
second signal a second or more after the first aborts immediately. ``rankexp train`` again resumes
from that checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from rankexp.tracking.checkpoint_files import SafeCheckpointIO

__all__ = ["Interrupted", "SignalGuard", "current_guard", "guard_callback"]


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
