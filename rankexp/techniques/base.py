"""Example weighting: the seam for curriculum learning, CET debiasing and similar techniques.

A :class:`Weighter` gives each training group a non-negative weight ``[B]``: the LightningModule
calls ``weighter.weights(batch, step)`` with the step's :class:`~rankexp.models.batch.Batch` and
computes ``sum(w_i * loss_i) / B`` (``application="example"``) or, for techniques that weight a
whole batch, ``mean(w) * mean(loss)`` (``application="batch"``).

A new weighter: subclass :class:`Weighter` and implement either ``weights(batch, step)`` (it sees
the whole batch: ids, labels, and the fields it names in ``requires``, e.g. ``{"teacher_scores"}``
or ``{"first_stage_scores"}``, which the run then fills and checks before training) or, when ids are
all it needs, ``__call__(qids, doc_ids, step)``, which the default ``weights`` calls. ``setup`` sees a
ranking of the training queries once before training (the first stage's, or the one
:meth:`Weighter.training_run` returns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from rankexp.models.batch import Batch


class Weighter:
    """Base class. ``setup`` sees a ranking of the training queries and their qrels once before
    training; ``weights`` returns weights ``[B]`` for the batch at optimizer step ``step``."""

    application = "example"
    uniform = False
    requires: frozenset[str] = frozenset()

    def setup(self, first_stage: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], max_steps: int) -> None:
        pass

    def training_run(self, first_stage: Mapping[str, Mapping[str, float]], train_qids: Sequence[str],
                     doc_ids) -> Mapping[str, Mapping[str, float]]:
        """The run ``setup`` receives: the first stage's, restricted to the training queries by the
        caller. A technique that reads its own ranking (a run file) returns that instead."""
        return first_stage

    def weights(self, batch: "Batch", step: int) -> torch.Tensor:
        """Weights ``[B]`` for ``batch`` at optimizer step ``step`` (by default from its ids)."""
        return self(batch.qids, batch.doc_ids, step)

    def __call__(self, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], step: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} implements neither weights(batch, step) nor __call__(qids, doc_ids, step)")

    def log_stats(self) -> dict[str, float]:
        """Summary of the weights since the last call (mean, quantiles), for logging."""
        return {}


class UniformWeighter(Weighter):
    """W = 1 for every example: the loss is reduced exactly as without any weighting."""

    uniform = True

    def __call__(self, qids, doc_ids, step):
        return torch.ones(len(qids))
