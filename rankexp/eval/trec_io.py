"""TREC run and qrels files, read as strictly as trec_eval reads them and written in its order.

**Precision.** trec_eval keeps a document's score as a C ``float`` (``TEXT_RESULTS.sim``, read with
``atof``), and pytrec_eval copies Python floats into that same single-precision field. Two scores
that differ below float32 precision (``1.0`` and ``1.0 + 1e-12``) are therefore *tied* when
evaluated. Every ordering in rankexp uses that precision: :func:`sort_ranking` sorts by the float32
value of the score, descending, then by doc id in *descending* string order (trec_eval's tie
rule, ``strcmp`` on the bytes; Python compares code points, which orders UTF-8 the same way).

**Writing.** :func:`write_run` sorts that way and writes scores that are strictly decreasing *as
float32 values*: each score is rounded to float32, and a score not strictly below the previous
one is nudged down one float32 ulp (``numpy.nextafter`` in float32). Every tool (trec_eval,
pytrec_eval, ir_measures' other providers, ranx) then reads from the file the ranking rankexp
evaluated in memory; the written scores are the float32 values, in their shortest decimal form.

**Reading.** trec_eval refuses a run with a document twice in one query and qrels with a
(query, document) pair twice; :func:`read_run` and :func:`read_qrels` refuse them too, naming the
file and the lines of both occurrences. ``lenient=True`` keeps the *first* occurrence instead and
warns once (count and first place). Numbers are checked against the syntax C's ``strtod`` reads
in full (trec_eval's ``atof`` silently takes the longest valid prefix, so ``1_0`` would be 1 and
``high`` 0): a score is ``[+-]digits[.digits][e[+-]digits]`` in ASCII (``1e3``, ``-0.5``, ``.5``,
``5.`` are accepted; ``1_0``, ``١``, hexadecimal, ``inf`` and ``nan`` are refused; the value
must be finite in single precision), and a relevance grade is an ASCII integer
(``[+-]digits``; ``1.0`` is refused). Python's ``float``/``int`` would accept ``1_0`` and
non-ASCII digits, so they are never used on unchecked text.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from rankexp.errors import DataError
from rankexp.utils.io import atomic_open

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

# trec_eval's score precision (TEXT_RESULTS.sim is a C float)
EVAL_DTYPE = np.float32
_F32_MAX = float(np.finfo(np.float32).max)

# The whole-token syntax of a decimal floating-point number as strtod reads it (ASCII only;
# hexadecimal floats, inf and nan excluded) and of an integer as atol/strtol reads it.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)


class LenientReadWarning(UserWarning):
    """A lenient reader dropped duplicate lines (keeping the first occurrence)."""


Warn = Callable[[str], None]
_reading: ContextVar[tuple[bool, Warn | None]] = ContextVar("rankexp_trec_reading", default=(False, None))


@contextmanager
def reading(lenient: bool = False, warn: Warn | None = None) -> Iterator[None]:
    """Within the block, :func:`read_run` and :func:`read_qrels` calls that do not pass ``lenient``
    use this one, and report dropped duplicates through ``warn`` (default: :mod:`warnings`)."""
    token = _reading.set((bool(lenient), warn))
    try:
        yield
    finally:
        _reading.reset(token)


def _settings(lenient: bool | None, warn: Warn | None) -> tuple[bool, Warn]:
    ctx_lenient, ctx_warn = _reading.get()
    chosen = warn or ctx_warn or (lambda msg: warnings.warn(msg, LenientReadWarning, stacklevel=4))
    return (ctx_lenient if lenient is None else bool(lenient)), chosen


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def eval_score(score: float) -> float:
    """``score`` as trec_eval holds it: rounded to float32 (returned as a Python float)."""
    return float(np.float32(score))


def parse_score(text: str) -> float:
    """A run score token as strtod reads it in full; ValueError (a phrase naming the problem) otherwise."""
    if not _DECIMAL.fullmatch(text):
        if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
            raise ValueError(f"score is not finite ({text!r})")
        raise ValueError(f"score must be a number, got {text!r} (a decimal such as 1.5, -2e-3 or .5, as C strtod reads it)")
    value = float(text)
    if not math.isfinite(value) or abs(value) > _F32_MAX:
        raise ValueError(f"score {text!r} is outside single precision (trec_eval reads scores as C floats)")
    return value


def parse_relevance(text: str) -> int:
    """A qrels relevance token: an ASCII integer; ValueError otherwise."""
    if not _INTEGER.fullmatch(text):
        raise ValueError("must be an integer")
    return int(text)


# --------------------------------------------------------------------------------------------
# Order and writing
# --------------------------------------------------------------------------------------------


def sort_ranking(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc, score) in trec_eval order: float32 score descending, then doc id descending.

    The scores returned are the caller's (unrounded); only the order uses float32."""
    items = list(docs.items())
    if not items:
        return []
    with np.errstate(over="ignore"):
        keys = np.asarray([s for _, s in items], dtype=np.float64).astype(EVAL_DTYPE).tolist()
    order = sorted(range(len(items)), key=lambda i: (keys[i], items[i][0]), reverse=True)
    return [items[i] for i in order]


