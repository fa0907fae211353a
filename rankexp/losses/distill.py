"""Distillation losses: a student's scores ``s [B, G]`` against a teacher's ``t [B, G]`` (``batch.teacher_scores``).

Every function maps one training group (positive in column 0, then its n = G - 1 negatives) to one
loss: ``[B, G] x [B, G] -> [B]``; the module weights and averages (as for every rankexp loss).
:class:`DistilledLoss` mixes one of them with the run's label loss (``loss=``)::

    L = (1 - w) · L_label(s) + w · L_distill(s, t)          w = distill.weight ∈ [0, 1] (default 1: teacher only)

(our choice of mixing: a convex combination, so ``w`` reads as the teacher's share; the papers below
train on the distillation term alone, which is ``w = 1``.)

Margin-MSE — Hofstätter, Althammer, Schröder, Sertkan and Hanbury, "Improving Efficient Neural
Ranking Models with Cross-Architecture Knowledge Distillation" (arXiv 2010.02666). The stored copies
readable here give the paper's abstract only (its Section 3 was not readable), so its equation number
could NOT be checked (a secondary note cites it as Eq. 11; unverified); the label MM is ours. The loss,
as the abstract and every secondary source state it, for a triple (query, positive, negative)::

    L(Q, P+, P-) = MSE( M_s(Q, P+) - M_s(Q, P-),  M_t(Q, P+) - M_t(Q, P-) )                      (MM)

Where we had to choose: the paper's triples have one negative; a group here has n, and we average
the squared margin errors over its n (positive, negative) pairs:
``L = (1/n) Σ_j ((s_0 - s_j) - (t_0 - t_j))²`` (with n = 1 exactly (MM)). Only margins are matched, so a
student whose scores differ from the teacher's by a constant per group has zero loss (the paper's
reason: scores of different architectures need not share a scale).

Listwise KL (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015) over a
group, temperature T::

    p_t = softmax(t / T),  p_s = softmax(s / T),  L = T² · Σ_j p_t,j (log p_t,j - log p_s,j)

(T² keeps the gradient's size independent of T, as Hinton et al. advise.)

PLD — Bassam, Zhu and Bian, "PLD: A Choice-Theoretic List-Wise Knowledge Distillation" (arXiv
2506.12542). Checked against the paper's full text (v3: Sections 3.2, 4.1, 4.2, 5.2.2, Appendix A
and its reference code in Appendix C). The readable copy renders the displayed formulas as
images, so the equation NUMBERS could not be read; the formulas below are the paper's as its text
states them (Appendix A.4 writes the summand out in words), cited by section::

    π* = (y, then the other classes in descending teacher logit)                 (Sec. 4.1, "teacher-optimal permutation")
    q^T = softmax(t / τ_T)     α_k = q^T_{π*_k}                                  (Sec. 4.2; τ_T of Sec. 5.2.2, App. C)
    L_PLD(s) = Σ_{k=1..C} α_k · ( log Σ_{ℓ=k..C} exp(s_{π*_ℓ}) - s_{π*_k} )     (Sec. 4.2, App. A.1/A.4)

Each term is the negative log-probability, under the student's (unsoftened) Plackett-Luce model, of
choosing π*_k among the items not chosen yet, weighted by the teacher's softmax mass of π*_k. The
paper's special cases (Sec. 4.2): α = (1, 0, …, 0) is cross-entropy on the true label; uniform α =
1/C is ListMLE on π* (divided by C); the loss is convex in s and unchanged by a constant added to
all student scores (Sec. 3.2, App. A.4). The teacher's softmax covers every class, the true label
included (App. C); only the teacher is tempered. Defaults: the paper's ImageNet ablation (Table 6,
ResNet-152 -> ResNet-50) finds τ_T = 1 best (Top-1 77.30 vs 76.06 at 0.5, 77.17 at 1.5, 76.46 at 2,
75.22 at 4; uniform ListMLE 74.11); its CIFAR-100 runs use τ = 4. Our ``distill.temperature`` = 1.0.
The paper trains on L_PLD alone, with no separate cross-entropy term (our ``distill.weight`` = 1).

Where we differ / had to choose (the paper is written for classification): the "classes" are a
training group's documents and y is its labelled positive (column 0); teacher ties are broken by
column order (a stable sort: with equal teacher scores the negatives keep their group order; the
paper's Appendix-C code uses an unstable sort, so its tie order is unspecified); the last term (one
item left, always 0) is kept for the formula's sake. Per group the loss is a sum over the group's
G items (the paper sums over C classes and averages over the batch, as our module does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from rankexp.errors import ConfigError
from rankexp.losses.base import RankingLoss

if TYPE_CHECKING:  # pragma: no cover
    from rankexp.models.batch import Batch

KINDS = ("none", "margin_mse", "kl", "pld")


def _check(s: torch.Tensor, t: torch.Tensor) -> None:
    if s.shape != t.shape or s.dim() != 2 or s.shape[1] < 2:
        raise ValueError(f"student scores {tuple(s.shape)} and teacher scores {tuple(t.shape)} must both be [B, G>=2]")


def margin_mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Margin-MSE per group ``[B]``: the mean over negatives of ((s₀ - sⱼ) - (t₀ - tⱼ))²."""
    _check(s, t)
    t = t.to(s.dtype)
    ds = s[:, :1] - s[:, 1:]
    dt = t[:, :1] - t[:, 1:]
    return ((ds - dt) ** 2).mean(dim=1)


