"""``rankexp compare --runs A B`` as text: the per-query Kendall tau-b / tau_ap / RBO of two run
files in CSV, JSON, Markdown or LaTeX (the terminal table is :mod:`.rich_table`)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Mapping

from rankexp.errors import ConfigError
from rankexp.eval.compare.model import RunPairCorrelation
from rankexp.eval.compare.render.latex import latex_escape
from rankexp.eval.compare.table import FORMATS, fmt

__all__ = ["run_pair_rows", "run_pair_query_note", "run_pair_text"]


def run_pair_rows(rc: RunPairCorrelation) -> list[dict[str, Any]]:
    rows = [{"query_id": q, **v} for q, v in rc.per_query.items()]
    rows.append({"query_id": "mean", **rc.means})
    return rows


def run_pair_query_note(rc: RunPairCorrelation) -> str:
    """One line: over how many queries each mean is taken, and why the others were left out."""
    names = {"kendall_tau": "Kendall τ", "tau_ap": "τ_ap", "rbo": "RBO"}
    parts = []
    for k, name in names.items():
        dropped = rc.dropped.get(k, {})
        why = "; ".join(f"{n} left out: {reason}" for reason, n in dropped.items())
        parts.append(f"{name} over {rc.queries.get(k, 0)} queries" + (f" ({why})" if why else ""))
    only = []
    if rc.only_in_a:
        only.append(f"{len(rc.only_in_a)} queries only in A")
    if rc.only_in_b:
        only.append(f"{len(rc.only_in_b)} queries only in B")
    return "means: " + ", ".join(parts) + (f"; not compared: {', '.join(only)}" if only else "")


def run_pair_text(rc: RunPairCorrelation, fmt_name: str) -> str:
    """csv / json / markdown / latex for ``--runs`` mode."""
    if fmt_name == "json":
        return json.dumps(rc.to_dict(), indent=2)
    rows = run_pair_rows(rc)
    keys = ["query_id", "kendall_tau", "tau_ap", "rbo", "n_common", "n_docs"]
    if fmt_name == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in keys})
        w.writerow({"query_id": "queries", **{k: rc.queries.get(k, "") for k in keys[1:4]}})  # what each mean is over
        return buf.getvalue()

    def cells(r: Mapping[str, Any]) -> list[str]:
        return [str(r["query_id"])] + [fmt(r[k], 3) for k in keys[1:4]] + [fmt(r["n_common"], 1) if r["query_id"] == "mean" else str(int(r["n_common"]))]

    if fmt_name == "markdown":
        lines = ["| query | Kendall τ | τ_ap | RBO | shared docs |", "|---|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
        return "\n".join(lines) + "\n\n" + run_pair_query_note(rc) + "\n"
    if fmt_name == "latex":
        lines = ["\\begin{tabular}{lrrrr}", "\\toprule", "Query & Kendall $\\tau$ & $\\tau_{AP}$ & RBO & Shared \\\\", "\\midrule"]
        body = [" & ".join(latex_escape(c).replace("–", "--") for c in cells(r)) + " \\\\" for r in rows]
        lines += body[:-1] + ["\\midrule", body[-1], "\\bottomrule", "\\end{tabular}", "% " + run_pair_query_note(rc)]
        return "\n".join(lines) + "\n"
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt_name!r}")
