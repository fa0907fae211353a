"""Listwise loss: softmax cross-entropy over the 1 + n documents of a group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rankexp.losses.base import RankingLoss


class SoftmaxCELoss(RankingLoss):
    """``-log( exp(s+/T) / sum_j exp(s_j/T) )`` over the group (a.k.a. localized contrastive
    estimation / InfoNCE with the group's negatives). ``temperature`` T > 0.

    It accepts extra negatives: a bi-encoder with ``model.encoder.in_batch=true`` runs each query's
    softmax over every document of the batch (:meth:`with_extra_negatives`)."""

    name = "listwise"
    accepts_extra_negatives = True

    def __init__(self, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, scores: torch.Tensor, batch=None) -> torch.Tensor:
        logits = scores / self.temperature
        return torch.logsumexp(logits, dim=1) - logits[:, 0]

    def with_extra_negatives(self, scores: torch.Tensor, positive: torch.Tensor, batch=None) -> torch.Tensor:
        """``-log softmax(scores / T)[i, positive[i]]`` over all ``N`` columns (``-inf`` = left out)."""
        return F.cross_entropy(scores / self.temperature, positive, reduction="none")
