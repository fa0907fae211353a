"""Input anomalies: one warning line each on the terminal (and in Collection.notes / metrics.json);
non-UTF-8 input is a one-line error naming the file and line."""

from __future__ import annotations

import json
import logging
import random
import shutil

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from rankexp.data.collection import load_local
from rankexp.data.examples import build_groups
from rankexp.data.negatives.bm25 import BM25Negatives
from rankexp.errors import DataError
from tests.conftest import fast_overrides

DOCS = [("d1", "alpha one"), ("d2", "beta two"), ("d3", "gamma three"), ("d4", "delta four"), ("d5", "eps five"), ("d6", "zeta six")]
BOM = b"\xef\xbb\xbf"


def corpus_bytes(docs=DOCS) -> bytes:
    return b"".join(json.dumps({"doc_id": d, "title": "", "text": t}).encode() + b"\n" for d, t in docs)


def write(root, corpus: bytes | None = None, queries: bytes = b"q1\talpha\nq2\tbeta\n",
          qrels: bytes = b"q1 0 d1 1\nq2 0 d2 1\n"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_bytes(corpus_bytes() if corpus is None else corpus)
    (root / "queries.tsv").write_bytes(queries)
    (root / "qrels.txt").write_bytes(qrels)
    return root


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("rankexp")]


def test_clean_collection_has_no_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    coll = load_local(write(tmp_path / "c"))
    assert warnings_of(caplog) == [] and coll.notes == []


CASES = [
    ("duplicate doc id",
     dict(corpus=corpus_bytes() + b'{"doc_id": "d3", "title": "", "text": "again"}\n'),
     "corpus.jsonl: 1 duplicate document id, the first occurrence of each kept: 'd3' (line 7, first at line 3)"),
    ("empty document",
     dict(corpus=corpus_bytes(DOCS[:3] + [("d4", "  ")] + DOCS[4:])),
     "corpus.jsonl: 1 empty document (no text in title/text): 'd4' (line 4)"),
    ("empty query",
     dict(queries=b"q1\talpha\nq2\tbeta\nq3\t \n"),
     "queries.tsv: 1 empty query: 'q3' (line 3)"),
    ("duplicate query id",
     dict(queries=b"q1\talpha\nq2\tbeta\nq1\tagain\n"),
     "queries.tsv: 1 duplicate query id, the first occurrence of each kept: 'q1' (line 3, first at line 1)"),
    ("judged doc not in corpus",
     dict(qrels=b"q1 0 d1 1\nq2 0 d2 1\nq1 0 dX 0\n"),
     "qrels.txt: 1 judged doc id not in the corpus: 'dX'"),
    ("judged query without text",
     dict(qrels=b"q1 0 d1 1\nq2 0 d2 1\nq9 0 d1 1\n"),
     "qrels.txt: 1 judged query id without query text: 'q9'"),
    ("many judged docs not in corpus: count and the first three",
     dict(qrels=b"q1 0 d1 1\nq2 0 d2 1\n" + b"".join(b"q1 0 x%d 0\n" % i for i in range(5))),
     "qrels.txt: 5 judged doc ids not in the corpus: 'x0', 'x1', 'x2', ..."),
    ("byte-order mark in corpus", dict(corpus=BOM + corpus_bytes()), "corpus.jsonl: starts with a UTF-8 byte-order mark (ignored)"),
    ("byte-order mark in queries", dict(queries=BOM + b"q1\talpha\nq2\tbeta\n"), "queries.tsv: starts with a UTF-8 byte-order mark (ignored)"),
    ("byte-order mark in qrels", dict(qrels=BOM + b"q1 0 d1 1\nq2 0 d2 1\n"), "qrels.txt: starts with a UTF-8 byte-order mark (ignored)"),
]


@pytest.mark.parametrize("name,files,message", CASES, ids=[c[0] for c in CASES])
def test_each_anomaly_is_one_warning(tmp_path, caplog, name, files, message):
    caplog.set_level(logging.WARNING)
    root = write(tmp_path / "c", **files)
    coll = load_local(root)
    warned = warnings_of(caplog)
    assert warned == [f"{root}/{message}"], warned
    assert coll.notes == warned  # the same line reaches metrics.json


def test_first_duplicate_is_kept_and_marks_are_stripped(tmp_path, caplog):
    root = write(tmp_path / "c", corpus=BOM + corpus_bytes() + b'{"doc_id": "d3", "text": "again"}\n',
                 queries=BOM + b"q1\talpha\nq2\tbeta\nq1\tagain\n", qrels=BOM + b"q1 0 d1 1\nq2 0 d2 1\n")
    coll = load_local(root)
    assert coll.docs["d3"] == "gamma three" and coll.docs["d1"] == "alpha one"
    assert coll.queries == {"q1": "alpha", "q2": "beta"}
    assert coll.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}  # the mark is not glued to 'q1'
    assert coll.queries_with_relevant() == ["q1", "q2"]


BAD_CORPUS_LINE = b'{"doc_id": "d9", "text": "caf\xe9"}\n'  # latin-1 e-acute


@pytest.mark.parametrize("file,files,line,column", [
    ("corpus.jsonl", dict(corpus=corpus_bytes(DOCS[:3]) + BAD_CORPUS_LINE), 4, BAD_CORPUS_LINE.index(b"\xe9") + 1),
    ("queries.tsv", dict(queries=b"q1\talpha\nq2\tb\xffta\n"), 2, 5),
    ("qrels.txt", dict(qrels=b"q1 0 d1 1\nq2 0 d2 1\nq\x913 0 d1 1\n"), 3, 2),
])
def test_non_utf8_is_an_error_with_file_and_line(tmp_path, file, files, line, column):
    root = write(tmp_path / "c", **files)
    with pytest.raises(DataError) as info:
        load_local(root)
    assert str(info.value).startswith(f"{root / file}:{line}: not UTF-8 (byte 0x")
    assert f"at column {column})" in str(info.value)


