"""Pairwise losses over (positive, negative) pairs of a group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rankexp.losses.base import RankingLoss


class RankNetLoss(RankingLoss):
    """RankNet (Burges et al., 2005): mean over negatives j of ``-log sigmoid(s+ - s_j)``
    = ``softplus(-(s+ - s_j))``."""

    name = "ranknet"

    def forward(self, scores: torch.Tensor, batch=None) -> torch.Tensor:
        diff = scores[:, :1] - scores[:, 1:]
        return F.softplus(-diff).mean(dim=1)


class MarginLoss(RankingLoss):
    """Hinge / margin ranking loss: mean over negatives of ``max(0, margin - (s+ - s_j))``."""

    name = "margin"

    def __init__(self, margin: float = 1.0):
        if margin < 0:
            raise ValueError(f"loss.margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def forward(self, scores: torch.Tensor, batch=None) -> torch.Tensor:
        diff = scores[:, :1] - scores[:, 1:]
        return F.relu(self.margin - diff).mean(dim=1)


class LambdaRankNetLoss(RankingLoss):
    """ADORE's pairwise loss (Zhan et al., SIGIR 2021, Sec. 5.2) over the documents the current query
    encoder retrieved at this step:

        l(q) = sum_j  w_j * softplus(s_j - s_+)

    with ``lambda_weight=true`` the LambdaRank-style weight w_j = |1/r_+ - 1/r_j| (the change in
    reciprocal rank if the positive and negative j swapped ranks), else w_j = 1/|negatives| (a plain
    mean). Scores arrive already divided by the model's temperature.

    Groups differ in size after the false-negative filters, so the batch carries ``extras["mask"]``
    ``[B, G]`` (True = a real document; column 0, the positive, always) and ``extras["ranks"]``
    ``[B, G]`` (1-based ranks in the current retrieval): ``negatives=dense_dynamic`` provides both. A
    group without any negative has loss 0.
    """

    name = "lambda_ranknet"
    requires = frozenset({"ranks", "mask"})

    def __init__(self, lambda_weight: bool = True):
        if not isinstance(lambda_weight, bool):
            raise ValueError(f"lambda_weight must be true or false, got {lambda_weight!r}")
        self.lambda_weight = lambda_weight

    def forward(self, scores: torch.Tensor, batch=None) -> torch.Tensor:
        who = type(self).__name__
        mask = batch.require("mask", who)[:, 1:].to(scores.device)
        pair = F.softplus(scores[:, 1:] - scores[:, :1]).masked_fill(~mask, 0.0)
        if self.lambda_weight:
            ranks = batch.require("ranks", who).to(scores)
            w = (1.0 / ranks[:, :1] - 1.0 / ranks[:, 1:]).abs().masked_fill(~mask, 0.0)
            return (w * pair).sum(dim=1)
        return pair.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
