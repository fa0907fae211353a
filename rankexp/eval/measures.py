"""Evaluation with trec_eval semantics: ir_measures with the provider pinned to ``pytrec_eval``.

ir_measures' default provider choice sends RR@k to its ``msmarco`` provider, which breaks score
ties by doc id ascending where trec_eval breaks them descending, so rankexp always pins
``pytrec_eval`` and records the provider in ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from rankexp.errors import ConfigError, DataError

PROVIDER = "pytrec_eval"
DEFAULT_MEASURES = ("nDCG@10", "RR@10", "AP", "R@100")


def parse_measures(spec: str | Iterable[str]) -> list:
    """Parse ir_measures strings (``"nDCG@10 RR@10 AP"`` or a list); unknown names are one clear error."""
    import ir_measures

    names = spec.replace(",", " ").split() if isinstance(spec, str) else [str(s) for s in spec]
    if not names:
        raise ConfigError("no measures given (e.g. --measures 'nDCG@10 RR@10 AP R@100')")
    out = []
    for name in names:
        try:
            out.append(ir_measures.parse_measure(name))
        except Exception:
            raise ConfigError(f"unknown measure {name!r}: use ir_measures names such as nDCG@10, RR@10, AP, R@100, P@5") from None
    provider = ir_measures.pytrec_eval
    for m in out:
        try:
            provider.evaluator([m], {"q": {"d": 1}})
        except Exception:
            raise ConfigError(f"measure {m} is not supported by the {PROVIDER} provider (trec_eval semantics)") from None
    return out


@dataclass
class Evaluation:
    aggregate: dict[str, float]
    perquery: dict[str, dict[str, float]]  # measure -> qid -> value
    num_queries: int  # queries evaluated (the mean is over these)
    missing_in_run: int  # judged queries with no ranking (counted as 0 when complete=True)
    provider: str = PROVIDER


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence | str,
    qids: Iterable[str] | None = None,
    complete: bool = False,
) -> Evaluation:
    """Evaluate ``run`` against ``qrels`` with trec_eval semantics.

    ``qids`` restricts evaluation to those queries (e.g. the test split). With ``complete=False``
    (trec_eval's default) only queries present in both run and qrels count; with ``complete=True``
    (trec_eval ``-c``) judged queries missing from the run count as 0.
    """
    import ir_measures

    ms = parse_measures(measures) if isinstance(measures, str) or any(isinstance(m, str) for m in measures) else list(measures)
    judged = {q: dict(v) for q, v in qrels.items() if v}
    if qids is not None:
        wanted = set(qids)
        judged = {q: v for q, v in judged.items() if q in wanted}
    if not judged:
        raise DataError("no judged query to evaluate (qrels and the query set do not overlap)")
    sub_run = {q: dict(run[q]) for q in judged if q in run and run[q]}
    if not sub_run:
        raise DataError(
            f"no query of the run has qrels (run ids e.g. {sorted(run)[:3]}, qrels ids e.g. {sorted(judged)[:3]}): wrong qrels?"
        )
    missing = [q for q in judged if q not in sub_run]
    # qrels restricted to the run's queries: trec_eval (without -c) averages over the intersection,
    # whereas ir_measures would report judged queries missing from the run as 0
    evaluator = ir_measures.pytrec_eval.evaluator(ms, {q: judged[q] for q in sub_run})
    perquery: dict[str, dict[str, float]] = {str(m): {} for m in ms}
    for metric in evaluator.iter_calc(sub_run):
        perquery[str(metric.measure)][metric.query_id] = float(metric.value)
    if complete:
        for q in missing:
            for m in perquery:
                perquery[m][q] = 0.0
    aggregate = {m: (sum(v.values()) / len(v) if v else 0.0) for m, v in perquery.items()}
    n = len(next(iter(perquery.values()))) if perquery else 0
    return Evaluation(aggregate, perquery, n, len(missing))
