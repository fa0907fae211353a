"""Targets: which documents an attack tries to promote, for which queries.

**Per-query targets** (every attack but the topic-oriented ones): for each attacked query, its
candidates (the first stage's top ``eval.rerank_k``) ranked by the victim
(:meth:`Victim.rank_with`: ties against the document); ``attack.targets.per_query`` documents drawn
without replacement from those with a rank in ``attack.targets.ranks`` (``[lo, hi]``, inclusive,
default ``[51, 100]``) by a generator seeded with ``(attack.seed, query id)`` — the same query gets
the same targets whatever other queries are attacked. A query with no candidate in range is
skipped (counted); no target at all is one line, exit 2.

**Attacked queries**: ``attack.queries`` (``test`` split by default, as ``rankexp rerank`` selects
them); ``attack.max_queries`` caps them by a seeded choice (``attack.seed``), kept in their order.

**Topic groups** (attacks with ``groups_queries = True``; rule chosen here, the topic-oriented
paper's own grouping was not available as text): either an explicit mapping file
``attack.topic.groups`` (TSV ``query_id<TAB>group``; groups keep the file's order, queries not in it
are not attacked), or, by default, greedy clustering of the attacked queries by their sentence
embeddings (all-MiniLM-L6-v2, cosine): take the first query not yet grouped (in the attacked
order), add its ``attack.topic.group_size - 1`` most similar ungrouped queries, repeat. A group's
target document is drawn from its *first* query's rank range (seeded as above); its rank is
recorded for every query of the group (a document outside a query's candidates is scored by the
victim and ranked among them).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rankexp.attacks.base import Target
from rankexp.errors import ConfigError, DataError
from rankexp.utils.hashing import stable_hash


def parse_ranks(ranks) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in ranks)
    except Exception:
        raise ConfigError(f"attack.targets.ranks must be [lo, hi] (1 = top), got {ranks!r}") from None
    if not 1 <= lo <= hi:
        raise ConfigError(f"attack.targets.ranks must be [lo, hi] with 1 <= lo <= hi, got [{lo}, {hi}]")
    return lo, hi


def cap_queries(qids: Sequence[str], max_queries: int | None, seed: int) -> list[str]:
    """At most ``max_queries`` of ``qids`` (a seeded choice, in their order)."""
    qids = list(qids)
    if max_queries is None or int(max_queries) >= len(qids):
        return qids
    if int(max_queries) < 1:
        raise ConfigError(f"attack.max_queries must be >= 1 or null, got {max_queries}")
    keep = set(random.Random(f"queries:{seed}").sample(qids, int(max_queries)))
    return [q for q in qids if q in keep]


def victim_ranks(victim, qid: str) -> dict[str, int]:
    """Each candidate's rank for ``qid`` under ``victim`` (ties against the document)."""
    scores = victim.candidates(qid)
    return {d: victim.rank_with(qid, d, s) for d, s in scores.items()}


def in_range(victim, qid: str, lo: int, hi: int) -> list[str]:
    ranks = victim_ranks(victim, qid)
    return sorted((d for d, r in ranks.items() if lo <= r <= hi), key=lambda d: (ranks[d], d))


def _rng(seed: int, qid: str) -> random.Random:
    return random.Random(stable_hash(["targets", int(seed), str(qid)], 16))


def sample_targets(victim, qids: Sequence[str], ranks, per_query: int, seed: int) -> tuple[list[Target], list[str]]:
    """Per-query targets and the queries skipped (no candidate in range)."""
    lo, hi = parse_ranks(ranks)
    if int(per_query) < 1:
        raise ConfigError(f"attack.targets.per_query must be >= 1, got {per_query}")
    targets, skipped = [], []
    for q in qids:
        pool = in_range(victim, q, lo, hi)
        if not pool:
            skipped.append(q)
            continue
        for d in _rng(seed, q).sample(pool, min(int(per_query), len(pool))):
            targets.append(Target(doc_id=d, qids=(q,), ranks={q: victim.rank_with(q, d, victim.candidates(q)[d])}, key=f"{q}:{d}"))
    if not targets:
        raise DataError(f"no targets: none of the {len(qids)} attacked queries has a candidate at ranks {lo}-{hi} of the victim's "
                        f"top {victim.k} (set attack.targets.ranks, or eval.rerank_k)")
    return targets, skipped


def read_groups(path: str | Path, qids: Sequence[str]) -> list[list[str]]:
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise DataError(f"attack.topic.groups: no such file {path}")
    known = set(qids)
    groups: dict[str, list[str]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{p}:{n}: expected 'query_id<TAB>group', got {line!r}")
        q, g = parts[0].strip(), parts[1].strip()
        if q in known:
            groups.setdefault(g, []).append(q)
    if not groups:
        raise DataError(f"{p}: none of its queries is among the {len(qids)} attacked queries")
    return list(groups.values())


def cluster_queries(qids: Sequence[str], texts: Sequence[str], group_size: int, embed: Callable[[list[str]], np.ndarray]) -> list[list[str]]:
    """Greedy groups of ``group_size`` queries by cosine of their embeddings (see the module doc)."""
    if int(group_size) < 1:
        raise ConfigError(f"attack.topic.group_size must be >= 1, got {group_size}")
    e = np.asarray(embed(list(texts)), dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    left = list(range(len(qids)))
    groups = []
    while left:
        head, rest = left[0], left[1:]
        rest.sort(key=lambda j: (-sim[head, j], j))
        members = [head] + rest[: int(group_size) - 1]
        groups.append([qids[i] for i in members])
        left = [j for j in left if j not in members]
    return groups


def group_targets(victim, groups: Sequence[Sequence[str]], ranks, seed: int) -> tuple[list[Target], list[str]]:
    """One target per group: drawn from the first query's range; ranked for every query."""
    lo, hi = parse_ranks(ranks)
    targets, skipped = [], []
    for gi, group in enumerate(groups):
        head = group[0]
        pool = in_range(victim, head, lo, hi)
        if not pool:
            skipped.append(head)
            continue
        d = _rng(seed, head).choice(pool)
        group_ranks = {}
        for q in group:
            cands = victim.candidates(q)
            s = cands[d] if d in cands else victim.score_texts(q, [victim.doc_text(d)], count=False)[0]
            group_ranks[q] = victim.rank_with(q, d, s)
        targets.append(Target(doc_id=d, qids=tuple(group), ranks=group_ranks, key=f"g{gi}:{head}:{d}"))
    if not targets:
        raise DataError(f"no targets: no group's first query has a candidate at ranks {lo}-{hi} of the victim's top {victim.k}")
    return targets, skipped
