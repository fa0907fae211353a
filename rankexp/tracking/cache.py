"""Content-addressed cache: ``<cache_dir>/<kind>/<hash>/``.

An entry is keyed by the hash of its inputs (collection fingerprint, parameters, model hash). It
is built in a temp directory beside its final place and renamed into place, under a file lock, so
concurrent sweep members never see (or corrupt) a half-built entry and an N-member sweep builds it
once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import write_json

log = logging.getLogger(__name__)


@dataclass
class CacheEvent:
    kind: str
    key: str
    hit: bool
    build_s: float = 0.0


@dataclass
class Cache:
    root: Path
    events: list[CacheEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def path(self, kind: str, key: dict[str, Any]) -> tuple[Path, str]:
        digest = stable_hash(key, 16)
        return self.root / kind / digest, digest

    def get_or_build(self, kind: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """Return the entry's directory, calling ``build(tmpdir)`` first if it does not exist yet."""
        final, digest = self.path(kind, key)
        if (final / ".complete").exists():
            self.events.append(CacheEvent(kind, digest, True))
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / ".complete").exists():  # another process built it while we waited
                self.events.append(CacheEvent(kind, digest, True))
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=final.parent))
            t0 = time.perf_counter()
            try:
                build(tmp)
                write_json(tmp / "key.json", key)
                (tmp / ".complete").touch()
                if final.exists():  # a stale, incomplete entry left by a killed process
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.events.append(CacheEvent(kind, digest, False, time.perf_counter() - t0))
            log.info("cache: built %s/%s in %.1fs", kind, digest, time.perf_counter() - t0)
        return final

    def summary(self) -> list[dict[str, Any]]:
        return [e.__dict__ for e in self.events]
