"""Reports: an offline, self-contained HTML page and a W&B Report spec for a sweep or a set of runs.

The HTML report holds the comparison table of ``rankexp compare`` (same numbers, same
significance markers), a point plot of each measure with the 95% CI over seeds per group, the
sorted per-query differences of each group against the baseline, training-loss and dev curves from
``history.jsonl``, and the config keys that differ between the runs. Plots are drawn with
matplotlib's Agg canvas (no display, no global pyplot state) and inlined as base64 PNG, so the
file can be mailed or attached as is. It is written atomically.

The W&B Report spec mirrors it for the W&B UI: a run set holding the runs (grouped by the config
keys that differ, so W&B shows mean and spread over seeds), bar plots of each test measure, the
train/dev curves, a run comparer and the config diff. It is plain JSON; when online it is turned
into a ``wandb_workspaces`` report and saved. W&B never makes the HTML report fail.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from rankexp.eval import compare as cmp
from rankexp.tracking.store import Selection, StoredRun, default_output_dir
from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import atomic_open, write_json

__all__ = ["ReportResult", "write_report", "render_html", "config_diff", "wandb_spec", "wandb_report", "publish_wandb",
           "default_report_dir", "WANDB_SPEC_FORMAT"]

WANDB_SPEC_FORMAT = "rankexp-wandb-report/1"
_STYLES = ["-", "--", ":", "-."]
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


@dataclass
class ReportResult:
    html: Path
    compare: cmp.CompareResult
    wandb_spec: Path | None = None
    wandb_url: str | None = None
    messages: list[str] = field(default_factory=list)  # one line each, for the CLI


# --------------------------------------------------------------------------------------------
# Where
# --------------------------------------------------------------------------------------------


def default_report_dir(selection: Selection, output_dir: str | Path | None = None) -> Path:
    """``<sweep dir>/report`` for a single sweep; else ``<output_dir>/reports/<hash of the run ids>``."""
    if len(selection.sweeps) == 1 and all(r.sweep == selection.sweeps[0].name for r in selection.runs):
        return selection.sweeps[0].path / "report"
    out = Path(output_dir) if output_dir is not None else default_output_dir()
    return out / "reports" / stable_hash(sorted(r.run_id for r in selection.runs), 10)


# --------------------------------------------------------------------------------------------
# Config diff
# --------------------------------------------------------------------------------------------


def config_diff(runs: Sequence[StoredRun]) -> tuple[list[str], list[dict[str, Any]]]:
    """The flattened config keys that differ between ``runs`` (seed included; output paths and
    logging excluded) and one row per run: ``{"run_id", key: value...}``."""
    flats = []
    for r in runs:
        f = cmp.config_identity(r)
        f["seed"] = r.seed
        flats.append(f)
    keys = cmp.differing_keys(flats)
    keys = [k for k in keys if k != "seed"] + (["seed"] if "seed" in keys else [])
    return keys, [{"run_id": r.run_id, **{k: f.get(k, "–") for k in keys}} for r, f in zip(runs, flats)]


# --------------------------------------------------------------------------------------------
# Plots (matplotlib Agg, base64 PNG)
# --------------------------------------------------------------------------------------------


def _figure(n_panels: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = (n_panels + cols - 1) // cols
    fig = Figure(figsize=(width * cols, height * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def plot_points(result: cmp.CompareResult) -> str:
    """Per measure: each system's mean with its 95% CI over seeds, and the individual seeds."""
    fig, axes = _figure(len(result.measures))
    for ax, m in zip(axes, result.measures):
        for i, s in enumerate(result.systems):
            sm = s.summaries[m]
            color = "#555555" if s.kind == "first_stage" else _COLORS[i % len(_COLORS)]
            lo, hi = sm["mean"] - sm["ci95_low"], sm["ci95_high"] - sm["mean"]
            ax.errorbar([i], [sm["mean"]], yerr=[[lo], [hi]], fmt="o" if s.kind == "group" else "s", color=color,
                        capsize=4, markersize=7, zorder=3)
            if s.kind == "group" and s.n_seeds > 1:
                vals = [float(r.metrics["model"][m]) for r in s.runs]
                ax.scatter([i + 0.12] * len(vals), vals, s=12, color=color, alpha=0.5, zorder=2)
            c = result.comparison(s.label, m)
            if c and c.marker:
                ax.annotate(c.marker, (i, sm["mean"]), textcoords="offset points", xytext=(-12, 0), ha="right", va="center",
                            color="#2ca02c" if c.marker == cmp.UP else "#d62728", fontsize=11)
        base = next(s for s in result.systems if s.label == result.baseline)
        ax.axhline(base.summaries[m]["mean"], color="#999999", lw=0.8, ls="--", zorder=1)
        ax.set_xticks(range(len(result.systems)))
        ax.set_xticklabels([_short(s.label) for s in result.systems], rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{m} (mean, 95% CI over seeds)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_perquery_deltas(result: cmp.CompareResult) -> str | None:
    """Per measure: each system's per-query differences to the baseline (per-query means over
    seeds), sorted descending, one line per system."""
    base = next(s for s in result.systems if s.label == result.baseline)
    others = [s for s in result.systems if s is not base]
    if not others:
        return None
    fig, axes = _figure(len(result.measures))
    for ax, m in zip(axes, result.measures):
        b = base.perquery[m]
        for i, s in enumerate(result.systems):
            if s is base:
                continue
            qids = sorted(set(s.perquery[m]) & set(b))
            deltas = sorted((s.perquery[m][q] - b[q] for q in qids), reverse=True)
            color = "#555555" if s.kind == "first_stage" else _COLORS[i % len(_COLORS)]
            ax.plot(range(1, len(deltas) + 1), deltas, marker=".", lw=1.2, color=color, label=_short(s.label, 36))
        ax.axhline(0, color="#000000", lw=0.8)
        ax.set_title(f"{m}: per-query Δ vs {_short(result.baseline, 24)}", fontsize=10)
        ax.set_xlabel("queries, sorted by Δ", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def plot_curves(result: cmp.CompareResult) -> str | None:
    """train/loss and every val/* curve over steps, one line per run, coloured by group."""
    series: dict[str, list[tuple[str, str, str, list[float], list[float]]]] = {}
    for i, s in enumerate(result.systems):
        if s.kind != "group":
            continue
        for j, r in enumerate(s.runs):
            keys = sorted({k for rec in r.history for k in rec if k == "train/loss" or k.startswith("val/")})
            for k in keys:
                pts = [(rec["step"], rec[k]) for rec in r.history if k in rec and "step" in rec and rec[k] is not None]
                if pts:
                    series.setdefault(k, []).append((_COLORS[i % len(_COLORS)], _STYLES[j % len(_STYLES)],
                                                     f"{_short(s.label, 24)} · seed {r.seed}",
                                                     [p[0] for p in pts], [float(p[1]) for p in pts]))
    if not series:
        return None
    names = sorted(series, key=lambda k: (k != "train/loss", k))
    fig, axes = _figure(len(names), width=5.0)
    for ax, k in zip(axes, names):
        for color, style, label, xs, ys in series[k]:
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, lw=1.0, ls=style, color=color, alpha=0.85, label=label)
        ax.set_title(k, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return _png(fig)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.ci{color:#888;font-size:.85em}.up{color:#2ca02c}.down{color:#d62728}
.note{color:#8a6d3b}.meta{color:#666;font-size:.9em}img{max-width:100%}code{background:#f5f5f5;padding:0 .2em}
tr.baseline td{background:#fafafa}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(b64: str | None, alt: str) -> str:
    return f'<p><img src="data:image/png;base64,{b64}" alt="{_e(alt)}"></p>' if b64 else f'<p class="note">{_e(alt)}: nothing to plot</p>'


def comparison_table_html(result: cmp.CompareResult) -> str:
    rows = ['<table class="comparison"><tr><th class="l">system</th><th>seeds</th><th>queries</th>'
            + "".join(f"<th>{_e(m)}</th>" for m in result.measures) + "</tr>"]
    for s in result.systems:
        is_base = s.label == result.baseline
        cells = [f'<td class="l">{_e(s.label)}{" <em>(baseline)</em>" if is_base else ""}</td>',
                 f"<td>{_e(cmp.seeds_cell(s))}</td>", f"<td>{s.n_queries}</td>"]
        for m in result.measures:
            c = cmp.cell(result, s, m)
            html = (f"<b>{_e(c.mean)}</b>" if c.best else _e(c.mean)) + (f" ± {_e(c.std)}" if c.std else "")
            if c.marker:
                html += f' <span class="{"up" if c.marker == cmp.UP else "down"}" title="p ({_e(result.correction)}) = {_e(cmp.fmt_p(c.p_adjusted))}">{c.marker}</span>'
            if c.ci:
                html += f'<br><span class="ci">[{c.ci[0]}, {c.ci[1]}]</span>'
            cells.append(f"<td>{html}</td>")
        rows.append(f'<tr{" class=baseline" if is_base else ""}>' + "".join(cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _tests_table_html(result: cmp.CompareResult) -> str:
    adj = "p (uncorrected)" if result.correction == "none" else f"p ({result.correction})"
    rows = [f'<table class="tests"><tr><th class="l">system</th><th class="l">measure</th><th>Δ mean vs {_e(result.baseline)}</th>'
            f"<th>queries</th><th>statistic</th><th>p</th><th>{_e(adj)}</th><th></th></tr>"]
    for c in result.comparisons:
        cls = "up" if c.marker == cmp.UP else "down" if c.marker == cmp.DOWN else ""
        rows.append(f'<tr><td class="l">{_e(c.system)}</td><td class="l">{_e(c.measure)}</td><td>{c.mean_diff:+.4f}</td>'
                    f"<td>{c.n_queries}</td><td>{_e(cmp.fmt(c.statistic, 3))}</td><td>{_e(cmp.fmt_p(c.p_value))}</td>"
                    f'<td>{_e(cmp.fmt_p(c.p_adjusted))}</td><td class="{cls}">{c.marker}</td></tr>')
    rows.append("</table>")
    return "\n".join(rows)


def _dev_curve_table_html(result: cmp.CompareResult) -> str:
    """Each group's dev measure at every evaluated step, mean ± std over seeds (early-training gains)."""
    curve = cmp.dev_curve_rows(result)
    if not curve:
        return ""
    steps, rows = curve
    out = [f"<p>Dev {_e(rows[0][1])} at each dev evaluation, mean ± std over the seeds that evaluated that step.</p>",
           '<table class="devcurve"><tr><th class="l">system</th>' + "".join(f"<th>step {st}</th>" for st in steps) + "</tr>"]
    for label, _, cells in rows:
        out.append(f'<tr><td class="l">{_e(label)}</td>' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _correlation_table_html(result: cmp.CompareResult) -> str:
    if not result.correlations:
        return '<p class="note">fewer than two orderings to correlate</p>'
    rows = ['<table class="orderings"><tr><th class="l">reference</th><th class="l">estimate</th><th>systems</th>'
            "<th>Kendall τ</th><th>τ_ap</th><th>RBO (p=0.9)</th></tr>"]
    for c in result.correlations:
        rows.append(f'<tr><td class="l">{_e(c.reference)}</td><td class="l">{_e(c.estimate)}</td><td>{len(c.systems)}</td>'
                    f"<td>{cmp.fmt(c.kendall_tau, 3)}</td><td>{cmp.fmt(c.tau_ap, 3)}</td><td>{cmp.fmt(c.rbo, 3)}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _config_diff_html(runs: Sequence[StoredRun], result: cmp.CompareResult) -> str:
    keys, rows = config_diff(runs)
    label_of = {rid: s.label for s in result.systems if s.kind == "group" for rid in s.run_ids}
    head = '<table class="configdiff"><tr><th class="l">run</th><th class="l">system</th>' + "".join(
        f'<th class="l">{_e(k)}</th>' for k in keys) + "</tr>"
    body = [f'<tr><td class="l"><code>{_e(r["run_id"])}</code></td><td class="l">{_e(label_of.get(r["run_id"], ""))}</td>'
            + "".join(f'<td class="l">{_e(_value(r[k]))}</td>' for k in keys) + "</tr>" for r in rows]
    return "\n".join([head, *body, "</table>"])


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def render_html(result: cmp.CompareResult, selection: Selection, title: str | None = None) -> str:
    """The whole report as one self-contained HTML string."""
    runs = selection.runs
    title = title or _title(selection)
    datasets = sorted({str(r.metrics.get("dataset")) for r in runs})
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(runs)} complete runs in {sum(1 for s in result.systems if s.kind == "group")} groups · '
        f"data: {_e(', '.join(datasets))} · {result.n_queries} test queries · generated {_e(time.strftime('%Y-%m-%d %H:%M'))} by rankexp report</p>",
    ]
    if selection.excluded:
        parts.append(f'<p class="note">{_e(selection.warning())}</p>')
    parts += [
        "<h2>Comparison</h2>", comparison_table_html(result),
        f"<p>{_e(result.legend())}.<br><b>{_e(result.tests_line())}</b> (each group's per-query values are averaged "
        "over its seeds before testing; the seed-to-seed spread is the ± and the CI).</p>",
        f"<h3>Paired {_e(result.test)} against {_e(result.baseline)}</h3>", _tests_table_html(result),
        "<h3>System orderings</h3>",
        "<p>Kendall's τ-b, τ_ap (Yilmaz et al. 2008; the estimate judged against the reference, top-weighted) and "
        "RBO (Webber et al. 2010, p = 0.9) between the orderings of the systems by two measures, and between "
        "the dev ordering (best dev value per run) and the test ordering.</p>",
        _correlation_table_html(result),
    ]
    parts += [f'<p class="note">note: {_e(n)}</p>' for n in result.notes]
    parts += ["<h2>Measures with 95% CI over seeds</h2>", _img(plot_points(result), "point plot"),
              f"<h2>Per-query differences against {_e(result.baseline)}</h2>",
              "<p>Each line is one system: its per-query values (mean over seeds) minus the baseline's, sorted.</p>",
              _img(plot_perquery_deltas(result), "per-query differences"),
              "<h2>Training curves</h2>", _img(plot_curves(result), "training curves (history.jsonl)"),
              _dev_curve_table_html(result),
              "<h2>Config keys that differ between runs</h2>", _config_diff_html(runs, result),
              "<h2>Runs</h2><ul>"]
    parts += [f"<li><code>{_e(r.run_id)}</code> {_e(r.path)}" + (f" (sweep {_e(r.sweep)})" if r.sweep else "") + "</li>" for r in runs]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _title(selection: Selection) -> str:
    if len(selection.sweeps) == 1:
        return f"rankexp report: sweep {selection.sweeps[0].name}"
    return f"rankexp report: {len(selection.runs)} runs"


# --------------------------------------------------------------------------------------------
# W&B Report spec
# --------------------------------------------------------------------------------------------


def _markdown_table(keys: Sequence[str], rows: Sequence[dict]) -> str:
    cols = ["run_id", *keys]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_value(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def wandb_spec(result: cmp.CompareResult, selection: Selection, title: str | None = None) -> dict[str, Any]:
    """A W&B Report as plain JSON: the runs' project/entity/group, a run set of exactly these runs
    (grouped by the config keys that differ, so panels show mean and std over seeds), a bar plot
    per test measure (``test/model/<measure>``, as rankexp logs it), train-loss and dev curves, a
    run comparer, the comparison table and the config diff. :func:`wandb_report` turns it into a
    ``wandb_workspaces`` report."""
    runs = selection.runs
    first = OmegaConf.to_container(runs[0].config.get("logger") or {}, resolve=True) if runs else {}
    project = (first or {}).get("project") or "rankexp"
    entity = (first or {}).get("entity")
    groups = sorted({str(g) for r in runs for g in [OmegaConf.select(r.config, "logger.group", default=None)] if g})
    run_ids = [r.run_id for r in runs]
    groupby = [f"config.{k}" for k in result.differing_keys]
    dev_keys = sorted({k for r in runs for rec in r.history for k in rec if k.startswith("val/")}) or \
        sorted({f"val/{(r.metrics.get('dev') or {}).get('measure')}" for r in runs if (r.metrics.get("dev") or {}).get("measure")})
    panels: list[dict[str, Any]] = [
        {"type": "bar_plot", "title": f"test {m} (model), mean ± std over seeds", "metrics": [f"test/model/{m}"],
         "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"} for m in result.measures]
    panels.append({"type": "line_plot", "title": "train loss", "x": "Step", "y": ["train/loss"],
                   "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"})
    panels += [{"type": "line_plot", "title": f"dev {k[4:]}", "x": "Step", "y": [k],
                "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"} for k in dev_keys]
    panels.append({"type": "run_comparer", "diff_only": "split"})
    keys, rows = config_diff(runs)
    title = title or _title(selection)
    return {
        "format": WANDB_SPEC_FORMAT,
        "project": project,
        "entity": entity,
        "title": title,
        "description": result.tests_line() + "; " + result.legend(),
        "wandb_groups": groups,
        "sweeps": [s.name for s in selection.sweeps],
        "run_ids": run_ids,
        "runset": {"name": title[:60], "filters": f"Metric(\"ID\") in {json.dumps(run_ids)}", "groupby": groupby},
        "blocks": [
            {"type": "h1", "text": title},
            {"type": "p", "text": f"{result.tests_line()}. {result.legend()}."},
            {"type": "markdown", "text": cmp.to_markdown(result)},
            {"type": "panel_grid", "panels": panels},
            {"type": "h2", "text": "Config keys that differ between runs"},
            {"type": "markdown", "text": _markdown_table(keys, rows)},
        ],
    }


def wandb_report(spec: dict[str, Any]):
    """A ``wandb_workspaces.reports.v2.Report`` built from :func:`wandb_spec` (needs the
    ``wandb-workspaces`` package; building needs no network, saving does)."""
    import wandb_workspaces.reports.v2 as wr

    entity = spec.get("entity") or ""
    rs = spec["runset"]
    runset = wr.Runset(entity=entity, project=spec["project"], name=rs["name"], filters=rs["filters"], groupby=list(rs["groupby"]))
    blocks = []
    for b in spec["blocks"]:
        t = b["type"]
        if t == "h1":
            blocks.append(wr.H1(b["text"]))
        elif t == "h2":
            blocks.append(wr.H2(b["text"]))
        elif t == "p":
            blocks.append(wr.P(b["text"]))
        elif t == "markdown":
            blocks.append(wr.MarkdownBlock(b["text"]))
        elif t == "panel_grid":
            panels = []
            for p in b["panels"]:
                kw = {k: v for k, v in p.items() if k != "type"}
                panels.append({"bar_plot": wr.BarPlot, "line_plot": wr.LinePlot, "run_comparer": wr.RunComparer}[p["type"]](**kw))
            blocks.append(wr.PanelGrid(runsets=[runset], panels=panels))
        else:
            raise ValueError(f"unknown block type {t!r} in the W&B report spec")
    kwargs = {"entity": entity} if entity else {}
    return wr.Report(project=spec["project"], title=spec["title"], description=spec.get("description", ""),
                     blocks=blocks, width="fluid", **kwargs)


def publish_wandb(spec: dict[str, Any]) -> str:
    """Save the report to W&B (online); returns its URL."""
    report = wandb_report(spec)
    report.save()
    return str(report.url)


# --------------------------------------------------------------------------------------------
# The whole thing
# --------------------------------------------------------------------------------------------


def write_report(
    selection: Selection,
    out: str | Path | None = None,
    *,
    baseline: str | None = None,
    measures: str | Sequence[str] | None = None,
    test: str = "ttest",
    correction: str = "holm",
    alpha: float = 0.05,
    wandb: bool = False,
    output_dir: str | Path | None = None,
) -> ReportResult:
    """Compare the selection's runs and write ``<out>/report.html`` (atomically); with ``wandb``,
    also the W&B Report: saved online when ``wandb_mode(None) == "online"``, else written to
    ``<out>/wandb_report.json``. A W&B failure is a message, never an exception."""
    result = cmp.compare(selection.runs, measures=measures, baseline=baseline, test=test, correction=correction,
                         alpha=alpha, excluded=selection.excluded)
    out_dir = Path(out) if out is not None else default_report_dir(selection, output_dir)
    text = render_html(result, selection)
    html_path = out_dir / "report.html"
    with atomic_open(html_path) as fh:
        fh.write(text)
    rep = ReportResult(html=html_path, compare=result)
    if wandb:
        _wandb(rep, result, selection, out_dir)
    return rep


def _wandb(rep: ReportResult, result: cmp.CompareResult, selection: Selection, out_dir: Path) -> None:
    from rankexp.tracking.loggers import wandb_mode

    try:
        spec = wandb_spec(result, selection)
    except Exception as e:  # never lose the HTML report to W&B
        rep.messages.append(f"W&B report spec not built ({type(e).__name__}: {e})")
        return
    spec_path = out_dir / "wandb_report.json"
    try:
        mode = wandb_mode(None)
    except Exception:
        mode = "offline"
    if mode == "online":
        try:
            rep.wandb_url = publish_wandb(spec)
            rep.messages.append(f"W&B report: {rep.wandb_url}")
            return
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            rep.messages.append(f"W&B report not published ({type(e).__name__}: {first}); spec written to {spec_path}")
            warnings.warn(rep.messages[-1], stacklevel=2)
    else:
        rep.messages.append(f"W&B report spec written to {spec_path}; publishing it needs a W&B login "
                            "(wandb login or WANDB_API_KEY, then rerun with --wandb)")
    try:
        write_json(spec_path, spec)
        rep.wandb_spec = spec_path
    except OSError as e:
        rep.messages.append(f"W&B report spec not written ({e})")
