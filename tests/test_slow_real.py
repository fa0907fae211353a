"""Real weights and real collections (marked slow; CI runs them with `-m slow`)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from tests.conftest import fast_overrides


@pytest.mark.slow
def test_minilm_cross_encoder_few_steps(vaswani_slice, tmp_path):
    """The default model (all-MiniLM-L6-v2 from the gt package, offline) trains and reranks."""
    ovr = fast_overrides(vaswani_slice, tmp_path, model="cross_encoder", **{"trainer.max_steps": 4, "train.val_every_n_steps": 4,
                                                                           "train.batch_size": 2, "eval.rerank_k": 10, "eval.dev_rerank_k": 5})
    result = CliRunner().invoke(app, ["train", *ovr])
    assert result.exit_code == 0, result.output
    (rd,) = list((tmp_path / "runs").iterdir())
    m = json.loads((rd / "metrics.json").read_text())
    assert m["train"]["steps"] == 4
    assert 0.0 <= m["model"]["nDCG@10"] <= 1.0
    cfg = (rd / "config.yaml").read_text()
    assert "all-MiniLM-L6-v2" in cfg and "tiny: null" in cfg


@pytest.mark.slow
def test_irds_vaswani_equals_local_files():
    """data=vaswani goes through ir_datasets (offline seed) and yields exactly the shared plain files."""
    from rankexp import api
    from rankexp.data.collection import load_collection, load_local
    from tests.conftest import DATA

    irds = load_collection(api.compose(["data=vaswani"]).data)
    local = load_local(DATA / "vaswani")
    assert irds.source == "ir_datasets:vaswani"
    assert irds.qrels == local.qrels
    assert irds.docs.keys() == local.docs.keys()
    assert all(" ".join(irds.docs[d].split()) == " ".join(local.docs[d].split()) for d in local.docs)


@pytest.mark.slow
def test_default_bi_reranker_untrained_row_is_zero_shot_minilm(vaswani_slice, tmp_path):
    """The default model (model=bi_reranker) reranks; its untrained row is all-MiniLM-L6-v2 used as
    its authors intend (mean pooling, L2-normalised, cosine), computed here independently with
    transformers on the same candidates."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rankexp.data.collection import load_local
    from rankexp.eval.measures import evaluate
    from rankexp.eval.trec_io import sort_ranking
    from rankexp.models.encoders import resolve_model_path
    from rankexp.tracking.rundir import read_perquery

    ovr = [o for o in fast_overrides(vaswani_slice, tmp_path, **{"trainer.max_steps": 2, "train.val_every_n_steps": 2,
                                                                 "train.batch_size": 2, "eval.rerank_k": 10, "eval.dev_rerank_k": 5})
           if not o.startswith("model=")]
    result = CliRunner().invoke(app, ["train", *ovr])
    assert result.exit_code == 0, result.output
    (rd,) = list((tmp_path / "runs").iterdir())
    m = json.loads((rd / "metrics.json").read_text())
    assert m["retrieval"]["mode"] == "rerank" and "BiEncoder" in (rd / "config.yaml").read_text()
    split = json.loads((rd / "split.json").read_text())
    coll = load_local(vaswani_slice)
    bm25 = {}
    for line in (rd.parent.parent / "cache").rglob("run.trec"):
        for row in line.read_text().splitlines():
            q, _, d, _, s, _ = row.split()
            bm25.setdefault(q, {})[d] = float(s)
        break
    path = resolve_model_path("all-MiniLM-L6-v2")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts, n):
        enc = tok(texts, padding=True, truncation=True, max_length=n, return_tensors="pt")
        with torch.inference_mode():
            h = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)

    run = {}
    for q in split["test"]:
        cands = [d for d, _ in sort_ranking(bm25.get(q, {}))][:10]  # the candidates in trec_eval order
        if not cands:
            continue
        qe = embed([coll.queries[q]], 32)
        de = embed([coll.doc_text(d) if hasattr(coll, "doc_text") else coll.docs[d] for d in cands], 256)
        run[q] = dict(zip(cands, (de @ qe.T).squeeze(-1).tolist()))
    ref = evaluate(run, {q: coll.qrels[q] for q in split["test"]}, ["nDCG@10"], qids=split["test"], complete=True)
    pq = read_perquery(rd / "perquery.tsv")
    assert pq["untrained"]["nDCG@10"] == pytest.approx(ref.perquery["nDCG@10"], abs=1e-6)
