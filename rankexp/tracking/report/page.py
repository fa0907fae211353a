"""The report as one self-contained HTML page, rendered from the Jinja2 template
``templates/report.html.j2`` (autoescaped): the comparison's tables (the same table model as
``rankexp compare``, :mod:`rankexp.eval.compare.render.html_table`), the plots inlined as base64
PNG, the notes, the config diff and the runs."""

from __future__ import annotations

import time

from rankexp.eval import compare as cmp
from rankexp.eval.compare.render.html_table import tables_html
from rankexp.tracking.report.plots import plot_curves, plot_perquery_deltas, plot_points
from rankexp.tracking.report.content import config_diff, title as report_title, value_text
from rankexp.tracking.store import Selection
from rankexp.utils.templates import render

__all__ = ["render_html"]


def render_html(result: cmp.CompareResult, selection: Selection, title: str | None = None) -> str:
    """The whole report as one self-contained HTML string."""
    runs = selection.runs
    keys, rows = config_diff(runs)
    label_of = {rid: s.label for s in result.systems if s.kind == "group" for rid in s.run_ids}
    return render(
        "rankexp.tracking.report", "report.html.j2",
        title=title or report_title(selection), result=result, runs=runs,
        n_groups=sum(1 for s in result.systems if s.kind == "group"),
        datasets=sorted({str(r.metrics.get("dataset")) for r in runs}),
        generated=time.strftime("%Y-%m-%d %H:%M"),
        warning=selection.warning() if selection.excluded else None,
        tables=tables_html(result),
        plots={"points": plot_points(result), "deltas": plot_perquery_deltas(result), "curves": plot_curves(result)},
        diff_keys=keys,
        diff_rows=[(r["run_id"], label_of.get(r["run_id"], ""), [value_text(r[k]) for k in keys]) for r in rows],
    )
