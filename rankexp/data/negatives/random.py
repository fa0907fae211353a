"""Uniformly random negatives from the whole corpus (minus the query's relevant documents)."""

from __future__ import annotations

from rankexp.data.negatives.base import NegativeSampler


class RandomNegatives(NegativeSampler):
    name = "random"

    def pool(self, qid: str) -> list[str]:
        return []

    def sample(self, qid, exclude, n, rng):
        picked: list[str] = []
        taken = set(exclude)
        while len(picked) < n:
            d = self.all_docs[rng.randrange(len(self.all_docs))]
            if d not in taken:
                picked.append(d)
                taken.add(d)
        return picked
