"""CET: coupled estimation of relevance and selection to correct pooling bias (``debias=cet``).

Paper: Cai, Guo, Fan, Ai, Zhang, Cheng, "Hard Negatives or False Negatives: Correcting Pooling Bias
in Training Neural Ranking Models", CIKM 2022, arXiv 2209.05072.

**What could be verified, and from what.** The paper's own text beyond its abstract and introduction
(Section 4, the method) was NOT readable in the stored copies available here (the raw-LaTeX SPIQA copy
and the other copies in the search tool return only their opening part), so no equation of the
paper, and no equation number, is quoted here. The abstract and introduction state: judgments come
from pools built by basic retrievers, so unlabeled documents ranked high by a stronger retriever are
often unlabeled positives; training is learning from labels with pooling bias; CET "learns both a
relevance model and a selection model simultaneously", each correcting the other's training data.
What the method does in detail was read from the AUTHORS' RELEASED CODE (github.com/caiyinqiong/
Coupled_Estimation_Technique, ``modeling.py``, ``train.py``, ``ranker.sh``; read, not copied); that
is ``selection=model`` below, equations labelled (A1)-(A3) by us. The first implementation, written
before any of this was readable, is ``selection=buckets`` (the default, kept so that existing run ids
and results stay what they were), equations (C1)-(C6), also labels of ours.

**The authors' code (``selection=model``).** Two rankers of the same architecture, both started from
the same pretrained weights (BERT-base cross-encoders there; here a copy of the run's encoder, cross-
or bi-encoder): the relevance model f (the ranker that is evaluated) and the selection model o
(their "Observer"), both scoring (query, document). Training instances are (query, positive,
negative) pairs (their negatives: ANCE top-ranked, excluding the labelled positives). Per pair, with
ρ = ``ratio`` (their ``debias_ratio``: 2.0 in ``train.py``, 10.0 in the released run script)::

    w(x) = 1 / (1 - sigmoid(x / ρ)) = 1 + exp(x / ρ)                                          (A1)
    ℓ(s+, s-) = -log( e^{s+} / (e^{s+} + e^{s-}) )        (softmax cross-entropy over the pair)  (A2)
    L_R = w(o(q, d-)) · ℓ(f(q, d+), f(q, d-)),   L_S = w(f(q, d-)) · ℓ(o(q, d+), o(q, d-))      (A3)

i.e. each model's loss on a pair is weighted by the inverse of the *other* model's probability that
the unlabeled document is not selected (resp. not relevant); the weights carry no gradient. Schedule:
every step, both weights are computed from the two models' current scores, then each model takes
one gradient step on its weighted loss (same optimizer settings for both: AdamW, lr 3e-6, linear
warmup 10,000 steps, weight decay 0.01, gradient-norm clip 1.0, batch 64 = 32 pairs, 1 epoch, query
32 / passage 256 tokens, dropout 0.2 on the [CLS] head). No clipping of the weights.

Where ``selection=model`` differs from that code, and why: (i) a group here has n negatives; each
(positive, negative j) pair gets (A2)/(A3) and the group's loss is their mean over j (with n = 1
exactly (A3)); ``loss=listwise`` is required (its temperature T divides both models' scores in A2;
T = 1 is the authors' form). (ii) The weights come from the training-mode scores of this step
(dropout on), not from a separate no-dropout forward pass, to save two forward passes. (iii) Guard:
weights clipped to ``max_weight`` (default 100; the code has none: w grows as e^{x/ρ}), logged as
``debias/clipped_share``. (iv) The selection model's scoring head (cross-encoder) is freshly
initialised, as the authors' second model's classifier is (a bi-encoder has none: dropout alone
separates the two). (v) Both models share the run's single optimizer and schedule (same settings for
both, as in the code; the run's gradient clipping, if any, is over both models together instead of
one clip each), so the selection model is checkpointed and resumed with the module. (vi) ``warmup_steps`` (ours) trains both with w = 1.
The selection model costs one more encoder's memory and forward/backward time per step.

**The first implementation (``selection=buckets``, default).** Not the authors' method: the selection
model is a propensity per bucket of the BM25 rank, fitted by stochastic EM, and the relevance model's
negatives get the posterior weights below. Kept for comparison and for existing results.

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
Histograms over training (both selections): the weights the negatives got (``debias/weight``), their
propensities (``debias/propensity``, buckets) or the selection model's weights
(``debias/selection_weight``, model), drawn every ``trainer.log_every_n_steps`` steps from the values since
the previous drawing, into ``history.jsonl`` (``hist/...``: bin edges and counts) and W&B (``wandb.Histogram``).

Works with ``loss=listwise`` and ``loss=pointwise`` (``selection=model``: listwise only; any other loss is a
one-line ConfigError), with the
cross-encoder and the bi-encoder (each group's own documents; in-batch negatives are not weighted, so
CET turns them off), and with every static negative sampler (a dynamic one, ADORE, trains with its own
objective: one-line ConfigError).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from rankexp.errors import ConfigError

SUPPORTED_LOSSES = ("listwise", "pointwise")
SELECTIONS = ("buckets", "model")


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


def coupled_posterior(f: torch.Tensor, o: torch.Tensor, ratio: float) -> torch.Tensor:
    """``selection=model``'s estimate that an unlabeled document is a hidden positive (diagnostics only):
    ``sigmoid(f / ratio) (1 - sigmoid(o / ratio))``, relevant by the relevance model's score f and not
    selected by the selection model's score o."""
    return torch.sigmoid(f / ratio) * (1.0 - torch.sigmoid(o / ratio))


