"""The comparison's tables as HTML fragments (for ``rankexp report``), rendered from the Jinja2
template ``templates/compare.html.j2`` with autoescaping: the system table with markers and CIs,
the paired tests, the system orderings and the dev curves. Each function returns
:class:`markupsafe.Markup`, so a page template embeds it as is."""

from __future__ import annotations

from rankexp.eval.compare.model import DOWN, UP, CompareResult
from rankexp.eval.compare.table import ComparisonTable, comparison_table, fmt_p
from rankexp.utils.templates import environment

__all__ = ["comparison_table_html", "tests_table_html", "orderings_table_html", "dev_curve_table_html", "tables_html"]

_PACKAGE = "rankexp.eval.compare.render"


def _macro(name: str, t: ComparisonTable):
    from markupsafe import Markup

    module = environment(_PACKAGE).get_template("compare.html.j2").make_module({"up": UP, "down": DOWN, "fmt_p": fmt_p})
    return Markup(str(getattr(module, name)(t)).strip("\n"))


def comparison_table_html(result: CompareResult):
    return _macro("comparison", comparison_table(result))


def tests_table_html(result: CompareResult):
    return _macro("tests", comparison_table(result))


def orderings_table_html(result: CompareResult):
    return _macro("orderings", comparison_table(result))


def dev_curve_table_html(result: CompareResult):
    return _macro("dev_curve", comparison_table(result))


def tables_html(result: CompareResult) -> dict:
    """Every fragment at once (one table model): ``comparison``, ``tests``, ``orderings``, ``dev_curve``."""
    t = comparison_table(result)
    return {name: _macro(name, t) for name in ("comparison", "tests", "orderings", "dev_curve")}
