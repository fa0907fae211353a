"""Pointwise loss: binary cross-entropy on each (query, document) score independently."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rankexp.losses.base import RankingLoss


class BCELoss(RankingLoss):
    """Mean over the group of ``BCEWithLogits(s_j, y_j)`` with y the batch's labels (1 for the
    positive in column 0, else 0; the same by position when called without a batch).

    ``pos_weight`` (> 0) up-weights the positive term, as with an imbalanced 1:n group.
    """

    name = "pointwise"

    def __init__(self, pos_weight: float = 1.0):
        if pos_weight <= 0:
            raise ValueError(f"loss.pos_weight must be > 0, got {pos_weight}")
        self.pos_weight = float(pos_weight)

    def forward(self, scores: torch.Tensor, batch=None) -> torch.Tensor:
        if batch is not None and batch.labels is not None:
            labels = batch.labels.to(scores)
        else:
            labels = torch.zeros_like(scores)
            labels[:, 0] = 1.0
        per = F.binary_cross_entropy_with_logits(scores, labels, reduction="none")
        per = torch.cat([per[:, :1] * self.pos_weight, per[:, 1:]], dim=1)
        return per.mean(dim=1)
