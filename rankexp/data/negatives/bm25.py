"""Negatives from the first-stage (BM25 by default) ranking: uniform over ranks (skip_top, depth]."""

from __future__ import annotations

from rankexp.data.negatives.base import NegativeSampler
from rankexp.errors import ConfigError
from rankexp.eval.trec_io import sort_ranking


class BM25Negatives(NegativeSampler):
    """``depth``: sample from the top ``depth`` of the first-stage run; ``skip_top``: ignore its
    first ranks (a crude false-negative filter: unjudged top documents are often relevant)."""

    name = "bm25"

    def __init__(self, depth: int = 100, skip_top: int = 0):
        if depth < 1 or skip_top < 0 or skip_top >= depth:
            raise ConfigError(f"negatives: need depth >= 1 and 0 <= skip_top < depth, got depth={depth}, skip_top={skip_top}")
        self.depth, self.skip_top = depth, skip_top

    def setup(self, collection, first_stage):
        super().setup(collection, first_stage)
        self.pools = {q: [d for d, _ in sort_ranking(r)[self.skip_top : self.depth]] for q, r in first_stage.items()}

    def pool(self, qid):
        return self.pools.get(qid, [])
