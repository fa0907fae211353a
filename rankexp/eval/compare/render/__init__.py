"""Renderers of the one comparison table model (:mod:`rankexp.eval.compare.table`): rich (the
terminal), Markdown, LaTeX, CSV / JSON, HTML (Jinja2); and the ``--runs`` run-pair text forms."""

from __future__ import annotations

from rankexp.eval.compare.model import CompareResult
from rankexp.eval.compare.render.data import to_csv as to_csv
from rankexp.eval.compare.render.data import to_json as to_json
from rankexp.eval.compare.render.latex import latex_escape as latex_escape
from rankexp.eval.compare.render.latex import to_latex as to_latex
from rankexp.eval.compare.render.markdown import to_markdown as to_markdown
from rankexp.eval.compare.render.runpair import run_pair_query_note as run_pair_query_note
from rankexp.eval.compare.render.runpair import run_pair_rows as run_pair_rows
from rankexp.eval.compare.render.runpair import run_pair_text as run_pair_text
from rankexp.eval.compare.table import FORMATS as FORMATS
from rankexp.errors import ConfigError

__all__ = ["FORMATS", "TEXT_RENDERERS", "render_text", "to_csv", "to_json", "to_latex", "to_markdown", "latex_escape",
           "run_pair_rows", "run_pair_query_note", "run_pair_text"]

TEXT_RENDERERS = {"csv": to_csv, "json": to_json, "latex": to_latex, "markdown": to_markdown}


def render_text(result: CompareResult, fmt_name: str) -> str:
    """The comparison in a text format (``table`` is drawn by :mod:`.rich_table` instead)."""
    if fmt_name not in TEXT_RENDERERS:
        raise ConfigError(f"--format must be one of {', '.join(TEXT_RENDERERS)}, got {fmt_name!r}")
    return TEXT_RENDERERS[fmt_name](result)
