"""Mined negatives: a ranking per query, filtered for false negatives, cached and written to a file.

A :class:`MinedNegatives` subclass says how to rank (``mine``) and what its ranking depends on
(``mining_key``). ``setup`` builds the ranking of the training queries once, stores it under
``cache/negatives/<hash>/negatives.tsv`` (hash of collection + sampler config + model/run hash)
and reads it back, so a second run with the same inputs skips the mining. The file is plain TSV
that users can inspect, edit, or bring their own of (``negatives=file path=...``)::

    # qid<TAB>doc_id<TAB>rank<TAB>score
    q1	d17	1	14.2
    q1	d3	2	13.9

``positives.tsv`` beside it (same columns, no rank) holds the miner's score of each relevant
document when it could compute one, for the margin filters.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Mapping

from rankexp.data.collection import Collection
from rankexp.data.negatives.base import MiningContext, NegativeSampler
from rankexp.data.negatives.filters import FalseNegativeFilter
from rankexp.errors import DataError
from rankexp.eval.trec_io import sort_ranking
from rankexp.utils.hashing import stable_hash
from rankexp.utils.io import atomic_open

Ranking = dict[str, list[tuple[str, float]]]
HEADER = "# qid\tdoc_id\trank\tscore\n"


def write_negatives(path: Path, ranking: Ranking) -> None:
    with atomic_open(path) as fh:
        fh.write(HEADER)
        for q, docs in ranking.items():
            for rank, (d, s) in enumerate(docs, start=1):
                fh.write(f"{q}\t{d}\t{rank}\t{s!r}\n")


def read_negatives(path: str | Path) -> Ranking:
    """Read ``qid doc_id [rank [score]]`` lines (tab- or space-separated; ``#`` comments). Without
    ranks the file order is the rank order; without scores the score is minus the rank."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"negatives file not found: {path}")
    rows: dict[str, list[tuple[int, str, float]]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2 or len(parts) > 4:
                raise DataError(f"{path}:{n}: expected 'qid doc_id [rank [score]]', got {line.strip()[:80]!r}")
            try:
                rank = int(parts[2]) if len(parts) > 2 else len(rows.get(parts[0], [])) + 1
                score = float(parts[3]) if len(parts) > 3 else -float(rank)
            except ValueError:
                raise DataError(f"{path}:{n}: rank must be an integer and score a number, got {line.strip()[:80]!r}") from None
            rows.setdefault(parts[0], []).append((rank, parts[1], score))
    if not rows:
        raise DataError(f"{path}: no negatives in the file")
    return {q: [(d, s) for _, d, s in sorted(r)] for q, r in rows.items()}


def write_scores(path: Path, scores: Mapping[str, Mapping[str, float]]) -> None:
    with atomic_open(path) as fh:
        for q, docs in scores.items():
            for d, s in docs.items():
                fh.write(f"{q}\t{d}\t{s!r}\n")


def read_scores(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            q, d, s = line.split("\t")
            out.setdefault(q, {})[d] = float(s)
    return out


class MinedNegatives(NegativeSampler):
    """Base of the samplers that rank candidates (BM25, a dense model, a file) and filter them.

    Args (all samplers): ``depth`` ranks mined per query; the false-negative filters ``skip_top``,
    ``margin_abs``, ``margin_rel``, ``max_score`` and ``select`` (see ``filters.py``).
    """

    name = "mined"

    def __init__(self, depth: int = 200, skip_top: int = 0, margin_abs: float | None = None, margin_rel: float | None = None,
                 max_score: float | None = None, select: str = "uniform"):
        self.filter = FalseNegativeFilter(depth, skip_top, margin_abs, margin_rel, max_score, select)
        self.depth = depth

    # ---- what subclasses provide
    def mine(self, collection: Collection, first_stage, ctx: MiningContext | None, qids: list[str]) -> tuple[Ranking, dict]:
        """(ranking best-first per query of ``qids``, the miner's score of relevant documents)."""
        raise NotImplementedError  # pragma: no cover

    def mining_key(self, collection: Collection, first_stage, ctx: MiningContext | None, qids: list[str]) -> dict:
        raise NotImplementedError  # pragma: no cover

    # ---- shared
    def cache_key(self, collection: Collection, first_stage, ctx: MiningContext | None, qids: list[str]) -> dict:
        """The negatives cache key (the filters are applied after reading, so they are not in it)."""
        return {"sampler": self.name, "collection": collection.fingerprint, "depth": self.depth,
                "queries": stable_hash(qids, 16), **self.mining_key(collection, first_stage, ctx, qids)}

    def setup(self, collection, first_stage, ctx: MiningContext | None = None) -> None:
        super().setup(collection, first_stage, ctx)
        qids = list(ctx.train_qids) if ctx is not None and ctx.train_qids is not None else list(collection.queries)
        self.file: Path | None = None
        if ctx is not None and ctx.cache is not None:
            from rankexp.tracking.cache import read_file

            key = self.cache_key(collection, first_stage, ctx, qids)

            def build(tmp: Path) -> None:
                ranking, pos = self.mine(collection, first_stage, ctx, qids)
                write_negatives(tmp / "negatives.tsv", ranking)
                write_scores(tmp / "positives.tsv", pos)

            def reader(entry: Path):
                ranked = read_file(entry / "negatives.tsv", lambda p: read_negatives(p) if p.stat().st_size > len(HEADER) else {})
                return entry, ranked, read_file(entry / "positives.tsv", read_scores)

            entry, self.ranked, self.pos_scores = ctx.cache.load("negatives", key, build, reader)
            self.file = entry / "negatives.tsv"
        else:
            self.ranked, self.pos_scores = self.mine(collection, first_stage, ctx, qids)
        self._lookup = {q: dict(r) for q, r in self.ranked.items()}
        self._pools: dict[tuple[str, str | None], list[tuple[str, float, int]]] = {}

    def positive_score(self, qid: str, positive: str | None) -> float | None:
        if positive is None:
            return None
        if positive in self.pos_scores.get(qid, {}):
            return self.pos_scores[qid][positive]
        return self._lookup.get(qid, {}).get(positive)

    def kept(self, qid: str, exclude: set[str], positive: str | None) -> list[tuple[str, float, int]]:
        key = (qid, positive)
        if key not in self._pools:  # filter once per (query, positive); counts are per pool
            self._pools[key] = self.filter.apply(self.ranked.get(qid, []), exclude, self.positive_score(qid, positive))
        return self._pools[key]

    def sample(self, qid, exclude, n, rng: random.Random, positive=None):
        kept = [k for k in self.kept(qid, exclude, positive) if k[0] not in exclude]
        if len(kept) >= n:
            return self.filter.choose(kept, n, rng)
        self.fallbacks += n - len(kept)
        return self.fill_random([d for d, _, _ in kept], exclude, n, rng)

    def stats(self) -> dict:
        return {**super().stats(), **self.filter.stats(), "file": str(self.file) if self.file else None}


def run_ranking(run: Mapping[str, Mapping[str, float]], qids: list[str], depth: int) -> Ranking:
    return {q: sort_ranking(run[q])[:depth] for q in qids if q in run}


class FileNegatives(MinedNegatives):
    """Negatives from a user's file (``qid doc_id [rank [score]]``), with the same filters.
    Without scores, the margin and max-score filters see minus the rank."""

    name = "file"

    def __init__(self, path: str | None = None, depth: int = 200, **filters):
        if not path:
            from rankexp.errors import ConfigError

            raise ConfigError("negatives=file needs negatives.path=FILE (qid doc_id [rank [score]] per line)")
        super().__init__(depth=depth, **filters)
        self.path = Path(path).expanduser()

    def mining_key(self, collection, first_stage, ctx, qids):
        from rankexp.utils.hashing import file_digest

        if not self.path.is_file():
            raise DataError(f"negatives file not found: {self.path}")
        return {"file": file_digest(self.path)}

    def mine(self, collection, first_stage, ctx, qids):
        ranking = read_negatives(self.path)
        unknown = [d for docs in ranking.values() for d, _ in docs if d not in collection.docs]
        if unknown:
            raise DataError(f"{self.path}: {len(unknown)} negatives are not documents of {collection.name} (e.g. {unknown[0]!r})")
        if not set(ranking) & set(collection.queries):
            raise DataError(f"{self.path}: none of its query ids is a query of {collection.name} (e.g. {next(iter(ranking))!r})")
        wanted = set(qids)
        return {q: r[: self.depth] for q, r in ranking.items() if q in wanted}, {}
