"""CET (debias=cet): weights and loss against hand-computed values, the selection model's M-step,
reduction to naive training, one-line errors, end to end with the pooling simulator."""

from __future__ import annotations

import json
import math

from types import SimpleNamespace

import pytest
import torch

from conftest import fast_overrides
from rankexp.debias.cet import CET, bucket_of, hidden_posterior, ipw_weight, pair_losses, true_negative_weight
from rankexp.debias.diagnostics import precision_at, roc_auc
from rankexp.errors import ConfigError
from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.losses.pairwise import RankNetLoss
from rankexp.losses.pointwise import BCELoss
from rankexp.models.batch import Batch


def make(loss, propensity: float, ranks=None, **kw) -> CET:
    cet = CET(depth=8, prior=0.5, **kw).bind(loss, ranks or {}, None)
    cet.n_pos.fill_(propensity)
    cet.n_hid.fill_(1.0 - propensity)
    return cet


def batch(groups):
    return Batch.of_groups([f"q{i}" for i in range(len(groups))], groups)


def test_weights_by_hand():
    p_r = torch.tensor([0.5, 0.25, 0.0, 1.0])
    p_s = torch.tensor([0.5, 0.5, 0.3, 1.0])
    # (C4) (1 - p_r) / (1 - p_r p_s): 0.5/0.75, 0.75/0.875, 1, 0/max(0, 1e-6)
    assert torch.allclose(true_negative_weight(p_r, p_s), torch.tensor([2 / 3, 6 / 7, 1.0, 0.0]))
    # (C3) p_r (1 - p_s) / (1 - p_r p_s)
    assert torch.allclose(hidden_posterior(p_r, p_s), torch.tensor([1 / 3, 1 / 7, 0.0, 0.0]))


def test_listwise_loss_by_hand():
    cet = make(SoftmaxCELoss(), propensity=0.5)
    scores = torch.tensor([[2.0, 2.0, 2.0 - math.log(3.0)]], requires_grad=True)  # p_r = 0.5, 0.25
    loss = cet(scores, batch([["p", "a", "b"]]))
    # -log(e^2 / (e^2 + 2/3 e^2 + 6/7 e^2/3)) = log(1 + 2/3 + 2/7) = log(41/21)
    assert loss.item() == pytest.approx(math.log(41 / 21), rel=1e-6)
    loss.sum().backward()
    assert scores.grad is not None


def test_pointwise_loss_by_hand():
    cet = make(BCELoss(), propensity=0.5)
    scores = torch.tensor([[0.0, 0.0]], requires_grad=True)  # p_r = 0.5 -> w = 2/3
    loss = cet(scores, batch([["p", "a"]]))
    ln2 = math.log(2.0)  # BCE(0, 1) = BCE(0, 0) = ln 2
    assert loss.item() == pytest.approx((ln2 + 2 / 3 * ln2 + 1 / 3 * ln2) / 2, rel=1e-6)


@pytest.mark.parametrize("base", [SoftmaxCELoss(), SoftmaxCELoss(temperature=0.5), BCELoss(pos_weight=2.0)])
def test_full_propensity_is_exactly_naive(base):
    cet = make(base, propensity=1.0)
    scores = torch.tensor([[1.0, 3.0, -1.0], [0.2, 0.1, 0.5]], requires_grad=True)
    b = batch([["p", "a", "b"], ["p", "c", "d"]])
    assert torch.allclose(cet(scores, b), base(scores.detach(), b), atol=1e-6)


def test_no_hidden_positives_stays_close_to_naive():
    # a trained ranker puts true negatives far below the positive: p_r ~ 0 -> w ~ 1 whatever p_s
    cet = make(SoftmaxCELoss(), propensity=0.05)
    scores = torch.tensor([[5.0, -5.0, -6.0, -4.0]])
    b = batch([["p", "a", "b", "c"]])
    with torch.enable_grad():
        got = cet(scores.requires_grad_(), b)
    assert got.item() == pytest.approx(SoftmaxCELoss()(scores.detach(), b).item(), rel=1e-3)
    assert cet.last["debias/weight_min"] > 0.999


