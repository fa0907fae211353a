"""Pooling-bias simulator (``data.pooling``): re-create incomplete judgments whose truth is known.

Real judgments come from shallow pools: assessors only judge what a few (weak) systems surfaced, and
every unjudged document is taken as non-relevant. Starting from a collection with (more complete)
qrels, the simulator keeps as judged, for each TRAINING query, only the relevant documents that a
chosen pooling system surfaces, and hides the rest from training:

* ``system: bm25, depth: k`` -- a relevant document stays judged iff it is in BM25's top ``k`` for
  the query (BM25 with rankexp's defaults, ``first_stage/bm25.yaml``; the same run as the first stage
  when that is BM25 with default parameters, through the cache);
* ``system: random, hide: s`` -- a share ``s`` in [0, 1] of each query's relevant documents is hidden,
  ``round(s * n)`` of its ``n``, chosen by a generator seeded with ``(seed, query id)`` (so the choice
  for a query does not depend on which other queries are in the training split).

Hidden documents are removed from the training queries' qrels (unjudged, as outside a real pool);
judged non-relevant documents stay as they are. Dev and test queries' judgments are never touched, so
dev selection and test evaluation use the full qrels. A training query left with no judged relevant
document has no positive and so no training group (as a query whose pool found nothing would not be
in a real training set); its count is recorded. The hidden set is written to ``pooling.json`` in the
run directory (``hidden``: query id -> sorted document ids, with counts), and it is what the
diagnostics of ``rankexp.debias`` score estimates against.

Choices: ``depth`` counts ranks from 1 in BM25's order (ties in trec_eval order, as everywhere in
rankexp); ``hide`` rounds half to even (Python's ``round``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any, Mapping, Sequence

from rankexp.errors import ConfigError

SYSTEMS = ("bm25", "random")
KEYS = {"system", "depth", "hide", "seed"}


@dataclasses.dataclass(frozen=True)
class PoolingSpec:
    system: str
    depth: int | None = None
    hide: float | None = None
    seed: int = 0

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse(node: Any) -> PoolingSpec | None:
    """``data.pooling`` -> a spec, or None when pooling is off. One-line ConfigError on a bad value."""
    if node is None:
        return None
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(node, Mapping):
        raise ConfigError(f"data.pooling must be null or a mapping (system: bm25|random, ...), got {node!r}")
    unknown = sorted(set(node) - KEYS)
    if unknown:
        raise ConfigError(f"data.pooling: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(KEYS))})")
    system = node.get("system")
    if system not in SYSTEMS:
        raise ConfigError(f"data.pooling.system must be one of {', '.join(SYSTEMS)}, got {system!r}")
    seed = node.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"data.pooling.seed must be an integer, got {seed!r}")
    if system == "bm25":
        depth = node.get("depth")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"data.pooling.depth must be an integer >= 1 for system=bm25, got {depth!r}")
        if node.get("hide") is not None:
            raise ConfigError("data.pooling.hide applies to system=random only (bm25 hides what its top depth misses)")
        return PoolingSpec("bm25", depth=depth, seed=seed)
    hide = node.get("hide")
    if isinstance(hide, bool) or not isinstance(hide, (int, float)) or not 0.0 <= float(hide) <= 1.0:
        raise ConfigError(f"data.pooling.hide must be a share in [0, 1] for system=random, got {hide!r}")
    if node.get("depth") is not None:
        raise ConfigError("data.pooling.depth applies to system=bm25 only")
    return PoolingSpec("random", hide=float(hide), seed=seed)


def _rng(seed: int, qid: str) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\x00{qid}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def hidden_positives(spec: PoolingSpec, qrels: Mapping[str, Mapping[str, int]], train_qids: Sequence[str],
                     pool_run: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, list[str]]:
    """Query id -> the sorted relevant documents the pooling system does not surface (train queries only)."""
    from rankexp.eval.trec_io import sort_ranking

    hidden: dict[str, list[str]] = {}
    for q in train_qids:
        rel = sorted(d for d, r in qrels.get(q, {}).items() if r > 0)
        if not rel:
            continue
        if spec.system == "bm25":
            top = {d for d, _ in sort_ranking((pool_run or {}).get(q, {}))[: spec.depth]}
            gone = [d for d in rel if d not in top]
        else:
            n = int(round(spec.hide * len(rel)))
            gone = sorted(_rng(spec.seed, q).sample(rel, n))
        if gone:
            hidden[q] = gone
    return hidden


def apply(collection, hidden: Mapping[str, Sequence[str]]):
    """A copy of ``collection`` whose training queries' qrels lack the hidden documents; the original
    (and every other query's judgments) is untouched."""
    qrels = dict(collection.qrels)
    for q, docs in hidden.items():
        drop = set(docs)
        qrels[q] = {d: r for d, r in collection.qrels[q].items() if d not in drop}
    return dataclasses.replace(collection, qrels=qrels)


def pooling_run(spec: PoolingSpec, collection, cache, train_qids: Sequence[str]):
    """The pooling system's run over the training queries (BM25 with default parameters), or None."""
    if spec.system != "bm25":
        return None
    from rankexp.retrieval.bm25 import BM25

    bm25 = BM25(k=max(spec.depth, 1000))
    return bm25.retrieve(collection, cache, queries={q: collection.queries[q] for q in train_qids if q in collection.queries})


def simulate(node: Any, collection, cache, split: Mapping[str, Sequence[str]]):
    """``(training collection, record)``; ``(collection, None)`` when ``data.pooling`` is null.

    ``record`` is ``pooling.json``'s content: the spec, counts and the hidden set."""
    spec = parse(node)
    if spec is None:
        return collection, None
    train = list(split["train"])
    run = pooling_run(spec, collection, cache, train)
    hidden = hidden_positives(spec, collection.qrels, train, run)
    pooled = apply(collection, hidden)
    n_rel = sum(1 for q in train for r in collection.qrels.get(q, {}).values() if r > 0)
    n_hidden = sum(len(v) for v in hidden.values())
    record = {
        "spec": spec.record(),
        "train_queries": len(train),
        "relevant": n_rel,
        "hidden": n_hidden,
        "hidden_share": round(n_hidden / n_rel, 6) if n_rel else 0.0,
        "queries_without_positive": sum(1 for q in train if collection.relevant(q) and not pooled.relevant(q)),
        "note": "dev/test judgments untouched; evaluation uses the full qrels",
        "hidden_docs": {q: list(v) for q, v in sorted(hidden.items())},
    }
    return pooled, record