def ipw_weight(other_scores: torch.Tensor, ratio: float, max_weight: float | None = None) -> torch.Tensor:
    """(A1) ``1 / (1 - sigmoid(x / ratio)) = 1 + exp(x / ratio)``: the authors' weight of a (positive,
    negative) pair from the *other* model's score x of the negative; clipped to ``max_weight`` (our guard)."""
    w = 1.0 + torch.exp((other_scores / ratio).clamp(max=80.0))
    return w if max_weight is None else w.clamp(max=float(max_weight))


def pair_losses(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(A2) the pairwise softmax cross-entropy of each (positive, negative j) pair of a group ``[B, n]``:
    ``-log(e^{s+/T} / (e^{s+/T} + e^{s_j/T})) = softplus((s_j - s+) / T)``."""
    return F.softplus((scores[:, 1:] - scores[:, :1]) / temperature)


class CET(torch.nn.Module):
    """The corrected loss (C5) and the selection model (C6); wraps the run's ``loss``."""

    requires: frozenset[str] = frozenset()
    accepts_extra_negatives = False

    def __init__(self, depth: int = 1000, prior: float = 0.5, prior_count: float = 1.0, decay: float = 0.99,
                 min_propensity: float = 0.05, min_weight: float = 0.0, warmup_steps: int = 0,
                 diagnostics_max: int = 200000, selection: str = "buckets", ratio: float = 10.0,
                 max_weight: float | None = 100.0):
        super().__init__()
        checks = [(depth >= 1, "depth must be >= 1"), (0.0 < prior <= 1.0, "prior must be in (0, 1]"),
                  (prior_count > 0, "prior_count must be > 0"), (0.0 < decay <= 1.0, "decay must be in (0, 1]"),
                  (0.0 < min_propensity <= 1.0, "min_propensity must be in (0, 1]"),
                  (0.0 <= min_weight <= 1.0, "min_weight must be in [0, 1]"), (warmup_steps >= 0, "warmup_steps must be >= 0"),
                  (selection in SELECTIONS, f"selection={selection!r}: expected one of {', '.join(SELECTIONS)}"),
                  (float(ratio) > 0, "ratio must be > 0"),
                  (max_weight is None or float(max_weight) >= 1.0, "max_weight must be >= 1 (or null: no clip)")]
        for ok, what in checks:
            if not ok:
                raise ConfigError(f"debias (cet): {what}")
        self.depth, self.decay, self.warmup_steps = int(depth), float(decay), int(warmup_steps)
        self.min_propensity, self.min_weight = float(min_propensity), float(min_weight)
        self.selection, self.ratio = str(selection), float(ratio)
        self.max_weight = None if max_weight is None else float(max_weight)
        self.selector: Any = None  # selection=model: a second ranker (a copy of the relevance model's encoder)
        self.length_buckets, self.score_kind = 1, "cross"
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
        self.hist_max = 100000  # values kept per histogram between two drains (the rest are not drawn)
        self._hist: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ histograms for the loggers
    def collect(self, name: str, values: torch.Tensor) -> None:
        """Keep this step's ``values`` (weights, propensities) for the next :meth:`drain_histograms`."""
        parts = self._hist.setdefault(name, [])
        room = self.hist_max - sum(len(t) for t in parts)
        if room > 0:
            parts.append(values.detach().float().reshape(-1)[:room].cpu())

    def drain_histograms(self) -> dict[str, torch.Tensor]:
        """The values collected since the last call, per name (``debias/weight``: the weights the relevance
        model's negatives got; ``debias/propensity``: their selection propensities (buckets);
        ``debias/selection_weight``: the selection model's weights (model)); cleared. HistoryCallback turns them
        into histograms in history.jsonl and in W&B."""
        out = {k: torch.cat(v) for k, v in self._hist.items() if v}
        self._hist = {}
        return out

    # ------------------------------------------------------------------ wiring
    def bind(self, loss: Any, pool_run: Mapping[str, Mapping[str, float]] | None,
             hidden: Mapping[str, Sequence[str]] | None = None, module: Any = None) -> "CET":
        """Wrap ``loss`` (listwise or pointwise); ``pool_run``: the pooling retriever's run over the training
        queries (its ranks are the selection model's input); ``hidden``: the simulator's hidden positives
        (diagnostics only: never used for training); ``module``: the relevance model's LightningModule
        (``selection=model`` copies its encoder as the selection model, the authors' initialisation)."""
        from rankexp.eval.trec_io import sort_ranking

        name = getattr(loss, "name", type(loss).__name__)
        if name not in SUPPORTED_LOSSES:
            raise ConfigError(f"debias=cet corrects loss=listwise or loss=pointwise (weights on negatives); "
                              f"loss={name} cannot use them")
        if self.selection == "model":
            if name != "listwise":
                raise ConfigError(f"debias.selection=model trains both models on (positive, negative) pairs with the "
                                  f"softmax cross-entropy (the authors' loss); it needs loss=listwise, not loss={name}")
            encoder = getattr(module, "encoder", None)
            if encoder is None:
                raise ConfigError("debias.selection=model needs the relevance model's encoder to copy")
            # a submodule of the loss, so of the LightningModule: trained by its optimizer, checkpointed, resumed
            self.selector = copy.deepcopy(encoder)
            # its own freshly initialised scoring head, as the authors' selection model has (their two models share
            # the pretrained encoder weights, not the head): without it two identical models on identical losses
            # would stay identical. A bi-encoder has no head: dropout alone tells the two apart.
            for m in (getattr(self.selector, "head", None) or torch.nn.Identity()).modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            self.selector.train()
            self.length_buckets = int(getattr(module, "length_buckets", 1))
            self.score_kind = "bi" if hasattr(encoder, "encode") else "cross"
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
        if self.selection == "model":
            return self.coupled(scores, batch)
        buckets = self.buckets(batch.qids, batch.doc_ids)
        p_r, p_s, raw = self.estimates(scores, buckets)
        warm = int(self.steps) < self.warmup_steps
        w = torch.ones_like(raw) if warm else raw.clamp(self.min_weight, 1.0)
        loss = self.weighted_loss(scores, w)
        post = hidden_posterior(p_r, p_s)
        self.collect("debias/weight", w)
        self.collect("debias/propensity", p_s)
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

    # ------------------------------------------------------------------ selection=model (the authors' code)
    def selection_scores(self, batch: Any) -> torch.Tensor:
        """The selection model's scores of the batch's groups ``[B, G]`` (with gradient), computed as the
        relevance model computes its own (cross-encoder pairs, or bi-encoder query x document)."""
        from rankexp.models.module import bucketed

        b, g = len(batch.qids), len(batch.doc_ids[0])
        sel = self.selector
        if self.score_kind == "cross":
            return bucketed(sel, batch.inputs, self.length_buckets).float().view(b, g)
        q = bucketed(sel.encode, batch.queries, self.length_buckets, side="query")
        d = bucketed(sel.encode, batch.docs, self.length_buckets, side="doc")
        return (q.unsqueeze(1) * d.view(b, g, -1)).sum(-1).float() / sel.temperature

    def coupled(self, scores: torch.Tensor, batch: Any) -> torch.Tensor:
        """(A3) per group: the relevance model's pair losses weighted by the selection model's (A1) weights,
        plus the selection model's pair losses weighted by the relevance model's; the weights carry no
        gradient, so each loss trains one model (both step together, as in the authors' loop)."""
        o = self.selection_scores(batch)
        f = scores
        warm = int(self.steps) < self.warmup_steps
        w_raw_r = ipw_weight(o.detach()[:, 1:], self.ratio)  # the relevance model's, from the selection model
        w_raw_s = ipw_weight(f.detach()[:, 1:], self.ratio)  # the selection model's, from the relevance model
        cap = float("inf") if self.max_weight is None else self.max_weight
        w_r = torch.ones_like(w_raw_r) if warm else w_raw_r.clamp(max=cap)
        w_s = torch.ones_like(w_raw_s) if warm else w_raw_s.clamp(max=cap)
        temp = float(getattr(self.base, "temperature", 1.0))
        loss_r = (w_r.to(f) * pair_losses(f, temp)).mean(dim=1)
        loss_s = (w_s.to(o) * pair_losses(o, temp)).mean(dim=1)
        self.collect("debias/weight", w_r)
        self.collect("debias/selection_weight", w_s)
        self.steps += 1
        with torch.no_grad():
            p_r = torch.sigmoid(f.detach()[:, 1:] - f.detach()[:, :1])
            # diagnostics only: relevant (relevance model) and not selected (selection model)
            post = coupled_posterior(f.detach()[:, 1:], o.detach()[:, 1:], self.ratio)
        self.record(batch, post, p_r)
        self.last = {"debias/relevance_loss": float(loss_r.detach().mean()), "debias/selection_loss": float(loss_s.detach().mean()),
                     "debias/weight_mean": float(w_r.mean()), "debias/weight_max": float(w_r.max()),
                     "debias/selection_weight_mean": float(w_s.mean()),
                     "debias/clipped_share": float(((w_raw_r > cap).float().mean() + (w_raw_s > cap).float().mean()) / 2)}
        return loss_r + loss_s

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
