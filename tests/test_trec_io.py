from __future__ import annotations

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
