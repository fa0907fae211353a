"""Negatives from the first-stage (BM25 by default) ranking, with the false-negative filters."""

from __future__ import annotations

from rankexp.data.negatives.mined import MinedNegatives, run_ranking
from rankexp.utils.hashing import stable_hash


class BM25Negatives(MinedNegatives):
    """Top ``depth`` of the first-stage run (default ranks 1..100) minus the filters' removals,
    drawn uniformly (``select=uniform``) or best first (``select=top``). ``skip_top`` ignores the
    first ranks (unjudged top documents are often relevant)."""

    name = "bm25"

    def __init__(self, depth: int = 100, skip_top: int = 0, **filters):
        super().__init__(depth=depth, skip_top=skip_top, **filters)
        self.skip_top = skip_top

    def mining_key(self, collection, first_stage, ctx, qids):
        ranking = run_ranking(first_stage, qids, self.depth)
        return {"first_stage_run": stable_hash(ranking, 16)}

    def mine(self, collection, first_stage, ctx, qids):
        return run_ranking(first_stage, qids, self.depth), {}