def test_selection_m_step_by_hand():
    ranks = {"q0": {"p": 1, "a": 2, "b": 300}}  # buckets: p -> 0, a -> 1, b -> "not retrieved" (beyond depth 8)
    cet = CET(depth=8, prior=0.5, prior_count=2.0, decay=0.5).bind(SoftmaxCELoss(), {"q0": {"p": 3.0, "a": 2.0}}, None)
    assert cet.n_buckets == 5 and [bucket_of(r, 5) for r in (1, 2, 3, 4, 7, 8, 1000, None)] == [0, 1, 1, 2, 2, 3, 3, 4]
    scores = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)  # p_r = 0.5; prior propensity 0.5 everywhere
    cet(scores, Batch.of_groups(["q0"], [["p", "a", "b"]]))
    post = 0.5 * 0.5 / (1 - 0.25)  # (C3) = 1/3
    # N = decay * N + this step; prior counts were 1 (pos) and 1 (hid) per bucket
    assert torch.allclose(cet.n_pos, torch.tensor([0.5 + 1, 0.5, 0.5, 0.5, 0.5]))
    assert torch.allclose(cet.n_hid, torch.tensor([0.5, 0.5 + post, 0.5, 0.5, 0.5 + post]))
    assert torch.allclose(cet.propensity(), cet.n_pos / (cet.n_pos + cet.n_hid))
    assert int(cet.steps) == 1


def test_warmup_trains_naively_and_leaves_the_selection_model():
    cet = make(SoftmaxCELoss(), propensity=0.5, warmup_steps=1)
    scores = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    b = batch([["p", "a", "b"]])
    before = cet.n_hid.clone()
    assert cet(scores, b).item() == pytest.approx(math.log(3.0))
    assert torch.equal(cet.n_hid, before)
    assert cet(scores, b).item() < math.log(3.0)  # after warmup, weights < 1


def test_guards_clip_propensity_and_weights():
    cet = make(SoftmaxCELoss(), propensity=0.0, min_weight=0.4)
    assert torch.allclose(cet.propensity(), torch.full((cet.n_buckets,), 0.05))
    scores = torch.tensor([[0.0, 10.0]], requires_grad=True)  # p_r ~ 1 -> w ~ 0 -> clipped to 0.4
    cet(scores, batch([["p", "a"]]))
    assert cet.last["debias/weight_min"] == pytest.approx(0.4) and cet.last["debias/clipped_share"] == 1.0


def test_checkpointed_state_is_the_selection_model():
    cet = make(SoftmaxCELoss(), propensity=0.7)
    state = cet.state_dict()
    assert set(state) == {"n_pos", "n_hid", "steps"}
    other = CET(depth=8)
    other.load_state_dict(state)
    assert torch.allclose(other.propensity(), cet.propensity())


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="loss=ranknet cannot use them") as e:
        CET().bind(RankNetLoss(), {}, None)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="decay"):
        CET(decay=0.0)
    with pytest.raises(ConfigError, match="min_weight"):
        CET(min_weight=1.5)


# ------------------------------------------------------------- selection=model: the authors' released CET
class _TableScorer(torch.nn.Module):
    """A stand-in cross-encoder: the score of a pair is a learnable number per first token id."""

    def __init__(self, values):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(values))

    def forward(self, input_ids, attention_mask):
        return self.table[input_ids[:, 0]]


def _coupled(values, **kw):
    from types import SimpleNamespace

    cet = CET(selection="model", ratio=10.0, **kw)
    cet.bind(SoftmaxCELoss(), {}, None, module=SimpleNamespace(encoder=_TableScorer(values), length_buckets=1))
    b = batch([["p", "a", "b"]])
    b.inputs = {"input_ids": torch.tensor([[0], [1], [2]]), "attention_mask": torch.ones(3, 1, dtype=torch.long)}
    return cet, b


