"""The attack core (issue 16): victims, targets, measures, the resumable runner, ``rankexp attack``.

The attack used here is defined in this file (:class:`AppendQuery`: append the query's words to the
document, which must promote it under BM25), so the core is tested without the real attacks.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rankexp import api
from rankexp.attacks.base import Attack, Perturbation, Target, join_words, words
from rankexp.attacks.runner import check_budget
from rankexp.cli import app
from rankexp.errors import ConfigError, DataError

runner = CliRunner()


class AppendQuery(Attack):
    """Append the (first) query's words; asks the victim once per target (to exercise counting).
    ``fail_after``: raise on the perturbation after that many (a run cut off)."""

    name = "append_query"

    def __init__(self, budget: float = 50.0, fail_after: int | None = None):
        self.budget = check_budget(budget, "attack.budget")
        self.fail_after, self.calls = fail_after, []

    def perturb(self, target, ctx):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("cut off")
        self.calls.append(target.key)
        orig = ctx.victim.doc_text(target.doc_id)
        q = words(ctx.victim.query_text(target.qids[0]))
        ctx.victim.score_texts(target.qids[0], [orig])
        w = words(orig)
        return Perturbation(join_words(w + q), orig, len(q), len(w), details={"appended": join_words(q)})


class GroupAppend(AppendQuery):
    groups_queries = True


def bow_embed(texts):
    """A deterministic bag-of-words embedding (a stand-in for the sentence encoder)."""
    v = np.zeros((len(texts), 97))
    for i, t in enumerate(texts):
        for w in t.lower().split():
            v[i, zlib.crc32(w.encode()) % 97] += 1
    return v


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("attack")


def ovr(data: Path, out: Path, *extra: str) -> list[str]:
    return ["data=local", f"data.path={data}", f"paths.output_dir={out}", "logger=none", "eval.rerank_k=20",
            "attack.targets.ranks=[5,20]", "attack.targets.per_query=2", *extra]


@pytest.fixture(scope="module")
def bm25(vaswani_slice, out):
    from rankexp.attacks.victims import load_victim

    cfg = api.compose(["attack/runner@attack=default", *ovr(vaswani_slice, out)])
    victim, ranker, cfg = load_victim("bm25", cfg)
    assert ranker is None
    return victim, cfg


# --- victims ---------------------------------------------------------------------------------------

def test_bm25_victim_reproduces_the_first_stage_scores(bm25):
    from rankexp.config.compose import build
    from rankexp.tracking.cache import Cache

    victim, cfg = bm25
    first = build(cfg.first_stage, "first_stage").retrieve(victim.collection, Cache(Path(cfg.paths.cache_dir)))
    n = 0
    for q in victim.qids:
        cands = victim.candidates(q)
        assert len(cands) == min(20, len(first[q]))
        for d, s in cands.items():
            assert s == pytest.approx(first[q][d], abs=1e-4)
            n += 1
        # in-memory text: the document's own text scores as the index does; the query's words raise it
        d = next(iter(cands))
        before = victim.queries_used
        s_same, s_more = victim.score_texts(q, [victim.doc_text(d), victim.doc_text(d) + " " + victim.query_text(q)])
        assert s_same == pytest.approx(cands[d], abs=1e-4) and s_more > s_same
        assert victim.queries_used == before + 2
        victim.score_texts(q, ["x"], count=False)
        assert victim.queries_used == before + 2
    assert n > 50


def test_bm25_formula_by_hand(bm25):
    victim, _ = bm25
    q = ["oxid", "contact"]
    q = [t for t in q if t in victim.df]
    assert q, "the slice should contain these stems"
    d = ["oxid", "oxid", "breaker"]
    expected = 0.0
    for t in q:
        tf = d.count(t)
        if tf:
            idf = math.log(1 + (victim.n_docs - victim.df[t] + 0.5) / (victim.df[t] + 0.5))
            expected += idf * tf / (tf + 0.9 * (1 - 0.4 + 0.4 * len(d) / victim.avgdl))
    assert victim.score_tokens(q, d) == pytest.approx(expected, rel=1e-12) and expected > 0


def test_rank_with_ties_go_against_the_target(bm25):
    from rankexp.attacks.victims import rank_among

    others = {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}
    assert rank_among(others, "x", 2.0) == 4  # a, b, c are >= 2: tied b and c rank above
    assert rank_among(others, "b", 2.0) == 3  # b itself is not counted
    assert rank_among(others, "x", 5.0) == 1 and rank_among(others, "x", 0.5) == 5
    victim, _ = bm25
    q = victim.qids[0]
    scores = victim.candidates(q)
    top, top_score = max(scores.items(), key=lambda x: x[1])
    assert victim.rank_with(q, top, top_score) == 1
    other = next(d for d in scores if d != top)
    assert victim.rank_with(q, other, top_score) == 1 + sum(1 for d, s in scores.items() if d != other and s >= top_score)


def test_a_victim_that_is_not_a_ranker_is_one_line(vaswani_slice, out, tmp_path):
    res = runner.invoke(app, ["attack", str(tmp_path / "nothing-here"), "+attack._target_=tests.test_attack_core.AppendQuery",
                              *ovr(vaswani_slice, out)])
    assert res.exit_code == 2, res.output
    assert "not a ranker" in res.output and "Traceback" not in res.output


# --- measures ---------------------------------------------------------------------------------------

def test_measures_against_hand_values():
    from rankexp.attacks.measures import per_target_values, ranking_tau, similarities, summarize

    # before a=3 b=2 c=1; c rises to 4: (a,b) concordant, (a,c) and (b,c) discordant -> (1 - 2) / 3
    assert ranking_tau({"a": 3.0, "b": 2.0, "c": 1.0}, "c", 4.0) == pytest.approx(-1 / 3)
    assert ranking_tau({"a": 3.0, "b": 2.0, "c": 1.0}, "c", 1.5) == pytest.approx(1.0)
    sims = similarities(["x", "y"], ["x2", "y2"], lambda t: np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=float))
    assert sims == pytest.approx([1 / math.sqrt(2), 1.0])
    recs = [
        {"key": "q1:d1", "pairs": [{"old_rank": 60, "new_rank": 8, "kendall_tau": 0.5}], "percent": 10.0, "similarity": 0.9, "victim_queries": 4},
        {"key": "q2:d2", "pairs": [{"old_rank": 70, "new_rank": 70, "kendall_tau": 1.0}], "percent": 20.0, "similarity": 0.8, "victim_queries": 0},
        {"key": "g0", "pairs": [{"old_rank": 55, "new_rank": 40, "kendall_tau": None},
                                {"old_rank": 90, "new_rank": 95, "kendall_tau": 0.7}], "percent": 30.0, "similarity": None, "victim_queries": 2},
    ]
    m = summarize(recs)
    assert m["pairs"] == 4 and m["targets"] == 3
    assert m["success_rate"] == pytest.approx(2 / 4)  # 60->8, 55->40 moved up
    assert m["top10_rate"] == pytest.approx(1 / 4) and m["top50_rate"] == pytest.approx(2 / 4)
    assert m["avg_boost"] == pytest.approx((52 + 0 + 15 - 5) / 4)
    assert m["kendall_tau"] == pytest.approx((0.5 + 1.0 + 0.7) / 3) and m["kendall_tau_undefined"] == 1
    assert m["perturbation_pct"] == pytest.approx(20.0) and m["similarity"] == pytest.approx(0.85)
    assert m["victim_queries"] == 6 and m["victim_queries_per_target"] == pytest.approx(2.0)
    pt = per_target_values(recs)
    assert pt["success_rate"] == {"q1:d1": 1.0, "q2:d2": 0.0, "g0": 0.5}
    assert pt["avg_boost"]["g0"] == pytest.approx(5.0) and "g0" not in pt["similarity"]


def test_perturbation_percent_and_snippet():
    from rankexp.attacks.measures import changed_snippet

    p = Perturbation("a b X d", "a b c d", changed=1, total_words=4)
    assert p.percent == pytest.approx(25.0)
    s = changed_snippet(" ".join(f"w{i}" for i in range(30)), " ".join(f"w{i}" if i != 15 else "NEW" for i in range(30)), context=2)
    assert s == {"original": "... w13 w14 w15 w16 w17 ...", "perturbed": "... w13 w14 NEW w16 w17 ..."}


def test_budget_check():
    assert check_budget(10, "attack.budget") == 10.0 and check_budget(100, "attack.budget") == 100.0
    for bad in (0, -1, 100.5, "ten", None):
        with pytest.raises(ConfigError, match="attack.budget"):
            check_budget(bad, "attack.budget")
    assert check_budget(3, "attack.budget", percent=False) == 3
    with pytest.raises(ConfigError):
        check_budget(2.5, "attack.budget", percent=False)


# --- targets ----------------------------------------------------------------------------------------

def test_targets_in_range_and_deterministic_per_seed(bm25):
    from rankexp.attacks.targets import cap_queries, sample_targets

    victim, _ = bm25
    a, skipped = sample_targets(victim, victim.qids, [5, 20], 2, seed=0)
    b, _ = sample_targets(victim, list(reversed(victim.qids)), [5, 20], 2, seed=0)
    c, _ = sample_targets(victim, victim.qids, [5, 20], 2, seed=1)
    assert {t.key for t in a} == {t.key for t in b}  # per query, whatever the order of queries
    assert {t.key for t in a} != {t.key for t in c}
    for t in a:
        q = t.qids[0]
        assert 5 <= t.ranks[q] <= 20
        assert t.ranks[q] == victim.rank_with(q, t.doc_id, victim.candidates(q)[t.doc_id])
    assert len(a) == 2 * (len(victim.qids) - len(skipped))
    with pytest.raises(DataError, match="no targets"):
        sample_targets(victim, victim.qids, [500, 600], 1, seed=0)
    with pytest.raises(ConfigError):
        sample_targets(victim, victim.qids, [20, 5], 1, seed=0)
    capped = cap_queries(victim.qids, 3, seed=0)
    assert len(capped) == 3 and capped == [q for q in victim.qids if q in capped] and capped == cap_queries(victim.qids, 3, 0)


def test_topic_groups(bm25, tmp_path):
    from rankexp.attacks.targets import cluster_queries, group_targets, read_groups

    emb = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0.9, 0.1, 0], "d": [0, 0.8, 0.2], "e": [0, 0, 1]}
    groups = cluster_queries(list(emb), list(emb), 2, lambda texts: np.array([emb[t] for t in texts]))
    assert groups == [["a", "c"], ["b", "d"], ["e"]]
    victim, _ = bm25
    (tmp_path / "g.tsv").write_text("".join(f"{q}\t{'x' if i % 2 else 'y'}\n" for i, q in enumerate(victim.qids)) + "nope\ty\n")
    groups = read_groups(tmp_path / "g.tsv", victim.qids)
    assert groups == [victim.qids[0::2], victim.qids[1::2]]
    targets, _ = group_targets(victim, groups, [5, 20], seed=0)
    for t in targets:
        assert set(t.ranks) == set(t.qids) and 5 <= t.ranks[t.qids[0]] <= 20
        for q in t.qids:  # in or out of q's candidates, the rank is the victim's
            cands = victim.candidates(q)
            s = cands.get(t.doc_id)
            if s is None:
                s = victim.score_texts(q, [victim.doc_text(t.doc_id)], count=False)[0]
            assert t.ranks[q] == victim.rank_with(q, t.doc_id, s)


# --- the runner ------------------------------------------------------------------------------------

def run(data, out, attack, *extra, force=False):
    return api.attack("bm25", ovr(data, out, "+attack._target_=tests.test_attack_core.AppendQuery", *extra),
                      embed=bow_embed, attack_obj=attack, force=force)


def test_append_query_promotes_under_bm25_and_the_ranks_are_the_victims(vaswani_slice, tmp_path, bm25):
    r = run(vaswani_slice, tmp_path, AppendQuery())
    a = r.metrics["attack"]
    assert a["targets"] >= 6 and a["success_rate"] == 1.0 and a["avg_boost"] > 0
    assert (r.path / "metrics.json").exists() and (r.path / "status").read_text().startswith("complete")
    victim, _ = bm25
    lines = (r.path / "results.jsonl").read_text().splitlines()
    assert len(lines) == a["targets"]
    for rec in map(json.loads, lines):
        q = rec["qids"][0]
        new = victim.score_texts(q, [rec["perturbed_text"]], count=False)[0]
        assert rec["pairs"][0]["new_score"] == pytest.approx(new) and rec["pairs"][0]["new_rank"] == victim.rank_with(q, rec["doc_id"], new)
        assert rec["victim_queries"] == 1
    assert a["victim_queries"] == a["targets"] and len(a["examples"]) == 3
    assert r.metrics["model"]["success_rate"] == 1.0
    again = run(vaswani_slice, tmp_path, AppendQuery())
    assert again.skipped and again.metrics == r.metrics


def test_a_cut_off_run_resumes_and_ends_as_an_uninterrupted_one(vaswani_slice, tmp_path):
    full = run(vaswani_slice, tmp_path / "full", AppendQuery())
    cut = AppendQuery(fail_after=3)
    with pytest.raises(RuntimeError, match="cut off"):
        run(vaswani_slice, tmp_path / "cut", cut)
    path = tmp_path / "cut" / "attacks" / full.run_id
    assert (path / "status").read_text().startswith("failed") and not (path / "metrics.json").exists()
    assert len((path / "results.jsonl").read_text().splitlines()) == 3
    # a torn last line (the process died mid-write) is dropped, that target runs again
    with open(path / "results.jsonl", "a") as fh:
        fh.write('{"key": "torn", "pairs": [')
    rest = AppendQuery()
    resumed = run(vaswani_slice, tmp_path / "cut", rest)
    assert resumed.run_id == full.run_id and resumed.resumed == 3
    assert len(rest.calls) == full.metrics["attack"]["targets"] - 3 and not set(rest.calls) & set(cut.calls)
    strip = lambda m: {k: v for k, v in m["attack"].items() if k not in ("wall_s", "resumed_targets")}  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics) and resumed.metrics["model"] == full.metrics["model"]
    assert len((path / "results.jsonl").read_text().splitlines()) == full.metrics["attack"]["targets"]


def test_results_file_torn_line(tmp_path, caplog):
    from rankexp.attacks.store import ResultsFile

    f = ResultsFile(tmp_path / "results.jsonl")
    f.append({"key": "a", "v": 1})
    f.append({"key": "b", "v": 2})
    good = f.path.read_bytes()
    with open(f.path, "ab") as fh:
        fh.write(b'{"key": "c", "v"')
    with caplog.at_level("WARNING", logger="rankexp"):
        assert set(f.load()) == {"a", "b"}
    assert "cut off" in caplog.text and f.path.read_bytes() == good
    f.append({"key": "c", "v": 3})
    assert set(f.load()) == {"a", "b", "c"}
    f.path.write_bytes(good.replace(b'{"key": "a", "v": 1}', b"garbage"))
    with pytest.raises(DataError, match=":1:"):
        f.load()


def test_topic_run_records_every_query_of_a_group(vaswani_slice, tmp_path):
    r = api.attack("bm25", ovr(vaswani_slice, tmp_path, "+attack._target_=tests.test_attack_core.GroupAppend",
                               "attack.topic.group_size=3"), embed=bow_embed, attack_obj=GroupAppend())
    a = r.metrics["attack"]
    assert a["grouping"]["groups"] == 2 and a["pairs"] == sum(len(json.loads(l)["qids"]) for l in (r.path / "results.jsonl").read_text().splitlines())
    assert a["pairs"] > a["targets"]


def test_cli_prints_the_measures_and_bad_input_is_one_line(vaswani_slice, tmp_path, monkeypatch):
    import rankexp.attacks.runner as R

    real = R.run_attack
    monkeypatch.setattr(R, "run_attack", lambda *a, **k: real(*a, **{**k, "embed": bow_embed}))
    base = ovr(vaswani_slice, tmp_path, "+attack._target_=tests.test_attack_core.AppendQuery")
    ok = runner.invoke(app, ["attack", "bm25", *base])
    assert ok.exit_code == 0, ok.output
    assert "success rate" in ok.output and "100.0%" in ok.output and "attacks" in ok.output
    for extra, what in ((["+attack.budget=0"], "attack.budget"), (["+attack.budget=150"], "attack.budget"),
                        (["attack.targets.ranks=[500,600]"], "no targets")):
        res = runner.invoke(app, ["attack", "bm25", *base, *extra])
        assert res.exit_code == 2, res.output
        assert what in res.output and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    none = runner.invoke(app, ["attack", "bm25", *ovr(vaswani_slice, tmp_path)])
    assert none.exit_code == 2 and "name an attack" in none.output


# --- a neural victim ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_cross(out) -> Path:
    from transformers import AutoTokenizer

    from rankexp.models.encoders import resolve_model_path
    from tests.conftest import save_tiny_hf_cross

    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    return save_tiny_hf_cross(out / "hf_cross", tok, max_positions=128)


def test_neural_victim_rescores_in_memory_text_as_rerank_does(vaswani_slice, out, hf_cross):
    from rankexp.attacks.victims import NeuralVictim, load_victim

    base = ["data=local", f"data.path={vaswani_slice}", f"paths.output_dir={out}", "logger=none", "eval.rerank_k=20",
            "model.encoder.max_length=128"]
    reranked = api.rerank(hf_cross, base, write=False).run
    victim, ranker, _ = load_victim(str(hf_cross), api.compose(["attack/runner@attack=default", *base]), base)
    assert isinstance(victim, NeuralVictim) and ranker is not None and victim.kind == "cross"
    for q in victim.qids[:3]:
        cands = victim.candidates(q)
        assert set(cands) == set(reranked[q])
        for d, s in cands.items():
            assert s == pytest.approx(reranked[q][d], abs=1e-5)
        d = sorted(cands)[0]
        text = victim.doc_text(d)
        same, changed = victim.score_texts(q, [text, "completely different words " + text])
        assert same == pytest.approx(cands[d], abs=1e-5) and changed != same  # the new text, not the cached tokens of d
    assert victim.queries_used == 6
    with pytest.raises(ConfigError, match="not a ranker"):
        load_victim(str(out / "missing"), api.compose(base), base)


def test_the_attack_group_is_absent_for_train():
    cfg = api.compose([])
    assert "attack" not in cfg
    cfg = api.compose(["attack/runner@attack=default"])
    assert cfg.attack.targets.ranks == [51, 100] and cfg.attack.seed == 0 and cfg.attack.white_box is False


class AppendTwo(AppendQuery):
    """Append only the query's first two words (a weaker attack on the same targets)."""

    name = "append_two"

    def perturb(self, target, ctx):
        p = super().perturb(target, ctx)
        q = words(ctx.victim.query_text(target.qids[0]))[:2]
        return Perturbation(join_words(words(p.original) + q), p.original, len(q), p.total_words)


