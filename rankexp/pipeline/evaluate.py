"""Stage ``evaluate``: a model's ranking beside its references on the same queries and depth.

The references are the first stage (its top ``depth``, the candidates the model reranked) and,
when there is one, the untrained start. Every system is evaluated with trec_eval semantics on the
same query set (a query without results scores 0), the model is paired-tested per query against
each reference, and the ``learned`` verdict says whether training beat the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass
class Evaluation:
    model: Any  # rankexp.eval.measures result (aggregate, perquery, provider, ...)
    references: dict[str, Any] = field(default_factory=dict)  # name -> result (first stage, untrained)
    paired: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def perquery_tables(self, model_name: str = "model") -> dict[str, dict]:
        return {model_name: self.model.perquery, **{k: v.perquery for k, v in self.references.items()}}

    def aggregates(self, model_name: str = "model") -> dict[str, dict[str, float]]:
        return {model_name: self.model.aggregate, **{k: v.aggregate for k, v in self.references.items()}}


def evaluate_beside(model_run: Mapping, references: Mapping[str, Mapping | None], qrels: Mapping, qids: Sequence[str],
                    measures: Sequence[str]) -> Evaluation:
    """``model_run`` and each non-None reference run evaluated on ``qids``; the model paired-tested
    against each reference."""
    from rankexp.eval.measures import evaluate

    out = Evaluation(evaluate(model_run, qrels, list(measures), qids=list(qids), complete=True))
    for name, run in references.items():
        if run is None:
            continue
        out.references[name] = evaluate(run, qrels, list(measures), qids=list(qids), complete=True)
        out.paired[name] = paired_tests(out.model.perquery, out.references[name].perquery)
    return out


def first_stage_top(fs_run: Mapping[str, Mapping[str, float]], qids: Sequence[str], depth: int) -> dict[str, dict[str, float]]:
    """The first stage's top ``depth`` of each query (the reference row, on the model's candidates)."""
    from rankexp.eval.trec_io import sort_ranking

    return {q: dict(sort_ranking(fs_run[q])[:depth]) for q in qids if q in fs_run}


def paired_tests(model: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``measure -> {diff, p, n}``: paired two-sided t-test of the model against ``other`` per measure,
    over the queries both evaluated (mean difference > 0: the model is better)."""
    from rankexp.eval.significance import paired_ttest

    out = {}
    for m, values in model.items():
        qids = [q for q in values if q in other.get(m, {})]
        if len(qids) < 2:
            continue
        r = paired_ttest([values[q] for q in qids], [other[m][q] for q in qids])
        out[m] = {"diff": r.mean_diff, "p": r.p_value, "n": r.n}
    return out


def learned_verdict(vs_untrained: dict | None, measure: str, alpha: float = 0.05) -> str | None:
    """Whether training paid off: ``yes`` (the model beats its untrained start on ``measure``, paired
    t-test p < alpha), ``no`` (it does not beat it significantly), ``worse`` (significantly worse)."""
    if not vs_untrained or measure not in vs_untrained:
        return None
    t = vs_untrained[measure]
    if t["p"] < alpha:
        return "yes" if t["diff"] > 0 else "worse"
    return "no"
