"""Distillation: the losses by hand, fidelity against scipy, teachers end to end (tiny models)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from typer.testing import CliRunner

from rankexp.cli import app
from rankexp.errors import ConfigError
from rankexp.eval.fidelity import fidelity, query_fidelity
from rankexp.losses.distill import DistilledLoss, listwise_kl, margin_mse, pld, pld_permutation, with_distillation
from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.models.batch import Batch
from tests.conftest import fast_overrides


def lse(*xs):
    return math.log(sum(math.exp(x) for x in xs))


# ------------------------------------------------------------------------------------ losses by hand
def test_margin_mse_by_hand_and_shift_invariance():
    s = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    t = torch.tensor([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])  # row 2: equal teacher scores, equal student scores
    # row 1: student margins (1, 2), teacher margins (-2, -1): errors 3 and 3 -> 9; row 2: 0
    assert margin_mse(s, t).tolist() == pytest.approx([9.0, 0.0])
    assert margin_mse(s + 5.0, t - 2.0).tolist() == pytest.approx([9.0, 0.0])


def test_listwise_kl_by_hand_with_temperature():
    s, t, T = [2.0, 1.0, 0.0], [1.0, 3.0, 2.0], 2.0
    pt = [math.exp(x / T - lse(*[y / T for y in t])) for x in t]
    ps = [math.exp(x / T - lse(*[y / T for y in s])) for x in s]
    want = T * T * sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps))
    got = listwise_kl(torch.tensor([s]), torch.tensor([t]), T)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert listwise_kl(torch.tensor([t]), torch.tensor([t]), T).item() == pytest.approx(0.0, abs=1e-7)
    # ties: equal teacher scores -> uniform target; a uniform student then has zero loss
    assert listwise_kl(torch.tensor([[1.0, 1.0]]), torch.tensor([[7.0, 7.0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_pld_permutation_puts_the_positive_first_then_teacher_order_ties_by_column():
    t = torch.tensor([[0.0, 1.0, 3.0, 2.0], [5.0, 1.0, 1.0, 0.0]])
    assert pld_permutation(t).tolist() == [[0, 2, 3, 1], [0, 1, 2, 3]]


def test_pld_by_hand():
    s, t, T = [0.5, 2.0, -1.0], [1.0, 3.0, 2.0], 1.0
    # pi* = (0, 1, 2): positive, then teacher order 3 > 2
    z = lse(*t)
    alpha = [math.exp(t[0] - z), math.exp(t[1] - z), math.exp(t[2] - z)]
    want = (alpha[0] * (lse(0.5, 2.0, -1.0) - 0.5) + alpha[1] * (lse(2.0, -1.0) - 2.0) + alpha[2] * 0.0)
    assert pld(torch.tensor([s]), torch.tensor([t]), T).item() == pytest.approx(want, rel=1e-6)
    # temperature on the teacher only; a constant added to the student's scores changes nothing
    assert pld(torch.tensor([s]) + 3.0, torch.tensor([t]), T).item() == pytest.approx(want, rel=1e-6)
    T2 = 4.0
    z2 = lse(*[x / T2 for x in t])
    a2 = [math.exp(x / T2 - z2) for x in t]
    want2 = a2[0] * (lse(0.5, 2.0, -1.0) - 0.5) + a2[1] * (lse(2.0, -1.0) - 2.0)
    assert pld(torch.tensor([s]), torch.tensor([t]), T2).item() == pytest.approx(want2, rel=1e-6)


def test_pld_with_a_teacher_preferring_a_negative_still_ranks_the_positive_first():
    s, t = [1.0, 0.0, 2.0], [0.0, 1.0, 5.0]  # pi* = (0, 2, 1)
    z = lse(*t)
    a = [math.exp(x - z) for x in t]
    want = a[0] * (lse(1.0, 2.0, 0.0) - 1.0) + a[2] * (lse(2.0, 0.0) - 2.0)
    assert pld(torch.tensor([s]), torch.tensor([t])).item() == pytest.approx(want, rel=1e-6)


def _pld_as_in_the_papers_appendix_c(s, t, temperature=1.0):
    """An independent reading of PLD (Bassam et al., App. C): sort the teacher ascending, move the label
    (column 0) last, forward log-cum-sum-exp of the student's permuted scores minus the score, weighted
    by the teacher's tempered softmax at each permuted position."""
    out = []
    for srow, trow in zip(s, t):
        rest = sorted(range(1, len(trow)), key=lambda c: (trow[c], -c))  # ascending; ties: later column first
        order = rest + [0]
        z = lse(*[x / temperature for x in trow])
        total = 0.0
        for i, c in enumerate(order):
            tail = lse(*[srow[order[j]] for j in range(i + 1)])  # this item and every one the teacher ranks below it
            total += math.exp(trow[c] / temperature - z) * (tail - srow[c])
        out.append(total)
    return out


