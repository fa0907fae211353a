"""Atomic file writes: every file a user relies on is written to a temp path and renamed."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[TextIO]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    If the body raises, the temp file is removed and ``path`` is left untouched. A full disk
    (ENOSPC/EDQUOT) raises ``DiskFullError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _raise_disk_full(e, path)
        raise
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            _raise_disk_full(e, path)
        raise


def _raise_disk_full(e: OSError, path: Path) -> None:
    import errno

    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        from rankexp.tracking.lifecycle import disk_full_error

        raise disk_full_error(e, path) from e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_pair_scores(path: str | os.PathLike, run: dict[str, dict[str, float]]) -> None:
    """``query<TAB>document<TAB>score`` lines (the score's repr: it reads back bitwise)."""
    with open(path, "w", encoding="utf-8") as fh:
        for q, docs in run.items():
            fh.writelines(f"{q}\t{d}\t{s!r}\n" for d, s in docs.items())


def read_pair_scores(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """What :func:`write_pair_scores` wrote, in the same order; a malformed line raises ValueError."""
    run: dict[str, dict[str, float]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        q, d, s = line.split("\t")
        run.setdefault(q, {})[d] = float(s)
    return run
