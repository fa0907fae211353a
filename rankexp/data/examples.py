"""Training groups (query, positive, negatives) built from qrels and a negative sampler.

Every (train query, relevant document) pair is a positive; the pairs are shuffled with the run's
seed and cycled until ``num_groups`` groups exist, each with ``num_negatives`` fresh negatives.
The whole schedule is fixed before training, so a run is reproducible from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from rankexp.data.collection import Collection
from rankexp.data.negatives.base import NegativeSampler
from rankexp.errors import DataError


@dataclass(frozen=True)
class Group:
    qid: str
    doc_ids: tuple[str, ...]  # positive first, then negatives


def build_groups(collection: Collection, train_qids: Sequence[str], sampler: NegativeSampler,
                 num_negatives: int, num_groups: int, seed: int) -> list[Group]:
    positives = [(q, d) for q in train_qids for d in sorted(collection.relevant(q)) if d in collection.docs and q in collection.queries]
    if not positives:
        raise DataError(f"{collection.name}: the train split has no (query, relevant document) pair with a document in the corpus")
    rng = random.Random(seed)
    groups: list[Group] = []
    order: list[tuple[str, str]] = []
    while len(groups) < num_groups:
        if not order:
            order = positives[:]
            rng.shuffle(order)
        q, pos = order.pop()
        negs = sampler.sample(q, collection.relevant(q), num_negatives, rng, positive=pos)
        groups.append(Group(q, (pos, *negs)))
    return groups
