"""``rankexp report``: self-contained HTML (table, markers, inlined plots, config diff) and the W&B spec offline."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from tests.test_compare import fixture_runs, write_sweep

runner = CliRunner()


@pytest.fixture(scope="module")
def fx(tmp_path_factory, vaswani_slice):
    out, runs = fixture_runs(tmp_path_factory, vaswani_slice)  # the same runs as test_compare: trained once
    sweep_out = tmp_path_factory.mktemp("report_outputs")
    sweep_dir = write_sweep(sweep_out, "losses", list(runs.values()))
    return out, runs, sweep_out, sweep_dir


def test_html_report_for_a_sweep(fx):
    out, runs, sweep_out, sweep_dir = fx
    res = runner.invoke(app, ["report", "losses", "--measures", "nDCG@10 AP"], env={"RANKEXP_OUTPUT": str(sweep_out)})
    assert res.exit_code == 0, res.output
    html_path = sweep_dir / "report" / "report.html"  # default: the sweep's report/
    assert html_path.is_file() and str(html_path.name) in res.stdout
    assert not [p for p in html_path.parent.iterdir() if p.name.endswith(".tmp")]  # written atomically
    html = html_path.read_text()
    assert '<table class="comparison">' in html and "loss=pairwise" in html and "loss=listwise" in html
    assert html.count('<img src="data:image/png;base64,') >= 3  # point plot, per-query deltas, curves
    assert "tests on per-query means over 2 seeds" in html and "(baseline)" in html
    assert "loss._target_" in html and "RankNetLoss" in html  # the config diff
    assert '<table class="devcurve">' in html and "<th>step 3</th><th>step 6</th>" in html  # dev curve over seeds
    assert "http://" not in html and "https://" not in html  # self-contained

    # same numbers and markers as `rankexp compare`
    cmp = runner.invoke(app, ["compare", str(sweep_dir), "--measures", "nDCG@10 AP", "--format", "json"])
    data = json.loads(cmp.stdout)
    rows = re.findall(r"<tr[^>]*><td class=\"l\">(.*?)</tr>", html.split('<table class="comparison">')[1].split("</table>")[0])
    row_of = {r.split("<")[0].strip(): r for r in rows}
    for s in data["systems"]:
        row = row_of[s["label"]]
        for m, sm in s["measures"].items():
            assert f"{sm['mean']:.4f}" in row
        for c in data["comparisons"]:
            if c["system"] == s["label"] and c["marker"]:
                assert c["marker"] in row


def test_wandb_spec_offline_and_custom_out(fx, tmp_path, monkeypatch):
    out, runs, sweep_out, sweep_dir = fx
    monkeypatch.setenv("WANDB_MODE", "offline")
    dest = tmp_path / "rep"
    res = runner.invoke(app, ["report", str(sweep_dir), "--out", str(dest), "--wandb", "--baseline", "loss=pairwise"])
    assert res.exit_code == 0, res.output
    assert (dest / "report.html").is_file()
    spec = json.loads((dest / "wandb_report.json").read_text())
    assert "needs a W&B login" in res.stdout
    assert spec["format"] == "rankexp-wandb-report/1" and spec["project"] == "rankexp"
    assert sorted(spec["run_ids"]) == sorted(p.name for p in runs.values()) and spec["sweeps"] == ["losses"]
    assert "config.loss._target_" in spec["runset"]["groupby"]
    grid = next(b for b in spec["blocks"] if b["type"] == "panel_grid")
    kinds = [p["type"] for p in grid["panels"]]
    assert "run_comparer" in kinds and "line_plot" in kinds
    assert {tuple(p["metrics"]) for p in grid["panels"] if p["type"] == "bar_plot"} >= {(f"test/model/{m}",) for m in ("nDCG@10", "AP")}
    assert any(b["type"] == "markdown" and "loss._target_" in b["text"] for b in spec["blocks"])  # the config diff
    wr = pytest.importorskip("wandb_workspaces.reports.v2")
    from rankexp.tracking.report import wandb_report

    report = wandb_report({**spec, "entity": "someone"})  # building needs no network; saving would
    assert isinstance(report, wr.Report) and any(isinstance(b, wr.PanelGrid) for b in report.blocks)


def test_wandb_failures_never_fail_the_html(fx, tmp_path, monkeypatch):
    out, runs, sweep_out, sweep_dir = fx
    from rankexp.tracking import loggers, report
    from rankexp.tracking.store import resolve

    selection = resolve([str(p) for p in runs.values()])
    monkeypatch.setattr(loggers, "wandb_mode", lambda configured: "online")

    def boom(spec):
        raise ConnectionError("no network")

    monkeypatch.setattr(report, "publish_wandb", boom)
    with pytest.warns(UserWarning, match="not published"):
        rep = report.write_report(selection, tmp_path / "a", wandb=True, measures="AP")
    assert rep.html.is_file() and rep.wandb_spec == tmp_path / "a" / "wandb_report.json" and rep.wandb_spec.is_file()
    monkeypatch.setattr(report, "wandb_spec", lambda *a, **k: 1 / 0)
    rep = report.write_report(selection, tmp_path / "b", wandb=True, measures="AP")
    assert rep.html.is_file() and any("not built" in m for m in rep.messages)
    # runs that are not a single sweep: outputs/reports/<hash>/
    assert report.default_report_dir(selection, tmp_path).parent == tmp_path / "reports"


def test_report_unknown_run_is_one_line_error(tmp_path):
    res = runner.invoke(app, ["report", "nosuchsweep"], env={"RANKEXP_OUTPUT": str(tmp_path)})
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1 and "nosuchsweep" in res.stderr


def _tiny_result(label: str):
    """A hand-made comparison: one group (two seeds) against the first stage, one measure."""
    from rankexp.eval import compare as cmp
    from rankexp.eval import significance

    pq = {"q1": 0.5, "q2": 0.7}
    group = cmp.System(label=label, kind="group", run_ids=["r1", "r2"], seeds=[1, 2],
                       summaries={"AP": significance.summarize([0.6, 0.62])}, perquery={"AP": pq})
    bm25 = cmp.System(label="bm25", kind="first_stage", run_ids=["r1"], seeds=[],
                      summaries={"AP": significance.summarize([0.4])}, perquery={"AP": {"q1": 0.3, "q2": 0.5}})
    c = cmp.Comparison(system=label, baseline="bm25", measure="AP", test="ttest", mean_diff=0.2, n_queries=2,
                       statistic=9.0, p_value=0.01, p_adjusted=0.01, significant=True)
    return cmp.CompareResult(systems=[group, bm25], measures=["AP"], baseline="bm25", test="ttest", correction="holm",
                             alpha=0.05, comparisons=[c], correlations=[], differing_keys=[], n_queries=2)


def test_html_tables_come_from_the_one_table_model_and_are_autoescaped():
    from rankexp.eval.compare.render.html_table import tables_html

    html = tables_html(_tiny_result('<script>alert("x")</script> & co'))
    table = str(html["comparison"])
    assert "<script>" not in table and "&lt;script&gt;" in table and "&amp; co" in table
    row = next(line for line in table.splitlines() if "&lt;script&gt;" in line)  # one <tr> per line
    assert row.startswith("<tr><td class=\"l\">") and "<b>0.6100</b> ± 0.0141" in row and ">▲</span>" in row
    assert 'title="p (holm) = 0.0100"' in row
    assert '<tr class="baseline"><td class="l">bm25 <em>(baseline)</em></td><td>–</td><td>2</td><td>0.4000</td></tr>' in table
    assert "<td>+0.2000</td><td>2</td><td>9.000</td><td>0.0100</td><td>0.0100</td><td class=\"up\">▲</td>" in str(html["tests"])
    assert "fewer than two orderings" in str(html["orderings"]) and str(html["dev_curve"]) == ""


def test_every_renderer_draws_the_same_cells():
    """markdown, LaTeX, rich and HTML all read comparison_table: the same mean, std, CI and marker."""
    from rich.console import Console

    from rankexp.eval import compare as cmp
    from rankexp.eval.compare.render.rich_table import comparison_renderables

    result = _tiny_result("loss=x")
    t = cmp.comparison_table(result)
    c = t.rows[0].cells[0]
    assert (c.mean, c.std, c.ci, c.marker, c.best) == ("0.6100", "0.0141", ("0.483", "0.737"), "▲", True)
    assert "| loss=x | 2 | 2 | **0.6100** ± 0.0141 ▲ [0.483, 0.737] |" in cmp.to_markdown(result)
    assert "loss=x & 2 & \\textbf{0.6100} $\\pm$ 0.0141$^{\\blacktriangle}$ \\\\" in cmp.to_latex(result)
    console = Console(width=200, record=True, emoji=False)
    for item in comparison_renderables(result):
        console.print(item)
    text = console.export_text()
    assert "0.6100 ± 0.0141 ▲" in text and "[0.483, 0.737]" in text and "paired ttest vs bm25" in text


def test_templates_are_package_data():
    """The Jinja2 templates ship in the wheel: pyproject's package-data globs match every one."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rankexp"]
    templates = sorted((root / "rankexp").rglob("templates/*.j2"))
    assert len(templates) >= 2
    assert "jinja2" in " ".join(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    for t in templates:
        rel = t.relative_to(root / "rankexp")
        assert any(rel.match(g) or (g.startswith("**/") and rel.match(g[3:])) for g in globs), rel


def test_dev_curves_are_drawn_against_steps_and_wall_time():
    """Every val/* key of history.jsonl gets a panel over steps and one over wall time (minutes,
    from elapsed_s); train/loss only over steps; non-group systems are not drawn."""
    from types import SimpleNamespace as NS

    from rankexp.tracking.report.plots import curve_series, plot_curves

    hist = [{"step": 0, "val/nDCG@10": 0.40, "elapsed_s": 0.0}, {"step": 10, "train/loss": 1.2, "elapsed_s": 30.0},
            {"step": 25, "val/nDCG@10": 0.45, "elapsed_s": 90.0}, {"step": 50, "val/nDCG@10": 0.47, "elapsed_s": 180.0}]
    result = NS(systems=[NS(kind="group", label="lr=1e-4", runs=[NS(history=hist, seed=1)]),
                         NS(kind="first_stage", label="bm25", runs=[])])
    series = curve_series(result)
    assert set(series) == {"train/loss", "val/nDCG@10", "val/nDCG@10 · wall time"}
    (_, _, label, xs, ys), = series["val/nDCG@10 · wall time"]
    assert xs == [0.0, 1.5, 3.0] and ys == [0.40, 0.45, 0.47] and label.endswith("seed 1")
    assert series["val/nDCG@10"][0][3] == [0, 25, 50] and series["train/loss"][0][3] == [10]
    assert plot_curves(result) and plot_curves(NS(systems=[])) is None