def test_authors_weight_and_pair_loss_by_hand():
    # (A1) 1 / (1 - sigmoid(x / rho)) = 1 + exp(x / rho): x = 0 -> 2, x = rho ln 3 -> 4; clipped at max_weight
    x = torch.tensor([0.0, 10.0 * math.log(3.0)])
    assert ipw_weight(x, 10.0).tolist() == pytest.approx([2.0, 4.0])
    assert ipw_weight(x, 10.0, max_weight=3.0).tolist() == pytest.approx([2.0, 3.0])
    assert 1.0 / (1.0 - torch.sigmoid(x / 10.0)) == pytest.approx(ipw_weight(x, 10.0), rel=1e-5)
    # (A2) pairwise softmax CE: equal scores -> ln 2; negative ln 3 below -> ln(1 + 1/3)
    got = pair_losses(torch.tensor([[1.0, 1.0, 1.0 - math.log(3.0)]]))
    assert got[0].tolist() == pytest.approx([math.log(2.0), math.log(4.0 / 3.0)])


def test_coupled_losses_by_hand_each_model_weighted_by_the_other():
    ln3 = math.log(3.0)
    cet, b = _coupled([0.0, 0.0, 10.0 * ln3])  # selection model o = (0, 0, 10 ln 3) -> relevance weights (2, 4)
    f = torch.tensor([[2.0, 2.0, 2.0 - ln3]], requires_grad=True)  # relevance model
    loss = cet(f, b)
    w_s = [1.0 + math.exp(2.0 / 10.0), 1.0 + math.exp((2.0 - ln3) / 10.0)]  # selection weights from f
    l_r = (2.0 * math.log(2.0) + 4.0 * math.log(4.0 / 3.0)) / 2.0
    l_s = (w_s[0] * math.log(2.0) + w_s[1] * math.log(1.0 + 3.0 ** 10)) / 2.0
    assert loss.item() == pytest.approx(l_r + l_s, rel=1e-5)
    assert cet.last["debias/relevance_loss"] == pytest.approx(l_r, rel=1e-5)
    loss.sum().backward()
    # the weights carry no gradient: d/df1 = w_r1 * sigmoid(f1 - f0) / n = 2 * 0.5 / 2
    assert f.grad[0, 1].item() == pytest.approx(0.5, rel=1e-5)
    # and the selection model learns from its own weighted loss: d/do1 = w_s1 * 0.5 / 2
    assert cet.selector.table.grad[1].item() == pytest.approx(w_s[0] * 0.25, rel=1e-5)


def test_coupled_guard_warmup_and_checkpointed_selector():
    cet, b = _coupled([0.0, 0.0, 10.0 * math.log(3.0)], max_weight=3.0, warmup_steps=1)
    f = torch.tensor([[2.0, 2.0, 2.0]], requires_grad=True)
    first = cet(f, b)  # warmup: both models unweighted: ln 2 each pair, both models
    assert first.item() == pytest.approx(math.log(2.0) + (math.log(2.0) + math.log(1.0 + 3.0 ** 10)) / 2.0, rel=1e-5)
    cet(f, b)
    assert cet.last["debias/weight_max"] == pytest.approx(3.0)  # 4 clipped to 3
    assert cet.last["debias/clipped_share"] == pytest.approx(0.25)  # 1 of 2 relevance weights, 0 of 2 selection ones
    assert {"selector.table", "steps"} <= set(cet.state_dict())


def test_selection_model_settings_are_one_line_errors():
    from types import SimpleNamespace

    with pytest.raises(ConfigError, match="needs loss=listwise, not loss=pointwise") as e:
        CET(selection="model").bind(BCELoss(), {}, None, module=SimpleNamespace(encoder=_TableScorer([0.0])))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="selection='observer'"):
        CET(selection="observer")
    with pytest.raises(ConfigError, match="max_weight"):
        CET(max_weight=0.5)


