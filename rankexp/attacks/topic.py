"""Topic-oriented attack: one perturbation of a document that promotes it for a whole group of queries.

Liu et al., "Topic-oriented Adversarial Attacks against Black-box Neural Ranking Models"
(arXiv 2304.14867, SIGIR 2023). Earlier attacks (PRADA, PAT) perturb a document for one query; the
topic-oriented attack asks for a single perturbed document that is promoted for every query of a
group sharing a topic (the runner builds the groups and gives them as ``target.qids``). The paper
attacks a black-box victim through a surrogate and, as we read its introduction (the method section
was not available to us), casts the search as a sequential decision process trained with
reinforcement learning, rewarded by the surrogate's ranking of the document across the group, in a
"static" setting (a fixed group) and a "dynamic" one (the group changes over time).

What we implement (feasible on a CPU, and what differs):

* **Objective** — the sum over the group's queries of PAT's pairwise objective (T-1 of
  :mod:`rankexp.attacks.trigger`), plus the same fluency and semantic terms, counted once:

      J_topic(t) = sum_{q in Q} R_q(t) + fluency_weight * F(t) + semantic_weight * S(t)      (TO-1)

  (``aggregate: mean`` divides the sum by |Q|, so groups of different sizes weigh alike).
* **Perturbation** — trigger tokens (as PAT), not the paper's word substitutions: the trigger
  search is reused with the multi-query objective (its gradient is the sum of the queries'
  gradients). One text serves all queries of the group.
* **Search** — the gradient-guided beam search of PAT instead of a learned RL policy: no policy is
  trained, so nothing carries over from one document to the next, and there is no dynamic setting.
* **Surrogate** — the PAT imitation model (black box) or the victim itself (``white_box``).

``details["per_query"]`` holds each query's R_q; ``details["rank_objective"]`` is their sum (or mean).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from rankexp.attacks.trigger import TriggerAttack
from rankexp.errors import ConfigError


class TopicAttack(TriggerAttack):
    """One trigger for all queries of a topic group (see the module docstring).

    Args (besides :class:`~rankexp.attacks.trigger.TriggerAttack`'s):
        aggregate: ``sum`` (TO-1) or ``mean`` over the group's queries.
    """

    name = "topic"
    groups_queries = True

    def __init__(self, aggregate: str = "sum", **kwargs: Any):
        if aggregate not in ("sum", "mean"):
            raise ConfigError(f"attack.aggregate must be 'sum' or 'mean', got {aggregate!r}")
        super().__init__(**kwargs)
        self.aggregate = aggregate

    def combine(self, values: Sequence[float]) -> float:
        total = float(sum(values))
        return total / max(len(values), 1) if self.aggregate == "mean" else total

    def combine_tensor(self, terms: list[torch.Tensor]) -> torch.Tensor:
        total = torch.stack(terms).sum()
        return total / max(len(terms), 1) if self.aggregate == "mean" else total