def test_pld_matches_the_papers_reference_formulation_on_crafted_and_random_scores():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    for temp in (1.0, 4.0):
        want = _pld_as_in_the_papers_appendix_c(s.tolist(), t.tolist(), temp)
        assert pld(s, t, temp).tolist() == pytest.approx(want, rel=1e-5)
    ties_s, ties_t = [[0.3, 1.0, -2.0, 0.5]], [[1.0, 2.0, 2.0, 2.0]]  # equal teacher scores on the negatives
    assert pld(torch.tensor(ties_s), torch.tensor(ties_t)).tolist() == pytest.approx(
        _pld_as_in_the_papers_appendix_c(ties_s, ties_t), rel=1e-6)


def test_pld_special_cases_of_the_paper_section_4_2():
    s = torch.tensor([[0.0, math.log(2.0), 0.0]])
    # equal teacher scores: alpha uniform (1/3), pi* = column order -> ListMLE / 3 by hand:
    # k=1: log(1 + 2 + 1) - 0 = log 4; k=2: log(2 + 1) - log 2 = log 1.5; k=3: 0  -> log 6 / 3
    assert pld(s, torch.tensor([[4.0, 4.0, 4.0]])).item() == pytest.approx(math.log(6.0) / 3.0, rel=1e-6)
    # a very hot teacher softmax (tau -> inf) is uniform as well, whatever its order: ListMLE on pi* / 3
    t = torch.tensor([[0.0, 1.0, 2.0]])  # pi* = (0, 2, 1): log(1+1+2) - 0, then log(1+2) - 0, then 0
    assert pld(s, t, 1e7).item() == pytest.approx((math.log(4.0) + math.log(3.0)) / 3.0, rel=1e-5)
    # a teacher sure of the label: alpha = (1, 0, 0) -> cross-entropy on the label
    ce = math.log(1.0 + 2.0 + 1.0) - 0.0
    assert pld(s, torch.tensor([[60.0, 0.0, 0.0]])).item() == pytest.approx(ce, rel=1e-6)


def test_margin_mse_with_one_negative_is_the_papers_triple_form():
    # (MM) for one triple: teacher margin 3.1 - 1.0 = 2.1, student margin 0.9 - 0.4 = 0.5 -> (0.5 - 2.1)^2
    assert margin_mse(torch.tensor([[0.9, 0.4]]), torch.tensor([[3.1, 1.0]])).item() == pytest.approx(2.56, rel=1e-6)


def test_distilled_loss_mixes_with_the_label_loss_and_checks_its_settings():
    s = torch.tensor([[2.0, 1.0, 0.0]])
    batch = Batch.of_groups(["q"], [["a", "b", "c"]], teacher_scores=torch.tensor([[1.0, 3.0, 2.0]]))
    label = SoftmaxCELoss()
    mixed = DistilledLoss("margin_mse", label, weight=0.25)
    want = 0.75 * label(s, batch).item() + 0.25 * 9.0
    assert mixed(s, batch).item() == pytest.approx(want, rel=1e-6)
    assert mixed.requires == {"teacher_scores"} and mixed.name == f"{label.name}+margin_mse"
    for bad in ({"weight": 1.5}, {"weight": -0.1}, {"temperature": 0.0}):
        with pytest.raises(ConfigError):
            DistilledLoss("kl", label, **bad)
    with pytest.raises(ConfigError):
        DistilledLoss("nosuch", label)
    assert with_distillation({"kind": "none"}, label) is label
    nan_batch = Batch.of_groups(["q"], [["a", "b", "c"]], teacher_scores=torch.tensor([[1.0, math.nan, 2.0]]))
    with pytest.raises(ValueError):
        mixed(s, nan_batch)


