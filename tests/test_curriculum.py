"""Curriculum weighting (MacAvaney et al., SIGIR 2020): heuristics, schedule, weighter, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rankexp.techniques.base import UniformWeighter
from rankexp.techniques.curriculum import CurriculumWeighter, kdescore, normscore, reciprank, schedule

# q1: ranks d1=1, d2=2, d3=3, d4=4; scores min 2, max 10 (range 8). d9 is relevant but not retrieved.
# q2: e1 and e2 tie at 5.0: trec_eval breaks ties by doc id descending -> e2 rank 1, e1 rank 2.
#     e8 is judged non-relevant and not retrieved.
# q3: one document, no qrels at all.
RUN = {
    "q1": {"d1": 10.0, "d2": 8.0, "d3": 6.0, "d4": 2.0},
    "q2": {"e1": 5.0, "e2": 5.0, "e3": 1.0},
    "q3": {"f1": 3.0},
}
QRELS = {"q1": {"d2": 1, "d3": 0, "d4": 2, "d9": 1}, "q2": {"e2": 1, "e8": 0}}
CONF = Path(__file__).resolve().parents[1] / "rankexp" / "conf" / "curriculum"


def test_reciprank_hand_values():
    d = reciprank(RUN, QRELS)
    assert d["q1"]["d1"] == pytest.approx(0.0)        # non-relevant at rank 1: 1 - 1/1
    assert d["q1"]["d2"] == pytest.approx(0.5)        # relevant at rank 2: 1/2
    assert d["q1"]["d3"] == pytest.approx(2 / 3)      # grade 0 at rank 3: 1 - 1/3
    assert d["q1"]["d4"] == pytest.approx(0.25)       # relevant (grade 2) at rank 4: 1/4
    assert d["q1"]["d9"] == 0.0                       # relevant, not retrieved: r -> inf, 1/r -> 0
    assert d["q2"]["e2"] == pytest.approx(1.0)        # tie broken by doc id descending: rank 1
    assert d["q2"]["e1"] == pytest.approx(0.5)        # non-relevant at rank 2: 1 - 1/2
    assert d["q2"]["e3"] == pytest.approx(2 / 3)      # 1 - 1/3
    assert d["q2"]["e8"] == 1.0                       # judged non-relevant, not retrieved: 1 - 0
    assert d["q3"]["f1"] == pytest.approx(0.0)        # unjudged = non-relevant at rank 1


def test_normscore_hand_values():
    d = normscore(RUN, QRELS)
    assert d["q1"]["d1"] == pytest.approx(0.0)        # S' = (10-2)/8 = 1; non-relevant: 1 - 1
    assert d["q1"]["d2"] == pytest.approx(0.75)       # S' = (8-2)/8 = 0.75; relevant
    assert d["q1"]["d3"] == pytest.approx(0.5)        # S' = (6-2)/8 = 0.5; non-relevant: 1 - 0.5
    assert d["q1"]["d4"] == pytest.approx(0.0)        # S' = 0; relevant
    assert d["q1"]["d9"] == 0.0
    assert d["q2"]["e1"] == pytest.approx(0.0)        # S' = (5-1)/4 = 1; non-relevant
    assert d["q2"]["e2"] == pytest.approx(1.0)        # S' = 1; relevant
    assert d["q2"]["e3"] == pytest.approx(1.0)        # S' = 0; non-relevant: 1 - 0
    assert d["q3"]["f1"] == pytest.approx(0.0)        # max == min -> S' = 1; non-relevant


def _kde(samples, x):
    # Gaussian KDE with Scott's rule written out: h^2 = n^(-2/5) * var(samples, ddof=1),
    # f(x) = 1/n * sum_i exp(-(x - x_i)^2 / (2 h^2)) / sqrt(2 pi h^2)
    n = len(samples)
    mean = sum(samples) / n
    h2 = n ** (-0.4) * sum((s - mean) ** 2 for s in samples) / (n - 1)
    return sum(math.exp(-(x - s) ** 2 / (2 * h2)) for s in samples) / (n * math.sqrt(2 * math.pi * h2))


def test_kdescore_hand_values():
    # Fit on queries with a relevant document (q1, q2; q3 has none). S' values:
    #   relevant:     d2 0.75, d4 0.0, e2 1.0           -> mean 7/12, var = 39/144, h^2 = 3^-0.4 * 39/144 = 0.17452
    #   non-relevant: d1 1.0, d3 0.5, e1 1.0, e3 0.0    -> mean 5/8,  var = 11/48,  h^2 = 4^-0.4 * 11/48  = 0.13162
    rel, non = [0.75, 0.0, 1.0], [1.0, 0.5, 1.0, 0.0]
    p = lambda x: _kde(rel, x) / (_kde(rel, x) + _kde(non, x))  # share of the density that is relevant
    d = kdescore(RUN, QRELS)
    # f_rel(0.75) = 0.64798, f_non(0.75) = 0.68287 -> d2 (relevant) D = 0.64798 / 1.33085 = 0.48689
    assert d["q1"]["d2"] == pytest.approx(p(0.75), abs=1e-9)
    assert d["q1"]["d2"] == pytest.approx(0.48689, abs=1e-5)
    assert d["q1"]["d1"] == pytest.approx(1 - p(1.0), abs=1e-9)   # non-relevant: its own class's share
    assert d["q1"]["d3"] == pytest.approx(1 - p(0.5), abs=1e-9)
    assert d["q1"]["d4"] == pytest.approx(p(0.0), abs=1e-9)
    assert d["q2"]["e2"] == pytest.approx(p(1.0), abs=1e-9)
    assert d["q3"]["f1"] == pytest.approx(1 - p(1.0), abs=1e-9)   # not fitted on, but scored
    assert d["q1"]["d9"] == 0.0 and d["q2"]["e8"] == 1.0           # absent from the run


def test_kdescore_separates_typical_from_atypical():
    # relevant documents score high in every query, non-relevant low: a relevant doc at the top is
    # typical (easy, D > 0.5); the relevant doc at the bottom of q3 is atypical (hard, D < 0.5).
    run = {f"q{i}": {"r": 10.0, "r2": 9.5, "n1": 2.0, "n2": 1.0, "n3": 0.0} for i in range(3)}
    run["q3"] = {"n1": 10.0, "n2": 9.0, "r": 0.0}
    qrels = {q: {"r": 1, "r2": 1} for q in run}
    d = kdescore(run, qrels)
    assert d["q0"]["r"] > 0.75 and d["q0"]["n3"] > 0.75
    assert d["q3"]["r"] < 0.25 and d["q3"]["n1"] < 0.25


def test_kdescore_grid_matches_exact(monkeypatch):
    import random

    import rankexp.techniques.curriculum as cur

    rng = random.Random(0)
    run = {f"q{i}": {f"d{j}": rng.uniform(0, 20) for j in range(30)} for i in range(10)}
    qrels = {q: {d: 1 for d in sorted(docs, key=docs.get)[-3:]} for q, docs in run.items()}
    exact = kdescore(run, qrels)
    monkeypatch.setattr(cur, "KDE_EXACT_LIMIT", 0)  # force the grid path
    grid = kdescore(run, qrels)
    for q in run:
        for d in run[q]:
            assert grid[q][d] == pytest.approx(exact[q][d], abs=1e-4)


def test_kdescore_subsampled_fit_matches_full(monkeypatch):
    import random

    import rankexp.techniques.curriculum as cur

    rng = random.Random(1)
    run = {f"q{i}": {f"d{j}": rng.gauss(10, 3) for j in range(60)} for i in range(10)}
    qrels = {q: {d: 1 for d in sorted(docs, key=docs.get)[-5:]} for q, docs in run.items()}
    full = kdescore(run, qrels)
    monkeypatch.setattr(cur, "KDE_MAX_SAMPLES", 100)  # 550 non-relevant scores -> 100 order statistics
    sub = kdescore(run, qrels)
    for q in run:
        for d in run[q]:
            assert sub[q][d] == pytest.approx(full[q][d], abs=0.02)


def test_kdescore_falls_back_to_normscore_with_one_relevant():
    qrels = {"q1": {"d2": 1}}  # one relevant score in total: no KDE for that class
    assert kdescore(RUN, qrels) == normscore(RUN, qrels)


@pytest.mark.parametrize("d", [0.0, 0.25, 0.8, 1.0])
def test_schedule_values(d):
    m, t = 10, torch.tensor([d])
    assert schedule(t, 0, m).item() == pytest.approx(d)                    # i = 0: W = D
    assert schedule(t, 5, m).item() == pytest.approx(d + (1 - d) * 0.5)    # i = m/2: halfway to 1
    assert schedule(t, 10, m).item() == pytest.approx(1.0)                 # i = m: curriculum over
    assert schedule(t, 20, m).item() == pytest.approx(1.0)                 # i = 2m


def _weighter(**kw):
    w = CurriculumWeighter(**{"heuristic": "reciprank", "m_steps": 10, **kw})
    w.setup(RUN, QRELS, max_steps=100)
    return w


# reciprank group D = (D(d+) + min_j D(d-_j)) / 2:
#   (q1, [d2, d1, d3]): (0.5 + min(0, 2/3)) / 2 = 0.25
#   (q2, [e2, e3]):     (1 + 2/3) / 2 = 5/6
#   (q1, [d9, d3]):     d9 not retrieved -> 0; (0 + 2/3) / 2 = 1/3
#   (q1, [d4]):         a group of one (pointwise): D(d4) = 0.25
QIDS = ["q1", "q2", "q1", "q1"]
GROUPS = [["d2", "d1", "d3"], ["e2", "e3"], ["d9", "d3"], ["d4"]]
D = [0.25, 5 / 6, 1 / 3, 0.25]


def test_weighter_weights_follow_schedule():
    w = _weighter()
    for step, expect in [(0, D), (5, [d + (1 - d) * 0.5 for d in D]), (10, [1.0] * 4), (20, [1.0] * 4)]:
        out = w(QIDS, GROUPS, step)
        assert out.shape == (4,) and out.dtype == torch.float32
        assert (out >= 0).all()
        assert out.tolist() == pytest.approx(expect, abs=1e-6)


def test_weighter_documents_absent_from_run():
    w = _weighter()
    # "zz" is in neither run nor qrels: an unjudged, unretrieved negative -> D = 1; (0.5 + 1) / 2
    assert w(["q1"], [["d2", "zz"]], 0).item() == pytest.approx(0.75)
    # a positive the first stage never retrieved, for a query it never saw: hardest, D = 0
    assert w(["q9"], [["x"]], 0).item() == 0.0


def test_anti_mirrors_curriculum():
    cur, anti = _weighter(), _weighter(anti=True)
    assert anti(QIDS, GROUPS, 0).tolist() == pytest.approx([1 - d for d in D], abs=1e-6)
    for step in (0, 3, 5, 9):
        p = step / 10
        # W + W_anti = D + (1-D)p + (1-D) + Dp = 1 + p
        total = cur(QIDS, GROUPS, step) + anti(QIDS, GROUPS, step)
        assert total.tolist() == pytest.approx([1 + p] * 4, abs=1e-6)
    assert anti(QIDS, GROUPS, 10).tolist() == pytest.approx([1.0] * 4)


def test_m_fraction_of_max_steps():
    w = CurriculumWeighter("reciprank", m_fraction=0.3)
    w.setup(RUN, QRELS, max_steps=100)                       # m = 30
    assert w.m == 30
    assert w(["q1"], [["d2", "d1"]], 15).item() == pytest.approx(0.25 + 0.75 * 0.5)
    both = CurriculumWeighter("reciprank", m_steps=4, m_fraction=0.3)
    both.setup(RUN, QRELS, max_steps=100)
    assert both.m == 4                                       # m_steps takes precedence


@pytest.mark.parametrize("heuristic", ["normscore", "kdescore"])
def test_other_heuristics_nonnegative_in_range(heuristic):
    w = _weighter(heuristic=heuristic)
    out = w(QIDS, GROUPS, 3)
    assert out.shape == (4,) and (out >= 0).all() and (out <= 1).all()


@pytest.mark.parametrize("kw, word", [
    ({"heuristic": "bm25rank", "m_steps": 5}, "reciprank, normscore, kdescore"),
    ({"heuristic": "reciprank", "m_steps": 5, "application": "query"}, "example, batch"),
    ({"heuristic": "reciprank"}, "m_steps"),
    ({"heuristic": "reciprank", "m_fraction": 1.5}, "m_fraction"),
    ({"heuristic": "reciprank", "m_steps": 0}, "m_steps"),
])
def test_bad_arguments_raise(kw, word):
    with pytest.raises(ValueError, match=word):
        CurriculumWeighter(**kw)


def test_call_before_setup_raises():
    with pytest.raises(RuntimeError, match="setup"):
        CurriculumWeighter("reciprank", m_steps=3)(["q1"], [["d2"]], 0)


def test_log_stats_mean_and_reset():
    w = _weighter()
    w(QIDS, GROUPS, 0)                     # D = 0.25, 5/6, 1/3, 0.25
    w(["q1"], [["d2", "d1", "d3"]], 10)    # 1.0
    stats = w.log_stats()
    assert stats["mean"] == pytest.approx((0.25 + 5 / 6 + 1 / 3 + 0.25 + 1.0) / 5)
    assert stats["min"] == pytest.approx(0.25) and stats["max"] == pytest.approx(1.0)
    assert stats["p50"] == pytest.approx(1 / 3)
    assert w.log_stats() == {}


def test_batch_application_attribute():
    assert _weighter(application="batch").application == "batch"
    assert _weighter().application == "example" and not _weighter().uniform


def test_configs_instantiate():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    assert isinstance(instantiate(OmegaConf.load(CONF / "none.yaml")), UniformWeighter)
    for name in ("reciprank", "normscore", "kdescore"):
        w = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
        assert isinstance(w, CurriculumWeighter) and w.heuristic == name and not w.anti
        assert w.m_fraction == 0.5 and w.application == "example"
    anti = instantiate(OmegaConf.load(CONF / "anti.yaml"))
    assert anti.anti and anti.heuristic == "reciprank"
