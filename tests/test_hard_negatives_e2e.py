"""Bi-encoder runs end to end (tiny random model, vaswani slice): full retrieval, samplers, caches."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from rankexp.eval.measures import evaluate
from rankexp.eval.trec_io import read_run
from tests.conftest import fast_overrides


def train(args):
    result = CliRunner().invoke(app, ["train", *args])
    return result


def bi(slice_dir, out, **extra):
    return fast_overrides(slice_dir, out, model="tiny_bi", **{"eval.retrieval_k": 200, "eval.mode": "retrieve", **extra})


@pytest.fixture(scope="module")
def static_run(vaswani_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("bi")
    result = train(bi(vaswani_slice, out, negatives="dense_static"))
    assert result.exit_code == 0, result.output
    (rd,) = list((out / "runs").iterdir())
    return out, rd


def test_bi_encoder_retrieves_from_the_whole_corpus(static_run, vaswani_slice):
    out, rd = static_run
    m = json.loads((rd / "metrics.json").read_text())
    assert m["retrieval"]["mode"] == "dense retrieval" and m["retrieval"]["docs"] > 300
    assert set(m["model"]) == {"nDCG@10", "RR@10", "AP", "R@100", "R@1000"}
    run = read_run(rd / "run.trec")
    split = json.loads((rd / "split.json").read_text())
    assert set(run) == set(split["test"]) and all(len(r) == 200 for r in run.values())
    # the stored metrics are what trec_eval semantics give on the written run
    from rankexp.data.collection import read_qrels

    qrels = {q: j for q, j in read_qrels(vaswani_slice / "qrels.txt").items() if q in split["test"]}
    again = evaluate(run, qrels, ["nDCG@10", "R@100"], qids=split["test"], complete=True)
    assert again.aggregate["nDCG@10"] == pytest.approx(m["model"]["nDCG@10"])
    neg = m["train"]["negatives"]
    assert neg["sampler"] == "dense_static" and neg["removed"]["relevant"] > 0 and neg["file"].endswith("negatives.tsv")


def test_second_run_hits_the_mining_and_index_caches(static_run, vaswani_slice):
    out, rd = static_run
    result = train(bi(vaswani_slice, out, negatives="dense_static", seed=7))
    assert result.exit_code == 0, result.output
    (new,) = [p for p in (out / "runs").iterdir() if p != rd]
    cache = {(e["kind"], e["hit"]) for e in json.loads((new / "metrics.json").read_text())["cache"]}
    # a new seed initialises new tiny weights (a new warm-up model, so new mining); the BM25 index
    # and the tokens do not depend on the model's weights and are reused
    assert ("bm25_index", True) in cache and ("tokens", True) in cache
    same = train(bi(vaswani_slice, out, negatives="dense_static", **{"trainer.max_steps": 3}))
    assert same.exit_code == 0, same.output
    (third,) = [p for p in (out / "runs").iterdir() if p not in (rd, new)]
    cache = {(e["kind"], e["hit"]) for e in json.loads((third / "metrics.json").read_text())["cache"]}
    assert ("negatives", True) in cache  # same seed -> same warm-up model -> mined negatives reused


def test_dense_first_stage_from_a_bi_encoder_run_for_a_cross_encoder(static_run, vaswani_slice, tmp_path):
    out, rd = static_run
    result = train(fast_overrides(vaswani_slice, tmp_path, first_stage="dense", **{"first_stage.model": str(rd), "first_stage.k": 50}))
    assert result.exit_code == 0, result.output
    (ce,) = list((tmp_path / "runs").iterdir())
    m = json.loads((ce / "metrics.json").read_text())
    assert m["baseline"]["name"] == "dense" and m["baseline"]["params"]["model"] == str(rd)
    # the dense baseline equals the bi-encoder run's own retrieval on the same test queries
    bi_m = json.loads((rd / "metrics.json").read_text())
    assert m["baseline"]["nDCG@10"] == pytest.approx(bi_m["model"]["nDCG@10"])


def test_adore_run_keeps_its_index_frozen(vaswani_slice, tmp_path):
    result = train(bi(vaswani_slice, tmp_path, negatives="dense_dynamic", **{"negatives.depth": 50}))
    assert result.exit_code == 0, result.output
    (rd,) = list((tmp_path / "runs").iterdir())
    m = json.loads((rd / "metrics.json").read_text())
    neg = m["train"]["negatives"]
    assert neg["steps"] == 6 and neg["kept"] > 0
    assert m["retrieval"]["index"] == neg["index"] and m["retrieval"]["index_cached"]  # test retrieval used the frozen index
    assert 0 <= m["train"]["adore_retrieval_share"] < 1
    assert m["train"]["group_size"] == 1


def test_adore_with_a_cross_encoder_is_one_clear_line(vaswani_slice, tmp_path):
    result = train(fast_overrides(vaswani_slice, tmp_path, negatives="dense_dynamic"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert [l for l in result.output.splitlines() if l.startswith("error:")] == [
        l for l in result.output.splitlines() if "dense_dynamic (ADORE)" in l]


@pytest.mark.parametrize("neg", ["random", "mixed"])
def test_other_samplers_train_a_bi_encoder(neg, vaswani_slice, tmp_path):
    result = train(bi(vaswani_slice, tmp_path, negatives=neg, **{"trainer.max_steps": 3}))
    assert result.exit_code == 0, result.output


def test_file_negatives_from_a_mined_file(static_run, vaswani_slice, tmp_path):
    out, rd = static_run
    mined = json.loads((rd / "metrics.json").read_text())["train"]["negatives"]["file"]
    result = train(fast_overrides(vaswani_slice, tmp_path, negatives="file", **{"negatives.path": mined, "trainer.max_steps": 3}))
    assert result.exit_code == 0, result.output
    missing = train(fast_overrides(vaswani_slice, tmp_path / "x", negatives="file", **{"negatives.path": str(tmp_path / "nope.tsv")}))
    assert missing.exit_code != 0 and "negatives file not found" in missing.output and "Traceback" not in missing.output


def test_retrieve_command_bm25_dense_and_hybrid(static_run, vaswani_slice, tmp_path):
    out, rd = static_run
    base = ["data=local", f"data.path={vaswani_slice}", f"paths.output_dir={tmp_path}", "eval.retrieval_k=200"]
    r = CliRunner().invoke(app, ["retrieve", *base, "first_stage=dense", f"first_stage.model={rd}"])
    assert r.exit_code == 0, r.output
    (dense_dir,) = list((tmp_path / "retrievals").iterdir())
    m = json.loads((dense_dir / "metrics.json").read_text())
    bi_m = json.loads((rd / "metrics.json").read_text())
    # the trained bi-encoder, loaded back from its run directory, retrieves what its run evaluated
    assert m["model"]["nDCG@10"] == pytest.approx(bi_m["model"]["nDCG@10"])
    assert m["model"]["R@100"] == pytest.approx(bi_m["model"]["R@100"])
    r = CliRunner().invoke(app, ["retrieve", *base, "first_stage=bm25", "--split", "all"])
    assert r.exit_code == 0, r.output
    (bm25_dir,) = [p for p in (tmp_path / "retrievals").iterdir() if p != dense_dir]
    m = json.loads((bm25_dir / "metrics.json").read_text())
    assert m["queries"]["evaluated"] == 20 and m["split"] == "all"
    from rankexp.data.collection import read_qrels

    again = evaluate(read_run(bm25_dir / "run.trec"), read_qrels(vaswani_slice / "qrels.txt"), ["AP", "R@1000"], complete=True)
    assert again.aggregate["AP"] == pytest.approx(m["model"]["AP"])
    r = CliRunner().invoke(app, ["retrieve", *base, "first_stage=hybrid", f"first_stage.dense.model={rd}", "first_stage.alpha=0.3"])
    assert r.exit_code == 0, r.output
    bad = CliRunner().invoke(app, ["retrieve", *base, "first_stage=dense", f"first_stage.model={tmp_path / 'nope'}"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output and "error:" in bad.output


def test_cross_encoder_on_dense_static_negatives_from_a_separate_retriever(vaswani_slice, tmp_path):
    retriever = "{max_length:32,max_query_length:12,tiny:{hidden_size:16,num_hidden_layers:1,num_attention_heads:2,intermediate_size:32}}"
    result = train(fast_overrides(vaswani_slice, tmp_path, negatives="dense_static",
                                  **{"negatives.retriever": retriever, "negatives.depth": 30, "trainer.max_steps": 3}))
    assert result.exit_code == 0, result.output
    (rd,) = list((tmp_path / "runs").iterdir())
    m = json.loads((rd / "metrics.json").read_text())
    assert m["retrieval"]["mode"] == "rerank" and m["train"]["negatives"]["sampler"] == "dense_static"
    assert m["train"]["negatives"]["considered"] > 0 and m["train"]["negatives"]["fallback_to_random"] == 0