# ------------------------------------------------------------------------------------ fidelity
def test_fidelity_against_scipy_and_by_hand():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    docs = [f"d{i}" for i in range(15)]
    teacher = {d: rng.random() for d in docs}
    student = {d: round(teacher[d] + rng.gauss(0, 0.3), 1) for d in docs}  # rounding makes ties
    r = query_fidelity(student, teacher)
    tau = scipy_stats.kendalltau([teacher[d] for d in docs], [student[d] for d in docs]).statistic
    assert r["kendall_tau"] == pytest.approx(tau, abs=1e-12)
    same = query_fidelity(teacher, teacher)
    assert same == pytest.approx({"kendall_tau": 1.0, "tau_ap": 1.0, "rbo": 1.0, "top10_overlap": 1.0})
    rev = query_fidelity({d: -v for d, v in teacher.items()}, teacher)
    assert rev["kendall_tau"] == pytest.approx(-1.0) and rev["tau_ap"] == pytest.approx(-1.0)
    assert rev["top10_overlap"] == pytest.approx(5 / 10)  # 15 documents: the two top 10s share 5
    agg = fidelity({"q1": student, "q2": {"x": 1.0}}, {"q1": teacher, "q2": {"x": 2.0}}, ["q1", "q2", "q3"])
    assert agg["queries"] == 1 and agg["mean"]["kendall_tau"] == pytest.approx(tau)


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def teacher_run(vaswani_slice, tmp_path_factory):
    """A tiny trained run: the teacher (its run directory) of the distillation runs below."""
    out = tmp_path_factory.mktemp("distill")
    result = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, out)])
    assert result.exit_code == 0, result.output
    return out, next((out / "runs").iterdir())


def _distill_run(vaswani_slice, out, kind, teacher_args, **extra):
    args = fast_overrides(vaswani_slice, out, distill=kind, **extra) + teacher_args
    result = CliRunner().invoke(app, ["train", *args])
    return result


def _new_run(out, before):
    return next(p for p in (out / "runs").iterdir() if p not in before)


def test_run_dir_teacher_scores_are_cached_and_reused_by_another_member(vaswani_slice, teacher_run):
    out, teacher = teacher_run
    before = set((out / "runs").iterdir())
    r = _distill_run(vaswani_slice, out, "kl", [f"distill.teacher.model={teacher}", "distill.temperature=2.0"])
    assert r.exit_code == 0, r.output
    first = _new_run(out, before)
    m = json.loads((first / "metrics.json").read_text())["distill"]
    assert m["kind"] == "kl" and m["cache_builds"] == 2 and m["cache_hits"] == 0 and m["train"]["missing"] == 0
    fid = m["fidelity"]["model"]
    assert fid["queries"] > 0 and -1.0 <= fid["mean"]["kendall_tau"] <= 1.0 and 0.0 <= fid["mean"]["rbo"] <= 1.0
    assert set(fid["mean"]) == {"kendall_tau", "tau_ap", "rbo", "top10_overlap"}
    # another member of the same sweep (other loss, same groups): the teacher's scores come from the cache
    before = set((out / "runs").iterdir())
    r = _distill_run(vaswani_slice, out, "pld", [f"distill.teacher.model={teacher}", "distill.weight=0.5"])
    assert r.exit_code == 0, r.output
    m2 = json.loads((_new_run(out, before) / "metrics.json").read_text())["distill"]
    assert m2["cache_hits"] == 2 and m2["cache_builds"] == 0 and m2["cached_pairs"] == m["scored_pairs"]
    # the teacher's scores of its own test candidates: its run.trec ranks them; the untrained row is there too
    assert "untrained" in m2["fidelity"]


