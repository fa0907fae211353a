"""CertDR (rankexp/attacks/certdr.py): the perturbation sets' TV bound, the smoothed score, the top-K
certification against hand-computed values, CRQ, determinism, and ``rankexp certify`` end to end."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankexp.attacks.certdr import (CertifySettings, PerturbationSets, TableSynonyms, certify_query, certify_ranking, crq,
                                    hoeffding, sigmoid, smooth_query)
from rankexp.errors import ConfigError

runner = CliRunner()


def table(tmp_path: Path, rows: dict[str, str]) -> TableSynonyms:
    p = tmp_path / "syn.tsv"
    p.write_text("".join(f"{w}\t{s}\n" for w, s in rows.items()))
    return TableSynonyms(p)


@pytest.fixture
def sets(tmp_path) -> PerturbationSets:
    # S(a) = [b], S(b) = [a, c], S(c) = []: T(a) = {a, b}, T(b) = {b, a, c}, T(c) = {c}
    return PerturbationSets(table(tmp_path, {"a": "b", "b": "a c"}), k=10, skip_stopwords=False)


def test_overlap_and_delta_by_hand(sets):
    # q(a) = |{a,b} & {a,b,c}| / max(2, 3) = 2/3; q(b) = min(2/3 (a), |{a,b,c} & {c}| / 3 = 1/3 (c)) = 1/3; q(c) = 1
    assert sets.overlap("a") == pytest.approx(2 / 3)
    assert sets.overlap("b") == pytest.approx(1 / 3)
    assert sets.overlap("c") == 1.0
    assert sets.delta("a c") == pytest.approx(1 / 3)
    assert sets.delta("b") == pytest.approx(2 / 3)
    assert sets.delta("(A), b. c") == pytest.approx(1 - (2 / 3) * (1 / 3))  # casing and punctuation do not matter
    assert sets.delta("x y z") == 0.0 and not sets.attackable("x y z") and sets.attackable("x a")


def _dist(sets, text):
    """Pi_d exactly: every text and its probability (each word uniform over T(w))."""
    options = [sets.random_set(w) for w in text.split()]
    p = 1.0 / math.prod(len(o) for o in options)
    out: dict[str, float] = {}
    for combo in itertools.product(*options):
        out[" ".join(combo)] = out.get(" ".join(combo), 0.0) + p
    return out


def test_delta_bounds_the_exact_total_variation_of_every_attack(sets):
    for doc in ["a b c", "b", "a a b"]:
        base = _dist(sets, doc)
        attacks = itertools.product(*[(w, *sets.attack_set(w)) for w in doc.split()])
        worst = 0.0
        for attacked in attacks:
            other = _dist(sets, " ".join(attacked))
            tv = 0.5 * sum(abs(base.get(t, 0) - other.get(t, 0)) for t in set(base) | set(other))
            worst = max(worst, tv)
            assert tv <= sets.delta(doc) + 1e-12, (doc, attacked)
        if doc == "b":  # b -> c: uniform on {a,b,c} vs the point c: TV = 2/3 = Delta (the bound is tight)
            assert worst == pytest.approx(2 / 3)


class CountingVictim:
    """s(q, text) = number of words 'b' in the text; records every text it was asked to score."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, qid, texts):
        self.seen.extend(texts)
        return [float(t.split().count("b")) for t in texts]


def test_smoothed_score_is_the_mean_over_the_draws(sets):
    victim = CountingVictim()
    docs = {"d1": "a b c", "d2": "c c"}
    sm = smooth_query(victim, "q1", docs, sets, n=50, seed=7)
    draws = sets.sample("a b c", 50, random.Random("7\tq1\td1"))  # the documented per-(seed, query, doc) stream
    assert sm.scores["d1"] == pytest.approx(sum(sigmoid(t.split().count("b")) for t in draws) / 50)
    assert sm.scores["d2"] == pytest.approx(sigmoid(0.0))  # no synonyms: exact, one text scored
    assert len(victim.seen) == len(set(draws)) + 1 == sm.texts_scored  # each distinct text scored once
    # the exact expectation E[f] under Pi_d is within Hoeffding's eps of a large sample (fixed seed)
    exact = sum(p * sigmoid(t.split().count("b")) for t, p in _dist(sets, "a b c").items())
    big = smooth_query(CountingVictim(), "q1", {"d1": "a b c"}, sets, n=4000, seed=1).scores["d1"]
    assert abs(big - exact) < hoeffding(4000, 0.05)


