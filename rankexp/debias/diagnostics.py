"""Diagnostics against the pooling simulator's known truth (``metrics.json`` ``debias``).

* ``hidden_share_of_negatives``: the share of the training groups' negatives that are hidden
  positives (``data.pooling``'s hidden set): how often a false negative was trained on.
* Over the unlabeled documents seen in training steps (the training pool as
  mined; at most ``diagnostics_max`` of them), how well each estimate separates hidden positives from
  true negatives: ``cet`` = the posterior P(r=1 | y=0) (C3) (with ``selection=model``: the coupled
  estimate sigmoid(f/ρ)·(1 - sigmoid(o/ρ)), relevant by the relevance model and unselected by the
  selection model, our choice for the diagnostics only), ``relevance`` = the relevance model's
  own p_r (with ``debias=none`` under ``data.pooling``, the naive model's, the only entry): ROC AUC (ties count one half) and precision at the top k by
  estimate, k = 10, 100 and the number of hidden positives seen (R-precision).

The seen estimates are kept in memory, not checkpointed: a run resumed after an interruption reports
the separation over the steps after the resume only (training itself resumes exactly).

* ``final``: the same measures for the **selected model** (the one the test split sees) over the whole
  training pool, every distinct unlabeled (query, document) of the training groups scored once after
  training (:func:`final_separation`). The relevance estimate of a document is
  ``sigmoid(s(q,d) - mean s(q,d+))`` over the query's labeled positives in the groups, in the loss's
  units (a bi-encoder's similarity divided by its temperature); ``cet``: with ``selection=buckets`` the
  posterior (C3) at the final propensities, with ``selection=model`` the coupled estimate from the final
  relevance and selection models. Unlike the estimates seen in training, these are one model's, and
  survive a resume.
"""

from __future__ import annotations

from typing import Any, Sequence


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """P(score of a random positive > score of a random negative), ties one half; None without both classes."""
    pairs = sorted(zip(scores, labels))
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + 1 + j) / 2.0
        rank_sum += avg * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def precision_at(labels: Sequence[bool], scores: Sequence[float], k: int) -> float | None:
    """Share of hidden positives among the k highest estimates (stable order on ties); None when k < 1."""
    if k < 1 or not labels:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    return sum(1 for i in order if labels[i]) / len(order)


def separation(labels: Sequence[bool], scores: Sequence[float]) -> dict[str, Any]:
    n_hidden = sum(1 for y in labels if y)
    return {"roc_auc": roc_auc(labels, scores), "p@10": precision_at(labels, scores, 10),
            "p@100": precision_at(labels, scores, 100), "r_precision": precision_at(labels, scores, n_hidden)}


def diagnostics(prep: Any, fitted: Any, module: Any) -> dict[str, Any] | None:
    """``metrics.json``'s ``debias`` entry, or None when neither pooling nor a debias method is on."""
    from rankexp.debias.cet import CET

    cet = module.loss_fn if isinstance(getattr(module, "loss_fn", None), CET) else None
    if prep.pooling is None and cet is None:
        return None
    out: dict[str, Any] = {"method": "cet" if cet is not None else "none"}
    hidden = {q: set(v) for q, v in ((prep.pooling or {}).get("hidden_docs") or {}).items()}
    if prep.pooling is not None:
        negs = [(g.qid, d) for g in fitted.groups for d in g.doc_ids[1:]]
        n_hid = sum(1 for q, d in negs if d in hidden.get(q, ()))
        out["negatives"] = len(negs)
        out["hidden_positives_among_negatives"] = n_hid
        out["hidden_share_of_negatives"] = round(n_hid / len(negs), 6) if negs else 0.0
    from rankexp.debias import Observer

    watched = module.loss_fn if isinstance(getattr(module, "loss_fn", None), Observer) else None
    if watched is not None and watched.seen:
        labels = [s[0] for s in watched.seen]
        out["seen"], out["seen_hidden"] = len(labels), sum(labels)
        out["separation"] = {"relevance": separation(labels, [s[1] for s in watched.seen])}
    if cet is not None:
        out["selection"] = cet.selection  # buckets: our rank-bucket propensities; model: the authors' second ranker
        if cet.selection == "buckets":
            out["propensity"] = [round(float(p), 6) for p in cet.propensity()]
        out["steps"] = int(cet.steps)
        if cet.seen:
            labels = [s[0] for s in cet.seen]
            out["seen"] = len(labels)
            out["seen_hidden"] = sum(labels)
            out["separation"] = {"cet": separation(labels, [s[1] for s in cet.seen]),
                                 "relevance": separation(labels, [s[2] for s in cet.seen])}
    if hidden:
        final = final_separation(prep, fitted, module, cet, hidden)
        if final is not None:
            out["final"] = final
    return out


