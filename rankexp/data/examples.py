"""Training groups (query, positive, negatives) built from qrels and a negative sampler.

Every (train query, relevant document) pair is a positive; the pairs are shuffled with the run's
seed and cycled until ``num_groups`` groups exist, each with ``num_negatives`` fresh negatives.
The whole schedule is fixed before training, so a run is reproducible from its seed.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Sequence

from rankexp.data.collection import Collection, natural_key
from rankexp.data.negatives.base import NegativeSampler
from rankexp.errors import DataError

log = logging.getLogger(__name__)


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
    short: dict[str, int] = {}  # query -> fewest candidates its sampler had for a group
    fallbacks = start = sampler.fallback_count()
    while len(groups) < num_groups:
        if not order:
            order = positives[:]
            rng.shuffle(order)
        q, pos = order.pop()
        negs = sampler.sample(q, collection.relevant(q), num_negatives, rng, positive=pos)
        now = sampler.fallback_count()
        if now > fallbacks:
            short[q] = min(short.get(q, num_negatives), num_negatives - (now - fallbacks))
        fallbacks = now
        groups.append(Group(q, (pos, *negs)))
    if short:
        warn_short(sampler.name, short, len({q for q, _ in positives}), num_negatives, fallbacks - start)
    return groups


def warn_short(sampler: str, short: dict[str, int], n_queries: int, num_negatives: int, drawn: int) -> None:
    """One warning line: the training queries whose sampler had fewer candidates than
    ``train.num_negatives`` (``short``: query -> the fewest it gave for one group)."""
    shown = ", ".join(f"{q!r} got {k}" for q, k in sorted(short.items(), key=lambda x: natural_key(x[0]))[:3])
    more = ", ..." if len(short) > 3 else ""
    log.warning("train.num_negatives=%d: %d of %d training queries have fewer %s candidates than that after filtering "
                "(%s%s); %d negatives were drawn at random from the corpus instead",
                num_negatives, len(short), n_queries, sampler, shown, more, drawn)
