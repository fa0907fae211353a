"""Example weighting: the seam for curriculum learning, CET debiasing and similar techniques.

A :class:`Weighter` gives each training group a non-negative weight ``[B]``; the LightningModule
computes ``sum(w_i * loss_i) / B`` (``application="example"``) or, for techniques that weight a
whole batch, ``mean(w) * mean(loss)`` (``application="batch"``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch


class Weighter:
    """Base class. ``setup`` sees the first-stage run and qrels once before training;
    ``__call__`` returns weights ``[B]`` for the batch at optimizer step ``step``."""

    application = "example"
    uniform = False

    def setup(self, first_stage: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], max_steps: int) -> None:
        pass

    def training_run(self, first_stage: Mapping[str, Mapping[str, float]], train_qids: Sequence[str],
                     doc_ids) -> Mapping[str, Mapping[str, float]]:
        """The run ``setup`` receives: the first stage's, restricted to the training queries by the
        caller. A technique that reads its own ranking (a run file) returns that instead."""
        return first_stage

    def __call__(self, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], step: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def log_stats(self) -> dict[str, float]:
        """Summary of the weights since the last call (mean, quantiles), for logging."""
        return {}


class UniformWeighter(Weighter):
    """W = 1 for every example: the loss is reduced exactly as without any weighting."""

    uniform = True

    def __call__(self, qids, doc_ids, step):
        return torch.ones(len(qids))
