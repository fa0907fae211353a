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

**Reading in bulk.** :func:`read_run` first reads a file a few MiB at a time with numpy: token
boundaries (``str.split()``'s ASCII whitespace) and a check that every line has 0 or 6 tokens,
the score column through a finite automaton for the syntax above and Clinger's exact fast path
for the value (``float()`` for the few tokens outside it), the doc column with one ``split()``,
queries as runs of equal bytes. Anything it does not recognise as regular (non-ASCII bytes, a
lone CR, a wrong column count, a refused or non-finite score, a duplicate, a long query id)
sends the whole file through the line-by-line reader, which gives every error and warning. The
two give the same run (tests/test_trec_io.py compares them on crafted and random files).
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from rankexp.errors import DataError
from rankexp.utils.io import atomic_open
from rankexp.utils.progress import task

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
    ``lenient=None`` follows :func:`reading` (default strict). Scores: see the module docstring.

    A regular file is read in bulk (:func:`_read_run_bulk`); anything the bulk reader does not
    recognise as regular sends the whole file through the line-by-line reader
    (:func:`_read_run_lines`), which gives every error and warning. Both return the same run."""
    path = Path(path)
    run = _read_run_bulk(path)
    if run is not None:
        return run
    return _read_run_lines(path, lenient, warn)


# The bytes ``str.split()`` splits an ASCII line on (it also splits on \x1c-\x1f, which
# ``bytes.split()`` does not); "\n" ends a line.
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_BULK_CHUNK = 1 << 22  # bytes read at a time (a whole number of lines each)
_ID_WIDTH = 64  # query ids up to this long are compared as bytes in bulk
_POW10 = np.array([float(10**k) for k in range(23)])  # exact in float64 (5**22 < 2**53)

# strtod's whole-token syntax (``_DECIMAL``) as a finite automaton over byte classes, run on all
# score tokens at once. States: 0 start, 1 sign, 2 integer digits, 3 "." without digits before,
# 4 "." after digits or fraction digits, 5 "e", 6 exponent sign, 7 exponent digits, 8 refused.
# Accepting: 2, 4, 7. Classes: 0 digit, 1 ".", 2 "e"/"E", 3 "+"/"-", 4 anything else.
_CLASS = np.full(256, 4, dtype=np.uint8)
_CLASS[48:58] = 0
_CLASS[46] = 1
_CLASS[[101, 69]] = 2
_CLASS[[43, 45]] = 3
_STEP = np.full((9, 5), 8, dtype=np.uint8)
_STEP[[0, 1, 2], 0] = 2
_STEP[[3, 4], 0] = 4
_STEP[[5, 6, 7], 0] = 7
_STEP[[0, 1], 1] = 3
_STEP[2, 1] = 4
_STEP[[2, 4], 2] = 5
_STEP[0, 3] = 1
_STEP[5, 3] = 6
_ACCEPT = np.zeros(9, dtype=bool)
_ACCEPT[[2, 4, 7]] = True


def _columns(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Token starts and ends of an ASCII chunk, as (lines, 6) arrays, or None unless every line
    holds 0 or exactly 6 tokens (``str.split()`` whitespace; lines end at "\n")."""
    space = _ASCII_SPACE[a]
    word = ~space
    first = word.copy()
    first[1:] &= space[:-1]
    last = word
    last[:-1] &= space[1:]
    starts, ends = np.flatnonzero(first), np.flatnonzero(last) + 1
    if starts.size % 6:
        return None
    starts, ends = starts.reshape(-1, 6), ends.reshape(-1, 6)
    n, newlines = len(starts), np.flatnonzero(a == 10)
    if newlines.size in (n, n - 1) and n:  # no blank line: row r lies between newlines r-1 and r
        k = newlines.size
        regular = bool(np.all(ends[:k, 5] <= newlines)) and bool(np.all(newlines[:n - 1] < starts[1:, 0]))
    else:
        line = np.searchsorted(newlines, starts)  # the line of each token
        regular = bool(np.all(line[:, 0] == line[:, 5])) and bool(np.all(line[1:, 0] > line[:-1, 5]))
    return (starts, ends) if regular else None


def _parse_decimals(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The score tokens ``a[starts[i]:starts[i] + lengths[i]]``: (values, exact), or None if one
    is not ``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`` (strtod's whole token, ``_DECIMAL``).

    ``values[i]`` is the correctly rounded double wherever ``exact[i]``: the decimal is
    ``m * 10**p`` with an integer ``m < 2**53`` and ``|p| <= 22``, so ``m`` and ``10**|p|`` are
    exact doubles and one IEEE multiplication or division rounds the exact value once (Clinger's
    fast path of strtod), which is what ``float()`` returns. The other rows are left to ``float()``."""
    n = len(starts)
    state = np.zeros(n, dtype=np.uint8)
    m = np.zeros(n, dtype=np.int64)  # mantissa digits (wraps past 18 digits: those rows are not exact)
    e = np.zeros(n, dtype=np.int64)
    n_mant = np.zeros(n, dtype=np.int64)
    n_frac = np.zeros(n, dtype=np.int64)
    n_exp = np.zeros(n, dtype=np.int64)
    exp_negative = np.zeros(n, dtype=bool)
    last = a.size - 1
    for j in range(int(lengths.max())):
        live = j < lengths
        byte = a[np.minimum(starts + j, last)]
        new = np.where(live, _STEP[state, _CLASS[byte]], state)
        digit = live & (byte >= 48) & (byte <= 57)
        mant = digit & ((new == 2) | (new == 4))
        expd = digit & (new == 7)
        d = byte.astype(np.int64) - 48
        m = np.where(mant, m * 10 + d, m)
        e = np.where(expd, e * 10 + d, e)
        n_mant += mant
        n_frac += digit & (new == 4)
        n_exp += expd
        exp_negative |= live & (new == 6) & (byte == 45)
        state = new
    if not bool(_ACCEPT[state].all()):
        return None
    p = np.where(exp_negative, -e, e) - n_frac  # value = m * 10**p
    exact = (n_mant <= 18) & (n_exp <= 5) & (m < 2**53) & (p >= -22) & (p <= 22)
    scale = _POW10[np.where(exact, np.abs(p), 0)]
    mf = m.astype(np.float64)
    values = np.where(p >= 0, mf * scale, mf / scale)
    return np.where(a[starts] == 45, -values, values), exact


def _bulk_chunk(chunk: bytes, run: Run) -> bool:
    """Add the lines of ``chunk`` to ``run``; False (``run`` then useless) at anything irregular."""
    if not chunk.isascii() or b"\x00" in chunk:  # non-ASCII (or not UTF-8): the line reader decides
        return False
    if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):  # a lone CR ends a line in text mode
        return False
    a = np.frombuffer(chunk, dtype=np.uint8)
    cols = _columns(a)
    if cols is None:
        return False
    starts, ends = cols
    if not len(starts):
        return True  # blank lines only
    # scores: in bulk (exact where Clinger's fast path applies), float() on the rest after the syntax check
    s_start, s_len = starts[:, 4], ends[:, 4] - starts[:, 4]
    parsed = _parse_decimals(a, s_start, s_len)
    if parsed is None:
        return False
    values, exact = parsed
    for i in np.flatnonzero(~exact).tolist():
        values[i] = float(chunk[s_start[i]:s_start[i] + s_len[i]])
    if not bool(np.all(np.abs(values) <= _F32_MAX)):  # not finite in single precision: the line reader says so
        return False
    # doc ids: one split() of the doc column alone (each token with the space after it)
    d_start, d_end = starts[:, 2], ends[:, 2]
    marks = np.zeros(a.size + 2, dtype=np.int8)
    marks[d_start] = 1
    marks[d_end + 1] = -1
    docs = a[np.cumsum(marks[:a.size], dtype=np.int8).view(bool)].tobytes().decode("ascii").split()
    if len(docs) != len(starts):
        return False
    # queries: runs of consecutive lines with the same id, compared byte by byte
    q_start, q_len = starts[:, 0], ends[:, 0] - starts[:, 0]
    width = int(q_len.max())
    if width > _ID_WIDTH:
        return False
    change = q_len[1:] != q_len[:-1]
    last = a.size - 1
    for j in range(width):
        byte = np.where(j < q_len, a[np.minimum(q_start + j, last)], 0)
        change |= byte[1:] != byte[:-1]
    bounds = [0, *(np.flatnonzero(change) + 1).tolist(), len(starts)]
    scores = values.tolist()
    for i, j in zip(bounds, bounds[1:]):
        qid = chunk[q_start[i]:q_start[i] + q_len[i]].decode("ascii")
        docs_q = dict(zip(docs[i:j], scores[i:j]))
        if len(docs_q) != j - i:  # a duplicate (qid, doc): refused or warned about by the line reader
            return False
        known = run.get(qid)
        if known is None:
            run[qid] = docs_q
        else:  # the query's lines resume after another query's (or a chunk boundary)
            n = len(known)
            known.update(docs_q)
            if len(known) != n + j - i:
                return False
    return True


def _read_run_bulk(path: str | Path) -> Run | None:
    """The run of a regular file, read a few MiB at a time with one ``split()`` and one ``float()``
    per token; None if anything is irregular (a missing or empty file, non-ASCII bytes, a line
    without 6 columns, a score strtod would not read in full or that is not finite in single
    precision, a duplicate document, a lone CR), for the line reader to report."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except OSError:
        return None
    run: Run = {}
    chunks = -(-size // _BULK_CHUNK)
    bar = task(f"reading {path.name}", chunks) if chunks > 4 else nullcontext(lambda k=1: None)
    with fh, bar as advance:
        rest = b""
        while True:
            block = fh.read(_BULK_CHUNK)
            data = rest + block
            if not block:
                chunk, rest = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                chunk, rest = data[:cut], data[cut:]
            if chunk and not _bulk_chunk(chunk, run):
                return None
            if not block:
                break
            advance()
    return run or None


def _read_run_lines(path: str | Path, lenient: bool | None = None, warn: Warn | None = None) -> Run:
    """:func:`read_run` line by line: the reference reader, and the one that reports errors."""
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
