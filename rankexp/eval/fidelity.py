"""Fidelity of a student's ranking to its teacher's, per query, on the same candidates.

For each query, over the documents both runs scored: Kendall's τ-b between the two score vectors
(:func:`rankexp.eval.correlation.kendall_tau`), τ_ap with the teacher as the reference
(:func:`~rankexp.eval.correlation.tau_ap`, Yilmaz et al. 2008), extrapolated RBO (p = 0.9, Webber
et al. 2010) of the two rankings (ties ordered as trec_eval orders them) and the top-k overlap
``|top_k(student) ∩ top_k(teacher)| / min(k, n)``. The aggregate is the mean over the queries with at
least two common documents (τ is NaN for a query where one run gives all documents one score; such
values are left out of the mean and counted).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

Run = Mapping[str, Mapping[str, float]]
MEASURES = ("kendall_tau", "tau_ap", "rbo", "top10_overlap")


def query_fidelity(student: Mapping[str, float], teacher: Mapping[str, float], k: int = 10, p: float = 0.9) -> dict[str, float] | None:
    """The four measures for one query (None when fewer than two documents are common)."""
    from rankexp.eval.correlation import kendall_tau, rbo, tau_ap
    from rankexp.eval.trec_io import sort_ranking

    common = [d for d in student if d in teacher]
    if len(common) < 2:
        return None
    s = {d: float(student[d]) for d in common}
    t = {d: float(teacher[d]) for d in common}
    xs, ys = [t[d] for d in common], [s[d] for d in common]
    rank_s = [d for d, _ in sort_ranking(s)]
    rank_t = [d for d, _ in sort_ranking(t)]
    depth = min(k, len(common))
    return {"kendall_tau": kendall_tau(xs, ys), "tau_ap": tau_ap(xs, ys), "rbo": rbo(rank_s, rank_t, p),
            f"top{k}_overlap": len(set(rank_s[:depth]) & set(rank_t[:depth])) / depth}


def fidelity(student: Run, teacher: Run, qids: Sequence[str], k: int = 10, p: float = 0.9) -> dict[str, Any]:
    """``{mean: {measure: value}, queries, undefined: {measure: n}, per_query: {qid: {...}}}``."""
    per_query = {}
    for q in qids:
        r = query_fidelity(student.get(q, {}), teacher.get(q, {}), k, p)
        if r is not None:
            per_query[q] = r
    names = ("kendall_tau", "tau_ap", "rbo", f"top{k}_overlap")
    mean, undefined = {}, {}
    for m in names:
        vals = [r[m] for r in per_query.values() if not math.isnan(r[m])]
        mean[m] = sum(vals) / len(vals) if vals else None
        undefined[m] = len(per_query) - len(vals)
    return {"mean": mean, "queries": len(per_query), "undefined": {m: n for m, n in undefined.items() if n},
            "per_query": per_query}
