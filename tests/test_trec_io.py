from __future__ import annotations

import math
import random
import struct

import pytest

from rankexp.data.collection import read_qrels
from rankexp.errors import DataError
from rankexp.eval.trec_io import LenientReadWarning, read_run, reading, sort_ranking, strictly_decreasing, write_run
from rankexp.eval.trec_io import read_qrels as read_trec_qrels


def test_roundtrip_keeps_order_and_values(tmp_path):
    run = {"2": {"a": 0.5, "b": 0.25}, "10": {"c": -1.0}}
    write_run(tmp_path / "r.trec", run, tag="t")
    back = read_run(tmp_path / "r.trec")
    assert back == run
    text = (tmp_path / "r.trec").read_text().splitlines()
    assert text[0].split()[:4] == ["2", "Q0", "a", "1"] and text[-1].split()[0] == "10"


@pytest.mark.parametrize("line,match", [
    ("q1 Q0 d1 1 0.5", "expected 6 columns"),
    ("q1 Q0 d1 1 high tag", "score must be a number"),
    ("q1 Q0 d1 1 nan tag", "score is not finite"),
])
def test_malformed_run_lines(tmp_path, line, match):
    p = tmp_path / "bad.trec"
    p.write_text("q1 Q0 d0 1 1.0 tag\n" + line + "\n")
    with pytest.raises(DataError, match=f"bad.trec:2: {match}"):
        read_run(p)


def test_missing_and_empty_run(tmp_path):
    with pytest.raises(DataError, match="run file not found"):
        read_run(tmp_path / "nope.trec")
    (tmp_path / "empty.trec").write_text("\n")
    with pytest.raises(DataError, match="run file is empty"):
        read_run(tmp_path / "empty.trec")


def test_malformed_qrels(tmp_path):
    p = tmp_path / "qrels.txt"
    p.write_text("1 0 d1 1\n1 0 d2 yes\n")
    with pytest.raises(DataError, match="qrels.txt:2: relevance must be an integer"):
        read_qrels(p)
    p.write_text("1 d1 1\n")
    with pytest.raises(DataError, match="qrels.txt:1: expected 4 columns"):
        read_qrels(p)


def test_strictly_decreasing_nudges_only_ties():
    out = strictly_decreasing([("a", 2.0), ("b", 1.0), ("c", 1.0), ("d", 0.0)])
    assert out[0][1] == 2.0 and out[1][1] == 1.0 and out[3][1] == 0.0
    # one float32 ulp below 1.0 (2**-24), not a float64 ulp: trec_eval reads C floats
    assert out[2][1] == 1.0 - 2.0**-24
    # a near-tie below float32 precision is a tie too
    near = strictly_decreasing([("a", 1.0 + 1e-12), ("b", 1.0)])
    assert near[0][1] == 1.0 and near[1][1] == 1.0 - 2.0**-24


# --- strict reading, as trec_eval reads -------------------------------------------------------


def test_duplicate_run_document_is_refused_naming_both_lines(tmp_path):
    p = tmp_path / "dup.trec"
    p.write_text("q1 Q0 a 1 3.0 t\nq1 Q0 b 2 2.0 t\nq2 Q0 a 1 9.0 t\nq1 Q0 a 3 1.0 t\n")
    with pytest.raises(DataError, match=r"dup.trec:4: document 'a' of query 'q1' already at .*dup.trec:1; trec_eval refuses"):
        read_run(p)


def test_lenient_run_keeps_the_first_and_warns_once(tmp_path):
    p = tmp_path / "dup.trec"
    p.write_text("q1 Q0 a 1 3.0 t\nq1 Q0 b 2 2.0 t\nq1 Q0 a 3 1.0 t\nq1 Q0 b 4 0.5 t\nq2 Q0 a 1 9.0 t\n")
    messages: list[str] = []
    run = read_run(p, lenient=True, warn=messages.append)
    assert run == {"q1": {"a": 3.0, "b": 2.0}, "q2": {"a": 9.0}}  # first occurrences
    assert len(messages) == 1
    assert "2 duplicate run lines ignored" in messages[0] and "dup.trec:3" in messages[0] and "first at line 1" in messages[0]
    # the context manager sets the default for calls that do not pass lenient (the CLI's --lenient)
    with reading(lenient=True, warn=messages.append):
        assert read_run(p) == run
    assert len(messages) == 2
    with pytest.raises(DataError, match="already at"):
        read_run(p)  # outside the block: strict again
    with pytest.warns(LenientReadWarning, match="2 duplicate run lines"):
        read_run(p, lenient=True)


