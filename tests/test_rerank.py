"""``rankexp rerank`` / ``api.rerank``: trained runs and published rankers on a first stage's candidates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rankexp import api
from rankexp.cli import app
from rankexp.eval.trec_io import read_run, sort_ranking, write_run
from tests.conftest import fast_overrides

STEPS = {"trainer.max_steps": 3, "train.val_every_n_steps": 3}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rerank")


@pytest.fixture(scope="module")
def cross_run(vaswani_slice, out) -> Path:
    return api.train(api.compose(fast_overrides(vaswani_slice, out, **STEPS))).path


@pytest.fixture(scope="module")
def bi_run(vaswani_slice, out) -> Path:
    return api.train(api.compose(fast_overrides(vaswani_slice, out, model="tiny_bi", **STEPS))).path


@pytest.fixture(scope="module")
def hf_dirs(out) -> dict[str, Path]:
    """A tiny random BERT with a sequence-classification head (a cross-encoder) and one without."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    from rankexp.models.encoders import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(0)
    dirs = {"cross": out / "hf_cross", "plain": out / "hf_plain"}
    BertForSequenceClassification(cfg).save_pretrained(dirs["cross"])
    BertModel(cfg).save_pretrained(dirs["plain"])
    for d in dirs.values():
        tok.save_pretrained(d)
    return dirs


def ovr(out: Path, *extra: str) -> list[str]:
    return [f"paths.output_dir={out}", "logger=none", *extra]


@pytest.mark.parametrize("which", ["cross_run", "bi_run"])
def test_a_trained_run_reranked_again_gives_its_own_metrics(which, request, out):
    run_dir = request.getfixturevalue(which)
    trained = json.loads((run_dir / "metrics.json").read_text())
    result = api.rerank(run_dir, ovr(out))
    m = result.metrics
    # the run's data, split, first stage and eval settings: the same test ranking and measures
    assert m["model"] == pytest.approx(trained["model"], abs=1e-12)
    assert m["baseline"]["nDCG@10"] == pytest.approx(trained["baseline"]["nDCG@10"], abs=1e-12)
    for measure, t in trained["paired_ttest"]["bm25"].items():
        assert m["paired_ttest"]["bm25"][measure] == pytest.approx(t, abs=1e-12)
    assert read_run(result.run_file) == read_run(run_dir / "run.trec")
    assert {p.name for p in result.path.iterdir()} >= {"run.trec", "metrics.json", "perquery.tsv"}


def test_cli_prints_the_table_beside_the_first_stage(cross_run, out):
    res = CliRunner().invoke(app, ["rerank", str(cross_run), *ovr(out)])
    assert res.exit_code == 0, res.output
    assert "bm25" in res.output and "nDCG@10" in res.output and "Δ vs bm25" in res.output


@pytest.mark.parametrize("which", ["cross_run", "bi_run"])
def test_documents_given_in_memory_change_only_their_scores(which, request, out):
    run_dir = request.getfixturevalue(which)
    base = api.rerank(run_dir, ovr(out), write=False).run
    q = sorted(base)[0]
    top_doc = sort_ranking(base[q])[0][0]
    perturbed = api.rerank(run_dir, ovr(out), write=False, docs={top_doc: "zebra zebra xylophone " * 5}).run
    assert perturbed[q][top_doc] != pytest.approx(base[q][top_doc], abs=1e-6)
    changed = {(a, d) for a in base for d in base[a] if abs(base[a][d] - perturbed[a][d]) > 1e-6}
    assert {d for _, d in changed} == {top_doc}


