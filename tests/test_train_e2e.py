"""`rankexp train` end to end on a slice of vaswani with a tiny random BERT."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rankexp.api import compose, train
from rankexp.cli import app
from rankexp.eval.measures import evaluate
from rankexp.eval.trec_io import read_run
from rankexp.tracking.rundir import read_perquery
from tests.conftest import fast_overrides

CONTRACT = ["config.yaml", "overrides.txt", "env.json", "split.json", "run.trec", "metrics.json", "perquery.tsv", "history.jsonl", "status"]


@pytest.fixture(scope="module")
def first_run(vaswani_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, out)])
    assert result.exit_code == 0, result.output
    run_dirs = list((out / "runs").iterdir())
    assert len(run_dirs) == 1
    return out, run_dirs[0], result.output


def test_run_directory_contract(first_run):
    out, rd, output = first_run
    for name in CONTRACT:
        assert (rd / name).is_file(), name
    assert (rd / "checkpoints").is_dir() and (rd / "checkpoints" / "best.ckpt").is_file()
    assert not (rd / "checkpoints" / "last.ckpt").exists()  # deleted once complete
    assert (rd / "status").read_text().strip() == "complete"
    assert not [p for p in rd.rglob("*.tmp")], "no temp files left behind"
    env = json.loads((rd / "env.json").read_text())
    assert env["seed"] == 42 and env["versions"]["torch"].startswith("2.13")
    assert "nDCG@10" in output and "bm25" in output


def test_metrics_keys_and_rerun_equality(first_run, vaswani_slice):
    out, rd, _ = first_run
    m = json.loads((rd / "metrics.json").read_text())
    assert m["provider"] == "pytrec_eval+rankexp(RR@k)"  # RR@10: the provider has no RR@k
    assert set(m["model"]) == {"nDCG@10", "RR@10", "AP", "R@100"}
    assert m["baseline"]["name"] == "bm25" and "nDCG@10" in m["baseline"]
    split = json.loads((rd / "split.json").read_text())
    assert m["queries"]["test"] == len(split["test"]) == m["queries"]["evaluated"]
    assert not set(split["test"]) & set(split["train"])
    # run.trec parses and re-evaluates to exactly metrics.json
    from rankexp.data.collection import read_qrels

    qrels = read_qrels(vaswani_slice / "qrels.txt")
    ev = evaluate(read_run(rd / "run.trec"), qrels, list(m["model"]), qids=split["test"], complete=True)
    for k, v in m["model"].items():
        assert ev.aggregate[k] == pytest.approx(v, abs=1e-12), k
    pq = read_perquery(rd / "perquery.tsv")
    assert set(pq) == {"model", "bm25", "untrained"}
    assert set(m["untrained"]) == set(m["model"])
    # the paired tests in metrics.json are scipy's paired t-test on the per-query values
    from scipy import stats

    for ref in ("bm25", "untrained"):
        t = m["paired_ttest"][ref]["nDCG@10"]
        qids = sorted(pq["model"]["nDCG@10"])
        a = [pq["model"]["nDCG@10"][q] for q in qids]
        b = [pq[ref]["nDCG@10"][q] for q in qids]
        assert t["n"] == len(qids) and t["diff"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
        if a != b:
            assert t["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert m["learned"] in ("yes", "no", "worse")
    assert sum(pq["model"]["AP"].values()) / len(pq["model"]["AP"]) == pytest.approx(m["model"]["AP"])
    # the candidates are the same: recall at the rerank depth cannot change by reranking
    assert m["model"]["R@100"] == pytest.approx(m["baseline"]["R@100"])
    hist = [json.loads(l) for l in (rd / "history.jsonl").read_text().splitlines()]
    assert any("train/loss" in h for h in hist) and any("val/nDCG@10" in h for h in hist)


def test_second_run_reuses_cache_and_same_config_is_skipped(first_run, vaswani_slice):
    out, rd, _ = first_run
    runner = CliRunner()
    again = runner.invoke(app, ["train", *fast_overrides(vaswani_slice, out)])
    assert again.exit_code == 0 and "already complete" in again.output
    other = runner.invoke(app, ["train", *fast_overrides(vaswani_slice, out), "seed=7"])
    assert other.exit_code == 0, other.output
    rd2 = next(p for p in (out / "runs").iterdir() if p != rd)
    cache = {e["kind"]: e for e in json.loads((rd2 / "metrics.json").read_text())["cache"]}
    assert cache["bm25_index"]["hit"] and cache["bm25_run"]["hit"] and cache["tokens"]["hit"]
    first = {e["kind"]: e for e in json.loads((rd / "metrics.json").read_text())["cache"]}
    assert not first["bm25_run"]["hit"]
    # same split regardless of the training seed: paired comparisons are possible
    assert json.loads((rd / "split.json").read_text())["test"] == json.loads((rd2 / "split.json").read_text())["test"]


def test_training_changes_parameters(vaswani_slice, tmp_path):
    """A direct library run: trainable parameters of the encoder move."""
    import torch

    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, **{"trainer.max_steps": 3, "train.val_every_n_steps": 3}))
    torch.manual_seed(int(cfg.seed))
    from hydra.utils import instantiate

    init = instantiate(cfg.model.encoder).state_dict()
    res = api.train(cfg)
    trained = torch.load(res.path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    changed = [k for k, v in init.items() if not torch.equal(v, trained[f"encoder.{k}"])]
    assert len(changed) > len(init) // 2


def test_subprocess_console_script(vaswani_slice, tmp_path):
    env = dict(os.environ, RANKEXP_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "rankexp", "train", *fast_overrides(vaswani_slice, tmp_path, **{"trainer.max_steps": 2, "train.val_every_n_steps": 2})],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (rd,) = list((tmp_path / "runs").iterdir())
    assert (rd / "status").read_text().strip() == "complete"
    ev = subprocess.run([sys.executable, "-m", "rankexp", "eval", str(rd / "run.trec"), "--qrels", str(vaswani_slice / "qrels.txt"),
                         "--measures", "nDCG@10 AP", "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert ev.returncode == 0, ev.stderr
    assert '"nDCG@10"' in ev.stdout


@pytest.mark.wandb
def test_wandb_offline_sink(vaswani_slice, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, logger="wandb", **{"trainer.max_steps": 2, "train.val_every_n_steps": 2}))
    res = api.train(cfg)
    assert (res.path / "metrics.json").exists()
    runs = list((tmp_path / "wandb").glob(f"offline-run-*-{res.run_id}"))
    assert runs and list(runs[0].glob("*.wandb")), "an offline W&B run is written for later `wandb sync`"


def test_ddp_two_cpu_processes(vaswani_slice, tmp_path):
    """trainer=ddp on 2 CPU processes (gloo): rank 0 alone writes the run directory; each rank takes
    max_steps batches of its half of the groups; dev scores are gathered from both ranks."""
    env = dict(os.environ, RANKEXP_PROGRESS="0", RANKEXP_THREADS="1")
    ovr = fast_overrides(vaswani_slice, tmp_path, trainer="ddp", **{"trainer.accelerator": "cpu", "trainer.devices": 2})
    proc = subprocess.run([sys.executable, "-m", "rankexp", "train", *ovr], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout + proc.stderr
    (rd,) = list((tmp_path / "runs").iterdir())
    assert (rd / "status").read_text().strip() == "complete"
    m = json.loads((rd / "metrics.json").read_text())
    assert m["train"]["steps"] == 6 and m["train"]["groups"] == 6 * 4 * 2
    assert m["dev"]["best"] is not None and m["queries"]["evaluated"] == m["queries"]["test"]


@pytest.mark.wandb
def test_wandb_sync_lists_offline_runs_and_needs_a_login(vaswani_slice, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("RANKEXP_OUTPUT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    from rankexp import api

    res = api.train(api.compose(fast_overrides(vaswani_slice, tmp_path, logger="wandb", **{"trainer.max_steps": 2, "train.val_every_n_steps": 2})))
    runner = CliRunner()
    listed = runner.invoke(app, ["wandb", "sync", res.run_id, "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert f"-{res.run_id}" in listed.output and "1 offline run(s) would be synced" in listed.output
    pushed = runner.invoke(app, ["wandb", "sync", res.run_id])
    assert pushed.exit_code != 0 and "no W&B login" in pushed.output


def test_untrained_row_is_the_start_and_a_frozen_model_equals_it(vaswani_slice, tmp_path):
    """With a vanishing learning rate (1e-30, below float32 resolution of the weights) nothing moves: the model row must equal the untrained row exactly
    (so the untrained row is the same network, scored the same way, before fit)."""
    result = train(compose(fast_overrides(vaswani_slice, tmp_path, **{"model.lr": 1e-30})))
    m = result.metrics
    assert m["untrained"] == m["model"]
    assert m["learned"] == "no" and m["paired_ttest"]["untrained"]["nDCG@10"]["p"] == 1.0
    # the dev measure at step 0 is the untrained network's, equal to a frozen model's later dev values
    hist = [json.loads(l) for l in (result.path / "history.jsonl").read_text().splitlines()]
    dev = {h["step"]: h["val/nDCG@10"] for h in hist if "val/nDCG@10" in h}
    assert 0 in dev and dev[0] == pytest.approx(m["dev"]["untrained"]) and dev[0] == pytest.approx(dev[max(dev)])


def test_bi_encoder_can_rerank_the_first_stage(vaswani_slice, tmp_path):
    result = train(compose(fast_overrides(vaswani_slice, tmp_path, model="tiny_bi", **{"eval.mode": "rerank"})))
    m = result.metrics
    assert m["retrieval"]["mode"] == "rerank" and m["rerank_k"] == 20
    assert set(m["model"]) == {"nDCG@10", "RR@10", "AP", "R@100"}
    # reranking the same candidates cannot change recall at the rerank depth
    assert m["model"]["R@100"] == pytest.approx(m["baseline"]["R@100"]) == pytest.approx(m["untrained"]["R@100"])
    run = read_run(result.path / "run.trec")
    assert all(len(docs) <= 20 for docs in run.values())


def test_cross_encoder_cannot_retrieve(vaswani_slice, tmp_path):
    from rankexp.errors import ConfigError

    with pytest.raises(ConfigError, match="eval.mode=retrieve needs a bi-encoder"):
        train(compose(fast_overrides(vaswani_slice, tmp_path, **{"eval.mode": "retrieve"})))


def test_bi_encoder_rerank_pairs_equal_pairwise_forward(vaswani_slice, tmp_path):
    """rerank_pairs encodes each query and document once; its scores equal the bi-encoder's forward
    pass on each (query, document) pair."""
    import torch

    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.data.tokens import BiPairEncoder, build_token_tables
    from rankexp.retrieval.dense import rerank_pairs
    from rankexp.tracking.cache import Cache

    cfg = compose(fast_overrides(vaswani_slice, tmp_path, model="tiny_bi"))
    torch.manual_seed(0)
    enc = build(cfg.model.encoder, "model.encoder").eval()
    coll = load_collection(cfg.data)
    cache = Cache(tmp_path / "cache")
    qids = sorted(coll.queries)[:3]
    dids = sorted(coll.docs)[:7]
    pairs = [(q, d) for q in qids for d in dids]
    run = rerank_pairs(enc, coll, cache, pairs, batch_size=4)
    docs_tok, queries_tok = build_token_tables(coll, enc.tokenizer, enc.max_length, enc.max_query_length, cache)
    pe = BiPairEncoder(enc.tokenizer, docs_tok, queries_tok, enc.max_length, enc.max_query_length)
    with torch.inference_mode():
        ref = enc(**pe.encode([q for q, _ in pairs], [d for _, d in pairs])).tolist()
    for (q, d), r in zip(pairs, ref):
        assert run[q][d] == pytest.approx(r, abs=1e-5)


def test_select_start_keeps_the_untrained_start_when_no_dev_evaluation_beats_it(vaswani_slice, tmp_path):
    """train.select_start: model selection includes step 0. A frozen model never beats its start on
    dev (ties go to the start), so the start is kept: best.ckpt holds the start's weights at step 0."""
    import torch

    from hydra.utils import instantiate

    cfg = compose(fast_overrides(vaswani_slice, tmp_path, **{"model.lr": 1e-30, "train.select_start": True}))
    torch.manual_seed(int(cfg.seed))
    init = instantiate(cfg.model.encoder).state_dict()
    m = train(cfg).metrics
    assert m["dev"]["kept_start"] is True and m["dev"]["best_step"] == 0
    assert m["dev"]["best"] == pytest.approx(m["dev"]["untrained"]) and m["model"] == m["untrained"]
    best = torch.load(tmp_path / "runs" / m["run_id"] / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["global_step"] == 0 and all(torch.equal(v, best["state_dict"][f"encoder.{k}"]) for k, v in init.items())
    # without it, the last best dev evaluation is the model (step > 0)
    off = train(compose(fast_overrides(vaswani_slice, tmp_path / "off", **{"model.lr": 1e-30}))).metrics
    assert off["dev"]["kept_start"] is False and off["dev"]["best_step"] > 0


def test_model_kind_comes_from_the_config():
    """model.module / model.scorer name the Lightning module and the scorer; a config written before
    they existed (an older run directory) gets them from its encoder's kind."""
    from omegaconf import OmegaConf

    from rankexp.pipeline.build import module_class
    from rankexp.pipeline.scorers import BiScorer, CrossScorer, scorer_for

    class Enc:
        kind = "bi"

    for name, scorer, module in [("tiny", CrossScorer, "RankingModule"), ("tiny_bi", BiScorer, "BiEncoderModule"),
                                 ("cross_encoder", CrossScorer, "RankingModule"), ("bi_reranker", BiScorer, "BiEncoderModule")]:
        cfg = compose([f"model={name}"])
        assert type(scorer_for(cfg.model, None)) is scorer and module_class(cfg.model, None).__name__ == module
    legacy = OmegaConf.create({"encoder": {"_target_": "rankexp.models.biencoder.BiEncoder"}})
    assert isinstance(scorer_for(legacy, Enc()), BiScorer) and module_class(legacy, Enc()).__name__ == "BiEncoderModule"


def test_an_unknown_module_target_is_one_line(vaswani_slice, tmp_path):
    from typer.testing import CliRunner

    from rankexp.cli import app

    res = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, tmp_path, **{"model.module._target_": "rankexp.nope.Module"})])
    assert res.exit_code == 2, res.output
    assert "model.module._target_" in res.output and "rankexp.nope.Module" in res.output and "Traceback" not in res.output