def test_duplicate_qrels_refused_and_lenient(tmp_path):
    p = tmp_path / "qrels.txt"
    p.write_text("1 0 d1 1\n1 0 d2 0\n2 0 d1 2\n1 0 d1 0\n")
    with pytest.raises(DataError, match=r"qrels.txt:4: document 'd1' of query '1' already at .*qrels.txt:1"):
        read_qrels(p)
    messages: list[str] = []
    assert read_trec_qrels(p, lenient=True, warn=messages.append) == {"1": {"d1": 1, "d2": 0}, "2": {"d1": 2}}
    assert len(messages) == 1 and "1 duplicate qrels line ignored" in messages[0]
    with reading(lenient=True, warn=messages.append):
        assert read_qrels(p) == {"1": {"d1": 1, "d2": 0}, "2": {"d1": 2}}  # collection.read_qrels delegates


@pytest.mark.parametrize("token,value", [
    ("1e3", 1000.0), ("-0.5", -0.5), (".5", 0.5), ("5.", 5.0), ("+2", 2.0), ("-1.5E-2", -0.015), ("0", 0.0),
])
def test_scores_strtod_accepts(tmp_path, token, value):
    p = tmp_path / "r.trec"
    p.write_text(f"q Q0 d 1 {token} t\n")
    assert read_run(p) == {"q": {"d": value}}


@pytest.mark.parametrize("token,match", [
    ("1_0", "score must be a number"),       # Python float() reads 10; strtod stops at '_'
    ("١", "score must be a number"),         # Arabic-Indic digit: Python reads 1
    ("１", "score must be a number"),         # full-width digit
    ("0x1p3", "score must be a number"),     # hexadecimal: refused (documented)
    ("1,5", "score must be a number"),
    ("1e", "score must be a number"),
    ("inf", "score is not finite"),
    ("-Infinity", "score is not finite"),
    ("NaN", "score is not finite"),
    ("1e39", "score .1e39. is outside single precision"),  # a C float cannot hold it
])
def test_scores_strtod_refuses(tmp_path, token, match):
    assert _python_float_or_none(token) is not None or token in ("0x1p3", "1,5", "1e")  # why the check matters
    p = tmp_path / "r.trec"
    p.write_text(f"q Q0 d 1 {token} t\n")
    with pytest.raises(DataError, match=f"r.trec:1: {match}"):
        read_run(p)


def _python_float_or_none(token):
    try:
        return float(token)
    except ValueError:
        return None


@pytest.mark.parametrize("token,ok", [
    ("1", 1), ("0", 0), ("-1", -1), ("+2", 2), ("1_0", None), ("١", None), ("1.0", None), ("1e0", None), ("", None),
])
def test_relevance_must_be_an_ascii_integer(tmp_path, token, ok):
    p = tmp_path / "qrels.txt"
    p.write_text(f"1 0 d1 {token}\n" if token else "1 0 d1 x y\n")
    if ok is None:
        with pytest.raises(DataError, match="qrels.txt:1: (relevance must be an integer|expected 4 columns)"):
            read_qrels(p)
    else:
        assert read_qrels(p) == {"1": {"d1": ok}}


def test_not_utf8_is_one_line(tmp_path):
    p = tmp_path / "r.trec"
    p.write_bytes(b"q Q0 d\xff 1 1.0 t\n")
    with pytest.raises(DataError, match="r.trec: not UTF-8"):
        read_run(p)


