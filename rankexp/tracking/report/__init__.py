"""Reports: an offline, self-contained HTML page and a W&B Report spec for a sweep or a set of runs.

The HTML report holds the comparison table of ``rankexp compare`` (same table model, same numbers,
same significance markers), a point plot of each measure with the 95% CI over seeds per group, the
sorted per-query differences of each group against the baseline, training-loss and dev curves from
``history.jsonl``, and the config keys that differ between the runs. It is written atomically.
The W&B Report spec mirrors it for the W&B UI; W&B never makes the HTML report fail.

One module per part; this package writes the report and re-exports the public names:

* :mod:`.plots` — matplotlib (Agg) plots as base64 PNG;
* :mod:`.page` — the HTML page, rendered from the Jinja2 template ``templates/report.html.j2``;
* :mod:`.content` — the title and the config diff (shared by the page and W&B);
* :mod:`.wandb_builder` — the W&B Report spec, its ``wandb_workspaces`` report, publishing it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rankexp.eval import compare as cmp
from rankexp.tracking.report.content import config_diff as config_diff
from rankexp.tracking.report.page import render_html as render_html
from rankexp.tracking.report.wandb_builder import WANDB_SPEC_FORMAT as WANDB_SPEC_FORMAT
from rankexp.tracking.report.wandb_builder import publish_wandb as publish_wandb
from rankexp.tracking.report.wandb_builder import wandb_report as wandb_report
from rankexp.tracking.report.wandb_builder import wandb_spec as wandb_spec
from rankexp.tracking.store import Selection, default_output_dir
from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import atomic_open, write_json

__all__ = ["ReportResult", "write_report", "render_html", "config_diff", "wandb_spec", "wandb_report", "publish_wandb",
           "default_report_dir", "WANDB_SPEC_FORMAT"]


@dataclass
class ReportResult:
    html: Path
    compare: cmp.CompareResult
    wandb_spec: Path | None = None
    wandb_url: str | None = None
    messages: list[str] = field(default_factory=list)  # one line each, for the CLI


def default_report_dir(selection: Selection, output_dir: str | Path | None = None) -> Path:
    """``<sweep dir>/report`` for a single sweep; else ``<output_dir>/reports/<hash of the run ids>``."""
    if len(selection.sweeps) == 1 and all(r.sweep == selection.sweeps[0].name for r in selection.runs):
        return selection.sweeps[0].path / "report"
    out = Path(output_dir) if output_dir is not None else default_output_dir()
    return out / "reports" / stable_hash(sorted(r.run_id for r in selection.runs), 10)


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
