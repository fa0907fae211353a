"""Official splits (``data.splits``) and the seeded random split they fall back to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankexp.api import compose
from rankexp.cli import app
from rankexp.data.collection import load_collection, load_local
from rankexp.data.splits import RANDOM_RULE, resolve_splits
from rankexp.errors import ConfigValueError, DataError
from tests.conftest import DATA, fast_overrides

VASWANI = DATA / "vaswani"
# the seed-0 split of vaswani's 93 judged queries (test 0.3, dev 0.1) as every release made it
VASWANI_TEST = ["9", "8", "3", "49", "20", "12", "82", "45", "48", "14", "44", "74", "86", "30", "2", "38", "24", "7", "51",
                "83", "25", "64", "23", "93", "78", "35", "59", "92"]
VASWANI_DEV = ["57", "58", "11", "76", "55", "60", "71", "42", "15"]
SPLIT = ["data.split.dev=0.1", "data.split.test=0.3", "data.split.seed=0"]


def _lines_by_query(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        key = line.split("\t")[0] if "\t" in line else line.split()[0]
        out.setdefault(key, []).append(line)
    return out


@pytest.fixture(scope="module")
def official(vaswani_slice, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The 20-query slice cut in two over the same corpus: the collection keeps 14 queries, the
    other 6 are a local test split (queries.tsv + qrels.txt of their own)."""
    root = tmp_path_factory.mktemp("official")
    coll = root / "coll"
    coll.mkdir()
    shutil.copy(vaswani_slice / "corpus.jsonl", coll / "corpus.jsonl")
    queries, qrels = _lines_by_query(vaswani_slice / "queries.tsv"), _lines_by_query(vaswani_slice / "qrels.txt")
    qids = list(queries)
    own, test = qids[:14], qids[14:]
    for name, data in (("queries.tsv", queries), ("qrels.txt", qrels)):
        (coll / name).write_text("".join(l + "\n" for q in own for l in data[q]))
        (root / f"test_{name}").write_text("".join(l + "\n" for q in test for l in data[q]))
    return coll, root / "test_queries.tsv", root / "test_qrels.txt"


def test_default_random_split_unchanged():
    cfg = compose(["data=local", f"data.path={VASWANI}", *SPLIT])
    split, record = resolve_splits(cfg.data, load_local(VASWANI))
    assert split["test"] == VASWANI_TEST and split["dev"] == VASWANI_DEV and len(split["train"]) == 56
    assert record["rule"] == RANDOM_RULE and record["seed"] == 0
    assert all(r.startswith("random: ") for r in record["rules"].values())
    assert list(record)[-3:] == ["test", "dev", "train"]  # split.json keeps its key order


def test_local_test_split_and_dev_carved_from_train(official):
    coll_dir, tq, tr = official
    cfg = compose(["data=local", f"data.path={coll_dir}", f"data.splits.test.queries={tq}", f"data.splits.test.qrels={tr}",
                   "data.split.dev=0.25", "data.split.seed=3"])
    coll = load_collection(cfg.data)
    fp = coll.fingerprint
    own = coll.queries_with_relevant()
    split, record = resolve_splits(cfg.data, coll)
    test_ids = [l.split("\t")[0] for l in tq.read_text().splitlines()]
    assert sorted(split["test"]) == sorted(test_ids) and len(test_ids) == 6
    assert len(split["dev"]) == round(0.25 * 14) and sorted(split["train"] + split["dev"]) == sorted(own)
    assert all(q in coll.queries and coll.relevant(q) for q in split["test"])  # merged into the collection
    assert coll.fingerprint != fp  # caches keyed by it see the added queries
    assert record["rules"]["test"].startswith("given: ") and str(tq.resolve()) in record["rules"]["test"]
    assert record["rules"]["dev"].startswith("carved from train")
    again, _ = resolve_splits(cfg.data, load_collection(cfg.data))
    assert again == split  # seeded
    other, _ = resolve_splits(compose([*cfg_overrides(cfg), "data.split.seed=4"]).data, load_collection(cfg.data))
    assert other["test"] == split["test"] and other["dev"] != split["dev"]


def cfg_overrides(cfg) -> list[str]:
    s = cfg.data.splits.test
    return ["data=local", f"data.path={cfg.data.path}", f"data.splits.test.queries={s.queries}",
            f"data.splits.test.qrels={s.qrels}", f"data.split.dev={cfg.data.split.dev}"]


def test_train_records_the_official_split(official, tmp_path):
    coll_dir, tq, tr = official
    ovr = fast_overrides(coll_dir, tmp_path, **{"data.splits.test.queries": tq, "data.splits.test.qrels": tr,
                                                "trainer.max_steps": 3})
    result = CliRunner().invoke(app, ["train", *ovr])
    assert result.exit_code == 0, result.output
    rd = next((tmp_path / "runs").iterdir())
    split = json.loads((rd / "split.json").read_text())
    metrics = json.loads((rd / "metrics.json").read_text())
    assert sorted(split["test"]) == sorted(l.split("\t")[0] for l in tq.read_text().splitlines())
    assert split["rules"]["test"].startswith("given: ") and split["rules"]["train"].startswith("the collection's queries")
    assert metrics["queries"]["test"] == 6 == metrics["queries"]["evaluated"]
    run_q = {l.split()[0] for l in (rd / "run.trec").read_text().splitlines()}
    assert run_q == set(split["test"])


