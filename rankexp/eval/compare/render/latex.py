"""The comparison as a booktabs LaTeX table (needs ``\\usepackage{booktabs,amssymb}``)."""

from __future__ import annotations

from rankexp.eval.compare.model import UP, CompareResult
from rankexp.eval.compare.table import Cell, comparison_table

__all__ = ["latex_escape", "to_latex"]

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in s)


def _cell(c: Cell) -> str:
    text = (f"\\textbf{{{c.mean}}}" if c.best else c.mean) + (f" $\\pm$ {c.std}" if c.std else "")
    if c.marker:
        text += "$^{\\blacktriangle}$" if c.marker == UP else "$^{\\blacktriangledown}$"
    return text


def to_latex(result: CompareResult) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs,amssymb}``)."""
    t = comparison_table(result)
    cols = "l" + "r" * (1 + len(t.measures))
    lines = ["% rankexp compare: needs \\usepackage{booktabs,amssymb}", "\\begin{table}[t]", "\\centering",
             f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
             " & ".join(["System", "Seeds"] + [latex_escape(m) for m in t.measures]) + " \\\\", "\\midrule"]
    for row in t.rows:
        name = row.label + (" (baseline)" if row.baseline else "")
        lines.append(" & ".join([latex_escape(name), row.seeds.replace("–", "--"), *map(_cell, row.cells)]) + " \\\\")
    corr = "no correction" if t.correction == "none" else f"{t.correction} correction over {t.tested} comparisons"
    caption = (f"Mean $\\pm$ std over seeds. $^\\blacktriangle$/$^\\blacktriangledown$: significantly better/worse than "
               f"{latex_escape(t.baseline)} (paired {t.test}, {corr}, $\\alpha={t.alpha:g}$); "
               f"{latex_escape(t.tests_line.replace(' · ', ', ')).replace('–', '--')}.")
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
