"""Evaluation equals trec_eval semantics: hand-computed values, an independent brute-force
implementation of each measure on adversarial inputs, and ir_measures/pytrec_eval on a real run."""

from __future__ import annotations

import math
import random
import struct

import ir_measures
import pytest

from rankexp.errors import ConfigError, DataError
from rankexp.eval.measures import evaluate, parse_measures, provider_name
from rankexp.eval.trec_io import read_run, write_run


# --- an independent oracle: trec_eval's definitions, written from its documentation ------------


def _f32(x: float) -> float:
    """Round to single precision (trec_eval's TEXT_RESULTS.sim is a C float)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's comp_sim_docno: float32 score descending, then doc id descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda kv: (_f32(kv[1]), kv[0]), reverse=True)]


def _brute(measure: str, ranking: list[str], judged: dict[str, int]) -> float:
    """P@k, R@k, RR[@k], AP[@k], nDCG[@k], with an optional (rel=r), from their definitions."""
    name, _, cut = measure.partition("@")
    level = 1
    if "(rel=" in name:
        name, r = name.split("(rel=")
        level = int(r.rstrip(")"))
    k = int(cut) if cut else None
    top = ranking[:k] if k else ranking
    hit = [judged.get(d, 0) >= level for d in top]
    num_rel = sum(g >= level for g in judged.values())
    if name == "P":
        return sum(hit) / k
    if name == "R":
        return sum(hit) / num_rel if num_rel else 0.0
    if name == "RR":
        return next((1 / i for i, h in enumerate(hit, 1) if h), 0.0)
    if name == "AP":
        found, total = 0, 0.0
        for i, h in enumerate(hit, 1):
            if h:
                found += 1
                total += found / i
        return total / num_rel if num_rel else 0.0
    if name == "nDCG":  # gain = grade for grades > 0, log2(rank + 1) discount, ideal over all judgments
        dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 1) for i, d in enumerate(top, 1))
        ideal = sorted((max(g, 0) for g in judged.values()), reverse=True)[:k] if k else sorted((max(g, 0) for g in judged.values()), reverse=True)
        idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, 1))
        return dcg / idcg if idcg else 0.0
    raise ValueError(measure)


ADVERSARIAL_MEASURES = ("P@1 P@3 P@5 R@2 R@5 RR RR@1 RR@2 RR@3 AP AP@2 AP@4 nDCG nDCG@1 nDCG@3 nDCG@5 "
                        "P(rel=2)@3 R(rel=2)@3 RR(rel=2) RR(rel=2)@3").split()

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
    assert ev.provider == "pytrec_eval+rankexp(RR@k)"  # RR@10 is computed by rankexp


def test_rr_cutoff_is_trec_eval_minus_M():
    # The minimal case: x1 at rank 1, the relevant d1 at rank 2. trec_eval -M 1: 0.
    qrels, run = {"q1": {"d1": 1}}, {"q1": {"x1": 2.0, "d1": 1.0}}
    assert evaluate(run, qrels, "RR@1").perquery["RR@1"]["q1"] == 0.0
    assert evaluate(run, qrels, "RR@2").perquery["RR@2"]["q1"] == 0.5
    # asked together, RR and RR@k must not collide (the pytrec_eval provider maps both to recip_rank)
    both = evaluate(run, qrels, "RR@1 RR RR@2")
    assert both.perquery == {"RR@1": {"q1": 0.0}, "RR": {"q1": 0.5}, "RR@2": {"q1": 0.5}}
    assert both.provider == "pytrec_eval+rankexp(RR@k)"
    assert evaluate(run, qrels, "RR AP").provider == "pytrec_eval"
    # the relevance level applies inside the cutoff: rel=2 needs grade >= 2
    graded = {"q1": {"x1": 1, "d1": 2}}
    assert evaluate(run, graded, "RR@1").perquery["RR@1"]["q1"] == 1.0
    assert evaluate(run, graded, "RR(rel=2)@1").perquery["RR(rel=2)@1"]["q1"] == 0.0
    assert evaluate(run, graded, "RR(rel=2)@2").perquery["RR(rel=2)@2"]["q1"] == 0.5


def test_rr_cutoff_and_complete_semantics():
    run = {"q1": {f"x{i}": 100.0 - i for i in range(10)} | {"d1": 0.5}}  # first relevant at rank 11
    # RR@10 and RR together: these used to collide (RR@10 got a value by accident); each is now separate
    ev = evaluate(run, QRELS, ["RR@10", "RR", "RR@11"])
    assert ev.perquery["RR@10"]["q1"] == 0.0
    assert ev.perquery["RR"]["q1"] == pytest.approx(1 / 11)
    assert ev.perquery["RR@11"]["q1"] == pytest.approx(1 / 11)
    assert evaluate(run, QRELS, ["RR@10"]).perquery["RR@10"]["q1"] == 0.0  # alone: the same
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
    measures = parse_measures("nDCG@10 RR@10 RR AP R@100 P@10")
    ours = evaluate(run, coll.qrels, measures)
    provided = [m for m in measures if str(m) != "RR@10"]  # the provider has no RR@k
    ref = ir_measures.pytrec_eval.calc_aggregate(provided, coll.qrels, run)
    for m in provided:
        assert ours.aggregate[str(m)] == pytest.approx(ref[m], abs=1e-12)
    # RR@10 against the brute force, query by query (and it differs from full-depth RR somewhere)
    for q, value in ours.perquery["RR@10"].items():
        assert value == pytest.approx(_brute("RR@10", _trec_order(run[q]), coll.qrels[q]), abs=1e-12)
    assert ours.aggregate["RR@10"] < ours.aggregate["RR"]
    # and the reference number in shared/data/vaswani/README.md for this BM25 setup (MAP 0.2891)
    assert ours.aggregate["AP"] == pytest.approx(0.2891, abs=6e-5)
    assert ours.aggregate["nDCG@10"] == pytest.approx(0.4449, abs=6e-5)


def test_every_measure_equals_brute_force_on_adversarial_runs():
    """Ties and near-ties below float32 precision, tiny and negative scores, unicode and 'd9'/'d10'
    doc ids, grades -1/0/1/2/3, queries missing from the run or the qrels, judged docs missing
    from the run, unjudged retrieved docs, queries whose judgments are all negative."""
    rng = random.Random(7)
    near = [1.0, 1.0 + 1e-12, 1.0 - 1e-9, 0.5, 0.5 + 1e-8, 2.0, 0.0, -1.0, 3e-45, -3e-45]
    checked = 0
    for _ in range(60):
        docs = [f"d{i}" for i in range(rng.randint(1, 12))] + ["é", "Z", "a"]
        qrels, run = {}, {}
        for q in ("q1", "q2", "q3", "q10"):
            qrels[q] = {d: rng.choice([-1, 0, 0, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, len(docs)))}
            if rng.random() < 0.85:
                run[q] = {d: rng.choice(near) for d in rng.sample(docs, rng.randint(1, len(docs)))}
        qrels["q4"] = {"d1": -1}  # all grades negative (trec_eval leaves its level count undefined)
        run["q4"] = {"d1": 1.0, "d2": 0.5}
        run["q99"] = {"d1": 1.0}  # not judged: ignored
        ev = evaluate(run, qrels, ADVERSARIAL_MEASURES)
        for m in ADVERSARIAL_MEASURES:
            assert set(ev.perquery[m]) == set(run) & set(qrels), m
            for q in ev.perquery[m]:
                expected = _brute(m, _trec_order(run[q]), qrels[q])
                assert ev.perquery[m][q] == pytest.approx(expected, abs=1e-12), (m, q, run[q], qrels[q])
                checked += 1
    assert checked > 5000


def test_scores_below_float32_precision_are_ties_in_writing_and_evaluating(tmp_path):
    # a = 1 + 1e-12 and b = 1.0 are the same float32, so trec_eval ties them and puts "b" first.
    # Sorting in float64 would write a first; the written and the evaluated order must agree.
    run = {"q": {"a": 1.0 + 1e-12, "b": 1.0}}
    qrels = {"q": {"a": 1}}
    path = tmp_path / "run.trec"
    write_run(path, run)
    lines = path.read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["b", "a"]
    scores = [struct.unpack("f", struct.pack("f", float(line.split()[4])))[0] for line in lines]
    assert scores[0] > scores[1], "written scores must be strictly decreasing in float32"
    in_memory = evaluate(run, qrels, "RR AP RR@1 nDCG@10")
    from_file = evaluate(read_run(path), qrels, "RR AP RR@1 nDCG@10")
    assert in_memory.perquery == from_file.perquery
    assert in_memory.perquery["RR"]["q"] == 0.5 and in_memory.perquery["RR@1"]["q"] == 0.0
    # pytrec_eval itself: the same tie (it holds scores as C floats)
    import pytrec_eval

    assert pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"] == 0.5
    # a difference float32 keeps is kept: a above b
    assert evaluate({"q": {"a": 1.0 + 2e-7, "b": 1.0}}, qrels, "RR").perquery["RR"]["q"] == 1.0


def test_unsupported_measures_are_one_line_errors():
    for name in ("ERR@10", "Judged@10", "nDCG(dcg='exp-log2')@10"):
        with pytest.raises(ConfigError, match="not supported with trec_eval semantics"):
            parse_measures(name)
    assert [str(m) for m in parse_measures("AP MAP nDCG@10 RR@10 RR@10")] == ["AP", "nDCG@10", "RR@10"]
    assert provider_name(parse_measures("AP")) == "pytrec_eval"


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown measure 'nDGC@10'"):
        parse_measures("nDGC@10")


def test_disjoint_qrels_is_a_clear_error():
    with pytest.raises(DataError, match="no query of the run has qrels"):
        evaluate({"zz": {"d": 1.0}}, QRELS, "AP")


def test_rr_at_k_without_sorting_equals_the_sorted_reference():
    """The native RR@k counts the documents ahead of the best relevant one instead of sorting;
    on ties, float32 near-ties, +-0, huge and NaN scores it equals the full sort, for every cutoff
    and relevance level (rel <= 0 and NaN go through the sort itself)."""
    from rankexp.eval.measures import _reciprocal_rank_sorted, reciprocal_rank_at

    rng = random.Random(3)
    pool = [1.0, 1.0 + 1e-12, 1.0 - 1e-9, 0.5, 0.0, -0.0, -1.0, 3e-45, 1e39, -1e39, 2.0, 2]
    ids = ["d1", "d2", "d9", "d10", "10", "9", "a", "é", "Z", "d100"]
    nonzero = 0
    for case in range(3000):
        docs = {d: rng.choice(pool + ([math.nan] if case % 50 == 0 else [])) for d in rng.sample(ids, rng.randint(1, len(ids)))}
        judged = {d: rng.choice([-1, 0, 1, 2]) for d in rng.sample(ids, rng.randint(0, 5))}
        for cutoff in (1, 2, 3, 5, 10, None):
            for rel in (1, 2, 0):
                got = reciprocal_rank_at(docs, judged, cutoff, rel)
                assert got == _reciprocal_rank_sorted(docs, judged, cutoff, rel), (docs, judged, cutoff, rel)
                assert got == _brute(f"RR(rel={rel})" + (f"@{cutoff}" if cutoff else ""), _trec_order(docs), judged) or math.nan in docs.values()
                nonzero += got > 0
    assert nonzero > 10000


def test_file_run_with_ties_equals_pytrec_eval_per_query(tmp_path):
    """A run file as users write them (unsorted lines, integer and exponent scores, ties, negative
    scores, numeric-looking doc ids), read in bulk: nDCG@10, AP, R@100 equal pytrec_eval's per
    query, RR@10 equals its recip_rank wherever that is >= 1/10 and 0 elsewhere (trec_eval -M 10)."""
    import pytrec_eval

    rng = random.Random(9)
    lines, qrels = [], {}
    for q in range(40):
        docs = rng.sample(range(300), 60)
        for d in docs:
            score = rng.choice([f"{rng.randint(-3, 3)}", f"{rng.randint(1, 9)}e-{rng.randint(1, 3)}", f"{rng.random():.1f}", "-0.5"])
            lines.append(f"{q} Q0 {d} 0 {score} t\n")
        qrels[str(q)] = {str(d): rng.choice([0, 1, 1, 2]) for d in rng.sample(docs, 8) + rng.sample(range(300, 320), 2)}
    rng.shuffle(lines)
    path = tmp_path / "run.trec"
    path.write_text("".join(lines))
    from rankexp.eval import trec_io

    run = trec_io._read_run_bulk(path)
    assert run is not None and run == trec_io._read_run_lines(path)
    ours = evaluate(read_run(path), qrels, "nDCG@10 AP R@100 RR@10").perquery
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map", "recall.100", "recip_rank"}).evaluate(run)
    for q in qrels:
        assert ours["nDCG@10"][q] == ref[q]["ndcg_cut_10"]
        assert ours["AP"][q] == ref[q]["map"]
        assert ours["R@100"][q] == ref[q]["recall_100"]
        rr = ref[q]["recip_rank"]
        assert ours["RR@10"][q] == (rr if rr >= 1 / 10 - 1e-12 else 0.0)
    # the cutoff matters on this data: first relevant document past rank 10 for some queries, within it for others
    assert sum(0 < ref[q]["recip_rank"] < 1 / 10 for q in qrels) >= 5 and sum(ours["RR@10"][q] > 0 for q in qrels) >= 20