def test_scale_and_shift_of_the_score_transform(sets):
    sm = smooth_query(lambda q, ts: [10.0 for _ in ts], "q", {"d": "c"}, sets, n=3, seed=0, scale=5.0, shift=4.0)
    assert sm.scores["d"] == pytest.approx(sigmoid((10 - 4) / 5))


def test_certification_worked_example():
    eps = hoeffding(1000, 0.05)
    assert eps == pytest.approx(math.sqrt(math.log(40) / 2000)) and eps == pytest.approx(0.042947, abs=1e-6)
    scores = {"d1": 0.9, "d2": 0.8, "d3": 0.5, "d4": 0.4}
    delta = {"d1": 0.3, "d2": 0.02, "d3": 0.1, "d4": 0.05}
    attackable = dict.fromkeys(scores, True)
    cert = certify_ranking(scores, delta, attackable, [1, 2, 3, 4], eps)
    # K=1: 0.9 - 0.8 - max(0.02, 0.1, 0.05) - 2 eps = -0.0859 -> not certified
    assert cert[1]["margin"] == pytest.approx(0.1 - 0.1 - 2 * eps) and not cert[1]["certified"]
    # K=2: 0.8 - 0.5 - 0.1 - 2 eps = 0.1141 -> certified (d1's large Delta does not count: it is in the top K)
    assert cert[2]["margin"] == pytest.approx(0.2 - 2 * eps) and cert[2]["certified"]
    assert cert[2]["kth"] == "d2" and cert[2]["challenger"] == "d3" and cert[2]["max_delta"] == 0.1
    # K=3: 0.5 - 0.4 - 0.05 - 2 eps < 0
    assert cert[3]["margin"] == pytest.approx(0.05 - 2 * eps) and not cert[3]["certified"]
    # K=4: nothing below the top 4 -> certified trivially
    assert cert[4]["certified"] and cert[4]["trivial"]
    # a document below K without synonyms is exact (eps 0) and cannot be attacked (Delta 0)
    cert = certify_ranking(scores, {**delta, "d3": 0.0}, {**attackable, "d3": False}, [2], eps)
    assert cert[2]["margin"] == pytest.approx((0.8 - eps) - max(0.5 + 0.0, 0.4 + eps) - 0.05) and cert[2]["certified"]
    # no document below K can be attacked at all: Definition 1 holds trivially
    cert = certify_ranking(scores, {**delta, "d4": 0.0}, {**attackable, "d4": False}, [3], eps)
    assert cert[3]["certified"] and cert[3]["trivial"] and cert[3]["margin"] is None


def test_crq_counts():
    from rankexp.attacks.certdr import QueryResult

    def r(qid, c10, c20, trivial=False):
        cert = {10: {"certified": c10, "trivial": trivial, "margin": None if trivial else (0.1 if c10 else -0.1), "max_delta": 0.0},
                20: {"certified": c20, "trivial": False, "margin": 0.2 if c20 else -0.3, "max_delta": 0.0}}
        return QueryResult(qid, {}, {}, {}, {}, 0.01, cert)

    out = crq([r("1", True, False), r("2", False, False), r("3", True, True, trivial=True), r("4", False, True)], [10, 20])
    assert out["CRQ@10"] == 0.5 and out["CRQ@20"] == 0.5
    # margins of the non-trivial queries: 0.1, -0.1, -0.1 (K=10); 0.2, -0.3, -0.3, 0.2 (K=20)
    assert out["certified@10"] == {"queries": 2, "of": 4, "trivial": 1, "median_margin": -0.1}
    assert out["certified@20"]["median_margin"] == pytest.approx(-0.05)
    assert crq([], [10])["CRQ@10"] is None


