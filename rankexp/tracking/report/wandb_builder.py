"""The W&B Report of a comparison, mirroring the HTML page for the W&B UI.

:func:`wandb_spec` is plain JSON: a run set holding the runs (grouped by the config keys that
differ, so W&B shows mean and spread over seeds), bar plots of each test measure, the train/dev
curves, a run comparer and the config diff. :func:`wandb_report` turns it into a
``wandb_workspaces`` report; :func:`publish_wandb` saves it (online).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from omegaconf import OmegaConf

from rankexp.eval import compare as cmp
from rankexp.tracking.report.content import config_diff, value_text
from rankexp.tracking.report.content import title as report_title
from rankexp.tracking.store import Selection

__all__ = ["WANDB_SPEC_FORMAT", "wandb_spec", "wandb_report", "publish_wandb"]

WANDB_SPEC_FORMAT = "rankexp-wandb-report/1"


def _markdown_table(keys: Sequence[str], rows: Sequence[dict]) -> str:
    cols = ["run_id", *keys]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(value_text(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
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
    title = title or report_title(selection)
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