def test_a_session_scores_many_variants(cross_run, out):
    from rankexp.errors import DataError

    session = api.reranker(cross_run, ovr(out))
    plain = session.score().run
    assert plain == api.rerank(cross_run, ovr(out), write=False).run
    q = session.qids[0]
    d = sort_ranking(plain[q])[0][0]
    variants = [session.score(docs={d: text}).run[q][d] for text in ("first variant text", "a second, different text")]
    assert variants[0] != variants[1] and session.score().run == plain  # nothing sticks between calls
    new = session.score(docs={"new-doc": "a document that is not in the corpus"}, pairs=[(q, "new-doc")]).run
    assert set(new[q]) == {"new-doc"}
    with pytest.raises(DataError, match="not-given"):
        session.score(pairs=[(q, "not-given")])
    ev = session.evaluate(plain)
    assert ev.model.aggregate == api.rerank(cross_run, ovr(out), write=False).metrics["model"]


def test_hf_cross_encoder_scores_are_the_models_own(hf_dirs, vaswani_slice, out):
    from transformers import AutoTokenizer, BertForSequenceClassification

    result = api.rerank(str(hf_dirs["cross"]), ovr(out, "data=local", f"data.path={vaswani_slice}", "eval.rerank_k=5"))
    m = result.metrics
    assert m["model_source"].startswith("Hugging Face cross-encoder") and m["queries"]["evaluated"] > 0
    assert set(m["model"]) == {"nDCG@10", "RR@10", "AP", "R@100"} and m["baseline"]["name"] == "bm25"
    # an independent score: the HF model on the tokenizer's own pair encoding
    tok = AutoTokenizer.from_pretrained(hf_dirs["cross"])
    model = BertForSequenceClassification.from_pretrained(hf_dirs["cross"]).eval()
    from rankexp.data.collection import load_local

    coll = load_local(vaswani_slice)
    queries, docs = coll.queries, coll.docs
    q = sorted(result.run)[0]
    d = sort_ranking(result.run[q])[0][0]
    enc = tok(queries[q], docs[d], truncation="only_second", max_length=128, return_tensors="pt")
    with torch.no_grad():
        want = float(model(**enc).logits[0, 0])
    assert result.run[q][d] == pytest.approx(want, abs=1e-5)


def test_run_file_and_out_file(cross_run, out, tmp_path):
    trained = read_run(cross_run / "run.trec")
    cand = tmp_path / "cands.trec"
    write_run(cand, trained)
    target = tmp_path / "reranked.trec"
    result = api.rerank(cross_run, ovr(out), run_file=cand, out=target)
    assert result.path is None and target.is_file() and set(read_run(target)) == set(trained)
    assert result.metrics["baseline"]["name"] == "cands"


def test_minilm_is_a_bi_encoder():
    from rankexp.pipeline.loading import load_ranker

    r = load_ranker("all-MiniLM-L6-v2")
    assert r.scorer.kind == "bi" and r.encoder.pooling == "mean" and r.encoder.similarity == "cos"


@pytest.mark.parametrize("case", ["unknown_doc", "unknown_query", "not_a_ranker", "no_such_model", "bad_queries"])
def test_bad_input_is_one_line_exit_2(case, cross_run, hf_dirs, out, tmp_path):
    args = ["rerank", str(cross_run), *ovr(out)]
    trained = read_run(cross_run / "run.trec")
    q = sorted(trained)[0]
    if case == "unknown_doc":
        write_run(tmp_path / "r.trec", {q: {**trained[q], "no-such-doc": -99.0}})
        args += ["--run", str(tmp_path / "r.trec")]
        expect = "not in"
    elif case == "unknown_query":
        write_run(tmp_path / "r.trec", {**trained, "no-such-query": trained[q]})
        args += ["--run", str(tmp_path / "r.trec")]
        expect = "no-such-query"
    elif case == "not_a_ranker":
        args[1] = str(hf_dirs["plain"])
        expect = "not a ranker"
    elif case == "no_such_model":
        args[1] = str(tmp_path / "nothing-here")
        expect = "nothing-here"
    else:
        args += ["--queries", "some"]
        expect = "--queries"
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [l for l in res.output.splitlines() if l.startswith("error")]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in res.output, res.output
