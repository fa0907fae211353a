"""The statistics of a comparison: paired tests of every system against the baseline on per-query
means over seeds (corrected together: Holm by default), whether trained systems beat their
untrained start, and Kendall's tau-b / tau_ap / RBO between system orderings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from omegaconf import OmegaConf

from rankexp.eval import significance
from rankexp.eval.compare.grouping import canon
from rankexp.eval.compare.model import Comparison, OrderingCorrelation, System, direction
from rankexp.eval.correlation import kendall_tau, rbo, tau_ap

__all__ = ["RANDOMIZATION_SAMPLES", "RANDOMIZATION_SEED", "paired_comparisons", "learned_notes", "ordering_correlations"]

RANDOMIZATION_SAMPLES = 10_000
RANDOMIZATION_SEED = 0


def paired_comparisons(systems: Sequence[System], base: System, measures: Sequence[str], test: str, correction: str,
                       alpha: float, n_samples: int = RANDOMIZATION_SAMPLES, seed: int = RANDOMIZATION_SEED,
                       ) -> tuple[list[Comparison], list[int]]:
    """Every (system, measure) against ``base`` on the queries both share (per-query means over
    seeds), one family of hypotheses corrected together; and the number of shared queries of each."""
    comparisons: list[Comparison] = []
    query_sets = []
    for s in systems:
        # the untrained start is a reference row: tested only when it is the baseline (its own test
        # against each trained system is the "learned at all?" note), so it does not enlarge the family
        if s is base or (s.kind == "untrained" and base.kind != "untrained"):
            continue
        for m in measures:
            a, b = s.perquery[m], base.perquery[m]
            qids = sorted(set(a) & set(b))
            query_sets.append(len(qids))
            x, y = [a[q] for q in qids], [b[q] for q in qids]
            c = Comparison(system=s.label, baseline=base.label, measure=m, test=test,
                           mean_diff=float(np.mean(np.subtract(x, y))) if qids else float("nan"), n_queries=len(qids))
            if len(qids) < 2:
                c.note = f"only {len(qids)} shared queries: not tested"
            else:
                kwargs = {"n_samples": n_samples, "seed": seed} if test == "randomization" else {}
                try:
                    r = significance.TESTS[test](x, y, **kwargs)
                    c.statistic, c.p_value = r.statistic, r.p_value
                except ValueError as e:
                    c.note = f"not tested: {e}"
            comparisons.append(c)
    tested = [c for c in comparisons if c.p_value is not None]
    for c, p in zip(tested, significance.correct([c.p_value for c in tested], correction)):
        c.p_adjusted = float(p)
        c.significant = bool(p <= alpha)
    return comparisons, query_sets


def learned_notes(groups: Sequence[System], untrained: Sequence[System], measure: str, alpha: float = 0.05) -> list[str]:
    """One line saying which trained systems beat their own untrained start on ``measure`` (paired
    t-test on per-query means over seeds, uncorrected): a study must say whether its models learned
    before it says anything about a technique."""
    if not untrained:
        return []
    verdicts = []
    for g in groups:
        start = next((u for u in untrained if set(u.run_ids) & set(g.run_ids) or
                      any(canon(OmegaConf.select(r.config, "model.encoder", default=None)) ==
                          canon(OmegaConf.select(u.runs[0].config, "model.encoder", default=None)) for r in g.runs)), None)
        if start is None or measure not in g.perquery:
            continue
        a, b = g.perquery[measure], start.perquery[measure]
        qids = sorted(set(a) & set(b))
        if len(qids) < 2:
            continue
        t = significance.paired_ttest([a[q] for q in qids], [b[q] for q in qids])
        word = "learned" if t.p_value < alpha and t.mean_diff > 0 else ("worse than its start" if t.p_value < alpha else "not learned")
        verdicts.append(f"{g.label}: {word} ({measure} {t.mean_diff:+.4f} vs {start.label}, p = {t.p_value:.3g})")
    if not verdicts:
        return []
    n_yes = sum(1 for v in verdicts if ": learned" in v)
    return [f"learned at all? {n_yes} of {len(verdicts)} trained systems beat their untrained start "
            f"(paired t-test, α = {alpha}, uncorrected): " + "; ".join(verdicts)]


def _order(systems: Sequence[str], scores: Sequence[float]) -> list[str]:
    return [s for _, s in sorted(zip(scores, systems), key=lambda t: (-t[0], t[1]))]


def _ordering_correlation(ref_name: str, est_name: str, systems: Sequence[str],
                          ref: Sequence[float], est: Sequence[float]) -> OrderingCorrelation:
    ro, eo = _order(systems, ref), _order(systems, est)
    return OrderingCorrelation(reference=ref_name, estimate=est_name, systems=list(systems),
                               kendall_tau=kendall_tau(ref, est), tau_ap=tau_ap(ref, est), rbo=rbo(ro, eo),
                               reference_order=ro, estimate_order=eo)


def ordering_correlations(systems: Sequence[System], measures: Sequence[str],
                          notes: list[str] | None = None) -> list[OrderingCorrelation]:
    """Kendall tau-b, tau_ap and RBO between the system orderings by each pair of measures (the
    first of a pair is tau_ap's reference; every ordering is best first, lowest first for a
    LOWER_IS_BETTER measure), and between dev and test orderings when every group has a dev value
    (reference: test). Attack runs get none (``compare`` does not call this for them)."""
    out: list[OrderingCorrelation] = []
    if len(systems) < 2:
        return out
    labels = [s.label for s in systems]
    tied = [m for m in measures if len({s.mean(m) for s in systems}) == 1]
    if tied and notes is not None:
        notes.append(f"every system has the same mean {'/'.join(tied)}: no ordering to correlate")
    for i, a in enumerate(measures):
        for b in measures[i + 1:]:
            if a not in tied and b not in tied:
                out.append(_ordering_correlation(a, b, labels, [direction(a) * s.mean(a) for s in systems],
                                                 [direction(b) * s.mean(b) for s in systems]))
    groups = [s for s in systems if s.kind == "group"]
    if len(groups) >= 2:
        if all(g.dev is not None for g in groups) and len({g.dev["measure"] for g in groups}) == 1:
            dm = groups[0].dev["measure"]
            if all(dm in (r.metrics.get("model") or {}) for g in groups for r in g.runs):
                test = [float(np.mean([r.metrics["model"][dm] for r in g.runs])) for g in groups]
                dev = [g.dev["mean"] for g in groups]
                if len(set(test)) > 1 and len(set(dev)) > 1:
                    out.append(_ordering_correlation(f"test {dm}", f"dev {dm}", [g.label for g in groups], test, dev))
                elif notes is not None:
                    notes.append(f"no dev vs test ordering: the groups tie on {'dev' if len(set(dev)) == 1 else 'test'} {dm}")
        elif notes is not None:
            notes.append("no dev vs test ordering: not every group has a dev measure (metrics.dev.best)")
    return out
