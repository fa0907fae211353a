"""Evaluation with trec_eval semantics: ir_measures with the provider pinned to ``pytrec_eval``,
plus ``RR@k``, which that provider does not support, computed here exactly as trec_eval does.

ir_measures' default provider choice sends RR@k to its ``msmarco`` provider, which breaks score
ties by doc id ascending where trec_eval breaks them descending, so rankexp pins ``pytrec_eval``.
Every requested measure is checked with the provider's ``supports()``; asking the provider for an
evaluator is not a check (for ``RR@10`` it silently computes full-depth ``recip_rank``).

``RR@k`` (also ``RR(rel=r)@k``) is computed natively as trec_eval's ``recip_rank`` with ``-M k``
(and ``-l r``): the query's documents in trec_eval order (float32 score descending, then doc id
descending: :func:`rankexp.eval.trec_io.sort_ranking`), cut to the first ``k``; the value is
``1 / rank`` of the first document whose grade is ``>= r`` (default 1), and 0 when there is none.
A query whose judgments hold no relevant document scores 0, as in trec_eval. The provider
recorded in ``metrics.json`` then says so: ``pytrec_eval+rankexp(RR@k)``. Any other measure the
provider does not support is refused with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from rankexp.errors import ConfigError, DataError

PROVIDER = "pytrec_eval"
NATIVE_RR = "rankexp(RR@k)"
DEFAULT_MEASURES = ("nDCG@10", "RR@10", "AP", "R@100")


def _is_native(measure) -> bool:
    """RR with a cutoff (and at most a ``rel`` level): computed here, not by the provider."""
    params = dict(measure.params)
    return (measure.NAME == "RR" and params.get("cutoff") is not None
            and not params.get("judged_only", False) and set(params) <= {"cutoff", "rel", "judged_only"})


def parse_measures(spec: str | Iterable[str]) -> list:
    """Parse ir_measures strings (``"nDCG@10 RR@10 AP"`` or a list) into measures that are computed
    with trec_eval semantics; unknown or unsupported names are one clear error. Repeats (``AP MAP``)
    are kept once."""
    import ir_measures

    names = spec.replace(",", " ").split() if isinstance(spec, str) else [str(s) for s in spec]
    if not names:
        raise ConfigError("no measures given (e.g. --measures 'nDCG@10 RR@10 AP R@100')")
    out: list = []
    seen: set[str] = set()
    for name in names:
        try:
            m = ir_measures.parse_measure(name)
        except Exception:
            raise ConfigError(f"unknown measure {name!r}: use ir_measures names such as nDCG@10, RR@10, AP, R@100, P@5") from None
        if not (_is_native(m) or ir_measures.pytrec_eval.supports(m)):
            raise ConfigError(f"measure {name!r} is not supported with trec_eval semantics (the {PROVIDER} provider "
                              "lacks it and rankexp computes only RR@k itself)")
        cutoff = dict(m.params).get("cutoff")
        if cutoff is not None and (not isinstance(cutoff, int) or isinstance(cutoff, bool) or cutoff < 1):
            raise ConfigError(f"measure {name!r}: the cutoff must be a positive integer")
        if str(m) not in seen:
            seen.add(str(m))
            out.append(m)
    return out


def provider_name(measures: Sequence) -> str:
    """What computes ``measures``: ``pytrec_eval``, or ``pytrec_eval+rankexp(RR@k)`` when an RR@k is among them."""
    return f"{PROVIDER}+{NATIVE_RR}" if any(_is_native(m) for m in measures) else PROVIDER


def reciprocal_rank_at(docs: Mapping[str, float], judged: Mapping[str, int], cutoff: int | None, rel: int = 1) -> float:
    """trec_eval ``recip_rank`` with ``-M cutoff -l rel`` for one query (cutoff None: full depth).

    Without sorting: the first relevant document in trec_eval order is the relevant one with the
    largest (float32 score, doc id); its rank is 1 + the number of documents with a larger float32
    score + the number tied with it whose doc id is larger. Equal to
    :func:`_reciprocal_rank_sorted` (a full sort), which is used for ``rel < 1`` (an unjudged
    document then counts as grade 0) and for NaN scores (no order)."""
    if rel < 1 or not docs:
        return _reciprocal_rank_sorted(docs, judged, cutoff, rel)
    relevant = [d for d, g in judged.items() if g >= rel and d in docs]
    if not relevant:
        return 0.0
    import numpy as np

    from rankexp.eval.trec_io import EVAL_DTYPE

    with np.errstate(over="ignore"):
        scores = np.fromiter(docs.values(), dtype=np.float64, count=len(docs)).astype(EVAL_DTYPE)
        best_key = max((float(np.float64(docs[d]).astype(EVAL_DTYPE)), d) for d in relevant)  # as the array
    if np.isnan(scores).any():
        return _reciprocal_rank_sorted(docs, judged, cutoff, rel)
    best_score, best_doc = best_key
    rank = 1 + int(np.count_nonzero(scores > best_score))
    if cutoff is not None and rank > cutoff:
        return 0.0
    tied = np.flatnonzero(scores == best_score)
    if tied.size > 1:
        ids = list(docs)
        rank += sum(ids[i] > best_doc for i in tied.tolist())
    return 1.0 / rank if cutoff is None or rank <= cutoff else 0.0


def _reciprocal_rank_sorted(docs: Mapping[str, float], judged: Mapping[str, int], cutoff: int | None, rel: int = 1) -> float:
    """:func:`reciprocal_rank_at` by sorting the whole ranking (the reference)."""
    from rankexp.eval.trec_io import sort_ranking

    for rank, (doc, _) in enumerate(sort_ranking(docs)[:cutoff], 1):
        if judged.get(doc, 0) >= rel:
            return 1.0 / rank
    return 0.0


def _defined_levels(judged: Mapping[str, int], docs: Mapping[str, float], safe: bool = True) -> dict[str, int]:
    """Judgments safe to hand to trec_eval's code. trec_eval reads a negative grade as "in the pool
    but unjudged" and counts relevance levels only for grades >= 0; for a query whose grades are
    *all* negative it never sets the number of levels and reuses the previous query's (undefined
    behaviour: wrong ideal DCG, or a hang inside pytrec_eval). One extra grade-0 judgment of a
    document the run does not hold defines the levels without changing any value: it is not
    retrieved, not relevant at any level >= 1, and has gain 0 (``safe=False``, for a measure with a
    relevance level below 1, leaves the judgments as they are)."""
    if not safe or any(g >= 0 for g in judged.values()):
        return dict(judged)
    sentinel = " rankexp-no-level"  # a space: no TREC file can hold this id
    while sentinel in docs or sentinel in judged:
        sentinel += "_"
    return {**judged, sentinel: 0}


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
    (trec_eval ``-c``) judged queries missing from the run count as 0. Scores are compared in
    float32, as trec_eval and pytrec_eval hold them, so an in-memory run evaluates exactly like the
    file :func:`rankexp.eval.trec_io.write_run` writes from it.
    """
    import ir_measures

    ms = parse_measures(measures) if isinstance(measures, str) or any(isinstance(m, str) for m in measures) else list(measures)
    for m in ms:  # measure objects given directly skip parse_measures: check them too
        if not (_is_native(m) or ir_measures.pytrec_eval.supports(m)):
            raise ConfigError(f"measure {m} is not supported with trec_eval semantics")
    judged = {q: dict(v) for q, v in qrels.items() if v}
    if qids is not None:
        wanted = set(qids)
        judged = {q: v for q, v in judged.items() if q in wanted}
    if not judged:
        raise DataError("no judged query to evaluate (qrels and the query set do not overlap)")
    sub_run = {q: (run[q] if type(run[q]) is dict else dict(run[q])) for q in judged if q in run and run[q]}  # not copied: read only
    if not sub_run:
        raise DataError(
            f"no query of the run has qrels (run ids e.g. {sorted(run)[:3]}, qrels ids e.g. {sorted(judged)[:3]}): wrong qrels?"
        )
    missing = [q for q in judged if q not in sub_run]
    perquery: dict[str, dict[str, float]] = {str(m): {} for m in ms}
    provided = [m for m in ms if not _is_native(m)]
    if provided:
        safe = all(dict(m.params).get("rel", 1) >= 1 for m in provided)
        # qrels restricted to the run's queries: trec_eval (without -c) averages over the intersection,
        # whereas ir_measures would report judged queries missing from the run as 0
        evaluator = ir_measures.pytrec_eval.evaluator(provided, {q: _defined_levels(judged[q], sub_run[q], safe) for q in sub_run})
        for metric in evaluator.iter_calc(sub_run):
            values = perquery[str(metric.measure)]
            if metric.query_id in values:  # two requested measures mapped onto one provider measure
                raise DataError(f"the {PROVIDER} provider returned {metric.measure} twice for query {metric.query_id}")
            values[metric.query_id] = float(metric.value)
    for m in ms:
        if _is_native(m):
            params = dict(m.params)
            cutoff, rel = params["cutoff"], params.get("rel", 1)
            perquery[str(m)] = {q: reciprocal_rank_at(sub_run[q], judged[q], cutoff, rel) for q in sub_run}
    for m, values in perquery.items():
        if set(values) != set(sub_run):
            raise DataError(f"measure {m}: values for {len(values)} of {len(sub_run)} queries from the {PROVIDER} provider")
    if complete:
        for q in missing:
            for m in perquery:
                perquery[m][q] = 0.0
    aggregate = {m: (sum(v.values()) / len(v) if v else 0.0) for m, v in perquery.items()}
    n = len(next(iter(perquery.values()))) if perquery else 0
    return Evaluation(aggregate, perquery, n, len(missing), provider_name(ms))
