"""Curriculum weighting wired end to end: config -> weighter -> RankingModule loss -> history.jsonl.

Unit-level checks build a tiny random CrossEncoder and a hand-made batch; the end-to-end checks run
``api.train`` on the vaswani slice with the tiny model (6 steps) and read the run directory back.
"""

from __future__ import annotations

import copy
import json

import hydra.utils
import pytest
import torch

from rankexp import api
from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.models.batch import Batch
from rankexp.models.encoders import CrossEncoder
from rankexp.models.module import RankingModule
from rankexp.techniques.base import UniformWeighter
from rankexp.techniques.curriculum import CurriculumWeighter, schedule
from tests.conftest import fast_overrides
from tests.test_module import TINY, tiny_inputs

# A crafted first-stage run and qrels: two queries, four documents each (scores give the ranks).
RUN = {"a": {"a1": 3.0, "a2": 2.0, "a3": 1.0, "a4": 0.5},
       "b": {"b1": 5.0, "b2": 4.0, "b3": 3.0, "b4": 2.0}}
QRELS = {"a": {"a2": 1, "a1": 0}, "b": {"b1": 2}}
# Groups: positive first. a: a2 at rank 2; negatives a1 (rank 1), a3 (3), a4 (4).
#                         b: b1 at rank 1; negatives b3 (3), b4 (4), b2 (2).
BATCH_DOCS = [["a2", "a1", "a3", "a4"], ["b1", "b3", "b4", "b2"]]
# reciprank by hand: D(d+) = 1/r, D(d-) = 1 - 1/r, group D = (D(d+) + min_j D(d-_j)) / 2
D_RECIPRANK = torch.tensor([(1 / 2 + (1 - 1 / 1)) / 2, (1 / 1 + (1 - 1 / 2)) / 2])  # [0.25, 0.75]


def _encoder(dropout: float = 0.0) -> CrossEncoder:
    torch.manual_seed(0)
    return CrossEncoder(tiny=TINY, dropout=dropout, max_length=64, max_query_length=8)


def _batch() -> Batch:
    return Batch.of_groups(["a", "b"], BATCH_DOCS, inputs=tiny_inputs(n=8))


def _module(encoder, weighter) -> RankingModule:
    m = RankingModule(encoder, SoftmaxCELoss(), weighter=weighter)
    m.log = lambda *a, **k: None  # no trainer attached
    return m


def _composed_weighter(option: str):
    return hydra.utils.instantiate(api.compose([f"curriculum={option}"]).curriculum)


# ---------------------------------------------------------------- curriculum=none

def test_curriculum_none_is_bit_identical_to_no_weighting():
    none = _composed_weighter("none")
    assert isinstance(none, UniformWeighter) and none.uniform
    enc = _encoder(dropout=0.1).train()  # dropout on: both steps must draw the same masks
    plain, weighted = _module(enc, None), _module(copy.deepcopy(enc), none)
    batch = _batch()
    losses, grads = [], []
    for m in (plain, weighted):
        torch.manual_seed(123)
        loss = m.training_step(batch, 0)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert torch.equal(losses[0], losses[1])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
    assert none.log_stats() == {}  # nothing logged as train/weight_* for the baseline


# ---------------------------------------------------------------- weights reach the loss

def test_reciprank_weights_match_hand_computation_and_reach_the_loss():
    w = CurriculumWeighter("reciprank", m_steps=4)
    w.setup(RUN, QRELS, max_steps=100)
    for step in range(6):  # the weighter's output is the paper's W(q, d, i) on the hand-computed D
        expected = D_RECIPRANK + (1 - D_RECIPRANK) * min(step, 4) / 4
        assert torch.allclose(w(["a", "b"], BATCH_DOCS, step), expected, atol=1e-7), step
        assert torch.allclose(schedule(D_RECIPRANK, step, 4), expected, atol=1e-7)
    w.log_stats()  # drain: from here on it records only what training_step asked for

    enc = _encoder().eval()
    module = _module(enc, w)
    batch = _batch()
    with torch.no_grad():
        per = SoftmaxCELoss()(module(batch.inputs).view(2, 4))
        loss = module.training_step(batch, 0)  # global_step is 0 without a trainer
    weights = w.log_stats()  # the weighter's own record of what it returned in training_step
    assert weights["min"] == pytest.approx(0.25) and weights["max"] == pytest.approx(0.75)
    w_used = torch.tensor([weights["min"], weights["max"]])  # rows a, b
    assert torch.allclose(loss, (w_used * per).sum() / 2, atol=1e-6)
    assert not torch.allclose(loss, per.mean(), atol=1e-4)  # weighting changed the loss

    # application="batch": mean(w) * mean(loss)
    wb = CurriculumWeighter("reciprank", m_steps=4, application="batch")
    wb.setup(RUN, QRELS, max_steps=100)
    with torch.no_grad():
        loss_b = _module(enc, wb).training_step(batch, 0)
    assert torch.allclose(loss_b, D_RECIPRANK.mean() * per.mean(), atol=1e-6)