def strictly_decreasing(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The scores of an already sorted ranking, rounded to float32 and made strictly decreasing
    in float32 (a score not below its predecessor becomes the next float32 below it)."""
    out: list[tuple[str, float]] = []
    prev = np.float32(np.inf)
    floor = np.float32(-np.inf)
    for doc, score in ranked:
        s = float(score)
        if not math.isfinite(s) or abs(s) > _F32_MAX:
            raise DataError(f"score for doc {doc!r} is not finite in single precision ({score})")
        s32 = np.float32(s)
        if s32 >= prev:
            s32 = np.nextafter(prev, floor, dtype=np.float32)
            if not np.isfinite(s32):
                raise DataError(f"cannot write strictly decreasing scores below {prev} (doc {doc!r})")
        out.append((doc, float(s32)))
        prev = s32
    return out


def format_score(score: float) -> str:
    """The shortest decimal that reads back (strtod, then a cast to float) as the same float32."""
    return str(EVAL_DTYPE(score))


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str = "rankexp", depth: int | None = None) -> None:
    """Write ``run`` atomically in TREC format (``qid Q0 doc rank score tag``), in trec_eval order,
    with float32 scores strictly decreasing per query (so the file reads back as the same ranking)."""
    from rankexp.data.collection import natural_sorted

    with atomic_open(path) as fh:
        for qid in natural_sorted(run):
            ranked = sort_ranking(run[qid])
            if depth is not None:
                ranked = ranked[:depth]
            for rank, (doc, score) in enumerate(strictly_decreasing(ranked), 1):
                fh.write(f"{qid} Q0 {doc} {rank} {format_score(score)} {tag}\n")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _Duplicates:
    """Where duplicate (query, doc) lines occurred: refuse at once, or count for one warning."""

    def __init__(self, path: Path, kind: str, lenient: bool):
        self.path, self.kind, self.lenient = path, kind, lenient
        self.count = 0
        self.first: tuple[int, int, str, str] | None = None

    def seen(self, n: int, first_line: int, qid: str, doc: str) -> None:
        if not self.lenient:
            raise DataError(
                f"{self.path}:{n}: document {doc!r} of query {qid!r} already at {self.path}:{first_line}; "
                f"trec_eval refuses duplicate {self.kind} lines (rankexp eval --lenient keeps the first)"
            )
        self.count += 1
        if self.first is None:
            self.first = (n, first_line, qid, doc)

    def report(self, warn: Warn) -> None:
        if self.count:
            n, first_line, qid, doc = self.first  # type: ignore[misc]
            warn(f"{self.path}: {self.count} duplicate {self.kind} line{'s' if self.count > 1 else ''} ignored, "
                 f"keeping the first occurrence (first duplicate {self.path}:{n}: document {doc!r} of query {qid!r}, "
                 f"first at line {first_line})")


def _lines(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.split()
                if parts:
                    yield n, parts
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None


def read_run(path: str | Path, lenient: bool | None = None, warn: Warn | None = None) -> Run:
    """Read a TREC run file (``qid Q0 doc_id rank score tag``) as trec_eval does; one clear error
    per malformed line. A document twice in one query is an error naming both lines, unless
    ``lenient`` (then the first occurrence is kept and one warning says how many were dropped).
    ``lenient=None`` follows :func:`reading` (default strict). Scores: see the module docstring."""
    path = Path(path)
    lenient, warn_fn = _settings(lenient, warn)
    run: Run = {}
    where: dict[tuple[str, str], int] = {}  # line numbers, filled only for error messages (duplicates)
    dups = _Duplicates(path, "run", lenient)
    isfinite = math.isfinite
    for n, parts in _lines(path, "run"):
        if len(parts) != 6:
            raise DataError(f"{path}:{n}: expected 6 columns 'qid Q0 doc_id rank score tag', got {len(parts)}: {' '.join(parts)[:80]!r}")
        qid, _, doc, _, score, _ = parts
        # fast path: an ASCII token without '_' that float() reads is exactly what strtod reads in
        # full (float() refuses hex and trailing garbage); non-finite/out-of-range values and every
        # other token go through parse_score for its error message
        value = None
        if "_" not in score and score.isascii():
            try:
                value = float(score)
            except ValueError:
                value = None
            if value is not None and not (isfinite(value) and -_F32_MAX <= value <= _F32_MAX):
                value = None
        if value is None:
            try:
                value = parse_score(score)
            except ValueError as e:
                raise DataError(f"{path}:{n}: {e}") from None
        docs = run.get(qid)
        if docs is None:
            docs = run[qid] = {}
        elif doc in docs:
            first = where.get((qid, doc))
            if first is None:  # find the first occurrence's line (rare: only for a duplicate)
                first = _first_line(path, qid, doc)
                where[(qid, doc)] = first
            dups.seen(n, first, qid, doc)
            continue
        docs[doc] = value
    if not run:
        raise DataError(f"run file is empty: {path}")
    dups.report(warn_fn)
    return run


def _first_line(path: Path, qid: str, doc: str) -> int:
    """The line number of the first ``qid … doc`` line of a run file."""
    for n, parts in _lines(path, "run"):
        if len(parts) == 6 and parts[0] == qid and parts[2] == doc:
            return n
    return 0


def read_qrels(path: str | Path, lenient: bool | None = None, warn: Warn | None = None) -> Qrels:
    """Read a TREC qrels file (``qid iter doc_id rel``) as trec_eval does; one clear error per
    malformed line. The relevance must be an ASCII integer. A (query, document) pair twice is an
    error naming both lines, unless ``lenient`` (first occurrence kept, one warning)."""
    path = Path(path)
    lenient, warn_fn = _settings(lenient, warn)
    qrels: Qrels = {}
    where: dict[tuple[str, str], int] = {}
    dups = _Duplicates(path, "qrels", lenient)
    for n, parts in _lines(path, "qrels"):
        if len(parts) != 4:
            raise DataError(f"{path}:{n}: expected 4 columns 'qid iter doc_id rel', got {len(parts)}: {' '.join(parts)[:80]!r}")
        qid, _, doc, rel = parts
        try:
            grade = parse_relevance(rel)
        except ValueError:
            raise DataError(f"{path}:{n}: relevance must be an integer, got {rel!r}") from None
        first = where.get((qid, doc))
        if first is not None:
            dups.seen(n, first, qid, doc)
            continue
        where[(qid, doc)] = n
        qrels.setdefault(qid, {})[doc] = grade
    if not qrels:
        raise DataError(f"qrels file is empty: {path}")
    dups.report(warn_fn)
    return qrels