def test_no_synonyms_is_certified_trivially_and_scores_are_the_victims(tmp_path):
    sets = PerturbationSets(table(tmp_path, {"zzz": "yyy"}), k=5, skip_stopwords=False)
    docs = {f"d{i}": f"word{i} other text" for i in range(12)}
    plain = {d: float(i) for i, d in enumerate(docs)}
    victim = CountingVictim()
    s = CertifySettings(samples=100, ks=(10, 5), synonyms="unused")
    r = certify_query(lambda q, ts: [plain[next(d for d, t in docs.items() if t == x)] for x in ts], "q", docs, plain, sets, s)
    assert all(r.cert[k]["certified"] and r.cert[k]["trivial"] for k in (10, 5))
    assert r.smoothed == {d: pytest.approx(sigmoid(v)) for d, v in plain.items()} and r.texts_scored == len(docs)
    assert set(r.delta.values()) == {0.0} and not victim.seen
    assert r.eps == pytest.approx(hoeffding(100, 0.05))
    assert certify_query(victim, "q", {"d": "b"}, {}, sets, CertifySettings(samples=5, synonyms="u", correction="off")).eps == 0.0
    both = certify_query(victim, "q", docs, plain, sets, CertifySettings(samples=100, synonyms="u", correction="bonferroni"))
    assert both.eps == pytest.approx(hoeffding(100, 0.05 / 12))


def test_stopwords_are_never_substituted(tmp_path):
    sets = PerturbationSets(table(tmp_path, {"the": "thee", "car": "auto"}), k=5)
    assert sets.attack_set("the") == () and sets.attack_set("car") == ("auto",)
    assert set(sets.sample("The car", 40, random.Random(0))) == {"The car", "The auto"}


def test_determinism_per_seed(sets):
    docs = {"d1": "a b c a b", "d2": "b b a"}
    one = smooth_query(CountingVictim(), "q", docs, sets, n=30, seed=3).scores
    assert smooth_query(CountingVictim(), "q", docs, sets, n=30, seed=3).scores == one
    assert smooth_query(CountingVictim(), "q", docs, sets, n=30, seed=4).scores != one
    # a document's draws do not depend on the other candidates
    assert smooth_query(CountingVictim(), "q", {"d2": docs["d2"]}, sets, n=30, seed=3).scores["d2"] == one["d2"]


@pytest.mark.parametrize("node,key", [({"samples": 0}, "samples"), ({"alpha": 1.0}, "alpha"), ({"alpha": 0}, "alpha"),
                                      ({"ks": [10, 0]}, "ks"), ({"depth": 1}, "depth"), ({"bogus": 1}, "bogus"),
                                      ({"alpha": "abc"}, "alpha"), ({"samples": 2.5}, "samples"), ({"budget": "x"}, "budget"),
                                      ({"random_set": "all"}, "random_set"),
                                      ({"depth": 20}, "depth"), ({"depth": 30, "ks": [10, 30]}, "depth")])
def test_bad_settings_are_config_errors(node, key):
    with pytest.raises(ConfigError, match=f"certify.{key}"):
        CertifySettings.from_node(node)


