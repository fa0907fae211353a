"""``rankexp compare``: seed groups, mean/std/CI, paired tests on per-query means, Holm, formats, --runs."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from rankexp.cli import app
from rankexp.eval import significance
from rankexp.eval.correlation import run_correlation
from rankexp.eval.trec_io import read_run
from rankexp.tracking.rundir import read_perquery
from tests.conftest import fast_overrides

runner = CliRunner()
LOSSES = ("pairwise", "listwise")
SEEDS = (1, 2)


def fixture_runs(tmp_path_factory, vaswani_slice) -> tuple[Path, dict[tuple[str, int], Path]]:
    """2 losses × 2 seeds, trained once per session: the output dir is the same for every module,
    and a complete run (same config = same run id) is skipped, so a second caller pays nothing."""
    from rankexp import api
    from rankexp.cli._common import quiet_libraries

    import torch

    quiet_libraries(lightning=True)
    out = tmp_path_factory.getbasetemp() / "compare_fixture_runs"
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only spin against each other on a shared 2-core box
    try:
        for loss in LOSSES:
            for seed in SEEDS:
                ovr = fast_overrides(vaswani_slice, out, seed=seed, loss=loss)
                runs[(loss, seed)] = api.train(api.compose(ovr), ovr).path
    finally:
        torch.set_num_threads(threads)
    return out, runs


@pytest.fixture(scope="module")
def fx(tmp_path_factory, vaswani_slice):
    return fixture_runs(tmp_path_factory, vaswani_slice)


def write_sweep(out: Path, name: str, run_dirs: list[Path], extra_members: list[dict] = ()) -> Path:
    d = out / "sweeps" / name
    d.mkdir(parents=True, exist_ok=True)
    members = [{"overrides": [], "run_id": p.name, "run_dir": str(p)} for p in run_dirs] + list(extra_members)
    (d / "sweep.json").write_text(json.dumps({"name": name, "overrides": ["loss=pairwise,listwise", "seed=1,2"],
                                              "launcher": "basic", "members": members}))
    return d


def invoke(*args, out: Path | None = None):
    env = {"RANKEXP_OUTPUT": str(out)} if out else {}
    return runner.invoke(app, ["compare", *map(str, args)], env=env)


def as_json(*args, out: Path | None = None) -> dict:
    res = invoke(*args, "--format", "json", out=out)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_groups_by_seed_with_readable_labels(fx):
    out, runs = fx
    data = as_json(out / "runs")
    groups = {s["label"]: s for s in data["systems"] if s["kind"] == "group"}
    assert set(groups) == {"loss=pairwise", "loss=listwise"}
    for loss in LOSSES:
        g = groups[f"loss={loss}"]
        assert sorted(g["run_ids"]) == sorted(runs[(loss, s)].name for s in SEEDS)
        assert sorted(g["seeds"]) == list(SEEDS) and g["n_seeds"] == 2
    assert [s["label"] for s in data["systems"] if s["kind"] == "first_stage"] == ["bm25"]
    assert data["baseline"] == "bm25" and "loss._target_" in data["differing_keys"] and "seed" not in data["differing_keys"]


def test_mean_std_ci_recomputed_from_metrics_json(fx):
    out, runs = fx
    data = as_json(out / "runs")
    for s in data["systems"]:
        if s["kind"] != "group":
            continue
        loss = s["label"].split("=")[1]
        for m, got in s["measures"].items():
            vals = [json.loads((runs[(loss, seed)] / "metrics.json").read_text())["model"][m] for seed in SEEDS]
            mean = (vals[0] + vals[1]) / 2
            std = math.sqrt(((vals[0] - mean) ** 2 + (vals[1] - mean) ** 2) / 1)  # ddof=1, n=2
            half = stats.t.ppf(0.975, 1) * std / math.sqrt(2)
            assert got["mean"] == pytest.approx(mean, abs=1e-12)
            assert got["std"] == pytest.approx(std, abs=1e-12)
            assert got["ci95_low"] == pytest.approx(mean - half, abs=1e-9)
            assert got["ci95_high"] == pytest.approx(mean + half, abs=1e-9)


def _perquery_means(runs, loss, system, measure):
    tables = [read_perquery(runs[(loss, s)] / "perquery.tsv")[system][measure] for s in SEEDS]
    return {q: (tables[0][q] + tables[1][q]) / 2 for q in tables[0]}


def _holm(ps):
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adj, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adj[i] = running
    return adj


def test_pvalues_are_paired_ttests_on_perquery_means_with_holm(fx):
    out, runs = fx
    measures = ["nDCG@10", "AP"]
    data = as_json(out / "runs", "--measures", "nDCG@10 AP")
    comps = data["comparisons"]
    assert len(comps) == len(LOSSES) * len(measures) and all(c["baseline"] == "bm25" for c in comps)
    assert "per-query means over seeds" in data["tests_on"]
    expected_p = []
    for c in comps:
        loss = c["system"].split("=")[1]
        a = _perquery_means(runs, loss, "model", c["measure"])
        b = read_perquery(runs[(loss, 1)] / "perquery.tsv")["bm25"][c["measure"]]
        qids = sorted(a)
        r = significance.paired_ttest([a[q] for q in qids], [b[q] for q in qids])
        assert c["p_value"] == pytest.approx(r.p_value, rel=1e-12)
        assert c["mean_diff"] == pytest.approx(float(np.mean([a[q] - b[q] for q in qids])), abs=1e-12)
        assert c["n_queries"] == len(qids)
        expected_p.append(r.p_value)
    for c, adj in zip(comps, _holm(expected_p)):  # corrected across all comparisons
        assert c["p_adjusted"] == pytest.approx(adj, rel=1e-12)
        assert c["significant"] == (adj <= 0.05)
        assert c["marker"] == ("" if not c["significant"] else "▲" if c["mean_diff"] > 0 else "▼")
    none = as_json(out / "runs", "--measures", "nDCG@10 AP", "--correction", "none")
    assert [c["p_adjusted"] for c in none["comparisons"]] == pytest.approx(expected_p, rel=1e-12)


def test_baseline_choices_and_other_tests(fx):
    out, runs = fx
    pair_ids = sorted(runs[("pairwise", s)].name for s in SEEDS)
    for spec in ("loss=pairwise", runs[("pairwise", 2)].name, "loss._target_=RankNetLoss"):
        data = as_json(out / "runs", "--baseline", spec, "--measures", "nDCG@10")
        base = [s for s in data["systems"] if s["label"] == data["baseline"]][0]
        assert sorted(base["run_ids"]) == pair_ids, spec
        assert {c["system"] for c in data["comparisons"]} == {"loss=listwise", "bm25"}
    r1 = as_json(out / "runs", "--test", "randomization", "--measures", "AP")
    r2 = as_json(out / "runs", "--test", "randomization", "--measures", "AP")
    assert [c["p_value"] for c in r1["comparisons"]] == [c["p_value"] for c in r2["comparisons"]]  # seeded
    assert all(c["test"] == "randomization" and 0 < c["p_value"] <= 1 for c in r1["comparisons"])
    w = as_json(out / "runs", "--test", "wilcoxon", "--correction", "bonferroni", "--measures", "AP")
    assert all(c["p_adjusted"] == pytest.approx(min(1, 2 * c["p_value"])) for c in w["comparisons"])
    bad = invoke(out / "runs", "--baseline", "loss=nonexistent")
    assert bad.exit_code != 0 and "--baseline" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_table_output_has_markers_legend_and_seed_line(fx):
    out, _ = fx
    res = runner.invoke(app, ["compare", str(out / "runs"), "--measures", "nDCG@10 AP"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "loss=pairwise" in text and "loss=listwise" in text and "bm25" in text
    assert "▲/▼: significantly better/worse than bm25" in text and "holm" in text
    assert "tests on per-query means over 2 seeds" in text and "6 queries" in text
    assert "system orderings" in text and "Kendall" in text and "RBO" in text


def test_formats_parse(fx):
    out, _ = fx
    res = invoke(out / "runs", "--format", "csv", "--measures", "nDCG@10 AP")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 4 * 2 and {r["system"] for r in rows} == {"loss=pairwise", "loss=listwise", "bm25", "untrained"}
    # the untrained start (a fresh head: one per seed) is the mean over the seeds' untrained rows
    import json as _json

    unt = next(r for r in rows if r["system"] == "untrained" and r["measure"] == "nDCG@10")
    starts = {}
    for p in (out / "runs").iterdir():
        m = _json.loads((p / "metrics.json").read_text())
        starts[_json.loads((p / "env.json").read_text())["seed"]] = m["untrained"]["nDCG@10"]
    assert float(unt["mean"]) == pytest.approx(sum(starts.values()) / len(starts))
    assert all(float(r["mean"]) >= 0 for r in rows) and {r["measure"] for r in rows} == {"nDCG@10", "AP"}

    md = invoke(out / "runs", "--format", "markdown", "--measures", "nDCG@10 AP").stdout
    table = [l for l in md.splitlines() if l.startswith("| system | seeds")]
    assert table and "nDCG@10" in table[0] and "**" in md and "tests on per-query means over 2 seeds" in md
    body = md.split("\n\n")[0].splitlines()
    assert len(body) == 2 + 4 and all(l.count("|") == body[0].count("|") for l in body)
    assert "learned at all?" in md

    tex = invoke(out / "runs", "--format", "latex", "--measures", "nDCG@10 AP").stdout
    assert "\\begin{tabular}{lrrr}" in tex and "\\end{tabular}" in tex and "\\textbf{" in tex
    rows = [l for l in tex.splitlines() if l.endswith("\\\\")]
    assert len(rows) == 1 + 4 and all(l.count("&") == 3 for l in rows)

    bad = invoke(out / "runs", "--format", "xml")
    assert bad.exit_code != 0 and "--format" in bad.stderr


def test_sweep_names_run_ids_and_incomplete_runs(fx, tmp_path):
    _, runs = fx
    out = tmp_path / "outputs"
    copies = []
    for (loss, seed), p in runs.items():
        shutil.copytree(p, out / "runs" / p.name)
        copies.append(out / "runs" / p.name)
    failed, running = runs[("listwise", 2)].name, runs[("pairwise", 2)].name
    (out / "runs" / failed / "status").write_text("failed: interrupted\n")
    (out / "runs" / running / "status").write_text("running\n")
    write_sweep(out, "losses", copies, [{"overrides": ["seed=3"], "run_id": "0000000000", "run_dir": str(out / "runs" / "0000000000")}])

    res = invoke("losses", "--format", "json", out=out)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    used = {rid for s in data["systems"] if s["kind"] == "group" for rid in s["run_ids"]}
    assert used == {runs[("pairwise", 1)].name, runs[("listwise", 1)].name}
    assert {e["run"] for e in data["excluded"]} == {failed, running, "0000000000"}
    warning = " ".join(res.stderr.split())
    assert "not complete" in warning and failed in warning and running in warning and "failed" in warning

    by_id = as_json(runs[("pairwise", 1)].name[:6], runs[("listwise", 1)].name, out=out)  # prefix and full id
    assert sorted(s["run_ids"][0] for s in by_id["systems"] if s["kind"] == "group") == \
        sorted([runs[("pairwise", 1)].name, runs[("listwise", 1)].name])
    only_bad = invoke(failed, out=out)
    assert only_bad.exit_code != 0 and "no complete runs" in only_bad.stderr


def test_unknown_run_is_one_line_error(fx, tmp_path):
    res = invoke("feedfacecafe", out=tmp_path)
    assert res.exit_code != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown run or sweep 'feedfacecafe'" in lines[0] and "Traceback" not in res.output


def test_runs_mode_per_query_correlation(fx):
    _, runs = fx
    a, b = runs[("pairwise", 1)] / "run.trec", runs[("listwise", 1)] / "run.trec"
    res = runner.invoke(app, ["compare", "--runs", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    expected = run_correlation(read_run(a), read_run(b))
    assert set(data["per_query"]) == set(expected)
    for q, v in expected.items():
        for k in ("kendall_tau", "tau_ap", "rbo"):
            assert data["per_query"][q][k] == pytest.approx(v[k], abs=1e-12)
    for k in ("kendall_tau", "tau_ap", "rbo"):
        assert data["means"][k] == pytest.approx(np.nanmean([v[k] for v in expected.values()]), abs=1e-12)
    table = runner.invoke(app, ["compare", "--runs", str(a), str(b)], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "mean" in table.stdout and "τ_ap" in table.stdout
    csv_rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["compare", "--runs", str(a), str(b), "-f", "csv"]).stdout)))
    assert csv_rows[-2]["query_id"] == "mean" and len(csv_rows) == len(expected) + 2
    assert csv_rows[-1]["query_id"] == "queries"  # how many queries each mean is over
    assert int(csv_rows[-1]["rbo"]) == data["queries"]["rbo"] == len(expected)
    missing = runner.invoke(app, ["compare", "--runs", str(a), "/nonexistent.trec"])
    assert missing.exit_code != 0 and "run file not found" in missing.stderr


def test_dev_curve_is_mean_and_std_over_seeds_at_each_evaluated_step(fx):
    out, runs = fx
    data = as_json(out / "runs")
    for s in data["systems"]:
        if s["kind"] != "group":
            assert s["dev_curve"] is None
            continue
        loss = s["label"].split("=")[1]
        per_seed = []
        for seed in SEEDS:
            recs = [json.loads(line) for line in (runs[(loss, seed)] / "history.jsonl").read_text().splitlines() if line.strip()]
            per_seed.append({r["step"]: r["val/nDCG@10"] for r in recs if r.get("val/nDCG@10") is not None})
        steps = sorted(set(per_seed[0]) & set(per_seed[1]))
        assert steps == [0, 3, 6]  # the untrained start (step 0), then val_every_n_steps=3, max_steps=6
        curve = s["dev_curve"]
        assert curve["measure"] == "nDCG@10" and [p["step"] for p in curve["points"]] == steps
        for p in curve["points"]:
            vals = [d[p["step"]] for d in per_seed]
            assert p["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
            assert p["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
    md = invoke(out / "runs", "--format", "markdown").stdout
    assert "Dev nDCG@10 over training" in md and "| step 0 | step 3 | step 6 |" in md
    table = invoke(out / "runs")
    assert table.exit_code == 0 and "dev nDCG@10 over training" in table.stdout


def test_dev_curve_keeps_only_steps_every_seed_evaluated():
    from rankexp.eval.compare import _dev_curve

    class Fake:
        def __init__(self, hist):
            self.metrics, self.history = {"dev": {"measure": "RR@10", "best": 0.5}}, hist

    a = Fake([{"step": 5, "val/RR@10": 0.2}, {"step": 10, "val/RR@10": 0.4}, {"step": 10, "val/RR@10": 0.6}])
    b = Fake([{"step": 10, "val/RR@10": 0.2}, {"step": 15, "val/RR@10": 0.9}, {"step": 3, "train/loss": 1.0}])
    curve = _dev_curve([a, b])
    assert curve["measure"] == "RR@10" and [p["step"] for p in curve["points"]] == [10]
    assert curve["points"][0]["mean"] == pytest.approx(0.4)  # the last record of step 10 in a (0.6) and b's 0.2
    assert _dev_curve([a, Fake([{"step": 7, "val/RR@10": 0.1}])]) is None


def test_a_null_option_groups_with_runs_that_lack_it(fx, tmp_path):
    """A newer rankexp adding an option with a null default must not split old and new runs of the
    same system; a real value for that option does make another system, labelled key=value / null."""
    out, runs = fx
    copies = tmp_path / "runs"
    shutil.copytree(out / "runs", copies)
    pair = [copies / runs[("pairwise", s)].name for s in SEEDS]
    y = (pair[1] / "config.yaml").read_text()
    (pair[1] / "config.yaml").write_text(y + "new_option: null\n")  # seed 2 from a newer version
    data = as_json(copies)
    groups = {s["label"]: s["run_ids"] for s in data["systems"] if s["kind"] == "group"}
    assert sorted(groups["loss=pairwise"]) == sorted(p.name for p in pair)
    (pair[1] / "config.yaml").write_text(y + "new_option: 7\n")
    labels = {s["label"] for s in as_json(copies)["systems"] if s["kind"] == "group"}
    assert {"loss=pairwise new_option=7", "loss=pairwise new_option=null"} <= labels


def test_distillation_fidelity_is_a_section_of_the_comparison(fx, tmp_path):
    """Runs with metrics.json -> distill (issue 15): each system's fidelity to the teacher is summarised over its
    seeds (mean ± std of the per-run means), with the teacher's scoring time and cache builds / hits summed; the
    untrained row gets its own fidelity; runs without distill show no such section."""
    out, runs = fx
    copies = {}
    for (loss, seed), p in runs.items():
        dst = tmp_path / "runs" / p.name
        shutil.copytree(p, dst)
        m = json.loads((dst / "metrics.json").read_text())
        tau = {"pairwise": 0.2, "listwise": 0.5}[loss] + 0.1 * seed
        m["distill"] = {"kind": "kl", "teacher": "T", "scoring_s": 2.0 * seed, "cache_builds": int(seed == 1),
                        "cache_hits": int(seed == 2),
                        "fidelity": {"model": {"mean": {"kendall_tau": tau, "tau_ap": tau / 2, "rbo": 0.7, "top10_overlap": 0.4}},
                                     "untrained": {"mean": {"kendall_tau": -0.05, "tau_ap": 0.0, "rbo": 0.1, "top10_overlap": 0.1}}}}
        (dst / "metrics.json").write_text(json.dumps(m))
        copies[(loss, seed)] = dst
    md = invoke(*copies.values(), "--format", "markdown", out=tmp_path)
    assert md.exit_code == 0, md.output
    assert "Fidelity to the teacher (T)" in md.stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.stdout.split("Fidelity to the teacher")[1].splitlines() if line.startswith("| ") and "---" not in line}
    listwise = next(v for k, v in rows.items() if "listwise" in k)
    std = np.std([0.6, 0.7], ddof=1)
    assert listwise[0] == f"0.650 ± {std:.3f}" and listwise[1] == f"0.325 ± {std / 2:.3f}" and listwise[2] == "0.700 ± 0.000"
    assert listwise[4:] == ["6.0", "1 / 1"]
    assert rows["untrained"][0].startswith("-0.050")
    data = as_json(*copies.values(), out=tmp_path)
    fid = {s["label"]: s["fidelity"] for s in data["systems"] if s.get("fidelity")}
    assert sorted(round(f["kendall_tau"]["mean"], 9) for f in fid.values()) == [-0.05, 0.35, 0.65]  # untrained, pairwise, listwise
    plain = invoke(*runs.values(), "--format", "markdown", out=out)
    assert plain.exit_code == 0 and "Fidelity to the teacher" not in plain.stdout


def test_tests_line_says_how_many_queries_each_test_shares():
    """With systems on different query sets, the line gives the range each test used, not only the
    (possibly empty) set every system shares; attack runs count targets."""
    from rankexp.eval.compare.model import CompareResult, Comparison

    def result(ns, n_all, unit="queries"):
        comps = [Comparison(f"s{i}", "base", "nDCG@10", "t-test", 0.1, n) for i, n in enumerate(ns)]
        return CompareResult(systems=[], measures=["nDCG@10"], baseline="base", test="t-test", correction="holm", alpha=0.05,
                             comparisons=comps, correlations=[], differing_keys=[], n_queries=n_all, unit=unit)

    assert result([6, 6], 6).tests_line().endswith("· 6 queries")
    assert result([24, 6], 0, "targets").tests_line().endswith(
        "· 6–24 targets per test (those each system shares with base; 0 shared by all)")
    assert "per-target means" in result([6], 6, "targets").tests_line()
    assert result([5, 5], 3).tests_line().endswith("· 5 queries per test (those each system shares with base; 3 shared by all)")


def test_runs_that_differ_only_in_the_pooling_simulator_share_their_untrained_and_first_stage_rows(fx, tmp_path):
    """data.pooling hides training positives only: the untrained start and the first stage are scored on the
    same test queries, so they stay one row each (not 'untrained #1 / #2' and a mixed first-stage note)."""
    import yaml

    out, runs = fx
    copies = tmp_path / "runs"
    shutil.copytree(out / "runs", copies)
    for s in SEEDS:
        path = copies / runs[("pairwise", s)].name / "config.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg["data"]["pooling"] = {"system": "random", "hide": 0.6, "seed": 0}
        path.write_text(yaml.safe_dump(cfg))
    data = as_json(copies)
    kinds = [s["kind"] for s in data["systems"]]
    untrained = [s["label"] for s in data["systems"] if s["label"].startswith("untrained")]
    assert untrained == ["untrained"], untrained
    assert kinds.count("first_stage") == 1
    assert not any("different first-stage setups" in n for n in data.get("notes", []))
    groups = {s["label"] for s in data["systems"] if s["kind"] == "group"}
    assert any("pooling" in g for g in groups), groups  # the trained systems still differ


def test_global_group_override_labels_the_systems_it_decides():
    """`+cet_arm=X` (a `# @package _global_` group) sets debias and negatives.skip_top without a node of
    its own: it labels the systems, and the pool, which it does not decide, stays in the label."""
    from pathlib import Path

    from rankexp import api
    from rankexp.eval.compare.grouping import group_labels
    from rankexp.tracking.store import StoredRun

    groups, want = [], []
    for depth in (50, 200):
        for arm in ("naive", "skip5", "cet", "cet_model"):
            ovr = ["experiment=cet_bm25", f"+cet_arm={arm}", f"data.pooling={{system:bm25,depth:{depth}}}", "seed=1"]
            groups.append([StoredRun(path=Path(f"{arm}{depth}"), config=api.compose(ovr), overrides=ovr, metrics={}, perquery={})])
            want.append(f"cet_arm={arm} data.pooling={{system:bm25,depth:{depth}}}")
    labels, diff = group_labels(groups)
    assert labels == want
    assert "debias._target_" in diff and "negatives.skip_top" in diff and "data.pooling.depth" in diff
