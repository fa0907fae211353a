"""TREC run files: read with validation, write with trec_eval's tie order and strictly decreasing scores.

trec_eval orders a query's documents by score descending and breaks ties by doc id in *descending*
string order. :func:`write_run` sorts exactly that way and then nudges tied scores down by one ulp
(``numpy.nextafter``) so the written scores are strictly decreasing: every tool (trec_eval,
ir_measures' other providers, ranx) then reads the same ranking from the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from rankexp.errors import DataError
from rankexp.utils.io import atomic_open

Run = dict[str, dict[str, float]]


def sort_ranking(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc, score) in trec_eval order: score descending, then doc id descending."""
    return sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def strictly_decreasing(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    prev = math.inf
    for doc, score in ranked:
        s = float(score)
        if not math.isfinite(s):
            raise DataError(f"score for doc {doc!r} is not finite ({score})")
        if s >= prev:
            s = float(np.nextafter(prev, -np.inf))
        out.append((doc, s))
        prev = s
    return out


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str = "rankexp", depth: int | None = None) -> None:
    """Write ``run`` atomically in TREC format (``qid Q0 doc rank score tag``)."""
    from rankexp.data.collection import natural_sorted

    with atomic_open(path) as fh:
        for qid in natural_sorted(run):
            ranked = strictly_decreasing(sort_ranking(run[qid]))
            if depth is not None:
                ranked = ranked[:depth]
            for rank, (doc, score) in enumerate(ranked, 1):
                fh.write(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")


def read_run(path: str | Path) -> Run:
    """Read a TREC run file; one clear error per malformed line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"run file not found: {path}")
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise DataError(f"{path}:{n}: expected 6 columns 'qid Q0 doc_id rank score tag', got {len(parts)}: {line.strip()[:80]!r}")
            qid, _, doc, _, score, _ = parts
            try:
                value = float(score)
            except ValueError:
                raise DataError(f"{path}:{n}: score must be a number, got {score!r}") from None
            if not math.isfinite(value):
                raise DataError(f"{path}:{n}: score is not finite ({score})")
            run.setdefault(qid, {})[doc] = value
    if not run:
        raise DataError(f"run file is empty: {path}")
    return run
