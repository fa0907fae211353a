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