def test_compare_shows_attack_measures_seed_groups_and_paired_tests(vaswani_slice, tmp_path):
    paths = {}
    for seed in (0, 1):
        for name, cls in (("AppendQuery", AppendQuery), ("AppendTwo", AppendTwo)):
            r = api.attack("bm25", ovr(vaswani_slice, tmp_path, f"+attack._target_=tests.test_attack_core.{name}", f"attack.seed={seed}"),
                           embed=bow_embed, attack_obj=cls())
            paths[(name, seed)] = r
    res = runner.invoke(app, ["compare", str(tmp_path / "attacks"), "-m", "success_rate avg_boost", "-f", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    systems = {s["label"]: s for s in out["systems"]}
    assert set(systems) == {"attack._target_=tests.test_attack_core.AppendQuery", "attack._target_=tests.test_attack_core.AppendTwo"}
    full = systems["attack._target_=tests.test_attack_core.AppendQuery"]
    assert sorted(full["seeds"]) == [0, 1]  # the target-sampling seeds form one system
    boosts = [paths[("AppendQuery", s)].metrics["attack"]["avg_boost"] for s in (0, 1)]
    assert full["measures"]["avg_boost"]["mean"] == pytest.approx(sum(boosts) / 2)
    # the same targets for both attacks (same victim and seeds): paired per target
    n_targets = len({k for s in (0, 1) for k in (json.loads(l)["key"] for l in
                     (paths[("AppendQuery", s)].path / "results.jsonl").read_text().splitlines())})
    assert out["n_queries"] == n_targets
    # direction: changing fewer words is the better attack (lower is better for perturbation_pct), and the
    # training-run rows and notes (untrained start, first stage, dev ordering) do not apply to attack runs
    base = ["--baseline", "attack._target_=tests.test_attack_core.AppendQuery"]  # the default (first system) follows run ids
    res = runner.invoke(app, ["compare", str(tmp_path / "attacks"), "-m", "success_rate perturbation_pct", "-f", "json", *base])
    out = json.loads(res.output[res.output.index("{"):])
    two = next(c for c in out["comparisons"] if c["measure"] == "perturbation_pct")
    assert two["system"].endswith("AppendTwo") and two["mean_diff"] < 0 and two["significant"] and two["marker"] == "▲"
    assert [s["kind"] for s in out["systems"]] == ["group", "group"]
    assert not any("untrained" in n or "first stage" in n or "dev" in n for n in out["notes"]), out["notes"]
    md = runner.invoke(app, ["compare", str(tmp_path / "attacks"), "-m", "success_rate perturbation_pct", "-f", "markdown", *base]).output
    assert "lower is better for perturbation_pct" in md and "**4." in md  # AppendTwo's lower % is the column's best
    # the tests pair on targets, and attacks are not ordered by pairs of their measures
    assert f"tests on per-target means over 2 seeds · {n_targets} targets." in md, md
    assert out["correlations"] == [] and "Kendall" not in md


class SeesRanker(AppendQuery):
    """Records what the context gives it."""

    seen: list = []

    def setup(self, ctx):
        SeesRanker.seen.append((ctx.white_box, ctx.ranker is not None, ctx.victim.kind))
        return {"white_box_seen": ctx.white_box}


@pytest.mark.parametrize("white_box", [False, True])
def test_white_box_gives_the_victims_model_only_when_allowed(vaswani_slice, tmp_path, hf_cross, white_box):
    SeesRanker.seen.clear()
    base = ["data=local", f"data.path={vaswani_slice}", f"paths.output_dir={tmp_path}", "logger=none", "eval.rerank_k=20",
            "model.encoder.max_length=128", "attack.targets.ranks=[5,20]", "attack.max_queries=2",
            "+attack._target_=tests.test_attack_core.SeesRanker", f"attack.white_box={str(white_box).lower()}"]
    r = api.attack(hf_cross, base, embed=bow_embed, attack_obj=SeesRanker())
    assert SeesRanker.seen == [(white_box, white_box, "cross")]
    assert r.metrics["attack"]["setup"] == {"white_box_seen": white_box} and r.metrics["attack"]["queries"] == 2
    for rec in map(json.loads, (r.path / "results.jsonl").read_text().splitlines()):
        assert rec["victim_queries"] == 1  # AppendQuery scores the original once per target


@pytest.mark.slow
def test_semantic_similarity_with_the_shipped_sentence_encoder():
    from rankexp.attacks.measures import SentenceEmbedder, similarities

    embed = SentenceEmbedder()
    a = "the effect of oxidation on circuit breaker contacts"
    same, near, far = similarities([a, a, a], [a, "the effect of oxidization on circuit breaker contacts",
                                               "spherical harmonic analysis of the earth's magnetic field"], embed)
    assert same == pytest.approx(1.0, abs=1e-5) and far < near < 1.0