def training_pool(groups) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """The training groups' labeled positives per query and their distinct unlabeled (query, document) pairs."""
    pos: dict[str, set[str]] = {}
    neg: set[tuple[str, str]] = set()
    for g in groups:
        pos.setdefault(g.qid, set()).add(g.doc_ids[0])
        neg.update((g.qid, d) for d in g.doc_ids[1:])
    return pos, sorted((q, d) for q, d in neg if d not in pos[q])


def relative_estimates(run: dict, pos: dict[str, set[str]], pairs, scale: float) -> list[float]:
    """``sigmoid((s(q,d) - mean of the query's positives' scores) / scale)`` per pair."""
    import torch

    x = [(run[q][d] - sum(run[q][p] for p in pos[q]) / len(pos[q])) / scale for q, d in pairs]
    return torch.sigmoid(torch.tensor(x, dtype=torch.float64)).tolist()


def final_separation(prep: Any, fitted: Any, module: Any, cet: Any, hidden: dict[str, set[str]]) -> dict[str, Any] | None:
    """``final``: the selected model's estimates over the whole training pool (module docstring)."""
    import time

    import torch

    from rankexp.debias.cet import bucket_of, coupled_posterior, hidden_posterior

    t0 = time.perf_counter()
    pos, negs = training_pool(fitted.groups)
    if not negs:
        return None
    labels = [d in hidden.get(q, ()) for q, d in negs]
    pairs = sorted({(q, p) for q in pos for p in pos[q]} | set(negs))
    batch = int(prep.cfg.eval.batch_size)

    def units(encoder) -> float:  # the loss's units: a bi-encoder's similarity / temperature
        return float(getattr(encoder, "temperature", 1.0)) if hasattr(encoder, "encode") else 1.0

    enc = module.encoder
    f = prep.scorer.score_candidates(enc, prep.texts, pairs, batch, prep.device, None, "scoring the training pool")
    p_r = relative_estimates(f, pos, negs, units(enc))
    out: dict[str, Any] = {"pairs": len(negs), "hidden": sum(labels), "relevance": separation(labels, p_r)}
    if cet is not None and cet.selection == "buckets":
        prop = cet.propensity()
        p_s = torch.tensor([float(prop[bucket_of(cet.ranks.get(q, {}).get(d), cet.n_buckets)]) for q, d in negs])
        out["cet"] = separation(labels, hidden_posterior(torch.tensor(p_r), p_s).tolist())
    elif cet is not None and cet.selector is not None:
        o = prep.scorer.score_candidates(cet.selector, prep.texts, negs, batch, prep.device, None,
                                         "scoring the training pool (selection model)")
        fs, os_ = units(enc), units(cet.selector)
        fq = torch.tensor([f[q][d] / fs for q, d in negs], dtype=torch.float64)
        oq = torch.tensor([o[q][d] / os_ for q, d in negs], dtype=torch.float64)
        out["cet"] = separation(labels, coupled_posterior(fq, oq, cet.ratio).tolist())
    out["scoring_s"] = round(time.perf_counter() - t0, 2)
    return out