# --- one order and one precision for writing and evaluating ----------------------------------


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def test_write_run_is_strictly_decreasing_in_float32_and_reads_back_in_the_same_order(tmp_path):
    rng = random.Random(3)
    pool = [1.0, 1.0 + 1e-12, 1.0 - 1e-10, 0.0, -0.0, 3e-45, -3e-45, 0.5, 0.5 + 1e-9, -2.0, 1e30]
    run = {q: {f"d{i}": rng.choice(pool) for i in range(rng.randint(1, 30))} for q in ("1", "2", "10")}
    path = tmp_path / "r.trec"
    write_run(path, run)
    by_query: dict[str, list[tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        by_query.setdefault(qid, []).append((doc, float(score)))
        assert int(rank) == len(by_query[qid])
    for qid, written in by_query.items():
        # the written order is trec_eval's order of the original scores (float32, then doc id descending)
        expected = [d for d, _ in sorted(run[qid].items(), key=lambda kv: (_f32(kv[1]), kv[0]), reverse=True)]
        assert [d for d, _ in written] == expected
        f32 = [_f32(s) for _, s in written]
        assert all(a > b for a, b in zip(f32, f32[1:])), "strictly decreasing as C floats"
        # reading the file back and sorting again gives the same order
        assert [d for d, _ in sort_ranking(read_run(path)[qid])] == expected


def test_sort_ranking_ties_below_float32():
    # 1 + 1e-12 and 1.0 are the same C float: tie, broken by doc id descending ("b" > "a")
    assert [d for d, _ in sort_ranking({"a": 1.0 + 1e-12, "b": 1.0})] == ["b", "a"]
    assert [d for d, _ in sort_ranking({"a": 1.0 + 1e-6, "b": 1.0})] == ["a", "b"]
    # the scores returned are the caller's, unrounded
    assert dict(sort_ranking({"a": 0.1})) == {"a": 0.1}


def test_eval_cli_lenient(tmp_path):
    from typer.testing import CliRunner

    from rankexp.cli import app

    (tmp_path / "q.txt").write_text("q1 0 d1 1\nq1 0 d1 0\n")
    (tmp_path / "r.trec").write_text("q1 Q0 x1 1 2.0 t\nq1 Q0 d1 2 1.0 t\nq1 Q0 x1 3 0.5 t\n")
    args = ["eval", str(tmp_path / "r.trec"), "--qrels", str(tmp_path / "q.txt"), "-m", "RR@1 RR", "-f", "tsv"]
    strict = CliRunner().invoke(app, args)
    assert strict.exit_code == 2 and "r.trec:3: document 'x1' of query 'q1' already at" in strict.output
    assert "Traceback" not in strict.output
    lenient = CliRunner().invoke(app, args + ["--lenient"])
    assert lenient.exit_code == 0, lenient.output
    assert "1 duplicate run line ignored" in lenient.output and "1 duplicate qrels line ignored" in lenient.output
    assert "RR@1\tall\t0.0000" in lenient.output and "RR\tall\t0.5000" in lenient.output


def test_ir_datasets_qrels_are_as_strict_as_files(monkeypatch):
    """A pair judged twice by an ir_datasets qrels iterator is refused (one line), or with the
    lenient setting the first judgment is kept and one warning says so."""
    from collections import namedtuple

    import ir_datasets

    from rankexp import api
    from rankexp.errors import DataError
    from rankexp.eval.trec_io import reading

    Q = namedtuple("Q", "query_id doc_id relevance")

    class Fake:
        def has_qrels(self):
            return True

        def qrels_iter(self):
            return iter([Q("1", "a", 1), Q("1", "b", 0), Q("1", "a", 2)])

    monkeypatch.setattr(ir_datasets, "load", lambda _id: Fake())
    with pytest.raises(DataError, match=r"judge query '1', document 'a' twice \(1, then 2\)"):
        api.load_qrels("fake/id")
    seen = []
    with reading(lenient=True, warn=seen.append):
        assert api.load_qrels("fake/id") == {"1": {"a": 1, "b": 0}}
    assert len(seen) == 1 and "1 duplicate" in seen[0]


# --- the bulk reader gives exactly the line reader's run, or hands the file to it -------------


def _same_run(a, b):
    """Equal runs, including the order of queries and of documents (and the sign of zeros)."""
    assert a == b
    assert list(a) == list(b) and all(list(a[q]) == list(b[q]) for q in a)
    assert all(struct.pack("d", a[q][d]) == struct.pack("d", b[q][d]) for q in a for d in a[q])


ADVERSARIAL_RUN = (
    "q1 Q0 d1 1 10 t\n"            # an integer score
    "q1 Q0 d2 2 10 t\n"            # a tie
    "q1 Q0 001 3 1e-3 t\n"         # numeric-looking doc id, exponent
    "q1 Q0 1e3 4 -2.5E+2 t\n"      # doc id that float() would read; negative score with E+
    "q1 Q0 10 5 +.5 t\n"           # '10' and '9' sort as strings
    "q1 Q0 9 6 5. t\n"
    "q2 Q0 d1 1 -0 t\n"            # minus zero stays minus zero
    "q2 Q0 d2 2 0.000 t\n"
    "q2 Q0 d3 3 3e-45 t\n"         # below float32's smallest normal
    "\n"                           # a blank line
    "   \t \n"                     # a whitespace-only line
    "q1 Q0 d7 7 0.1234567890123456789012 t\n"  # more digits than the fast path takes: float()
    "q1 Q0 d8 8 1e30 t\n"          # exponent beyond 10**22: float()
    "q1 Q0 d9 9 123456789012345678e-20 t\n"    # 18-digit mantissa
    "q10\tQ0\td1\t1\t7.25\ttab\n"  # tabs
    "q10 Q0 d2 2 1.5\x0b t\n"      # vertical tab and \x1c-\x1f split like spaces (str.split)
    "q10\x1cQ0 d3 3 -1.5e-7 t\x1f\n"
    "q3 Q0 d1 1 2 t\r\n"           # CRLF
    "q2 Q0 d4 4 -7e-3 t\n"         # q2 again, after other queries
    "q4 Q0 x 1 0.3 t"              # no final newline
)


@pytest.mark.parametrize("chunk", [1 << 22, 64, 7])
def test_bulk_reader_equals_line_reader_on_adversarial_lines(tmp_path, monkeypatch, chunk):
    from rankexp.eval import trec_io

    monkeypatch.setattr(trec_io, "_BULK_CHUNK", chunk)  # small chunks: queries and lines across chunk seams
    p = tmp_path / "r.trec"
    p.write_bytes(ADVERSARIAL_RUN.encode())
    bulk = trec_io._read_run_bulk(p)
    assert bulk is not None, "a regular file must be read in bulk"
    _same_run(bulk, trec_io._read_run_lines(p))
    assert bulk["q1"]["d1"] == 10.0 and bulk["q1"]["1e3"] == -250.0 and bulk["q1"]["001"] == 0.001
    assert math.copysign(1.0, bulk["q2"]["d1"]) == -1.0 and list(bulk) == ["q1", "q2", "q10", "q3", "q4"]
    assert list(bulk["q2"]) == ["d1", "d2", "d3", "d4"]
    assert bulk["q1"]["d7"] == 0.1234567890123456789012 and bulk["q1"]["d8"] == 1e30


@pytest.mark.parametrize("text", [
    "q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 1_0 t\n",             # float() would read 10
    "q1 Q0 d1 1 1.0 t\nq1 Q0 d1 2 0.5 t\n",             # a duplicate
    "q1 Q0 d1 1 1.0 t\nq2 Q0 d1 1 1.0 t\nq1 Q0 d1 3 0.5 t\n",  # a duplicate after another query
    "q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5\n",               # 5 columns
    "q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5 t x\n",           # 7 columns
    "q1 Q0 d1 1 1.0 t q1 Q0 d2 2\n0.5 t\n",             # 12 tokens over two lines of 10 and 2
    "q1 Q0 d1 1 1.0\n\n t q1 Q0 d2 2 0.5 t\n",           # ... of 5 and 7, with a blank line between
    "q1 Q0 d1 1 1.0 t\rq1 Q0 d2 2 0.5 t\n",             # a lone CR ends a line
    "q1 Q0 d1\r1 1.0 t\n",                             # ... so these are lines of 3 columns
    "q1 Q0 d1 1 inf t\n", "q1 Q0 d1 1 nan t\n", "q1 Q0 d1 1 1e39 t\n", "q1 Q0 d1 1 1e99999 t\n",
    "q1 Q0 d1 1 1e t\n", "q1 Q0 d1 1 . t\n", "q1 Q0 d1 1 1.2.3 t\n", "q1 Q0 d1 1 1e5.5 t\n", "q1 Q0 d1 1 --1 t\n",
    "q1 Q0 d1 1 1-1 t\n", "q1 Q0 d1 1 e5 t\n", "q1 Q0 d1 1 0x10 t\n", "q1 Q0 d1 1 1e+-5 t\n",
    "q1 Q0 dé 1 1.0 t\n",                                # non-ASCII: the line reader reads it (fine)
    "q1 Q0 d1 1 ١ t\n",                                  # a non-ASCII digit
    "\n\n",                                              # empty
])
def test_irregular_files_go_to_the_line_reader_with_the_same_outcome(tmp_path, monkeypatch, text):
    from rankexp.eval import trec_io

    p = tmp_path / "r.trec"
    p.write_bytes(text.encode())
    assert trec_io._read_run_bulk(p) is None or text.startswith("q1 Q0 dé")
    try:
        expected = trec_io._read_run_lines(p)
    except DataError as e:
        with pytest.raises(DataError) as got:
            read_run(p)
        assert str(got.value) == str(e) and str(p) in str(e)
    else:
        _same_run(read_run(p), expected)


def test_an_error_after_bulk_chunks_names_its_line(tmp_path, monkeypatch):
    from rankexp.eval import trec_io

    monkeypatch.setattr(trec_io, "_BULK_CHUNK", 256)
    lines = [f"q{i // 10} Q0 d{i} {i} {i / 7:.5f} t\n" for i in range(300)]
    lines[250] = "q25 Q0 d250 1 high t\n"
    p = tmp_path / "r.trec"
    p.write_text("".join(lines))
    with pytest.raises(DataError, match=r"r.trec:251: score must be a number, got 'high'"):
        read_run(p)


def test_bulk_scores_are_the_floats_strtod_and_float_read():
    """Random decimals of every shape: the bulk parser's value is float()'s, bit for bit, on the
    rows it calls exact (Clinger's fast path) and those rows are most of them."""
    import numpy as np

    from rankexp.eval.trec_io import _parse_decimals

    rng = random.Random(11)
    tokens = []
    for _ in range(20000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 21)))
        cut = rng.randint(0, len(digits))
        mant = rng.choice([digits, digits[:cut] + "." + digits[cut:]])
        exp = rng.choice(["", "", f"e{rng.randint(-30, 30)}", f"E+{rng.randint(0, 25)}", f"e-0{rng.randint(0, 9)}"])
        tokens.append(rng.choice(["", "-", "+"]) + mant + exp)
    text = " ".join(tokens).encode()
    a = np.frombuffer(text, dtype=np.uint8)
    lengths = np.array([len(t) for t in tokens])
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    values, exact = _parse_decimals(a, starts, lengths)
    assert exact.mean() > 0.5
    for t, v, ok in zip(tokens, values.tolist(), exact.tolist()):
        if ok:
            assert struct.pack("d", v) == struct.pack("d", float(t)), t
    for bad in ["1e", ".", "1.2.3", "e5", "--1", "1e5.5", "+", "1-1", "1e+-5", "1e5e5", ".e1", "-.", "1x"]:
        b = np.frombuffer(bad.encode(), dtype=np.uint8)
        assert _parse_decimals(b, np.array([0]), np.array([len(bad)])) is None, bad