def listwise_kl(s: torch.Tensor, t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)) per group ``[B]``."""
    _check(s, t)
    t = t.to(s.dtype)
    log_pt = F.log_softmax(t / temperature, dim=1)
    log_ps = F.log_softmax(s / temperature, dim=1)
    return temperature ** 2 * (log_pt.exp() * (log_pt - log_ps)).sum(dim=1)


def pld_permutation(t: torch.Tensor, positive: int = 0) -> torch.Tensor:
    """π* per group ``[B, G]`` (column indices): ``positive`` first, then the others by teacher score
    descending (ties in column order)."""
    b, g = t.shape
    rest = [c for c in range(g) if c != positive]
    others = t[:, rest]
    order = torch.sort(others, dim=1, descending=True, stable=True).indices
    rest_idx = torch.tensor(rest, device=t.device)[order]
    first = torch.full((b, 1), positive, dtype=torch.long, device=t.device)
    return torch.cat([first, rest_idx], dim=1)


def pld(s: torch.Tensor, t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """PLD per group ``[B]``: L_PLD of the module docstring (Bassam et al., Sec. 4.2 / App. A)."""
    _check(s, t)
    t = t.to(s.dtype)
    perm = pld_permutation(t)
    s_pi = torch.gather(s, 1, perm)
    alpha = torch.gather(F.softmax(t / temperature, dim=1), 1, perm)
    # log Σ_{l>=k} exp(s_π*_l): a reversed cumulative logsumexp
    tail = torch.logcumsumexp(s_pi.flip(1), dim=1).flip(1)
    return (alpha * (tail - s_pi)).sum(dim=1)


class DistilledLoss(RankingLoss):
    """``(1 - weight) · label_loss + weight · distill(s, t)`` per group; reads ``batch.teacher_scores``."""

    accepts_extra_negatives = False  # the teacher scored each group's own documents only

    def __init__(self, kind: str, label_loss: RankingLoss, weight: float = 1.0, temperature: float = 1.0):
        if kind not in KINDS[1:]:
            raise ConfigError(f"distill: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        if not 0.0 <= float(weight) <= 1.0:
            raise ConfigError(f"distill.weight={weight}: expected a number in [0, 1] (the teacher's share of the loss)")
        if not float(temperature) > 0.0:
            raise ConfigError(f"distill.temperature={temperature}: expected a number > 0")
        self.kind, self.label_loss = kind, label_loss
        self.weight, self.temperature = float(weight), float(temperature)
        self.name = f"{getattr(label_loss, 'name', type(label_loss).__name__)}+{kind}"
        self.requires = frozenset({"teacher_scores"}) | frozenset(getattr(label_loss, "requires", ()) or ())

    def distill(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "margin_mse":
            return margin_mse(s, t)
        if self.kind == "kl":
            return listwise_kl(s, t, self.temperature)
        return pld(s, t, self.temperature)

    def forward(self, scores: torch.Tensor, batch: "Batch | None") -> torch.Tensor:
        t = batch.require("teacher_scores", type(self).__name__).to(scores.device)
        if torch.isnan(t).any():
            raise ValueError("teacher_scores holds NaN: a training pair the teacher did not score")
        out = self.weight * self.distill(scores, t)
        if self.weight < 1.0:
            out = out + (1.0 - self.weight) * self.label_loss(scores, batch)
        return out

    def __repr__(self) -> str:
        return f"DistilledLoss({self.kind}, label={self.label_loss!r}, weight={self.weight}, temperature={self.temperature})"


def with_distillation(distill_cfg, label_loss: RankingLoss) -> RankingLoss:
    """The run's loss: ``label_loss`` alone for ``distill=none`` (or no distill group), else wrapped."""
    if distill_cfg is None:
        return label_loss
    kind = str(distill_cfg.get("kind", "none"))
    if kind == "none":
        return label_loss
    return DistilledLoss(kind, label_loss, distill_cfg.get("weight", 1.0), distill_cfg.get("temperature", 1.0))
