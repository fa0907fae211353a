"""Negative samplers: given a training query, return documents to contrast with its positive.

A sampler sees the collection and the first-stage run once (``setup``; mined samplers also get
a :class:`MiningContext` with the cache and the run's model) and then answers
``sample(qid, exclude, n, rng, positive)``. It never returns a document in ``exclude`` (the
query's relevant documents) and falls back to uniform corpus sampling when its own pool runs dry,
counting how often that happened. A *dynamic* sampler (ADORE) returns no static negatives; the
training step asks it to mine (``mine``) and trains on what it returns with the sampler's
``objective`` (a loss from :mod:`rankexp.losses`); ``provides`` names what mining adds to the batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rankexp.data.collection import Collection
from rankexp.errors import DataError


@dataclass
class MiningContext:
    """What a mined sampler may use: the cache, the run's model before training (a bi-encoder
    mines with it when no other retriever is configured), the training queries, the device."""

    cache: Any = None
    encoder: Any = None
    train_qids: Sequence[str] | None = None
    device: str = "cpu"
    batch_size: int = 64


class NegativeSampler:
    name = "base"
    dynamic = False
    provides: frozenset[str] = frozenset()  # batch extras a dynamic sampler supplies during the step

    def setup(self, collection: Collection, first_stage: Mapping[str, Mapping[str, float]], ctx: MiningContext | None = None) -> None:
        self.all_docs = list(collection.docs)
        self.fallbacks = 0

    def sample(self, qid: str, exclude: set[str], n: int, rng: random.Random, positive: str | None = None) -> list[str]:
        """``n`` distinct documents, none in ``exclude``; ``positive`` is the group's positive."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fill_random(self, picked: list[str], exclude: set[str], n: int, rng: random.Random) -> list[str]:
        """Top ``picked`` up to ``n`` with distinct uniformly random corpus documents not in ``exclude``."""
        picked = list(picked)
        if len(self.all_docs) - len(exclude) < n:
            raise DataError(f"corpus too small: cannot draw {n} negatives outside {len(exclude)} relevant documents")
        taken = set(picked) | exclude
        while len(picked) < n:
            d = self.all_docs[rng.randrange(len(self.all_docs))]
            if d not in taken:
                picked.append(d)
                taken.add(d)
        return picked

    def train_timings(self, train_s: float) -> dict[str, float]:
        """Shares of the training time ``train_s`` this sampler spent (metrics.json ``train``); none by default."""
        return {}

    def fallback_count(self) -> int:
        """Negatives drawn at random so far because this sampler's (or its sources') pool ran dry."""
        return int(getattr(self, "fallbacks", 0)) + sum(s.fallback_count() for s in getattr(self, "samplers", ()))

    def stats(self) -> dict:
        return {"sampler": self.name, "fallback_to_random": self.fallbacks}