@pytest.mark.parametrize("model", ["tiny", "tiny_bi"])
def test_train_authors_cet_end_to_end(vaswani_slice, tmp_path, model):
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, model=model, debias="cet", **{
        "debias.selection": "model", "trainer.max_steps": 2, "train.val_every_n_steps": 2,
        "data.pooling": "{system: random, hide: 0.5, seed: 1}", "train.keep_last_checkpoint": True}))
    res = api.train(cfg)
    d = res.metrics["debias"]
    assert d["method"] == "cet" and d["selection"] == "model" and "propensity" not in d and d["steps"] == 2
    assert set(d["separation"]) == {"cet", "relevance"}
    assert d["final"]["pairs"] > 0 and set(d["final"]) >= {"relevance", "cet"}
    state = torch.load(res.path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    sel = {k for k in state if k.startswith("loss_fn.selector.")}
    assert sel and {k.replace("loss_fn.selector.", "encoder.", 1) for k in sel} <= set(state)
    # the selection model trained beside the relevance model (it started as its copy, with its own head)
    assert model == "tiny_bi" or any(not torch.equal(state[k], state[k.replace("loss_fn.selector.", "encoder.", 1)]) for k in sel)


def test_auc_and_precision_by_hand():
    assert roc_auc([True, False, True, False], [0.9, 0.8, 0.3, 0.1]) == 0.75
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    assert roc_auc([True, True], [0.1, 0.2]) is None
    assert precision_at([True, False, True, False], [0.9, 0.8, 0.3, 0.1], 2) == 0.5


@pytest.mark.parametrize("model", ["tiny", "tiny_bi"])
def test_train_cet_under_pooling_bias_end_to_end(vaswani_slice, tmp_path, model):
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, model=model, debias="cet", **{
        "trainer.max_steps": 4, "train.val_every_n_steps": 2, "data.pooling": "{system: random, hide: 0.5, seed: 1}",
        "train.keep_last_checkpoint": True, "trainer.log_every_n_steps": 2}))
    res = api.train(cfg)
    # the weights' and propensities' histograms over training, in history.jsonl (drawn at steps 1, 2, 4): every
    # weight of every step drawn once
    hists = [r for r in map(json.loads, (res.path / "history.jsonl").read_text().splitlines()) if "hist/debias/weight" in r]
    assert [r["step"] for r in hists] == [1, 2, 4]
    assert sum(r["hist/debias/weight"]["n"] for r in hists) == 4 * 4 * 2  # steps x batch x negatives
    for r in hists:
        for name in ("hist/debias/weight", "hist/debias/propensity"):
            h = r[name]
            assert sum(h["counts"]) == h["n"] and len(h["edges"]) == len(h["counts"]) + 1
        assert 0.0 <= r["hist/debias/weight"]["edges"][0] and r["hist/debias/weight"]["edges"][-1] <= 1.0
    d = res.metrics["debias"]
    # steps and propensity are the selected checkpoint's (best dev: step 2 or 4)
    assert d["method"] == "cet" and d["steps"] in (2, 4) and len(d["propensity"]) == 11
    assert 0.0 <= d["hidden_share_of_negatives"] <= 1.0
    assert d["seen"] == 4 * 4 * 2  # steps x batch x negatives
    assert set(d["separation"]) == {"cet", "relevance"}
    # the selected model over the distinct unlabeled documents of the training pool
    assert 0 < d["final"]["pairs"] <= d["negatives"] and set(d["final"]) >= {"relevance", "cet", "hidden"}
    state = torch.load(res.path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert {"loss_fn.n_pos", "loss_fn.n_hid", "loss_fn.steps"} <= set(state)
    assert json.loads((res.path / "pooling.json").read_text())["hidden"] > 0


def test_cet_refuses_a_loss_it_cannot_use_before_training(vaswani_slice, tmp_path):
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, debias="cet", loss="pairwise"))
    with pytest.raises(ConfigError, match="debias=cet corrects"):
        api.train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["buckets", "model"])
