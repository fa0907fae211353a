"""Crash-safe files of a run: checkpoints written beside their target and renamed, checks of a
checkpoint before resuming from it, and a full disk turned into one line.

* :func:`save_atomic` / :func:`SafeCheckpointIO` — ``torch.save`` to ``<name>.tmp`` in the same
  directory, fsync, rename over ``<name>``: a crash or a full disk never leaves a truncated
  ``last.ckpt``.
* :func:`checkpoint_ok` checks a checkpoint's zip structure and CRCs; :func:`quarantine` moves a
  damaged one aside; :func:`clean_temp` removes what an interrupted save left.
* :class:`DiskFullError` — ENOSPC/EDQUOT anywhere in a run becomes ``disk full while writing X``
  (:func:`disk_full_error`).
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path
from typing import Any

from rankexp.errors import RankexpError

__all__ = ["DISK_FULL", "DiskFullError", "disk_full", "disk_full_error", "fsync_dir", "save_atomic",
           "SafeCheckpointIO", "checkpoint_ok", "quarantine", "clean_temp"]

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class DiskFullError(RankexpError):
    """No space left on the device (ENOSPC/EDQUOT) while writing a file."""

    exit_code = 28  # ENOSPC


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