def test_anti_gives_other_weights_than_reciprank_on_the_same_batch():
    rr, anti = _composed_weighter("reciprank"), _composed_weighter("anti")
    assert isinstance(rr, CurriculumWeighter) and isinstance(anti, CurriculumWeighter) and anti.anti
    for w in (rr, anti):
        w.setup(RUN, QRELS, max_steps=10)  # m_fraction 0.5 -> m = 5
    w_rr, w_anti = rr(["a", "b"], BATCH_DOCS, 0), anti(["a", "b"], BATCH_DOCS, 0)
    assert torch.allclose(w_rr, D_RECIPRANK) and torch.allclose(w_anti, 1 - D_RECIPRANK)
    assert not torch.allclose(w_rr, w_anti)
    # and the difference reaches the loss
    enc = _encoder().eval()
    with torch.no_grad():
        l_rr = _module(enc, rr).training_step(_batch(), 0)
        l_anti = _module(enc, anti).training_step(_batch(), 0)
    assert not torch.allclose(l_rr, l_anti)
    # both end at W = 1
    assert torch.equal(rr(["a", "b"], BATCH_DOCS, 5), torch.ones(2))
    assert torch.equal(anti(["a", "b"], BATCH_DOCS, 5), torch.ones(2))


# ---------------------------------------------------------------- end to end through api.train

def _history(run_path) -> list[dict]:
    return [json.loads(l) for l in (run_path / "history.jsonl").read_text().splitlines() if l.strip()]


@pytest.fixture(scope="module")
def e2e_runs(vaswani_slice, tmp_path_factory):
    """Two runs with the same seed and output dir (shared cache): curriculum=reciprank (recording
    every call to the weighter) and curriculum=none."""
    out = tmp_path_factory.mktemp("curriculum_e2e")
    calls: list[tuple[list[str], list[list[str]], int, torch.Tensor, torch.Tensor]] = []
    original = CurriculumWeighter.__call__

    def recording(self, qids, doc_ids, step):
        w = original(self, qids, doc_ids, step)
        d = torch.tensor([self.easiness(q, docs) for q, docs in zip(qids, doc_ids)], dtype=torch.float32)
        calls.append((list(qids), [list(g) for g in doc_ids], int(step), d, w.clone()))
        return w

    extra = {"curriculum.m_fraction": 1.0, "trainer.log_every_n_steps": 1}
    mp = pytest.MonkeyPatch()
    mp.setattr(CurriculumWeighter, "__call__", recording)
    try:
        cur = api.train(api.compose(fast_overrides(vaswani_slice, out, curriculum="reciprank", **extra)))
    finally:
        mp.undo()
    # curriculum=none has no m_fraction (UniformWeighter takes no arguments)
    none = api.train(api.compose(fast_overrides(vaswani_slice, out, curriculum="none", **{"trainer.log_every_n_steps": 1})))
    return {"reciprank": cur, "none": none, "calls": calls}


def test_reciprank_run_logs_weights_that_follow_the_schedule(e2e_runs):
    res, calls = e2e_runs["reciprank"], e2e_runs["calls"]
    assert (res.path / "status").read_text().strip() == "complete"
    assert json.loads((res.path / "metrics.json").read_text())["train"]["preprocess_weights_s"] >= 0  # easiness tables timed
    max_steps, m = 6, 6  # fast_overrides: trainer.max_steps=6; m_fraction=1.0 -> m = 6
    # the weighter saw every optimizer step, in order, with the module's global_step
    assert [c[2] for c in calls] == list(range(max_steps))
    for qids, docs, step, d, w in calls:
        assert len(qids) == 4 and all(len(g) == 3 for g in docs)  # batch_size 4, 1 + 2 negatives
        assert torch.allclose(w, schedule(d.clamp(0, 1), step, m), atol=1e-6)
    recs = {r["step"]: r for r in _history(res.path) if "train/weight_mean" in r}
    # log_every_n_steps=1: one record per step; the record at step s holds the weights of step s-1
    assert sorted(recs) == list(range(1, max_steps + 1))
    for s, r in recs.items():
        w = calls[s - 1][4].double()
        assert r["train/weight_mean"] == pytest.approx(float(w.mean()), abs=1e-6)
        assert r["train/weight_min"] == pytest.approx(float(w.min()), abs=1e-6)
        assert r["train/weight_max"] == pytest.approx(float(w.max()), abs=1e-6)
        lower = float(schedule(torch.zeros(1), s - 1, m))  # W >= i/m whatever D is
        assert lower - 1e-6 <= r["train/weight_min"] <= r["train/weight_max"] <= 1.0 + 1e-6
        assert {"train/weight_p10", "train/weight_p50", "train/weight_p90"} <= r.keys()
    assert recs[1]["train/weight_mean"] < 1.0  # the curriculum is active at the start
    means = [recs[s]["train/weight_mean"] for s in sorted(recs)]
    assert means[-1] > means[0]
    # the gap to 1 shrinks as (1 - mean D)(1 - i/m): mean W = schedule(mean D, i, m)
    for s, r in recs.items():
        d_mean = calls[s - 1][3].clamp(0, 1).mean()
        assert r["train/weight_mean"] == pytest.approx(float(schedule(d_mean, s - 1, m)), abs=1e-5)