def test_random_files_read_alike_by_both_readers(tmp_path, monkeypatch):
    """Random files mixing regular and irregular lines: read_run's outcome (run or error message)
    is the line reader's."""
    from rankexp.eval import trec_io

    monkeypatch.setattr(trec_io, "_BULK_CHUNK", 48)
    rng = random.Random(5)
    scores = ["1", "-2.5", "3e-2", ".5", "5.", "+7", "0.1", "1e30", "12345678901234567890", "-0"] * 5 + ["1_0", "inf", "x", "1e", "1e40"]
    seps = [" "] * 20 + ["\t", "  ", "\x0b", "\x1c"]
    for case in range(250):
        lines = []
        for _ in range(rng.randint(1, 12)):
            cols = [rng.choice(["q1", "q2", "10", "q1"]), "Q0", rng.choice(["d1", "d2", "d3", "9", "10", "1e3", "d4", "d5", "d6"]),
                    str(rng.randint(1, 9)), rng.choice(scores), "t"]
            if rng.random() < 0.03:
                cols = cols[:rng.randint(1, 5)]
            lines.append(rng.choice(["", " "]) + rng.choice(seps).join(cols) + rng.choice(["\n"] * 10 + ["\r\n", " \n", "\n\n"]))
        p = tmp_path / f"r{case}.trec"
        p.write_bytes("".join(lines).encode())
        try:
            expected = trec_io._read_run_lines(p)
        except DataError as e:
            with pytest.raises(DataError) as got:
                read_run(p)
            assert str(got.value) == str(e)
        else:
            _same_run(read_run(p), expected)
