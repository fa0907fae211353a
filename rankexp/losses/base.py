"""Ranking losses are pure functions of scores.

``scores`` has shape ``[B, G]``: row i is one training group, column 0 its positive document and
columns 1..G-1 its negatives. A loss returns the **per-example** loss ``[B]``; the LightningModule
multiplies by the example weights (curriculum, CET, ...) and averages. Keeping the reduction out
of the loss is what lets any weighting technique work with any loss.
"""

from __future__ import annotations

import torch


class RankingLoss:
    """Base class: ``loss(scores[B, G]) -> Tensor[B]`` with the positive in column 0."""

    name = "base"

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"{type(self).__name__}: scores must be [B, 1+negatives] with at least one negative, got {tuple(scores.shape)}")
        return self.forward(scores)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