def test_reciprank_run_differs_from_none(e2e_runs):
    cur, none = e2e_runs["reciprank"], e2e_runs["none"]
    assert cur.run_id != none.run_id
    assert not any("train/weight_mean" in r for r in _history(none.path))  # uniform weights log nothing
    loss_cur = [r["train/loss"] for r in _history(cur.path) if "train/loss" in r]
    loss_none = [r["train/loss"] for r in _history(none.path) if "train/loss" in r]
    assert len(loss_cur) == len(loss_none) and loss_cur != loss_none
    sd_cur = torch.load(cur.path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    sd_none = torch.load(none.path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert sd_cur.keys() == sd_none.keys()
    assert any(not torch.equal(sd_cur[k], sd_none[k]) for k in sd_cur), "curriculum weighting was skipped"


# ---------------------------------------------------------------- curriculum.run_file

def _write_run(path, run):
    lines = [f"{q} Q0 {d} {r} {s} crafted" for q, docs in run.items()
             for r, (d, s) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), 1)]
    path.write_text("\n".join(lines) + "\n")


def test_load_run_file_restricts_to_training_queries_and_fails_in_one_line(tmp_path):
    from rankexp.errors import DataError
    from rankexp.techniques.curriculum import load_run_file

    f = tmp_path / "run.trec"
    _write_run(f, {"a": {"a1": 2.0, "zz": 1.0}, "b": {"b1": 1.0}, "other": {"a1": 5.0}})
    run = load_run_file(str(f), ["a", "b", "c"], {"a1", "b1"})
    assert run == {"a": {"a1": 2.0}, "b": {"b1": 1.0}}  # "other" is not a training query; "zz" not in the corpus
    for args, words in (((str(tmp_path / "missing.trec"), ["a"], {"a1"}), "not found"),
                        ((str(f), ["x", "y"], {"a1"}), "none of the 2 training query ids"),
                        ((str(f), ["a"], {"q"}), "no document id of the training queries is in the corpus")):
        with pytest.raises(DataError, match=words) as e:
            load_run_file(*args)
        assert "\n" not in str(e.value) and str(e.value).startswith("curriculum.run_file")
    bad = tmp_path / "bad.trec"
    bad.write_text("a Q0 a1 1\n")
    with pytest.raises(DataError, match="expected 6 columns"):
        load_run_file(str(bad), ["a"], {"a1"})
    with pytest.raises(ValueError, match="run_file not found"):  # at construction, before any work
        CurriculumWeighter("reciprank", m_fraction=0.5, run_file=str(tmp_path / "missing.trec"))


def test_run_file_replaces_the_first_stage_as_the_easiness_source(e2e_runs, vaswani_slice, tmp_path):
    """Same seed and batches as the BM25-based reciprank run; only the easiness source differs. The
    crafted run ranks every judged-relevant document of a query last, below its non-relevant ones."""
    from rankexp.data.collection import load_local
    from rankexp.techniques.curriculum import load_run_file

    coll = load_local(vaswani_slice, ["title", "text"])
    docs = sorted(coll.docs)
    crafted = {}
    for q, judged in coll.qrels.items():
        rel = [d for d, g in judged.items() if g >= 1 and d in coll.docs]
        non = [d for d in docs if d not in judged][:30]
        crafted[q] = {**{d: 100.0 - i for i, d in enumerate(non)}, **{d: 1.0 - 0.01 * i for i, d in enumerate(rel)}}
    f = tmp_path / "crafted.trec"
    _write_run(f, crafted)

    calls = []
    original = CurriculumWeighter.__call__

    def recording(self, qids, doc_ids, step):
        w = original(self, qids, doc_ids, step)
        calls.append((list(qids), [list(g) for g in doc_ids], int(step), w.clone()))
        return w

    out = tmp_path / "out"
    extra = {"curriculum.m_fraction": 1.0, "trainer.log_every_n_steps": 1, "curriculum.run_file": str(f)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CurriculumWeighter, "__call__", recording)
        res = api.train(api.compose(fast_overrides(vaswani_slice, out, curriculum="reciprank", **extra)))
    assert (res.path / "status").read_text().strip() == "complete"
    train_q = json.loads((res.path / "split.json").read_text())["train"]
    expected = CurriculumWeighter("reciprank", m_fraction=1.0)
    expected.setup(load_run_file(str(f), train_q, coll.docs.keys()), {q: coll.qrels[q] for q in train_q}, 6)
    bm25_calls = e2e_runs["calls"]
    assert [c[:3] for c in calls] == [c[:3] for c in bm25_calls]  # the same groups at the same steps
    for qids, groups, step, w in calls:
        assert torch.allclose(w, expected(qids, groups, step), atol=1e-7)
    # the crafted ranking puts every positive last: the first step's weights differ from BM25's
    assert not torch.allclose(calls[0][3], bm25_calls[0][4])