def test_utf16_is_named(tmp_path):
    root = write(tmp_path / "c", queries="q1\talpha\nq2\tbeta\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"queries\.tsv:1: UTF-16 text \(byte-order mark FF FE\)"):
        load_local(root)


# ---------------------------------------------------------------- on the terminal
def test_cli_prints_warning_lines(tmp_path):
    root = write(tmp_path / "c", corpus=corpus_bytes() + b'{"doc_id": "d[bold]:100:", "text": ""}\n',
                 queries=b"q1\talpha\nq2\tbeta\nq3\t\n", qrels=b"q1 0 d1 1\nq2 0 d2 1\nq1 0 dX 0\n")
    result = CliRunner().invoke(app, ["data", "info", f"data.path={root}"])
    assert result.exit_code == 0, result.output
    warned = [l for l in result.output.splitlines() if l.startswith("warning:")]
    assert warned == [
        f"warning: {root}/corpus.jsonl: 1 empty document (no text in title/text): 'd[bold]:100:' (line 7)",
        f"warning: {root}/queries.tsv: 1 empty query: 'q3' (line 3)",
        f"warning: {root}/qrels.txt: 1 judged doc id not in the corpus: 'dX'",
    ], result.output


def test_cli_non_utf8_is_one_line_exit_2(tmp_path):
    root = write(tmp_path / "c", queries=b"q1\talpha\nq2\tb\xffta\n")
    result = CliRunner().invoke(app, ["data", "info", f"data.path={root}"])
    assert result.exit_code == 2
    errors = [l for l in result.output.splitlines() if "error" in l.lower()]
    assert errors == [f"error: {root}/queries.tsv:2: not UTF-8 (byte 0xff at column 5); re-encode the file as UTF-8"]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- more negatives than candidates
def _three_query_collection(tmp_path):
    return load_local(write(tmp_path / "c", queries=b"q1\talpha\nq2\tbeta\nq3\tgamma\n",
                            qrels=b"q1 0 d1 1\nq2 0 d2 1\nq3 0 d3 1\n"))


def test_short_negative_pools_are_counted(tmp_path, caplog):
    coll = _three_query_collection(tmp_path)
    # hand-made first stage: q1 has 3 non-relevant candidates, q2 one, q3 none (only its positive)
    run = {"q1": {"d1": 4.0, "d4": 3.0, "d5": 2.0, "d6": 1.0}, "q2": {"d2": 2.0, "d4": 1.0}, "q3": {"d3": 1.0}}
    sampler = BM25Negatives(depth=10)
    sampler.setup(coll, run)
    caplog.set_level(logging.WARNING)
    groups = build_groups(coll, ["q1", "q2", "q3"], sampler, 2, 30, seed=0)
    # 30 groups cycle through the 3 positives: 10 each; q2 lacks 1 negative a group, q3 lacks 2
    per_query = {q: sum(1 for g in groups if g.qid == q) for q in ("q1", "q2", "q3")}
    assert per_query == {"q1": 10, "q2": 10, "q3": 10}
    drawn = per_query["q2"] * 1 + per_query["q3"] * 2
    assert warnings_of(caplog) == [
        f"train.num_negatives=2: 2 of 3 training queries have fewer bm25 candidates than that after filtering "
        f"('q2' got 1, 'q3' got 0); {drawn} negatives were drawn at random from the corpus instead"]
    assert sampler.stats()["fallback_to_random"] == drawn
    for g in groups:  # every group still has 2 distinct non-relevant negatives
        assert len(g.doc_ids) == 3 and len(set(g.doc_ids)) == 3 and not set(g.doc_ids[1:]) & coll.relevant(g.qid)


def test_enough_candidates_no_warning(tmp_path, caplog):
    coll = _three_query_collection(tmp_path)
    run = {q: {d: float(-i) for i, d in enumerate(["d4", "d5", "d6"])} for q in ("q1", "q2", "q3")}
    sampler = BM25Negatives(depth=10)
    sampler.setup(coll, run)
    caplog.set_level(logging.WARNING)
    build_groups(coll, ["q1", "q2", "q3"], sampler, 3, 12, seed=random.Random(1).randrange(100))
    assert warnings_of(caplog) == []


def test_train_shows_the_warnings(vaswani_slice, tmp_path):
    """End to end: a run on a collection with anomalies prints them and records them in metrics.json."""
    data = tmp_path / "data"
    shutil.copytree(vaswani_slice, data)
    with open(data / "queries.tsv", "a") as fh:
        fh.write("zz-empty\t\n")
    with open(data / "qrels.txt", "a") as fh:
        fh.write("1 0 no-such-doc 0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["train", *fast_overrides(data, out, **{"negatives.depth": 2, "train.num_negatives": 2})])
    assert result.exit_code == 0, result.output
    warned = [l for l in result.output.splitlines() if l.startswith("warning:")]
    assert f"warning: {data}/queries.tsv: 1 empty query: 'zz-empty' (line 21)" in warned, result.output
    assert f"warning: {data}/qrels.txt: 1 judged doc id not in the corpus: 'no-such-doc'" in warned
    short = [l for l in warned if l.startswith("warning: train.num_negatives=2: ")]
    assert len(short) == 1, result.output
    (rd,) = list((out / "runs").iterdir())
    metrics = json.loads((rd / "metrics.json").read_text())
    assert f"{data}/queries.tsv: 1 empty query: 'zz-empty' (line 21)" in metrics["notes"]
    drawn = int(short[0].split("; ")[1].split()[0])
    assert drawn == metrics["train"]["negatives"]["fallback_to_random"] > 0
