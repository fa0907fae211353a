"""False-negative filters for mined negatives.

Mined "negatives" near the top of a strong ranking are often unjudged relevant documents. Each
rule below removes candidates from a query's ranking (best first, ``depth`` deep); a candidate is
counted under the first rule that removes it, so the counts add up:

``relevant``     judged relevant to the query (always removed)
``skip_top``     rank <= ``skip_top``
``max_score``    score > ``max_score``
``margin_abs``   score > s(positive) - ``margin_abs``
``margin_rel``   score > s(positive) - ``margin_rel`` * |s(positive)|   (e.g. 0.05: must score
                 below 95 % of a positive score)

The margins compare with the group's positive document under the same scorer; when the scorer
never scored that positive (a BM25 run that did not retrieve it) the margin rules cannot apply and
the pair is counted under ``margin_unknown_positive``. ``select`` picks the ``n`` negatives from
the survivors: ``uniform`` (uniformly without replacement) or ``top`` (the best-ranked ``n``).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from rankexp.errors import ConfigError

RULES = ("relevant", "skip_top", "max_score", "margin_abs", "margin_rel")


@dataclass
class FalseNegativeFilter:
    depth: int = 200
    skip_top: int = 0
    margin_abs: float | None = None
    margin_rel: float | None = None
    max_score: float | None = None
    select: str = "uniform"
    removed: Counter = field(default_factory=Counter)
    considered: int = 0
    kept: int = 0
    unknown_positive: int = 0

    def __post_init__(self) -> None:
        if self.depth < 1 or self.skip_top < 0 or self.skip_top >= self.depth:
            raise ConfigError(f"negatives: need depth >= 1 and 0 <= skip_top < depth, got depth={self.depth}, skip_top={self.skip_top}")
        if self.select not in ("uniform", "top"):
            raise ConfigError(f"negatives.select must be 'uniform' or 'top', got {self.select!r}")
        for name in ("margin_abs", "margin_rel"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ConfigError(f"negatives.{name} must be >= 0, got {v}")

    def rule(self, rank: int, doc: str, score: float, relevant: set[str], pos: float | None) -> str | None:
        """The first rule that removes this candidate (1-based ``rank``), or None to keep it."""
        if doc in relevant:
            return "relevant"
        if rank <= self.skip_top:
            return "skip_top"
        if self.max_score is not None and score > self.max_score:
            return "max_score"
        if pos is not None:
            if self.margin_abs is not None and score > pos - self.margin_abs:
                return "margin_abs"
            if self.margin_rel is not None and score > pos - self.margin_rel * abs(pos):
                return "margin_rel"
        return None

    def apply(self, ranked: Sequence[tuple[str, float]], relevant: set[str], pos_score: float | None,
              count: bool = True) -> list[tuple[str, float, int]]:
        """Survivors ``(doc, score, rank)`` of ``ranked`` (best first) within ``depth``; the removal
        counts accumulate unless ``count`` is false."""
        kept: list[tuple[str, float, int]] = []
        margins = self.margin_abs is not None or self.margin_rel is not None
        if count and margins and pos_score is None:
            self.unknown_positive += 1
        for rank, (doc, score) in enumerate(ranked[: self.depth], start=1):
            why = self.rule(rank, doc, score, relevant, pos_score)
            if why is None:
                kept.append((doc, score, rank))
            elif count:
                self.removed[why] += 1
        if count:
            self.considered += min(len(ranked), self.depth)
            self.kept += len(kept)
        return kept

    def choose(self, kept: Sequence[tuple[str, float, int]], n: int, rng: random.Random) -> list[str]:
        if self.select == "top":
            return [d for d, _, _ in kept[:n]]
        return rng.sample([d for d, _, _ in kept], n)

    def stats(self) -> dict:
        return {"depth": self.depth, "considered": self.considered, "kept": self.kept,
                "removed": {r: int(self.removed.get(r, 0)) for r in RULES},
                "margin_unknown_positive": self.unknown_positive}
