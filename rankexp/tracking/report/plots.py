"""The report's plots, drawn with matplotlib's Agg canvas (no display, no global pyplot state) and
returned as base64 PNG for inlining: each measure with its 95% CI over seeds, the sorted per-query
differences against the baseline, and the train/dev curves from ``history.jsonl``."""

from __future__ import annotations

import base64
import io

from rankexp.eval import compare as cmp

__all__ = ["plot_points", "plot_perquery_deltas", "plot_curves", "short_label"]

_STYLES = ["-", "--", ":", "-."]
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


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


def short_label(label: str, n: int = 28) -> str:
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
        ax.set_xticklabels([short_label(s.label) for s in result.systems], rotation=20, ha="right", fontsize=8)
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
            ax.plot(range(1, len(deltas) + 1), deltas, marker=".", lw=1.2, color=color, label=short_label(s.label, 36))
        ax.axhline(0, color="#000000", lw=0.8)
        ax.set_title(f"{m}: per-query Δ vs {short_label(result.baseline, 24)}", fontsize=10)
        ax.set_xlabel("queries, sorted by Δ", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


_WALL = " · wall time"


def plot_curves(result: cmp.CompareResult) -> str | None:
    """train/loss and every val/* curve over steps, and every val/* curve over wall time, one line
    per run, coloured by group."""
    series = curve_series(result)
    if not series:
        return None
    names = sorted(series, key=lambda k: (k != "train/loss", k.endswith(_WALL), k))
    fig, axes = _figure(len(names), width=5.0)
    for ax, k in zip(axes, names):
        for color, style, label, xs, ys in series[k]:
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, lw=1.0, ls=style, color=color, alpha=0.85, label=label)
        ax.set_title(k, fontsize=10)
        ax.set_xlabel("wall time (min)" if k.endswith(_WALL) else "step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return _png(fig)


def curve_series(result: cmp.CompareResult) -> dict[str, list[tuple[str, str, str, list[float], list[float]]]]:
    """``panel -> [(colour, line style, label, xs, ys)]``: train/loss and val/* over steps; val/*
    again over wall time in minutes (``<key> · wall time``, from history's ``elapsed_s``)."""
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
                                                     f"{short_label(s.label, 24)} · seed {r.seed}",
                                                     [p[0] for p in pts], [float(p[1]) for p in pts]))
                # dev curves also against wall time (history's elapsed_s: what a CPU budget buys)
                timed = [(rec["elapsed_s"], rec[k]) for rec in r.history
                         if k.startswith("val/") and k in rec and rec.get("elapsed_s") is not None and rec[k] is not None]
                if timed:
                    series.setdefault(k + _WALL, []).append((_COLORS[i % len(_COLORS)], _STYLES[j % len(_STYLES)],
                                                             f"{short_label(s.label, 24)} · seed {r.seed}",
                                                             [t[0] / 60.0 for t in timed], [float(t[1]) for t in timed]))
    return series