def test_cet_run_cut_by_sigterm_resumes_exactly(vaswani_slice, tmp_path, monkeypatch, selection):
    """SIGTERM mid-interval (step 5 of 8): the selection model's counts resume from last.ckpt with the
    relevance model, and the re-run's run.trec and propensities equal an uninterrupted run's."""
    import os
    import signal

    from rankexp import api
    from rankexp.models.module import RankingModule
    from rankexp.tracking import lifecycle as lc

    ovr = {"debias": "cet", "debias.selection": selection, "data.pooling": "{system: random, hide: 0.5, seed: 1}",
           "trainer.max_steps": 8, "train.val_every_n_steps": 4}
    ref = api.train(api.compose(fast_overrides(vaswani_slice, tmp_path / "ref", **ovr)))
    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path / "cut", **ovr))
    original, sent = RankingModule.training_step, []

    def step(self, batch, batch_idx):
        out = original(self, batch, batch_idx)
        if self.global_step == 5 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(RankingModule, "training_step", step)
    with pytest.raises(lc.Interrupted):
        api.train(cfg)
    state = torch.load(api.rundir_for(cfg).checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert 5 <= state["global_step"] < 8 and int(state["state_dict"]["loss_fn.steps"]) == state["global_step"]
    monkeypatch.setattr(RankingModule, "training_step", original)
    res = api.train(cfg)
    assert (res.path / "run.trec").read_text() == (ref.path / "run.trec").read_text()
    assert res.metrics["debias"].get("propensity") == ref.metrics["debias"].get("propensity")


@pytest.mark.parametrize("extra, says", [
    ({"loss": "margin"}, "loss=margin cannot use them"),
    ({"distill": "kl", "distill.teacher.run": "/nonexistent.trec"}, "cannot be combined with distill=kl"),
])
def test_cet_refuses_what_it_cannot_correct_before_any_data_work(vaswani_slice, tmp_path, extra, says):
    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path, debias="cet", **extra), validate=False)
    with pytest.raises(ConfigError, match=says) as e:
        api.train(cfg)
    assert "\n" not in str(e.value)
    assert not (api.rundir_for(cfg).path / "split.json").exists()  # before the collection was read


def test_in_batch_negatives_dropped_by_cet_is_said(caplog):
    """A bi-encoder with in_batch=true under debias=cet trains on its groups only: one warning says so (a
    silent fallback would let a naive in-batch run vs a CET run be read as CET's effect). The warning and
    the training step read the same rule (BiEncoderModule.uses_in_batch / in_batch_dropped)."""
    from test_hard_negatives import TINY

    from rankexp.models.biencoder import BiEncoder
    from rankexp.models.bimodule import BiEncoderModule
    from rankexp.pipeline.build import warn_in_batch_dropped

    torch.manual_seed(0)
    bi = BiEncoder(max_length=16, max_query_length=8, tiny=TINY, in_batch=True)
    cet_module = BiEncoderModule(bi, CET(selection="model"), length_buckets=1)
    with caplog.at_level("WARNING", logger="rankexp.pipeline.build"):
        assert warn_in_batch_dropped(cet_module)
    assert len(caplog.records) == 1 and "in_batch=true is ignored" in caplog.records[0].getMessage()
    assert "cet" in caplog.records[0].getMessage()
    assert not cet_module.uses_in_batch
    caplog.clear()
    listwise = BiEncoderModule(bi, SoftmaxCELoss(), length_buckets=1)
    assert listwise.uses_in_batch and not listwise.in_batch_dropped
    off = BiEncoderModule(BiEncoder(max_length=16, max_query_length=8, tiny=TINY, in_batch=False), CET(), length_buckets=1)
    with caplog.at_level("WARNING", logger="rankexp.pipeline.build"):
        assert not warn_in_batch_dropped(listwise)
        assert not warn_in_batch_dropped(off)
        assert not warn_in_batch_dropped(SimpleNamespace(encoder=bi, loss_fn=RankNetLoss()))  # not a bi-encoder module
    assert not caplog.records


