"""Pairwise losses over (positive, negative) pairs of a group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rankexp.losses.base import RankingLoss


class RankNetLoss(RankingLoss):
    """RankNet (Burges et al., 2005): mean over negatives j of ``-log sigmoid(s+ - s_j)``
    = ``softplus(-(s+ - s_j))``."""

    name = "ranknet"

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        diff = scores[:, :1] - scores[:, 1:]
        return F.softplus(-diff).mean(dim=1)


class MarginLoss(RankingLoss):
    """Hinge / margin ranking loss: mean over negatives of ``max(0, margin - (s+ - s_j))``."""

    name = "margin"

    def __init__(self, margin: float = 1.0):
        if margin < 0:
            raise ValueError(f"loss.margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        diff = scores[:, :1] - scores[:, 1:]
        return F.relu(self.margin - diff).mean(dim=1)
