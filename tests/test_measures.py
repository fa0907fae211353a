"""Evaluation equals trec_eval semantics: hand-computed values and ir_measures/pytrec_eval on a real run."""

from __future__ import annotations

import math

import ir_measures
import pytest

from rankexp.errors import ConfigError, DataError
from rankexp.eval.measures import evaluate, parse_measures
from rankexp.eval.trec_io import read_run, write_run

QRELS = {"q1": {"d1": 1, "d3": 2, "d9": 0}, "q2": {"d2": 1}}
RUN = {
    # q1 ranking: d2 (nonrel), d3 (rel 2), d4 (unjudged), d1 (rel 1)
    "q1": {"d2": 4.0, "d3": 3.0, "d4": 2.0, "d1": 1.0},
    # q2 ranking: d5, d2 (rel at rank 2)
    "q2": {"d5": 2.0, "d2": 1.0},
}


def test_hand_computed_measures():
    ev = evaluate(RUN, QRELS, "nDCG@10 RR@10 AP R@100 P@2")
    # q1: RR = 1/2; AP = (1/2 + 2/4) / 2 = 0.5; R@100 = 2/2
    # nDCG@10 with gains = grades: DCG = 2/log2(3) + 1/log2(5); IDCG = 2/log2(2) + 1/log2(3)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    q1 = {"nDCG@10": dcg / idcg, "RR@10": 0.5, "AP": 0.5, "R@100": 1.0, "P@2": 0.5}
    # q2: RR = 1/2, AP = 1/2, nDCG = (1/log2(3)) / 1, P@2 = 1/2
    q2 = {"nDCG@10": 1 / math.log2(3), "RR@10": 0.5, "AP": 0.5, "R@100": 1.0, "P@2": 0.5}
    for m in q1:
        assert ev.perquery[m]["q1"] == pytest.approx(q1[m], abs=1e-9), m
        assert ev.perquery[m]["q2"] == pytest.approx(q2[m], abs=1e-9), m
        assert ev.aggregate[m] == pytest.approx((q1[m] + q2[m]) / 2, abs=1e-9), m
    assert ev.provider == "pytrec_eval"


def test_rr_cutoff_and_complete_semantics():
    run = {"q1": {f"x{i}": 100.0 - i for i in range(10)} | {"d1": 0.5}}  # first relevant at rank 11
    ev = evaluate(run, QRELS, ["RR@10", "RR"])
    assert ev.perquery["RR@10"]["q1"] == 0.0
    assert ev.perquery["RR"]["q1"] == pytest.approx(1 / 11)
    assert ev.num_queries == 1 and ev.missing_in_run == 1  # q2 absent: ignored, as trec_eval without -c
    full = evaluate(run, QRELS, ["RR"], complete=True)
    assert full.num_queries == 2 and full.perquery["RR"]["q2"] == 0.0
    assert full.aggregate["RR"] == pytest.approx(1 / 22)


def test_negative_grades_count_as_nonrelevant():
    # cranfield grades -1 as not relevant: binary measures need rel >= 1, nDCG gain 0
    qrels = {"q": {"a": -1, "b": 1}}
    ev = evaluate({"q": {"a": 2.0, "b": 1.0}}, qrels, ["RR", "nDCG@10"])
    assert ev.perquery["RR"]["q"] == 0.5
    assert ev.perquery["nDCG@10"]["q"] == pytest.approx(1 / math.log2(3))


def test_ties_written_in_trec_eval_order(tmp_path):
    # trec_eval breaks score ties by doc id descending: among equal scores "d9" ranks before "d10" ("d9" > "d10" as strings)
    run = {"q1": {"d1": 1.0, "d3": 1.0, "d9": 1.0, "d2": 1.0}}
    path = tmp_path / "run.trec"
    write_run(path, run)
    lines = path.read_text().split("\n")[:-1]
    assert [l.split()[2] for l in lines] == ["d9", "d3", "d2", "d1"]
    scores = [float(l.split()[4]) for l in lines]
    assert all(a > b for a, b in zip(scores, scores[1:])), "scores must be strictly decreasing"
    # the written file evaluates exactly like the tied run does under pytrec_eval
    tied = evaluate(run, QRELS, ["RR@10", "AP", "nDCG@10"])
    written = evaluate(read_run(path), QRELS, ["RR@10", "AP", "nDCG@10"])
    assert tied.aggregate == written.aggregate
    # the msmarco provider (ascending tie order) would disagree on the tied run, which is why we pin pytrec_eval
    assert written.perquery["RR@10"]["q1"] == pytest.approx(1 / 2)  # d3 at rank 2


def test_equals_ir_measures_on_real_vaswani_run(tmp_path):
    from rankexp.data.collection import load_local
    from rankexp.retrieval.bm25 import BM25
    from rankexp.tracking.cache import Cache
    from tests.conftest import DATA

    coll = load_local(DATA / "vaswani")
    run = BM25().retrieve(coll, Cache(tmp_path))
    measures = parse_measures("nDCG@10 RR@10 AP R@100 P@10")
    ours = evaluate(run, coll.qrels, measures)
    ref = ir_measures.pytrec_eval.calc_aggregate(measures, coll.qrels, run)
    for m in measures:
        assert ours.aggregate[str(m)] == pytest.approx(ref[m], abs=1e-12)
    # and the reference number in shared/data/vaswani/README.md for this BM25 setup (MAP 0.2891)
    assert ours.aggregate["AP"] == pytest.approx(0.2891, abs=6e-5)
    assert ours.aggregate["nDCG@10"] == pytest.approx(0.4449, abs=6e-5)


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown measure 'nDGC@10'"):
        parse_measures("nDGC@10")


def test_disjoint_qrels_is_a_clear_error():
    with pytest.raises(DataError, match="no query of the run has qrels"):
        evaluate({"zz": {"d": 1.0}}, QRELS, "AP")