def test_run_file_teacher_and_its_one_line_errors(vaswani_slice, tmp_path):
    docs = [json.loads(l)["doc_id"] for l in (vaswani_slice / "corpus.jsonl").read_text().splitlines()]
    qids = [l.split("\t")[0] for l in (vaswani_slice / "queries.tsv").read_text().splitlines() if l.strip()]
    rng = random.Random(0)
    full = tmp_path / "teacher.run"
    full.write_text("".join(f"{q} Q0 {d} {i + 1} {rng.random():.6f} t\n" for q in qids for i, d in enumerate(docs)))
    r = _distill_run(vaswani_slice, tmp_path / "o1", "margin_mse", [f"distill.teacher.run={full}"])
    assert r.exit_code == 0, r.output
    m = json.loads((next((tmp_path / "o1" / "runs").iterdir()) / "metrics.json").read_text())["distill"]
    assert m["teacher"].startswith("run file") and m["fidelity"]["model"]["queries"] > 0
    # a teacher run missing candidates -> one line, exit 2
    part = tmp_path / "part.run"
    part.write_text("".join(l + "\n" for l in full.read_text().splitlines()[::2]))
    r = _distill_run(vaswani_slice, tmp_path / "o2", "margin_mse", [f"distill.teacher.run={part}"])
    assert r.exit_code == 2 and "no finite score" in r.output and "Traceback" not in r.output
    # NaN scores in the teacher run -> one line, exit 2
    bad = tmp_path / "nan.run"
    lines = full.read_text().splitlines()
    q, _, d, rank, _, tag = lines[0].split()
    bad.write_text("\n".join([f"{q} Q0 {d} {rank} nan {tag}", *lines[1:]]) + "\n")
    r = _distill_run(vaswani_slice, tmp_path / "o3", "margin_mse", [f"distill.teacher.run={bad}"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    # a teacher that is not a ranker; no teacher at all
    notranker = tmp_path / "empty"
    notranker.mkdir()
    r = _distill_run(vaswani_slice, tmp_path / "o4", "pld", [f"distill.teacher.model={notranker}"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    r = _distill_run(vaswani_slice, tmp_path / "o5", "pld", [])
    assert r.exit_code == 2 and "needs exactly one teacher" in r.output


def test_smaller_student_keeps_its_first_layers_and_reloads(vaswani_slice, teacher_run):
    """model.encoder.num_layers=1: a 1-layer student of the 2-layer teacher; its checkpoint reloads at that size."""
    import torch

    from rankexp.distill.students import truncate_layers
    from rankexp.pipeline.loading import load_ranker

    out, teacher = teacher_run
    before = set((out / "runs").iterdir())
    r = _distill_run(vaswani_slice, out, "margin_mse", [f"distill.teacher.model={teacher}", "model.encoder.num_layers=1"])
    assert r.exit_code == 0, r.output
    student = _new_run(out, before)
    keys = torch.load(student / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(".layer.0." in k for k in keys) and not any(".layer.1." in k for k in keys)
    ranker = load_ranker(student)
    assert len(ranker.encoder.model.encoder.layer) == 1
    with pytest.raises(ConfigError):
        truncate_layers(ranker.encoder.model, 2)
    bad = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, out, **{"model.encoder.num_layers": 9})])
    assert bad.exit_code == 2 and "num_layers=9" in bad.output


def test_teacher_scoring_resumes_from_its_partial_file_and_caches(tmp_path):
    """An interrupted scoring left finished pairs in .partial-<hash>.tsv: they are not scored again;
    the finished entry is cached, and a second fill of the same pairs is a cache hit."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from rankexp.distill.teachers import KIND, Teacher
    from rankexp.tracking.cache import Cache

    run = tmp_path / "t.run"
    run.write_text("q1 Q0 a 1 3.0 t\nq1 Q0 b 2 2.0 t\nq2 Q0 c 1 1.0 t\n")
    cfg = OmegaConf.create({"kind": "kl", "teacher": {"model": None, "run": str(run), "batch_size": 8}})
    prep = SimpleNamespace(cache=Cache(tmp_path / "cache"), collection=SimpleNamespace(fingerprint="fp"), device="cpu",
                           cfg=OmegaConf.create({"model": {}}))
    teacher = Teacher(cfg, prep)
    pairs = [("q1", "a"), ("q1", "b"), ("q2", "c")]
    final, digest = prep.cache.path(KIND, teacher.key(pairs))
    final.parent.mkdir(parents=True)
    (final.parent / f".partial-{digest}.tsv").write_text("q1\ta\t99.0\nq1\tb\t")  # one finished pair, one cut line
    info = teacher.fill(pairs)
    assert teacher == {"q1": {"a": 99.0, "b": 2.0}, "q2": {"c": 1.0}}  # a came from the partial file
    assert not info["cached"] and not (final.parent / f".partial-{digest}.tsv").exists()
    again = Teacher(cfg, prep)
    assert again.fill(pairs)["cached"] and again == teacher


@pytest.mark.slow
def test_sweep_members_share_the_teacher_scores(vaswani_slice, teacher_run, tmp_path):
    """`rankexp sweep distill=kl,pld distill.teacher.model=RUN`: the second member reads the first's teacher scores."""
    _, teacher = teacher_run
    out = tmp_path / "sweep"
    r = CliRunner().invoke(app, ["sweep", *fast_overrides(vaswani_slice, out, distill="kl,pld"), f"distill.teacher.model={teacher}"])
    assert r.exit_code == 0, r.output
    members = [json.loads((p / "metrics.json").read_text())["distill"] for p in (out / "runs").iterdir()]
    assert sorted(m["kind"] for m in members) == ["kl", "pld"]
    assert sorted((m["cache_builds"], m["cache_hits"]) for m in members) == [(0, 2), (2, 0)]


def test_bi_encoder_student_keeps_its_first_layers():
    """model=bi_encoder model.encoder.num_layers=k: the bi-encoder student is cut like the cross-encoder, and its
    embeddings are those of the first k layers of the same weights (a smaller student of the same start)."""
    import torch

    from rankexp.models.biencoder import BiEncoder

    tiny = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    torch.manual_seed(0)
    full = BiEncoder(max_length=32, max_query_length=8, tiny=tiny)
    torch.manual_seed(0)
    cut = BiEncoder(max_length=32, max_query_length=8, tiny=tiny, num_layers=1)
    assert len(cut.query_model.encoder.layer) == 1 and cut.identity["num_layers"] == 1 and "num_layers" not in full.identity
    ids = torch.tensor([[101, 2000, 2001, 102]])
    mask = torch.ones_like(ids)
    full.eval(), cut.eval()
    with torch.no_grad():
        h1 = full.query_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
        expect = torch.nn.functional.normalize(h1.mean(1), dim=-1)
        assert torch.allclose(cut.encode(ids, mask, "query"), expect, atol=1e-6)
    with pytest.raises(ConfigError):
        BiEncoder(max_length=32, max_query_length=8, tiny=tiny, num_layers=4)


def test_teacher_scale_multiplies_the_scores_but_not_the_cache(tmp_path):
    """distill.teacher.scale=20: the batch sees 20 x the teacher's scores (a cosine teacher's logits at temperature
    0.05); the cache keeps the unscaled scores, so a run at another scale reuses it; scale <= 0 is one line."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from rankexp.distill.teachers import Teacher
    from rankexp.tracking.cache import Cache

    run = tmp_path / "t.run"
    run.write_text("q1 Q0 a 1 0.5 t\nq1 Q0 b 2 -0.25 t\n")
    prep = SimpleNamespace(cache=Cache(tmp_path / "cache"), collection=SimpleNamespace(fingerprint="fp"), device="cpu",
                           cfg=OmegaConf.create({"model": {}}))

    def teacher(scale):
        return Teacher(OmegaConf.create({"kind": "kl", "teacher": {"model": None, "run": str(run), "batch_size": 8,
                                                                   "scale": scale}}), prep)

    plain, scaled = teacher(1.0), teacher(20.0)
    assert not plain.fill([("q1", "a"), ("q1", "b")])["cached"]
    assert scaled.fill([("q1", "a"), ("q1", "b")])["cached"]
    assert plain == {"q1": {"a": 0.5, "b": -0.25}} and scaled == {"q1": {"a": 10.0, "b": -5.0}}
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="distill.teacher.scale"):
            teacher(bad)


def test_a_first_stage_teacher_scores_its_ranking_and_floors_the_rest(vaswani_slice, tmp_path):
    """distill.teacher.first_stage=bm25: the teacher's score of a retrieved pair is the first stage's own score; an
    unretrieved pair gets the query's lowest retrieved score minus 1; an unknown first stage is one line, exit 2."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.distill.teachers import Teacher
    from rankexp.tracking.cache import Cache

    r = _distill_run(vaswani_slice, tmp_path / "o", "margin_mse", ["distill.teacher.first_stage=bm25"])
    assert r.exit_code == 0, r.output
    m = json.loads((next((tmp_path / "o" / "runs").iterdir()) / "metrics.json").read_text())["distill"]
    assert m["teacher"] == "first stage bm25" and m["fidelity"]["model"]["queries"] > 0

    from rankexp import api

    cfg = api.compose(fast_overrides(vaswani_slice, tmp_path / "o"))
    collection = load_collection(cfg.data)
    cache = Cache(tmp_path / "cache")
    prep = SimpleNamespace(cache=cache, collection=collection, device="cpu", cfg=OmegaConf.create({"model": {}}))
    bm25_run = build(api.compose(fast_overrides(vaswani_slice, tmp_path / "o", first_stage="bm25")).first_stage,
                     "first_stage").retrieve(collection, cache)
    q = sorted(bm25_run)[0]
    retrieved = sorted(bm25_run[q], key=bm25_run[q].get)[:2]
    outside = next(d for d in collection.docs if d not in bm25_run[q])
    teacher = Teacher(OmegaConf.create({"kind": "kl", "teacher": {"model": None, "run": None, "first_stage": "bm25",
                                                                  "batch_size": 8}}), prep)
    teacher.fill([(q, d) for d in retrieved] + [(q, outside)])
    assert teacher[q][retrieved[0]] == pytest.approx(bm25_run[q][retrieved[0]])
    assert teacher[q][outside] == pytest.approx(min(bm25_run[q].values()) - 1.0)
    bad = _distill_run(vaswani_slice, tmp_path / "o2", "kl", ["distill.teacher.first_stage=nosuch"])
    assert bad.exit_code == 2 and "not a first stage" in bad.output and "Traceback" not in bad.output
    both = _distill_run(vaswani_slice, tmp_path / "o3", "kl", ["distill.teacher.first_stage=bm25", "distill.teacher.run=x"])
    assert both.exit_code == 2 and "exactly one teacher" in both.output


def test_teacher_scores_document_major_chunks(tmp_path, monkeypatch):
    """A model teacher scores its pairs in chunks grouped by document, so a bi-encoder teacher encodes each
    document about once; what lands in the cache is every pair's own score, in the requested order."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    import rankexp.data.tokens as tokens
    import rankexp.distill.teachers as teachers
    from rankexp.tracking.cache import Cache

    run = tmp_path / "t.run"
    run.write_text("q1 Q0 a 1 3.0 t\n")
    cfg = OmegaConf.create({"kind": "kl", "teacher": {"model": None, "run": str(run), "batch_size": 8}})
    prep = SimpleNamespace(cache=Cache(tmp_path / "cache"), collection=SimpleNamespace(fingerprint="fp"), device="cpu",
                           cfg=OmegaConf.create({"model": {}}))
    chunks: list[list[tuple[str, str]]] = []

    class Scorer:
        def score_candidates(self, encoder, texts, pairs, batch_size, device, fast, description):
            chunks.append(list(pairs))
            out: dict = {}
            for q, d in pairs:
                out.setdefault(q, {})[d] = float(int(q[1:]) * 100 + ord(d[0]))  # a pair's own score
            return out

    teacher = teachers.Teacher(cfg, prep)
    teacher.file_run, teacher.ranker = None, SimpleNamespace(encoder=None, scorer=Scorer())
    monkeypatch.setattr(teachers, "CHUNK", 6)
    monkeypatch.setattr(tokens, "build_texts", lambda *a, **k: None)
    docs = "abcdef"
    pairs = [(f"q{i}", d) for i in range(1, 4) for d in docs]  # query-major: 3 queries x 6 documents
    teacher.fill(pairs)
    assert teacher == {q: {d: float(int(q[1:]) * 100 + ord(d)) for d in docs} for q in ("q1", "q2", "q3")}
    # 18 pairs in chunks of 6: query-major chunks would hold all 6 documents each (18 encodings); document-major, 6
    assert [len(c) for c in chunks] == [6, 6, 6] and sum(len({d for _, d in c}) for c in chunks) == 6
    entry = next(p for p in (tmp_path / "cache" / teachers.KIND).iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [tuple(line.split("\t")[:2]) for line in (entry / "scores.tsv").read_text().splitlines()] == sorted(pairs)
