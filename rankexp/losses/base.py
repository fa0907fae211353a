"""Ranking losses: ``loss(scores, batch) -> per-example loss [B]``.

``scores`` has shape ``[B, G]``: row i is one training group, column 0 its positive document and
columns 1..G-1 its negatives. ``batch`` is the :class:`~rankexp.models.batch.Batch` the scores came
from (query and document ids, labels, and whatever the loss declared in ``requires``, e.g. a
teacher's scores). A loss returns the **per-example** loss ``[B]``; the LightningModule multiplies by
the example weights (curriculum, CET, ...) and averages. Keeping the reduction out of the loss is what
lets any weighting technique work with any loss.

A new loss: subclass :class:`RankingLoss`, implement ``forward(scores, batch)``, and set

* ``requires``: the batch fields it reads beyond scores (``{"teacher_scores"}``,
  ``{"first_stage_scores"}``); the run checks before training that they can be provided;
* ``accepts_extra_negatives = True`` when it can also score a row against more documents than its
  own group (a bi-encoder's in-batch negatives): then implement :meth:`with_extra_negatives`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from rankexp.models.batch import Batch


class RankingLoss:
    """Base class: ``loss(scores[B, G], batch) -> Tensor[B]`` with the positive in column 0."""

    name = "base"
    requires: frozenset[str] = frozenset()
    accepts_extra_negatives = False

    def __call__(self, scores: torch.Tensor, batch: "Batch | None" = None) -> torch.Tensor:
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"{type(self).__name__}: scores must be [B, 1+negatives] with at least one negative, got {tuple(scores.shape)}")
        if self.requires and batch is None:
            raise ValueError(f"{type(self).__name__} needs the batch ({', '.join(sorted(self.requires))}), not only scores")
        return self.forward(scores, batch)

    def forward(self, scores: torch.Tensor, batch: "Batch | None") -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_extra_negatives(self, scores: torch.Tensor, positive: torch.Tensor, batch: "Batch") -> torch.Tensor:
        """Per-example loss ``[B]`` when row i scores ``N`` documents (its group and other groups'
        documents; masked ones are ``-inf``) and its positive is column ``positive[i]``. Only for a
        loss with ``accepts_extra_negatives``."""
        raise NotImplementedError(f"{type(self).__name__} scores each group's own documents only")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
