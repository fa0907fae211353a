"""CET: coupled estimation of relevance and selection to correct pooling bias (``debias=cet``).

Paper: Cai, Guo, Fan, Ai, Zhang, Cheng, "Hard Negatives or False Negatives: Correcting Pooling Bias
in Training Neural Ranking Models", CIKM 2022, arXiv 2209.05072.

**What could be verified from the paper's text here.** Only its abstract and introduction were
readable in the stored copies available to this session (the method section was not). They state:
judgments come from pools built by basic retrievers, so unlabeled documents ranked high by a stronger
retriever are often unlabeled positives; the problem is learning from labels with pooling bias; CET
"learns both a relevance model and a selection model simultaneously" to correct it. The equations
below are therefore this implementation's formulation of that idea (the standard relevance x
selection factorisation, fitted by alternating E/M steps), numbered (C1)-(C6) here, NOT the paper's
numbering; the selection model's inputs, the update schedule and the defaults are choices, marked
"choice" below. Check them against the paper's Section 4 before citing results as the paper's CET.

**Model.** For a training query q and document d let r be true relevance, s whether d was selected
into the judged pool, and y the observed label (judged relevant). A document is labeled relevant iff
it is relevant and was selected::

    y = r * s                                                              (C1)
    P(y=1 | q, d) = P(r=1 | q, d) * P(s=1 | r=1, q, d) = p_r * p_s          (C2)

* Relevance model: the ranker being trained (cross- or bi-encoder; it is the evaluated ranker). Its
  estimate for an unlabeled document in a group is ``p_r = sigmoid(f(q,d) - f(q,d+))`` with d+ the
  group's labeled positive (choice: ranking scores are only defined up to a shift under a listwise
  loss, so relevance is estimated relative to the positive: a negative scored as high as the positive
  gets 0.5).
* Selection model: ``p_s = g(b(q,d))``, a propensity per bucket of the pooling retriever's rank of d
  (BM25 with rankexp's defaults over the training queries): ``b = floor(log2(rank))`` for ranks
  1..K, one more bucket for "not retrieved" (choice: the pool is built from that retriever, so its
  rank is what selection depends on). Held as buffers (expected counts), so it is checkpointed with
  the LightningModule (it is the module's ``loss_fn`` submodule) and resumes exactly.

**E-step** (both models' current estimates, no gradient). For an unlabeled document (y = 0)::

    P(r=1 | y=0) = p_r (1 - p_s) / (1 - p_r p_s)                           (C3)
    w = P(r=0 | y=0) = (1 - p_r) / (1 - p_r p_s)                           (C4)

w is the probability that the unlabeled document is a true negative: 1 when the pool would have
surfaced it (p_s -> 1: unlabeled means non-relevant), the relevance model's own ``1 - p_r`` when the
pool could not have (p_s -> 0).

**Relevance model update** (the selection model corrects the relevance model's loss on unlabeled
documents): each negative j of a group counts as a negative with weight w_j::

    listwise:  L_R = -log( e^{f+/T} / (e^{f+/T} + sum_j w_j e^{f_j/T}) )                (C5a)
    pointwise: L_R = [ BCE(f+, 1) + sum_j ( w_j BCE(f_j, 0) + (1 - w_j) BCE(f_j, 1) ) ] / G   (C5b)

With every w_j = 1 these are exactly ``loss=listwise`` and ``loss=pointwise``.

**Selection model update** (the relevance model corrects the selection model's counts on unlabeled
documents): the M-step of P(s=1 | r=1, b)::

    g(b) = N_pos(b) / ( N_pos(b) + N_hid(b) ),   N_hid(b) = sum_{unlabeled j in b} P(r_j=1 | y_j=0)   (C6)

N_pos(b) counts the groups' labeled positives in bucket b; both counts are exponential moving averages
over steps (``decay``) started from ``prior_count`` pseudo-observations at propensity ``prior``
(choice: a stochastic-EM form that needs no optimizer for the selection model).

**Schedule** (choice): alternating, once per training step: E-step with the current models -> one
gradient step of the relevance model on (C5) -> M-step (C6) with the relevance model's posteriors of
this batch. During the first ``warmup_steps`` steps the weights are 1 (naive training) and the
selection model is not updated: an untrained relevance model's posteriors are noise.

**Numerical guards** (logged every step as ``debias/*``): p_s clipped to ``[min_propensity, 1]``;
``1 - p_r p_s`` floored at 1e-6; w clipped to ``[min_weight, 1]``. ``debias/clipped_share`` is the
share of weights the clip changed; ``debias/weight_mean``, ``debias/propensity_b<k>`` the rest.

Works with ``loss=listwise`` and ``loss=pointwise`` (any other loss is a one-line ConfigError), with the
cross-encoder and the bi-encoder (each group's own documents; in-batch negatives are not weighted, so
CET turns them off), and with every static negative sampler (a dynamic one, ADORE, trains with its own
objective: one-line ConfigError).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from rankexp.errors import ConfigError

SUPPORTED_LOSSES = ("listwise", "pointwise")


def bucket_of(rank: int | None, n_buckets: int) -> int:
    """``floor(log2(rank))`` for a retrieved document (rank from 1), capped at ``n_buckets - 2``;
    ``n_buckets - 1`` for a document the pooling retriever did not return."""
    if rank is None:
        return n_buckets - 1
    return min(int(math.floor(math.log2(max(1, rank)))), n_buckets - 2)


def true_negative_weight(p_r: torch.Tensor, p_s: torch.Tensor) -> torch.Tensor:
    """(C4) ``(1 - p_r) / (1 - p_r p_s)``, denominator floored at 1e-6."""
    return (1.0 - p_r) / (1.0 - p_r * p_s).clamp_min(1e-6)


def hidden_posterior(p_r: torch.Tensor, p_s: torch.Tensor) -> torch.Tensor:
    """(C3) ``p_r (1 - p_s) / (1 - p_r p_s)``."""
    return p_r * (1.0 - p_s) / (1.0 - p_r * p_s).clamp_min(1e-6)


class CET(torch.nn.Module):
    """The corrected loss (C5) and the selection model (C6); wraps the run's ``loss``."""

    requires: frozenset[str] = frozenset()
    accepts_extra_negatives = False

    def __init__(self, depth: int = 1000, prior: float = 0.5, prior_count: float = 1.0, decay: float = 0.99,
                 min_propensity: float = 0.05, min_weight: float = 0.0, warmup_steps: int = 0,
                 diagnostics_max: int = 200000):
        super().__init__()
        checks = [(depth >= 1, "depth must be >= 1"), (0.0 < prior <= 1.0, "prior must be in (0, 1]"),
                  (prior_count > 0, "prior_count must be > 0"), (0.0 < decay <= 1.0, "decay must be in (0, 1]"),
                  (0.0 < min_propensity <= 1.0, "min_propensity must be in (0, 1]"),
                  (0.0 <= min_weight <= 1.0, "min_weight must be in [0, 1]"), (warmup_steps >= 0, "warmup_steps must be >= 0")]
        for ok, what in checks:
            if not ok:
                raise ConfigError(f"debias (cet): {what}")
        self.depth, self.decay, self.warmup_steps = int(depth), float(decay), int(warmup_steps)
        self.min_propensity, self.min_weight = float(min_propensity), float(min_weight)
        self.n_buckets = int(math.floor(math.log2(self.depth))) + 2
        # the selection model: expected counts per bucket (buffers: checkpointed, resumed)
        self.register_buffer("n_pos", torch.full((self.n_buckets,), float(prior) * float(prior_count)))
        self.register_buffer("n_hid", torch.full((self.n_buckets,), (1.0 - float(prior)) * float(prior_count)))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.base: Any = None
        self.ranks: Mapping[str, Mapping[str, int]] = {}
        self.hidden: Mapping[str, set[str]] = {}
        self.diagnostics_max = int(diagnostics_max)
        self.seen: list[tuple[bool, float, float]] = []  # (hidden positive?, CET's P(r=1|y=0), relevance p_r)
        self.last: dict[str, float] = {}

    # ------------------------------------------------------------------ wiring
    def bind(self, loss: Any, pool_run: Mapping[str, Mapping[str, float]] | None,
             hidden: Mapping[str, Sequence[str]] | None = None) -> "CET":
        """Wrap ``loss`` (listwise or pointwise); ``pool_run``: the pooling retriever's run over the training
        queries (its ranks are the selection model's input); ``hidden``: the simulator's hidden positives
        (diagnostics only: never used for training)."""
        from rankexp.eval.trec_io import sort_ranking

        name = getattr(loss, "name", type(loss).__name__)
        if name not in SUPPORTED_LOSSES:
            raise ConfigError(f"debias=cet corrects loss=listwise or loss=pointwise (weights on negatives); "
                              f"loss={name} cannot use them")
        self.base = loss
        self.requires = frozenset(getattr(loss, "requires", ()) or ())
        self.ranks = {q: {d: i + 1 for i, (d, _) in enumerate(sort_ranking(run)[: self.depth])}
                      for q, run in (pool_run or {}).items()}
        self.hidden = {q: set(v) for q, v in (hidden or {}).items()}
        return self

    @property
    def name(self) -> str:
        return f"cet({getattr(self.base, 'name', '?')})"

    # ------------------------------------------------------------------ the selection model
    def propensity(self) -> torch.Tensor:
        """g(b) of (C6), clipped to [min_propensity, 1]."""
        return (self.n_pos / (self.n_pos + self.n_hid).clamp_min(1e-12)).clamp(self.min_propensity, 1.0)

    def buckets(self, qids: Sequence[str], doc_ids: Sequence[Sequence[str]]) -> torch.Tensor:
        return torch.tensor([[bucket_of(self.ranks.get(q, {}).get(d), self.n_buckets) for d in group]
                             for q, group in zip(qids, doc_ids)], dtype=torch.long)

    def update_selection(self, buckets: torch.Tensor, posterior: torch.Tensor) -> None:
        """(C6) as a moving average: positives (column 0) add to N_pos, unlabeled documents their P(r=1|y=0) to N_hid."""
        pos = torch.bincount(buckets[:, 0], minlength=self.n_buckets).to(self.n_pos)
        hid = torch.zeros(self.n_buckets, dtype=self.n_hid.dtype).scatter_add_(
            0, buckets[:, 1:].reshape(-1), posterior.reshape(-1).to(self.n_hid))
        self.n_pos.mul_(self.decay).add_(pos)
        self.n_hid.mul_(self.decay).add_(hid)

    # ------------------------------------------------------------------ the relevance model's loss
    def estimates(self, scores: torch.Tensor, buckets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """E-step for the negatives: (p_r, p_s, raw w), each ``[B, G-1]``, without gradient."""
        s = scores.detach().float()
        p_r = torch.sigmoid(s[:, 1:] - s[:, :1])
        p_s = self.propensity()[buckets[:, 1:]].to(p_r)
        return p_r, p_s, true_negative_weight(p_r, p_s)

    def weighted_loss(self, scores: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(C5a) / (C5b) per group ``[B]``."""
        if self.base.name == "listwise":
            logits = scores / self.base.temperature
            neg = logits[:, 1:] + torch.log(w.to(logits).clamp_min(1e-30))
            return torch.logsumexp(torch.cat([logits[:, :1], neg], dim=1), dim=1) - logits[:, 0]
        pos = F.binary_cross_entropy_with_logits(scores[:, 0], torch.ones_like(scores[:, 0]), reduction="none")
        w = w.to(scores)
        neg = (w * F.binary_cross_entropy_with_logits(scores[:, 1:], torch.zeros_like(w), reduction="none")
               + (1 - w) * F.binary_cross_entropy_with_logits(scores[:, 1:], torch.ones_like(w), reduction="none"))
        return (pos * self.base.pos_weight + neg.sum(dim=1)) / scores.shape[1]

    def forward(self, scores: torch.Tensor, batch: Any = None) -> torch.Tensor:
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"CET: scores must be [B, 1+negatives], got {tuple(scores.shape)}")
        if batch is None or not torch.is_grad_enabled():  # not a training step: the plain loss
            return self.base(scores, batch)
        buckets = self.buckets(batch.qids, batch.doc_ids)
        p_r, p_s, raw = self.estimates(scores, buckets)
        warm = int(self.steps) < self.warmup_steps
        w = torch.ones_like(raw) if warm else raw.clamp(self.min_weight, 1.0)
        loss = self.weighted_loss(scores, w)
        post = hidden_posterior(p_r, p_s)
        if not warm:
            self.update_selection(buckets, post)
        self.steps += 1
        self.record(batch, post, p_r)
        prop = self.propensity()
        self.last = {"debias/weight_mean": float(w.mean()), "debias/weight_min": float(w.min()),
                     "debias/clipped_share": float(((raw < self.min_weight) | (raw > 1.0)).float().mean()),
                     "debias/propensity_min": float(prop.min()),
                     **{f"debias/propensity_b{b}": float(prop[b]) for b in range(self.n_buckets)}}
        return loss

    def log_dict(self) -> dict[str, float]:
        """The numerical guards' and the selection model's state after the last step (for the loggers)."""
        return dict(self.last)

    # ------------------------------------------------------------------ diagnostics
    def record(self, batch: Any, post: torch.Tensor, p_r: torch.Tensor) -> None:
        if not self.hidden or len(self.seen) >= self.diagnostics_max:
            return
        for i, (q, group) in enumerate(zip(batch.qids, batch.doc_ids)):
            hid = self.hidden.get(q, ())
            for j, d in enumerate(group[1:]):
                self.seen.append((d in hid, float(post[i, j]), float(p_r[i, j])))