def test_overlap_with_train_is_refused(official, tmp_path):
    coll_dir, tq, tr = official
    # the whole collection's queries as the test split: every one of them is also a train query
    ovr = fast_overrides(coll_dir, tmp_path, **{"data.splits.test.queries": coll_dir / "queries.tsv",
                                                "data.splits.test.qrels": coll_dir / "qrels.txt"})
    result = CliRunner().invoke(app, ["train", *ovr])
    assert result.exit_code == 2
    lines = [l for l in result.output.strip().splitlines() if l.startswith("error")]
    assert len(lines) == 1 and "test queries overlap train: 14 query id(s) in both" in lines[0], result.output
    assert "Traceback" not in result.output


def test_overlap_through_an_ir_datasets_split(tmp_path):
    # train from ir_datasets `vaswani`, test a local file holding vaswani queries: the same ids
    (tmp_path / "q.tsv").write_text("9\tsome text\n")
    (tmp_path / "r.txt").write_text("9 0 1 1\n")
    cfg = compose(["data=local", f"data.path={VASWANI}", "data.splits.train.id=vaswani",
                   f"data.splits.test.queries={tmp_path / 'q.tsv'}", f"data.splits.test.qrels={tmp_path / 'r.txt'}"])
    with pytest.raises(DataError, match=r"test queries overlap train: 1 query id\(s\) in both \('9'\)"):
        resolve_splits(cfg.data, load_collection(cfg.data))


def test_unknown_split_id_fails_before_loading():
    with pytest.raises(ConfigValueError, match=r"data.splits.test.id must be a known ir_datasets id .* got 'beir/nope/test'"):
        compose(["data.splits.test.id=beir/nope/test"])
    result = CliRunner().invoke(app, ["train", "data.splits.test.id=beir/nope/test", "--dry-run"])
    assert result.exit_code == 2 and "beir/nope/test" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("overrides, message", [
    (["data.splits.test.id=vaswani"], "names the collection's own queries (data.id=vaswani), which also fill train"),
    (["data.splits.train.id=cranfield", "data.splits.test.id=cranfield"], "name the same queries"),
    (["data.splits.test.queries=/nonexistent/q.tsv", "data.splits.test.qrels=/nonexistent/r.txt"], "must be an existing file"),
    (["data.splits.dev.qrels=/etc/hostname"], "data.splits.dev.queries must be a file"),
    (["data.splits.test.id=vaswani", "data.splits.test.qrels=/etc/hostname"], "either id"),
])
def test_bad_split_configs(overrides, message):
    with pytest.raises(ConfigValueError, match=None) as e:
        compose(overrides)
    assert message in str(e.value)


def test_queries_without_judgments_refused(official, tmp_path):
    coll_dir, tq, tr = official
    (tmp_path / "q.tsv").write_text(tq.read_text() + "unjudged-1\tno qrels for me\n")
    cfg = compose(["data=local", f"data.path={coll_dir}", f"data.splits.test.queries={tmp_path / 'q.tsv'}", f"data.splits.test.qrels={tr}"])
    with pytest.raises(DataError, match=r"data.splits.test .*: 1 of 7 queries have no judgment \(e.g. 'unjudged-1'\)"):
        resolve_splits(cfg.data, load_collection(cfg.data))


def test_split_over_another_corpus_refused(official, tmp_path):
    coll_dir, _, _ = official
    # queries judged over another corpus's documents (TREC-COVID-like ids): none of them is here
    (tmp_path / "q.tsv").write_text("c1\tcoronavirus origin\nc2\tcoronavirus response\n")
    (tmp_path / "r.txt").write_text("c1 0 ug7v899j 2\nc2 0 02tnwd4m 1\nc2 0 ejv2xln0 0\n")
    cfg = compose(["data=local", f"data.path={coll_dir}", f"data.splits.test.queries={tmp_path / 'q.tsv'}",
                   f"data.splits.test.qrels={tmp_path / 'r.txt'}"])
    with pytest.raises(DataError, match="judged documents is in the corpus"):
        resolve_splits(cfg.data, load_collection(cfg.data))
    # an ir_datasets id whose documents are another corpus than data.id's
    cfg = compose(["data=cranfield", "data.splits.test.id=vaswani"])
    with pytest.raises(DataError, match="its documents are 'vaswani', the collection's are 'cranfield'"):
        resolve_splits(cfg.data, load_collection(cfg.data))


def test_train_split_from_ir_datasets_and_a_local_test_split(tmp_path):
    """Train on the ir_datasets id ``vaswani`` (all 93 queries), test on a local pair with other ids,
    over the local copy of the same corpus; the collection's own queries are then not used."""
    queries = dict(l.split("\t", 1) for l in (VASWANI / "queries.tsv").read_text().splitlines())
    qrels = _lines_by_query(VASWANI / "qrels.txt")
    (tmp_path / "q.tsv").write_text("".join(f"t{q}\t{queries[q]}\n" for q in ("1", "2", "3")))
    (tmp_path / "r.txt").write_text("".join("t" + l + "\n" for q in ("1", "2", "3") for l in qrels[q]))
    cfg = compose(["data=local", f"data.path={VASWANI}", "data.splits.train.id=vaswani", "data.split.dev=0.1",
                   f"data.splits.test.queries={tmp_path / 'q.tsv'}", f"data.splits.test.qrels={tmp_path / 'r.txt'}"])
    coll = load_collection(cfg.data)
    split, record = resolve_splits(cfg.data, coll)
    assert split["test"] == ["t1", "t2", "t3"] and coll.queries["t1"] == queries["1"] and coll.qrels["t2"] == load_local(VASWANI).qrels["2"]
    assert len(split["dev"]) == 9 and len(split["train"]) == 84 and not set(split["dev"]) & set(split["train"])
    assert record["rules"]["train"] == "given: ir_datasets:vaswani; minus dev"
    assert record["rules"]["test"].startswith("given: ") and record["rules"]["dev"].startswith("carved from train")
