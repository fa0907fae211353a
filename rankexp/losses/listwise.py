"""Listwise loss: softmax cross-entropy over the 1 + n documents of a group."""

from __future__ import annotations

import torch

from rankexp.losses.base import RankingLoss


class SoftmaxCELoss(RankingLoss):
    """``-log( exp(s+/T) / sum_j exp(s_j/T) )`` over the group (a.k.a. localized contrastive
    estimation / InfoNCE with the group's negatives). ``temperature`` T > 0."""

    name = "listwise"

    def __init__(self, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        logits = scores / self.temperature
        return torch.logsumexp(logits, dim=1) - logits[:, 0]