# ------------------------------------------------------------- weight/propensity histograms to the loggers
def test_histogram_values_are_the_weights_applied():
    # buckets: p_r = 0.5, 0.25 at propensity 0.5 -> w = 2/3, 6/7 (test_listwise_loss_by_hand); p_s = 0.5 each
    cet = make(SoftmaxCELoss(), propensity=0.5)
    cet(torch.tensor([[2.0, 2.0, 2.0 - math.log(3.0)]], requires_grad=True), batch([["p", "a", "b"]]))
    cet(torch.tensor([[0.0, 10.0]], requires_grad=True), batch([["p", "a"]]))  # p_r ~ 1 -> w ~ 0
    got = cet.drain_histograms()
    assert set(got) == {"debias/weight", "debias/propensity"}
    assert len(got["debias/propensity"]) == 3 and got["debias/propensity"][:2].tolist() == pytest.approx([0.5, 0.5])
    p_s = got["debias/propensity"][2]  # after the first step's M-step
    assert 0.05 <= p_s < 1.0
    expected = [2 / 3, 6 / 7, float(true_negative_weight(torch.sigmoid(torch.tensor(10.0)), p_s))]
    assert got["debias/weight"].tolist() == pytest.approx(expected, rel=1e-5)
    assert cet.drain_histograms() == {}  # drained
    # model: the relevance weights (2, 4) from o and the selection weights from f (test_coupled_losses_by_hand)
    ln3 = math.log(3.0)
    cet, b = _coupled([0.0, 0.0, 10.0 * ln3])
    cet(torch.tensor([[2.0, 2.0, 2.0 - ln3]], requires_grad=True), b)
    got = cet.drain_histograms()
    assert got["debias/weight"].tolist() == pytest.approx([2.0, 4.0], rel=1e-5)
    assert got["debias/selection_weight"].tolist() == pytest.approx([1 + math.exp(0.2), 1 + math.exp((2 - ln3) / 10)], rel=1e-5)
    # bounded between drawings
    cet.hist_max = 3
    for _ in range(3):
        cet(torch.tensor([[2.0, 2.0, 2.0 - ln3]], requires_grad=True), b)
    assert len(cet.drain_histograms()["debias/weight"]) == 3


def test_histogram_bins_and_wandb_payload(tmp_path, monkeypatch):
    from rankexp.tracking.loggers import histogram, log_histograms

    h = histogram([0.0, 0.1, 0.1, 0.9, 1.0], bins=4)  # equal-width bins over [0, 1]: [0, .25) [.25, .5) [.5, .75) [.75, 1]
    assert h["edges"] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0]) and h["counts"] == [3, 0, 0, 2]
    assert h["n"] == 5 and h["mean"] == pytest.approx(0.42)
    one = histogram([2.0, 2.0])
    assert one["counts"] == [2] and one["edges"] == pytest.approx([1.5, 2.5])
    # W&B: the histogram is drawn as a wandb.Histogram at the step; other loggers take none
    import wandb
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    logged = []
    wl = WandbLogger(project="t", save_dir=str(tmp_path), offline=True)
    monkeypatch.setattr(wl, "log_metrics", lambda metrics, step=None: logged.append((metrics, step)))
    assert log_histograms(wl, {"debias/weight": h}, step=7)
    (metrics, step), = logged
    assert step == 7 and isinstance(metrics["debias/weight"], wandb.Histogram)
    assert list(metrics["debias/weight"].histogram) == [3, 0, 0, 2]
    assert not log_histograms(CSVLogger(str(tmp_path)), {"debias/weight": h}, step=7)


def test_study_arms_are_the_plain_overrides():
    """experiment=cet_bm25's arms (+cet_arm=...) and debias=cet_model compose to exactly the configs (the run
    ids) of the plain overrides they stand for, so runs made either way are shared."""
    from rankexp import api
    from rankexp.config.compose import run_id

    base = ["experiment=cet_bm25", "data.pooling={system:bm25,depth:50}", "seed=2"]
    plain = {"naive": ["debias=none", "negatives.skip_top=0"], "skip5": ["debias=none", "negatives.skip_top=5"],
             "cet": ["debias=cet"], "cet_model": ["debias=cet", "debias.selection=model"]}
    ids = {}
    for arm, ovr in plain.items():
        ids[arm] = run_id(api.compose([*base, f"+cet_arm={arm}"]))
        assert ids[arm] == run_id(api.compose([*base, *ovr])), arm
    assert len(set(ids.values())) == 4
    cfg = api.compose([*base, "+cet_arm=cet_model"])
    assert cfg.debias.selection == "model" and cfg.negatives.skip_top == 0 and not cfg.model.encoder.in_batch


