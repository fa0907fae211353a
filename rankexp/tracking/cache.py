"""Content-addressed cache: ``<cache_dir>/<kind>/<hash>/``.

An entry is keyed by the hash of its inputs (collection fingerprint, parameters, model hash). It
is built in a temp directory beside its final place and renamed into place, under a file lock, so
concurrent sweep members never see (or corrupt) a half-built entry and an N-member sweep builds it
once.

Entries cannot lie (docs/cache.md):

* Every entry carries ``manifest.json``: the size and blake2b checksum of each of its files,
  written when the entry is built. Every hit verifies it (sizes always; checksums once per process
  and entry, again whenever a file's size, mtime or inode changes). ``RANKEXP_CACHE_VERIFY=size``
  checks sizes only (for caches of many GB). A damaged entry (a file missing, cut or altered, an
  unreadable manifest) is reported with one warning line naming kind/hash/file and what was
  wrong, removed and rebuilt. An entry without a manifest (written by an older rankexp) cannot be
  verified and is rebuilt the same way.
* :meth:`Cache.load` is the one place where cached files are read: if the reader still fails
  (damage after verification, a format the reader cannot parse), the entry is reported (file
  named), removed and rebuilt once; a second failure is a :class:`CacheError` naming the file.
* Temp folders (``.<hash>.*``) and lock files left by killed builders are removed when a kind is
  first used by a process, if no builder holds their lock and they are older than
  ``stale_after_s`` (10 minutes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from filelock import FileLock, Timeout

from rankexp.errors import RankexpError, one_line
from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import write_json

log = logging.getLogger(__name__)

T = TypeVar("T")
MANIFEST = "manifest.json"
COMPLETE = ".complete"
MANIFEST_VERSION = 1

# Options that reach a cache kind's builder but do not change what it writes (so they are not in
# its key). tests/test_cache_faults.py enumerates every option of every kind and fails on one that
# neither changes the key nor is listed here; docs/cache.md gives the same list.
CONTENT_NEUTRAL: dict[str, dict[str, str]] = {
    "bm25_index": {
        "k": "the index holds every document; k is the depth of a run (in the bm25_run key)",
        "chunk_size": "tokenization batch size; the tokens are the same",
    },
    "bm25_run": {
        "chunk_size": "tokenization batch size; the tokens are the same",
    },
    "dense_index": {
        "k": "the index holds every document; k is the depth of a run (in the dense_run key)",
        "max_query_length": "documents only",
        "shared": "a shared or unshared model with the same weights encodes documents the same way "
                  "(the key holds the document side's weights)",
        "batch_size": "encoding batch size; the same embeddings up to float rounding",
        "use_faiss": "exact search either way; the index stores embeddings, not a faiss structure",
        "device": "the same embeddings up to float rounding",
    },
    "dense_run": {
        "shared": "the key holds the weights of each side (a shared model's sides are equal)",
        "batch_size": "encoding batch size; the same embeddings up to float rounding",
        "use_faiss": "exact inner-product search either way (ties may be ordered differently)",
        "device": "the same embeddings up to float rounding",
    },
    "tokens": {},
    "negatives": {
        "skip_top": "a filter applied when negatives are drawn; the cached ranking is unfiltered",
        "margin_abs": "a filter applied when negatives are drawn",
        "margin_rel": "a filter applied when negatives are drawn",
        "max_score": "a filter applied when negatives are drawn",
        "select": "how surviving negatives are drawn; the cached ranking is unfiltered",
        "retriever.k": "the mining depth is the sampler's depth (in the key)",
        "retriever.batch_size": "taken from the run (eval.batch_size); the same embeddings up to float rounding",
        "retriever.device": "taken from the run; the same embeddings up to float rounding",
        "retriever.use_faiss": "mining searches the index with torch",
        "retriever.shared": "the key holds the weights of each side",
        "encoder.temperature": "(retriever null: the run's bi-encoder mines) a training setting",
        "encoder.in_batch": "(retriever null) a training setting",
        "encoder.gather_negatives": "(retriever null) a training setting (in-batch negatives across ranks)",
        "encoder.shared": "(retriever null) the key holds the weights of each side",
    },
}


class CacheError(RankexpError):
    """A cache entry that cannot be read even right after it was rebuilt."""


class CacheReadError(Exception):
    """A cached file that a reader could not parse (raised by :func:`read_file`)."""

    def __init__(self, path: Path, cause: BaseException):
        self.path, self.cause = Path(path), cause
        super().__init__(f"{Path(path).name}: {type(cause).__name__}: {one_line(cause)}")


def read_file(path: Path, reader: Callable[[Path], T]) -> T:
    """``reader(path)``, with any failure turned into a :class:`CacheReadError` naming the file."""
    try:
        return reader(path)
    except Exception as e:  # noqa: BLE001 - whatever the format error, the file is named
        raise CacheReadError(path, e) from e


def key_digest(key: dict[str, Any]) -> str:
    """The entry name of ``key`` (a hash of its canonical JSON)."""
    return stable_hash(key, 16)


def _blake2b(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry_files(entry: Path) -> list[Path]:
    return sorted(p for p in entry.rglob("*") if p.is_file() and p.name not in (MANIFEST, COMPLETE))


def write_manifest(entry: Path) -> None:
    files = {p.relative_to(entry).as_posix(): {"size": p.stat().st_size, "blake2b": _blake2b(p)} for p in _entry_files(entry)}
    write_json(entry / MANIFEST, {"version": MANIFEST_VERSION, "files": files})


def verify_mode() -> str:
    mode = os.environ.get("RANKEXP_CACHE_VERIFY", "full").strip().lower() or "full"
    if mode not in ("full", "size"):
        from rankexp.errors import ConfigError

        raise ConfigError(f"RANKEXP_CACHE_VERIFY must be 'full' or 'size', got {mode!r}")
    return mode


@dataclass
class CacheEvent:
    kind: str
    key: str
    hit: bool
    build_s: float = 0.0
    repaired: str | None = None  # what was wrong with the entry that this build replaced


@dataclass
class Cache:
    root: Path
    events: list[CacheEvent] = field(default_factory=list)
    stale_after_s: float = 600.0

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._verified: dict[Path, tuple] = {}  # entry -> file signature when its checksums last matched
        self._swept: set[str] = set()

    def path(self, kind: str, key: dict[str, Any]) -> tuple[Path, str]:
        digest = key_digest(key)
        return self.root / kind / digest, digest

    # ---- verification
    def _signature(self, entry: Path, names) -> tuple:
        out = []
        for name in names:
            st = (entry / name).stat()
            out.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(out)

    def check(self, entry: Path) -> str | None:
        """What is wrong with a complete entry (``None``: nothing)."""
        try:
            manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
            files = manifest["files"]
            if manifest.get("version") != MANIFEST_VERSION or not isinstance(files, dict):
                raise ValueError("unknown manifest version")
        except FileNotFoundError:
            return f"{MANIFEST} missing (an entry from an older rankexp cannot be verified)"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"{MANIFEST} unreadable ({type(e).__name__})"
        for name, meta in files.items():
            p = entry / name
            if not p.is_file():
                return f"{name} missing"
            size = p.stat().st_size
            if size != meta.get("size"):
                return f"{name} has {size} bytes, the manifest says {meta.get('size')}"
        if verify_mode() == "size":
            return None
        try:
            sig = self._signature(entry, sorted(files))
        except OSError as e:
            return f"cannot stat its files ({type(e).__name__})"
        if self._verified.get(entry) == sig:
            return None
        for name, meta in files.items():
            try:
                if _blake2b(entry / name) != meta.get("blake2b"):
                    return f"{name} checksum mismatch (blake2b)"
            except OSError as e:
                return f"{name} unreadable ({type(e).__name__})"
        self._verified[entry] = sig
        return None

    def _state(self, final: Path) -> str | None:
        """``None``: a complete, verified entry; otherwise what is wrong ("" = absent or incomplete)."""
        if not (final / COMPLETE).exists():
            return ""
        return self.check(final)

    # ---- stale temp folders and locks
    def sweep(self, kind: str) -> list[Path]:
        """Remove temp folders and lock files of ``kind`` left by killed builders: not locked by a
        builder, and older than ``stale_after_s``. Returns what was removed."""
        folder = self.root / kind
        removed: list[Path] = []
        if not folder.is_dir():
            return removed
        now = time.time()
        for p in sorted(folder.iterdir()):
            try:
                old = now - p.stat().st_mtime >= self.stale_after_s
            except FileNotFoundError:
                continue
            if not old:
                continue
            if p.is_dir() and p.name.startswith(".") and p.name.count(".") >= 2:  # .<digest>.<random>
                digest = p.name.split(".")[1]
                lock_path = Path(str(folder / digest) + ".lock")
                if not lock_path.exists():  # builders take the lock before making their temp folder
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
                    continue
                lock = FileLock(str(lock_path), timeout=0)
                try:
                    with lock:  # no builder of this digest is running, so its temp folder is orphaned
                        shutil.rmtree(p, ignore_errors=True)
                        removed.append(p)
                except Timeout:
                    continue
            elif p.is_file() and p.suffix == ".lock":
                entry = folder / p.stem
                if (entry / COMPLETE).exists() or not entry.exists():
                    lock = FileLock(str(p), timeout=0)
                    try:
                        with lock:
                            if not any(folder.glob(f".{p.stem}.*")):
                                p.unlink(missing_ok=True)
                                removed.append(p)
                    except Timeout:
                        continue
        if removed:
            log.info("cache: removed %d stale temp folder(s)/lock(s) under %s", len(removed), folder)
        return removed

    # ---- get, build, load
    def get_or_build(self, kind: str, key: dict[str, Any], build: Callable[[Path], None], *, _damage: str | None = None) -> Path:
        """Return the entry's directory, verified, calling ``build(tmpdir)`` first if it does not
        exist yet or is damaged (reported with one warning line, removed and rebuilt)."""
        final, digest = self.path(kind, key)
        if kind not in self._swept:
            self._swept.add(kind)
            try:
                self.sweep(kind)
            except OSError as e:  # cleaning is best effort
                log.debug("cache: sweeping %s failed: %s", kind, e)
        if _damage is None and self._state(final) is None:
            self.events.append(CacheEvent(kind, digest, True))
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            problem = _damage if _damage is not None else self._state(final)
            if problem is None:  # another process built (or repaired) it while we waited
                self.events.append(CacheEvent(kind, digest, True))
                return final
            if problem:
                log.warning("cache %s/%s: %s; removed, rebuilding", kind, digest, problem)
            self._verified.pop(final, None)
            tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=final.parent))
            t0 = time.perf_counter()
            try:
                build(tmp)
                write_json(tmp / "key.json", key)
                write_manifest(tmp)
                (tmp / COMPLETE).touch()
                if final.exists():  # a damaged entry, or an incomplete one left by a killed process
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.events.append(CacheEvent(kind, digest, False, time.perf_counter() - t0, problem or None))
            log.info("cache: built %s/%s in %.1fs", kind, digest, time.perf_counter() - t0)
        return final

    def load(self, kind: str, key: dict[str, Any], build: Callable[[Path], None], reader: Callable[[Path], T]) -> T:
        """``reader(entry)`` of the verified entry. If reading fails (wrap each file's read in
        :func:`read_file` so that the file is named), the entry is reported, removed and rebuilt
        once; a second failure is a :class:`CacheError`."""
        entry = self.get_or_build(kind, key, build)
        try:
            return reader(entry)
        except Exception as e:  # noqa: BLE001 - any reader failure means the entry is unusable
            problem = self._describe(e)
        entry = self.get_or_build(kind, key, build, _damage=f"cannot read {problem}")
        try:
            return reader(entry)
        except Exception as e:  # noqa: BLE001
            raise CacheError(f"cache {kind}/{entry.name}: cannot read {self._describe(e)} even after rebuilding "
                             f"{entry}") from e

    @staticmethod
    def _describe(e: BaseException) -> str:
        if isinstance(e, CacheReadError):
            return str(e)
        name = getattr(e, "filename", None)
        prefix = f"{Path(name).name}: " if name else ""
        return f"{prefix}{type(e).__name__}: {one_line(e)}"

    def summary(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.__dict__.items() if not (k == "repaired" and v is None)} for e in self.events]
