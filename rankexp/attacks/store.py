"""``results.jsonl`` of an attack run: one JSON line per finished target, appended, flushed and
fsync'd as soon as the target is done, so that a run cut off at any point loses at most the target
it was working on. A re-run reads the file and skips the targets already in it. A last line cut by
the interruption (no newline, or not JSON) is dropped with a warning and cut from the file before
anything is appended; a damaged line elsewhere is an error (the file is not what this code wrote).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from rankexp.errors import DataError

log = logging.getLogger("rankexp")


class ResultsFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """The finished targets' records by key (a torn last line is dropped and truncated away)."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        out: dict[str, dict[str, Any]] = {}
        good_end = 0
        pos = 0
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            end = pos + len(raw) + 1
            last = i == len(lines) - 1
            if last and not raw.strip():
                break
            try:
                rec = json.loads(raw.decode("utf-8"))
                ok = isinstance(rec, dict) and "key" in rec and not last  # a complete line ends with a newline
            except (UnicodeDecodeError, json.JSONDecodeError):
                ok = False
            if not ok:
                if last or all(not x.strip() for x in lines[i + 1:]):
                    log.warning("%s: its last line was cut off (an interrupted run); dropped, that target runs again", self.path)
                    break
                raise DataError(f"{self.path}:{i + 1}: not a result record (a damaged file? move it aside to start over)")
            out[str(rec["key"])] = rec
            good_end = end
            pos = end
        if good_end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return out

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str, allow_nan=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