def test_final_separation_over_the_training_pool_by_hand():
    """The selected model's estimates over the distinct unlabeled training documents: relative to the query's
    positives, in the loss's units; AUC against the hidden set computed by hand."""
    from types import SimpleNamespace

    from rankexp.debias.diagnostics import final_separation, relative_estimates, training_pool

    groups = [SimpleNamespace(qid="q0", doc_ids=["p", "a", "b"]), SimpleNamespace(qid="q0", doc_ids=["p2", "a", "c"]),
              SimpleNamespace(qid="q1", doc_ids=["r", "x", "y"])]
    pos, negs = training_pool(groups)
    assert pos == {"q0": {"p", "p2"}, "q1": {"r"}} and negs == [("q0", "a"), ("q0", "b"), ("q0", "c"), ("q1", "x"), ("q1", "y")]
    run = {"q0": {"p": 3.0, "p2": 1.0, "a": 2.0, "b": 0.0, "c": 4.0}, "q1": {"r": 0.0, "x": -1.0, "y": 1.0}}
    # q0's positives average 2: a -> sigmoid(0) = 0.5, b -> sigmoid(-2), c -> sigmoid(2); at scale 2 halve the gaps
    got = relative_estimates(run, pos, negs, 1.0)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert got == pytest.approx([0.5, sig(-2), sig(2), sig(-1), sig(1)])
    assert relative_estimates(run, pos, negs, 2.0) == pytest.approx([0.5, sig(-1), sig(1), sig(-0.5), sig(0.5)])

    class Scorer:  # the crafted run, whatever the encoder
        def score_candidates(self, encoder, texts, pairs, *a, **k):
            return {q: {d: run[q][d] for qq, d in pairs if qq == q} for q in {q for q, _ in pairs}}

    prep = SimpleNamespace(scorer=Scorer(), texts=None, device="cpu", cfg=SimpleNamespace(eval=SimpleNamespace(batch_size=8)))
    hidden = {"q0": {"c"}, "q1": {"y"}}  # the two highest estimates are the hidden ones: AUC 1
    module = SimpleNamespace(encoder=torch.nn.Linear(1, 1))  # a cross-encoder stand-in: raw scores are the loss's units
    out = final_separation(prep, SimpleNamespace(groups=groups), module, None, hidden)
    assert out["pairs"] == 5 and out["hidden"] == 2 and out["relevance"]["roc_auc"] == 1.0
    assert out["relevance"]["r_precision"] == 1.0 and "cet" not in out
    # buckets: p_s from the final propensities by BM25 rank; (C3) p_r (1 - p_s) / (1 - p_r p_s)
    cet = make(SoftmaxCELoss(), propensity=0.5, ranks={"q0": {"c": 3.0, "a": 2.0, "b": 1.0}})
    cet.n_pos[bucket_of(1, cet.n_buckets)] = 1.0  # c (BM25 rank 1) surely selected: p_s = 1 -> posterior 0
    cet.n_hid[bucket_of(1, cet.n_buckets)] = 0.0
    out = final_separation(prep, SimpleNamespace(groups=groups), module, cet, hidden)
    # estimates: a 0.5*0.5/(1-0.25)=1/3, b small, c 0, x small, y sig(1)*0.5/(1-sig(1)*0.5): hidden c is now lowest
    # pairs (hidden, true): (c, a) (c, b) (c, x) lose; (y, a) (y, b) (y, x) win -> 3 of 6
    assert out["cet"]["roc_auc"] == pytest.approx(0.5)
