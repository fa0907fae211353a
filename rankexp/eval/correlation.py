"""Rank correlation and rank similarity between two rankings.

* Kendall's tau-b (M. G. Kendall, "The treatment of ties in ranking problems", Biometrika 33(3),
  1945): every discordant pair costs the same; tied pairs are corrected for in the denominator.
* AP correlation tau_ap: E. Yilmaz, J. A. Aslam and S. Robertson, "A new rank correlation
  coefficient for information retrieval", SIGIR 2008. Top-weighted and asymmetric: one ranking
  is the reference ("actual"), the other the estimate, and a discordance near the top of the
  estimate costs more than one near the bottom.
* Rank-biased overlap: W. Webber, A. Moffat and J. Zobel, "A similarity measure for indefinite
  rankings", ACM TOIS 28(4), 2010. Top-weighted set overlap of two ranked lists that may be
  of different lengths and need not hold the same items. Equation numbers below are that
  article's.

:func:`run_correlation` applies all three per query to two TREC-style runs, and
:meth:`RunCorrelation.summary` averages them, saying over which queries each mean is taken.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

__all__ = [
    "kendall_tau",
    "tau_ap",
    "tau_ap_symmetric",
    "rbo",
    "rbo_min",
    "RunCorrelation",
    "run_correlation",
    "CORRELATIONS",
]

CORRELATIONS = ("kendall_tau", "tau_ap", "rbo")


# --------------------------------------------------------------------------------------------
# Kendall's tau
# --------------------------------------------------------------------------------------------


def kendall_tau(x_scores: Sequence[float], y_scores: Sequence[float]) -> float:
    """Kendall's tau-b between two score vectors over the same items (``x[i]``, ``y[i]``: item i).

    Over the n(n-1)/2 pairs, with S = (concordant - discordant) pairs, n1 the pairs tied in x
    and n2 the pairs tied in y (a pair tied in both counts in both)::

        tau_b = S / sqrt((n0 - n1) (n0 - n2)),   n0 = n (n - 1) / 2

    A pair tied in either vector is neither concordant nor discordant. Symmetric in its
    arguments; NaN when one vector is constant (no untied pair). Computed pair by pair (in row
    blocks, O(n^2) time and O(n) memory per block), not by sorting.
    """
    x, y = _score_pair(x_scores, y_scores)
    n = x.size
    s_sum = 0
    tied_x = tied_y = 0
    block = max(1, 2_000_000 // n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        dx = np.sign(x[start:stop, None] - x[None, :])
        dy = np.sign(y[start:stop, None] - y[None, :])
        s_sum += int(np.sum(dx * dy))
        tied_x += int(np.sum(dx == 0))
        tied_y += int(np.sum(dy == 0))
    # every unordered pair was seen twice, and each item was "tied" with itself once
    s_sum //= 2
    n0 = n * (n - 1) // 2
    n1 = (tied_x - n) // 2
    n2 = (tied_y - n) // 2
    denominator = (n0 - n1) * (n0 - n2)
    if denominator == 0:
        return math.nan
    return s_sum / math.sqrt(denominator)


# --------------------------------------------------------------------------------------------
# AP correlation (Yilmaz, Aslam & Robertson 2008)
# --------------------------------------------------------------------------------------------


def tau_ap(x_scores: Sequence[float], y_scores: Sequence[float]) -> float:
    """AP rank correlation tau_ap of the estimate ``y_scores`` against the reference ``x_scores``.

    Argument roles (the measure is not symmetric):

    * ``x_scores``: the **reference** ("actual"/"true") ranking, e.g. system scores on the
      full test collection, the teacher's scores, or the ranking before an attack.
    * ``y_scores``: the **estimated** ranking being judged against it.

    ``x_scores[i]`` and ``y_scores[i]`` belong to the same item; a higher score ranks higher.
    Following the paper, the items are walked in the order of the *estimated* ranking, and for
    the item at estimated rank i, C(i) counts the items ranked above it in the estimate that are
    also above it in the reference::

        tau_ap = 2 / (N - 1) * sum_{i=2..N} C(i) / (i - 1)  -  1

    It is +1 when the orderings agree and -1 when one is the reverse of the other; unlike
    Kendall's tau, a discordance at the top of the estimate costs more than one at the bottom.
    (This argument order matches the ircor R package's ``tauAP(x, y)``, x the true scores.)

    Ties (not covered by the paper) are handled by taking the **expected value of tau_ap when
    every tie, in either ranking, is broken uniformly at random**, independently:

    * an item above j in the estimate that is *tied with j in the reference* counts 1/2 in C;
    * an item j in a group of g items tied in the estimate, with b items strictly above the
      group, sits at rank b+1+k with probability 1/g for k = 0..g-1, with k of the other g-1
      tied items (a uniform subset) above it.

    This is exact (tau_ap is linear in the per-item terms) and reduces to the paper's formula
    when there are no ties. With ties only in the estimate it coincides with Urbano & Marrero's
    tau_AP,a ("The Treatment of Ties in AP Correlation", ICTIR 2017). Note that with ties a
    ranking is no longer perfectly correlated with itself (a tied pair is "correct" only half
    the time).
    """
    reference, estimate = _score_pair(x_scores, y_scores)
    n = reference.size
    # correct[i, j]: credit for item i being above item j in the reference (1, 1/2 tied, 0).
    correct = (reference[:, None] > reference[None, :]) + 0.5 * (reference[:, None] == reference[None, :])
    np.fill_diagonal(correct, 0.0)
    above = estimate[:, None] > estimate[None, :]  # above[i, j]: i strictly above j in the estimate
    tied = estimate[:, None] == estimate[None, :]
    np.fill_diagonal(tied, False)
    strictly_above_credit = (correct * above).sum(axis=0)  # a_j
    tied_credit = (correct * tied).sum(axis=0)  # m_j
    n_above_all = above.sum(axis=0)  # b_j
    group_size_all = tied.sum(axis=0) + 1  # g_j

    # Untied items (group size 1) at estimated rank i = b + 1 contribute C(i)/(i-1) = a/b.
    single = (group_size_all == 1) & (n_above_all > 0)
    total = float(np.sum(strictly_above_credit[single] / n_above_all[single]))
    tied_groups = {(int(b), int(g)) for b, g in zip(n_above_all, group_size_all) if g > 1}
    for n_above, group_size in sorted(tied_groups):
        # Items of one tie group share (b, g), and different groups have different b.
        members = (n_above_all == n_above) & (group_size_all == group_size)
        total += _expected_precision_sum(
            n_above, group_size, strictly_above_credit[members], tied_credit[members]
        )
    return 2.0 / (n - 1) * total - 1.0


def _expected_precision_sum(
    n_above: int, group_size: int, above_credit: np.ndarray, tied_credit: np.ndarray
) -> float:
    """Sum over one group of items tied in the estimate of E[C(i) / (i - 1)] (0 at rank 1).

    Each item of the group sits at rank i = n_above + 1 + k with k uniform on 0..group_size-1;
    then k of the other group_size-1 tied items (a uniform subset) are above it, each worth
    tied_credit / (group_size - 1) on average, so E[C(i) | k] = above_credit + k ·
    tied_credit / (group_size - 1). Summing over k gives above_credit · H + tied_credit /
    (group_size - 1) · K with H = sum_k 1/(n_above + k), K = sum_k k/(n_above + k).
    """
    ks = np.arange(group_size, dtype=float)
    positions_above = n_above + ks  # i - 1 for each k
    valid = positions_above > 0  # the item at rank 1 is not in the sum
    harmonic = float(np.sum(1.0 / positions_above[valid]))
    weighted = float(np.sum(ks[valid] / positions_above[valid]))
    per_item = above_credit * harmonic
    if group_size > 1:
        per_item = per_item + tied_credit / (group_size - 1) * weighted
    return float(np.sum(per_item)) / group_size


def tau_ap_symmetric(x_scores: Sequence[float], y_scores: Sequence[float]) -> float:
    """Symmetrised AP correlation ``(tau_ap(x, y) + tau_ap(y, x)) / 2``, for when neither ranking
    is the reference (e.g. two systems' rankings)."""
    return 0.5 * (tau_ap(x_scores, y_scores) + tau_ap(y_scores, x_scores))


# --------------------------------------------------------------------------------------------
# Rank-biased overlap (Webber, Moffat & Zobel 2010)
# --------------------------------------------------------------------------------------------


def rbo(list_a: Sequence[Hashable], list_b: Sequence[Hashable], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap RBO_EXT of two ranked lists of item ids (best first).

    RBO (Eq. 7) is ``(1 - p) · sum_{d>=1} p^{d-1} · A_d`` with agreement ``A_d = X_d / d`` and
    overlap ``X_d = |S_{:d} ∩ T_{:d}|``. Only prefixes are seen, so RBO_EXT assumes that the
    agreement observed at the last seen depth continues forever. With s = the shorter length,
    l = the longer length (Eq. 32)::

        RBO_EXT = (1-p)/p · ( sum_{d=1..l} X_d/d · p^d  +  sum_{d=s+1..l} X_s·(d-s)/(s·d) · p^d )
                  + ( (X_l - X_s)/l + X_s/s ) · p^l

    where, for d > s, X_d is the overlap of the whole shorter list with the first d items of
    the longer one; the second sum assumes the unseen items of the shorter list beyond s
    overlap at the rate X_s/s. For equal lengths (s = l = k) this is Eq. 30::

        RBO_EXT = X_k/k · p^k + (1-p)/p · sum_{d=1..k} X_d/d · p^d

    Identical lists give 1, disjoint lists 0; the value is symmetric in the two lists. Lists
    must be non-empty and hold no duplicate item (rankings with tied items are not supported:
    order ties before calling, e.g. in trec_eval order).
    """
    _check_p(p)
    overlap, s, l = _overlaps(list_a, list_b)
    depths = np.arange(1, l + 1, dtype=float)
    weights = p**depths
    x_s = overlap[s - 1]
    x_l = overlap[l - 1]
    seen = float(np.sum(overlap / depths * weights))
    tail_depths = depths[s:]  # d = s+1..l (empty when s == l)
    unseen_short = float(np.sum(x_s * (tail_depths - s) / (s * tail_depths) * weights[s:]))
    extrapolated = ((x_l - x_s) / l + x_s / s) * p**l
    return (1.0 - p) / p * (seen + unseen_short) + extrapolated


def rbo_min(
    list_a: Sequence[Hashable], list_b: Sequence[Hashable], p: float = 0.9, depth: int | None = None
) -> float:
    """Lower bound RBO_MIN on the full (indefinite) RBO from the prefixes of length ``depth``.

    Eq. 11, assuming no item beyond depth k = ``depth`` (default: the shorter list's length)
    ever matches::

        RBO_MIN = (1-p)/p · ( sum_{d=1..k} (X_d - X_k)/d · p^d  -  X_k · ln(1 - p) )

    Only the first k items of each list are used, so with lists of different lengths this is a
    valid but not the tightest lower bound.
    """
    _check_p(p)
    overlap, s, _ = _overlaps(list_a, list_b)
    k = s if depth is None else depth
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= s:
        raise ValueError(f"rbo_min depth must be an integer in 1..{s} (the shorter list's length), got {depth!r}")
    overlap = overlap[:k]
    x_k = overlap[-1]
    depths = np.arange(1, k + 1, dtype=float)
    head = float(np.sum((overlap - x_k) / depths * p**depths))
    return (1.0 - p) / p * (head - x_k * math.log1p(-p))


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"RBO persistence p must lie strictly between 0 and 1, got {p!r}")


def _overlaps(list_a: Sequence[Hashable], list_b: Sequence[Hashable]) -> tuple[np.ndarray, int, int]:
    """Overlaps X_1..X_l (float array), the shorter length s and the longer length l.

    X_d = |A_{:d} ∩ B_{:d}| where a list shorter than d contributes all its items. An item in
    both lists, at 1-based positions i and j, is shared at every depth d >= max(i, j).
    """
    pos_a = _positions(list_a, "list_a")
    pos_b = _positions(list_b, "list_b")
    s, l = sorted((len(pos_a), len(pos_b)))
    first_shared = np.zeros(l + 1)
    for item, i in pos_a.items():
        j = pos_b.get(item)
        if j is not None:
            first_shared[max(i, j)] += 1
    return np.cumsum(first_shared)[1:], s, l


def _positions(items: Sequence[Hashable], name: str) -> dict[Hashable, int]:
    """1-based position of each item; ValueError on an empty list or a duplicate item."""
    if isinstance(items, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of item ids, not a single string")
    positions: dict[Hashable, int] = {}
    for rank, item in enumerate(items, start=1):
        if item in positions:
            raise ValueError(
                f"{name} holds item {item!r} twice (ranks {positions[item]} and {rank}); "
                "a ranking must not repeat an item"
            )
        positions[item] = rank
    if not positions:
        raise ValueError(f"{name} is empty; RBO needs at least one ranked item in each list")
    return positions


# --------------------------------------------------------------------------------------------
# Per-query correlation of two runs
# --------------------------------------------------------------------------------------------


class RunCorrelation(dict):
    """Per-query results of :func:`run_correlation`: ``{qid: {measure: value}}``.

    A plain dict of the queries both runs ranked, plus two attributes naming the queries that
    were skipped because only one run has them (or has a non-empty ranking for them):
    ``only_in_a`` and ``only_in_b`` (sorted tuples of qids), and ``undefined`` (why a value is
    NaN, per query and measure). :meth:`summary` gives the mean of
    each correlation with the queries it is taken over and why others were left out.
    """

    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    undefined: dict[str, dict[str, str]]  # qid -> {measure: why it is NaN}

    def __init__(self, per_query: Mapping[str, dict[str, float]], only_in_a: Sequence[str], only_in_b: Sequence[str],
                 undefined: Mapping[str, dict[str, str]] | None = None):
        super().__init__(per_query)
        self.only_in_a = tuple(sorted(only_in_a))
        self.only_in_b = tuple(sorted(only_in_b))
        self.undefined = dict(undefined or {})

    def summary(self) -> dict[str, dict]:
        """For each of kendall_tau, tau_ap, rbo: ``{"mean", "queries", "dropped": {reason: count}}``.

        ``queries`` counts the queries the mean is over (those of both runs where the value is
        defined); ``dropped`` counts, per reason, the queries of both runs left out of that
        mean. Queries in only one run are in no mean (``only_in_a`` / ``only_in_b``).
        """
        out: dict[str, dict] = {}
        for measure in CORRELATIONS:
            values, dropped = [], {}
            for qid, v in self.items():
                if math.isnan(v[measure]):
                    reason = self.undefined.get(qid, {}).get(measure, "undefined")
                    dropped[reason] = dropped.get(reason, 0) + 1
                else:
                    values.append(v[measure])
            out[measure] = {"mean": float(np.mean(values)) if values else math.nan, "queries": len(values), "dropped": dropped}
        return out


def run_correlation(
    run_a: Mapping[str, Mapping[str, float]],
    run_b: Mapping[str, Mapping[str, float]],
    depth: int | None = None,
    p: float = 0.9,
) -> RunCorrelation:
    """Per-query Kendall tau-b, tau_ap and RBO_EXT between two runs ``{qid: {doc_id: score}}``.

    Each query's ranking is put in trec_eval order (float32 score descending, then doc id
    descending: :func:`rankexp.eval.trec_io.sort_ranking`) and, when ``depth`` is given, cut to
    its first ``depth`` documents. Then, per query:

    * ``"rbo"``: :func:`rbo` of the two (cut) ranked lists in trec_eval order, with persistence
      ``p`` (RBO has no ties: tied documents are taken in the order trec_eval evaluates them);
      documents in one list only are handled by RBO itself (they never overlap);
    * ``"kendall_tau"`` (tau-b) and ``"tau_ap"`` over the **union** of the two lists, with the
      **scores**, not the tie-broken positions: documents with equal scores (in float32, the
      precision trec_eval compares) are tied. A document missing from one (cut) ranking is
      placed in that ranking **below all of its documents, tied with the other missing ones**
      (it was not retrieved above the cut, and nothing says how the missing ones compare).
      tau-b corrects for the ties; tau_ap takes its expectation over random tie orders (see
      :func:`tau_ap`), ``run_a`` being the **reference** and ``run_b`` the **estimate**.
      NaN when the union has fewer than 2 documents, and tau-b is NaN when one ranking ties
      all documents (reason in ``"undefined"``);
    * ``"n_common"``: documents in both (cut) rankings; ``"n_docs"``: documents in the union.

    Queries present (with at least one document) in only one run are skipped and listed in
    the result's ``only_in_a`` / ``only_in_b`` attributes.
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1):
        raise ValueError(f"depth must be a positive integer or None, got {depth!r}")
    _check_p(p)
    from rankexp.eval.trec_io import sort_ranking

    qids_a = {qid for qid, docs in run_a.items() if docs}
    qids_b = {qid for qid, docs in run_b.items() if docs}
    per_query: dict[str, dict[str, float]] = {}
    undefined: dict[str, dict[str, str]] = {}
    for qid in sorted(qids_a & qids_b):
        ranked_a = sort_ranking(run_a[qid])[:depth]
        ranked_b = sort_ranking(run_b[qid])[:depth]
        per_query[qid], why = _query_correlation(ranked_a, ranked_b, p)
        if why:
            undefined[qid] = why
    return RunCorrelation(per_query, qids_a - qids_b, qids_b - qids_a, undefined)


def _levels(ranked: list[tuple[str, float]], union: list[str]) -> np.ndarray:
    """Higher-is-better values over ``union``: the float32 score level of each ranked document
    (equal float32 scores share a level) and one level below all of them for the missing ones."""
    from rankexp.eval.trec_io import eval_score

    distinct = sorted({eval_score(s) for _, s in ranked})  # ascending
    level = {v: i + 1 for i, v in enumerate(distinct)}  # 1.., missing documents get 0
    of_doc = {d: level[eval_score(s)] for d, s in ranked}
    return np.array([of_doc.get(d, 0) for d in union], dtype=float)


def _query_correlation(
    ranked_a: list[tuple[str, float]], ranked_b: list[tuple[str, float]], p: float
) -> tuple[dict[str, float], dict[str, str]]:
    """(values, why some are NaN) for one query."""
    docs_a = [d for d, _ in ranked_a]
    docs_b = [d for d, _ in ranked_b]
    in_a, in_b = set(docs_a), set(docs_b)
    union = docs_a + [d for d in docs_b if d not in in_a]
    result = {"kendall_tau": math.nan, "tau_ap": math.nan, "rbo": float(rbo(docs_a, docs_b, p=p)),
              "n_common": len(in_a & in_b), "n_docs": len(union)}
    if len(union) < 2:
        why = "fewer than 2 documents in the two rankings"
        return result, {"kendall_tau": why, "tau_ap": why}
    x, y = _levels(ranked_a, union), _levels(ranked_b, union)
    result["kendall_tau"] = kendall_tau(x, y)
    result["tau_ap"] = float(tau_ap(x, y))
    if math.isnan(result["kendall_tau"]):
        return result, {"kendall_tau": "one ranking ties all documents (tau-b undefined)"}
    return result, {}


def _score_pair(x_scores: Sequence[float], y_scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Two equally long 1-d finite score vectors with at least 2 items, or a ValueError."""
    from rankexp.eval.significance import paired_vectors

    return paired_vectors(x_scores, y_scores, "a rank correlation")
