"""Pooling-bias simulator (data.pooling): hides exactly what it says, deterministically, never dev/test."""

from __future__ import annotations

import json

import pytest

from conftest import fast_overrides
from rankexp.data import pooling
from rankexp.data.collection import Collection
from rankexp.errors import ConfigError

QRELS = {
    "q1": {"a": 1, "b": 2, "c": 1, "n": 0},
    "q2": {"x": 1, "y": 0},
    "q3": {"t1": 1, "t2": 1},  # a test query
    "q4": {"d1": 1},  # a dev query
}
SPLIT = {"train": ["q1", "q2"], "dev": ["q4"], "test": ["q3"]}


def coll() -> Collection:
    docs = {d: d for j in QRELS.values() for d in j} | {"z": "z"}
    return Collection("toy", "fp", docs, {q: q for q in QRELS}, {q: dict(j) for q, j in QRELS.items()})


def test_bm25_pool_keeps_exactly_the_relevant_documents_in_the_top_depth():
    spec = pooling.parse({"system": "bm25", "depth": 2})
    run = {"q1": {"a": 9.0, "n": 8.0, "c": 7.0, "b": 1.0}, "q2": {"z": 3.0, "y": 2.0, "x": 1.0}}
    hidden = pooling.hidden_positives(spec, QRELS, SPLIT["train"], run)
    # q1: top-2 = a, n -> b, c hidden (n is judged non-relevant: not a positive); q2: top-2 = z, y -> x hidden
    assert hidden == {"q1": ["b", "c"], "q2": ["x"]}


def test_random_share_hides_round_share_per_query_deterministically():
    spec = pooling.parse({"system": "random", "hide": 0.5, "seed": 3})
    h1 = pooling.hidden_positives(spec, QRELS, SPLIT["train"])
    h2 = pooling.hidden_positives(spec, QRELS, list(reversed(SPLIT["train"])))
    assert h1 == h2  # deterministic, independent of query order
    assert len(h1["q1"]) == 2 and set(h1["q1"]) <= {"a", "b", "c"}  # round(0.5 * 3) = 2 (half to even)
    assert "q2" not in h1  # round(0.5 * 1) = 0
    assert pooling.hidden_positives(pooling.parse({"system": "random", "hide": 0.0}), QRELS, SPLIT["train"]) == {}
    everything = pooling.hidden_positives(pooling.parse({"system": "random", "hide": 1.0}), QRELS, SPLIT["train"])
    assert everything == {"q1": ["a", "b", "c"], "q2": ["x"]}
    other = [pooling.hidden_positives(pooling.parse({"system": "random", "hide": 0.5, "seed": s}), QRELS, ["q1"])
             for s in range(8)]
    assert len({tuple(h["q1"]) for h in other}) > 1  # the seed matters


def test_simulate_touches_training_queries_only_and_records_the_hidden_set():
    c = coll()
    pooled, record = pooling.simulate({"system": "random", "hide": 1.0}, c, None, SPLIT)
    assert pooled.qrels["q1"] == {"n": 0} and pooled.qrels["q2"] == {"y": 0}
    assert pooled.qrels["q3"] == QRELS["q3"] and pooled.qrels["q4"] == QRELS["q4"]  # test/dev never touched
    assert c.qrels == QRELS  # the original collection is not modified
    assert record["hidden"] == 4 and record["relevant"] == 4 and record["hidden_share"] == 1.0
    assert record["hidden_docs"] == {"q1": ["a", "b", "c"], "q2": ["x"]}
    assert record["queries_without_positive"] == 2
    assert pooling.simulate(None, c, None, SPLIT) == (c, None)


@pytest.mark.parametrize("node, match", [
    ({"system": "random", "hide": 1.5}, "share in \\[0, 1\\]"),
    ({"system": "random", "hide": -0.1}, "share in \\[0, 1\\]"),
    ({"system": "random"}, "share in \\[0, 1\\]"),
    ({"system": "ance", "depth": 3}, "system must be one of"),
    ({"system": "bm25", "depth": 0}, "depth must be an integer"),
    ({"system": "bm25", "depth": 10, "hide": 0.3}, "random only"),
    ({"system": "bm25", "depth": 10, "shar": 0.3}, "unknown key"),
    ("bm25", "must be null or a mapping"),
])
def test_bad_settings_are_one_line_config_errors(node, match):
    with pytest.raises(ConfigError, match=match) as e:
        pooling.parse(node)
    assert "\n" not in str(e.value)


def test_train_with_bm25_pool_writes_pooling_json_and_evaluates_on_full_qrels(vaswani_slice, tmp_path):
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, **{
        "trainer.max_steps": 2, "train.val_every_n_steps": 2, "data.pooling": "{system: bm25, depth: 5}"}))
    res = api.train(cfg)
    rec = json.loads((res.path / "pooling.json").read_text())
    split = json.loads((res.path / "split.json").read_text())
    train_q = set(split["train"]) if "train" in split else set(split["queries"]["train"])
    assert rec["spec"] == {"system": "bm25", "depth": 5, "hide": None, "seed": 0}
    assert rec["hidden"] > 0 and set(rec["hidden_docs"]) <= train_q
    assert res.metrics["queries"]["evaluated"] == res.metrics["queries"]["test"]
    d = res.metrics["debias"]  # naive training under the simulator: watched, not changed
    assert d["method"] == "none" and 0.0 <= d["hidden_share_of_negatives"] <= 1.0
    assert d["negatives"] == 2 * 4 * 2 and d["seen"] == 2 * 4 * 2  # steps x batch x negatives
    assert set(d["separation"]) == {"relevance"}
    state = __import__("torch").load(res.path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("loss_fn.") for k in state["state_dict"])  # the watcher adds nothing to checkpoints


@pytest.mark.parametrize("extra, says", [
    ({"data.pooling": "{system: random, hide: 1.5}"}, "data.pooling.hide must be a share in [0, 1]"),
    ({"data.pooling": "{system: ance, depth: 10}"}, "data.pooling.system must be one of bm25, random"),
    ({"debias": "cet", "loss": "pairwise"}, "debias=cet corrects loss=listwise or loss=pointwise"),
])
def test_cli_bad_settings_exit_2_with_one_line(vaswani_slice, tmp_path, extra, says):
    from typer.testing import CliRunner

    from rankexp.cli import app

    result = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, tmp_path, **extra)])
    assert result.exit_code == 2, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert any(says in l for l in lines) and "Traceback" not in result.output
