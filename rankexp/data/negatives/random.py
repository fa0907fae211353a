"""Uniformly random negatives from the whole corpus (minus the query's relevant documents)."""

from __future__ import annotations

from rankexp.data.negatives.base import NegativeSampler


class RandomNegatives(NegativeSampler):
    name = "random"

    def sample(self, qid, exclude, n, rng, positive=None):
        return self.fill_random([], exclude, n, rng)
