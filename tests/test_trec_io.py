from __future__ import annotations

import pytest

from rankexp.data.collection import read_qrels
from rankexp.errors import DataError
from rankexp.eval.trec_io import read_run, strictly_decreasing, write_run


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
    assert out[2][1] < 1.0 and out[2][1] > 0.999999