# ------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def hf_cross(tmp_path_factory) -> Path:
    """A tiny random BERT cross-encoder (sequence-classification head, one label)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rankexp.models.encoders import resolve_model_path

    d = tmp_path_factory.mktemp("certdr") / "hf_cross"
    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.mark.parametrize("setting,message", [("certify.samples=0", "certify.samples must be an integer >= 1"),
                                             ("certify.alpha=1.5", "certify.alpha must be in (0, 1)"),
                                             ("certify.ks=[10,0]", "certify.ks must be a list of integers >= 1"),
                                             ("certify.depth=20", "certify.depth must exceed every K of certify.ks")])
def test_cli_bad_settings_exit_2_one_line(setting, message, tmp_path):
    from rankexp.cli import app

    result = runner.invoke(app, ["certify", "no-such-model", setting, f"paths.output_dir={tmp_path}"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([l for l in result.output.splitlines() if l.strip()]) == 1


def test_cli_certifies_resumes_and_writes_its_files(hf_cross, vaswani_slice, tmp_path):
    from rankexp.cli import app
    from rankexp.eval.trec_io import read_run, sort_ranking

    # synonyms for common vaswani words (a TSV table keeps the test off WordNet's 10 s load)
    syn = tmp_path / "syn.tsv"
    syn.write_text("method\tway technique\nsystem\tscheme\nresults\tresult outcomes\nfrequency\trate\n"
                   "circuit\tcircuits\ntheory\ttheories\n")
    args = ["certify", str(hf_cross), "data=local", f"data.path={vaswani_slice}", "logger=none", f"paths.output_dir={tmp_path}",
            f"certify.synonyms={syn}", "certify.samples=6", "certify.depth=6", "certify.max_queries=3", "certify.ks=[2,4]"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "CRQ@2" in result.output and "smoothed" in result.output
    out = next((tmp_path / "certify").iterdir())
    for name in ("config.yaml", "results.jsonl", "metrics.json", "perquery.tsv", "run.trec"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["queries"]["certified_on"] == 3 and m["settings"]["samples"] == 6
    assert m["epsilon"] == pytest.approx(hoeffding(6, 0.05))
    lines = (out / "results.jsonl").read_text().splitlines()
    results = [json.loads(l) for l in lines]
    assert m["CRQ@2"] == sum(r["cert"]["2"]["certified"] for r in results) / 3
    assert set(m["smoothed"]) == set(m["victim_plain"]) == {"nDCG@10", "RR@10", "AP", "R@100"}
    run = read_run(out / "run.trec")
    for r in results:  # the smoothed ranker's run is the smoothed scores' order
        assert [d for d, _ in sort_ranking(run[r["qid"]])] == [d for d, _ in sort_ranking(r["smoothed"])]
        assert len(r["smoothed"]) == 6
    # a re-run scores nothing; cutting the last line mid-way recomputes that query, identically (seeded)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["texts_scored_now"] == 0 and m2["queries_resumed"] == 3 and m2["CRQ@2"] == m["CRQ@2"]
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    third = runner.invoke(app, args)
    assert third.exit_code == 0, third.output
    m3 = json.loads((out / "metrics.json").read_text())
    assert m3["queries_resumed"] == 2 and m3["texts_scored_now"] > 0
    redone = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert _rounded(redone) == _rounded(results)  # the same draws (float noise: the victim's batches differ)


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 5)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def test_bm25_victim_without_synonyms_is_certified_trivially_and_ranks_as_the_victim(vaswani_slice, tmp_path):
    from rankexp import api

    syn = tmp_path / "syn.tsv"
    syn.write_text("zzzzqx\tyyyyqx\n")  # no vaswani word has a synonym: nothing can be attacked
    res = api.certify("bm25", ["data=local", f"data.path={vaswani_slice}", "logger=none", f"paths.output_dir={tmp_path}",
                               f"certify.synonyms={syn}", "certify.samples=3", "certify.depth=21", "certify.max_queries=4",
                               "certify.scale=5"])
    m = res.metrics
    assert m["victim"].startswith("bm25") and m["CRQ@10"] == 1.0 and m["certified@10"]["trivial"] == 4
    assert m["texts_scored"] == sum(len(r.smoothed) for r in res.results)  # one exact text per document
    for r in res.results:
        assert r.smoothed == {d: pytest.approx(sigmoid(s / 5)) for d, s in r.plain.items()}
    assert m["smoothed"] == m["victim_plain"]  # sigmoid keeps the order: the same ranking, the same measures


def test_budget_delta_by_hand_and_against_exact_tv(sets, tmp_path):
    # q(a) = 2/3, q(b) = 1/3, q(c) = 1 (see above); "a b c" with at most r substituted words
    one = PerturbationSets(sets.source, 10, False, budget=1)
    two = PerturbationSets(sets.source, 10, False, budget="50%")  # ceil(0.5 * 3) = 2 words
    assert one.delta("a b c") == pytest.approx(1 - 1 / 3) and two.delta("a b c") == pytest.approx(1 - (1 / 3) * (2 / 3))
    base = _dist(one, "a b c")
    for attacked in itertools.product(*[(w, *one.attack_set(w)) for w in "a b c".split()]):
        changed = sum(x != y for x, y in zip(attacked, "a b c".split()))
        other = _dist(one, " ".join(attacked))
        tv = 0.5 * sum(abs(base.get(t, 0) - other.get(t, 0)) for t in set(base) | set(other))
        if changed <= 1:
            assert tv <= one.delta("a b c") + 1e-12
        if changed <= 2:
            assert tv <= two.delta("a b c") + 1e-12
    for bad in (0, "0%", "150%", "x"):
        with pytest.raises(ConfigError, match="certify.budget"):
            PerturbationSets(sets.source, 10, budget=bad)


def test_reach_sets_share_a_cluster(tmp_path):
    # S(a) = [b], S(b) = [c], S(c) = [a]: one cluster {a, b, c}; S(d) = [e], S(e) = [] (e is a dead end)
    src = table(tmp_path, {"a": "b", "b": "c", "c": "a", "d": "e"})
    reach = PerturbationSets(src, 10, False, random_set="reach")
    assert set(reach.random_set("a")) == set(reach.random_set("b")) == {"a", "b", "c"} and reach.random_set("a")[0] == "a"
    assert reach.overlap("a") == 1.0 and reach.delta("a b c") == 0.0 and reach.attackable("a b c")
    assert reach.random_set("d") == ("d", "e") and reach.random_set("e") == ("e",) and reach.overlap("d") == pytest.approx(1 / 2)
    plain = PerturbationSets(src, 10, False, random_set="synonyms")  # T(a) = {a, b}, T(b) = {b, c}: q(a) = 1/2
    assert plain.overlap("a") == pytest.approx(1 / 2)
    capped = PerturbationSets(src, 10, False, random_set="reach", random_set_size=2)
    assert capped.random_set("a") == ("a", "b") and capped.overlap("a") == pytest.approx(1 / 2)


@pytest.mark.slow
def test_wordnet_sets_on_a_real_collection(vaswani_slice, tmp_path):
    """WordNet (../shared/nltk_data) as the perturbation set: BM25 on the vaswani slice, end to end."""
    from rankexp import api

    res = api.certify("bm25", ["data=local", f"data.path={vaswani_slice}", "logger=none", f"paths.output_dir={tmp_path}",
                               "certify.samples=20", "certify.depth=6", "certify.max_queries=2", "certify.ks=[1,3]",
                               "certify.scale=5", "certify.budget=1"])
    m = res.metrics
    assert m["queries"]["certified_on"] == 2 and 0.0 <= m["CRQ@1"] <= 1.0
    r = res.results[0]
    assert any(r.attackable.values()) and all(0.0 <= v <= 1.0 for v in r.delta.values())
    from rankexp.attacks.synonyms import WordNetSynonyms
    from rankexp.data.collection import load_local

    sets = PerturbationSets(WordNetSynonyms(), 10, budget=1)  # the same sets, rebuilt: Delta of one document
    doc = next(d for d, a in r.attackable.items() if a)

    assert r.delta[doc] == pytest.approx(sets.delta(load_local(vaswani_slice).docs[doc]))
