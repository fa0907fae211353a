"""Stable content hashes for run ids and cache keys."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def stable_hash(obj: Any, length: int = 12) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), truncated to ``length`` hex digits."""
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    """sha256 of a file's bytes (streamed), truncated."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def files_digest(paths: list[Path], length: int = 16) -> str:
    return stable_hash([file_digest(p) for p in paths], length)
