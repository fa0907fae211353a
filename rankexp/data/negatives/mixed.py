"""Negatives from several samplers in given proportions (e.g. half BM25, half random).

Each negative slot of a group picks its source with probability proportional to the source's
``weight`` (the run's seeded generator), then each source fills its slots without repeating a
document already in the group.
"""

from __future__ import annotations

from typing import Mapping

from rankexp.data.negatives.base import NegativeSampler
from rankexp.errors import ConfigError


class MixedNegatives(NegativeSampler):
    name = "mixed"

    def __init__(self, sources: Mapping[str, Mapping] | None = None):
        if not sources:
            raise ConfigError("negatives=mixed needs negatives.sources: {NAME: {weight: W, sampler: {...}}}")
        self.names, self.weights, self.samplers = [], [], []
        for name, spec in sources.items():
            sampler, weight = spec.get("sampler"), float(spec.get("weight", 1.0))
            if not isinstance(sampler, NegativeSampler):
                raise ConfigError(f"negatives.sources.{name}.sampler must be a sampler config with a _target_")
            if sampler.dynamic:
                raise ConfigError(f"negatives.sources.{name}: a dynamic sampler (ADORE) cannot be mixed with static ones")
            if weight < 0:
                raise ConfigError(f"negatives.sources.{name}.weight must be >= 0, got {weight}")
            self.names.append(name)
            self.weights.append(weight)
            self.samplers.append(sampler)
        if sum(self.weights) <= 0:
            raise ConfigError("negatives.sources: the weights sum to 0")
        self.drawn = {n: 0 for n in self.names}

    def setup(self, collection, first_stage, ctx=None):
        super().setup(collection, first_stage, ctx)
        for s in self.samplers:
            s.setup(collection, first_stage, ctx)

    def sample(self, qid, exclude, n, rng, positive=None):
        counts = [0] * len(self.samplers)
        for _ in range(n):
            counts[rng.choices(range(len(self.samplers)), weights=self.weights)[0]] += 1
        picked: list[str] = []
        for i, k in enumerate(counts):
            if k:
                got = self.samplers[i].sample(qid, set(exclude) | set(picked), k, rng, positive)
                picked.extend(got)
                self.drawn[self.names[i]] += len(got)
        return picked

    def stats(self) -> dict:
        return {"sampler": self.name, "drawn": dict(self.drawn),
                "sources": {n: s.stats() for n, s in zip(self.names, self.samplers)}}
