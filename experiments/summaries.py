"""Helpers shared by the studies' summarize.py scripts (run them from anywhere; they add this folder to
``sys.path``)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Iterator, Sequence


def ms(xs: Sequence[float], nd: int = 4) -> str:
    """``mean ± std`` over seeds (the sample standard deviation), one value as is, none as ``–``."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.{nd}f}"
    return f"{statistics.mean(xs):.{nd}f} ± {statistics.stdev(xs):.{nd}f}"


def complete_runs(dirs: Sequence[str]) -> Iterator[tuple[Path, dict]]:
    """``(run directory, metrics.json)`` of each complete run; the others are named on stderr and skipped."""
    for d in map(Path, dirs):
        if not (d / "metrics.json").exists():
            print(f"skipped (not complete): {d}", file=sys.stderr)
            continue
        yield d, json.loads((d / "metrics.json").read_text())
