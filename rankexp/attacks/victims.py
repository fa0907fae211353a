"""Victims: the rankers an attack tries to fool, as :class:`rankexp.attacks.base.Victim` black boxes.

* :class:`NeuralVictim` wraps a :class:`rankexp.pipeline.rerank.RerankSession` (a rankexp run
  directory, a Hugging Face cross-encoder or a sentence-transformers bi-encoder, as ``rankexp rerank``
  loads them). In-memory text is scored through the session's own path (``session.score`` with the
  text given as an extra document: the same token tables, scorer and batching as reranking), never
  through the cached tokens of the original document.
* :class:`BM25Victim` scores a (query, text) pair with the first stage's BM25 computed directly from
  its formula (below), so that perturbed text is scored without re-indexing. The collection
  statistics (N, df, avgdl) stay those of the indexed collection; only the scored document's term
  frequencies and length come from the new text.

BM25 as bm25s computes it (Kamphuis et al., ECIR 2020, the variants of ``first_stage.method``), for a
query q (its tokens with repetition, only those in the collection's vocabulary) and a document d of
length |d| tokens (after the first stage's stopwords and stemming)::

    score(q, d) = sum_{t in q} idf(t) * tfc(tf(t, d), |d|)
    lucene:  idf = ln(1 + (N - df + 0.5) / (df + 0.5)),  tfc = tf / (tf + k1 (1 - b + b |d| / avgdl))
    robertson: idf = ln(max(1, (N - df + 0.5) / (df + 0.5))), tfc as lucene
    atire:   idf = ln(N / df),   tfc = tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
    bm25l / bm25+: bm25s's forms, where a term absent from d contributes idf * tfc(0) at |d| = avgdl

**Ranks** (``rank_with``): a document's rank among the query's original candidates (the first
stage's top ``eval.rerank_k``) when it has ``score`` and every other candidate keeps its score:
``1 + #{other candidates with a score >= score}``; ties go against the target, so an attack never
gains a rank by tying.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rankexp.errors import ConfigError


@contextmanager
def quiet_bars() -> Iterator[None]:
    """No progress bars inside (an attack's loop re-scores a handful of texts many times)."""
    old = os.environ.get("RANKEXP_PROGRESS")
    os.environ["RANKEXP_PROGRESS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RANKEXP_PROGRESS", None)
        else:
            os.environ["RANKEXP_PROGRESS"] = old


def rank_among(others: Mapping[str, float], doc_id: str, score: float) -> int:
    """``1 + #{d != doc_id in others with others[d] >= score}`` (ties against ``doc_id``)."""
    return 1 + sum(1 for d, s in others.items() if d != doc_id and s >= score)


class _Base:
    """What both victims share: texts, candidate ids, counting, ``rank_with``."""

    name = "victim"
    kind = "?"

    def __init__(self, collection, qids: Sequence[str], candidate_ids: Mapping[str, Sequence[str]], k: int, info: dict):
        self.collection, self.qids, self.k = collection, list(qids), int(k)
        self.candidate_ids = {q: list(candidate_ids.get(q, ())) for q in self.qids}
        self.info = info  # dataset, queries label, candidates' source (for metrics.json and the id)
        self.queries_used = 0
        self._scores: dict[str, dict[str, float]] = {}

    def query_text(self, qid: str) -> str:
        return self.collection.queries[qid]

    def doc_text(self, doc_id: str) -> str:
        return self.collection.docs[doc_id]

    def candidates(self, qid: str) -> dict[str, float]:
        if qid not in self._scores:
            ids = self.candidate_ids.get(qid, [])
            self._scores[qid] = dict(zip(ids, self._score_ids(qid, ids))) if ids else {}
        return dict(self._scores[qid])

    def rank_with(self, qid: str, doc_id: str, score: float) -> int:
        return rank_among(self.candidates(qid), doc_id, float(score))

    def score_texts(self, qid: str, texts: Sequence[str], count: bool = True) -> list[float]:
        texts = list(texts)
        if count:
            self.queries_used += len(texts)
        return self._score_texts(qid, texts) if texts else []

    def _score_ids(self, qid: str, ids: Sequence[str]) -> list[float]:
        return self._score_texts(qid, [self.doc_text(d) for d in ids])

    def _score_texts(self, qid: str, texts: list[str]) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def identity(self) -> Any:
        """What makes this victim this victim (for the attack run's id)."""
        raise NotImplementedError


class BM25Victim(_Base):
    """The first stage's BM25 (``bm25`` object of :mod:`rankexp.retrieval.bm25`), scored by formula."""

    kind = "bm25"

    def __init__(self, bm25, collection, qids, candidate_ids, k, info):
        super().__init__(collection, qids, candidate_ids, k, info)
        if bm25.method not in ("lucene", "robertson", "atire", "bm25l", "bm25+"):
            raise ConfigError(f"first_stage.method: unknown BM25 variant {bm25.method!r}")
        self.bm25 = bm25
        self.name = f"bm25 (k1={bm25.k1}, b={bm25.b}, {bm25.method})"
        self.k1, self.b, self.method = float(bm25.k1), float(bm25.b), bm25.method
        self.delta = 0.5  # bm25s' default delta of bm25l / bm25+
        doc_ids = list(collection.docs)
        tokens = bm25._tokenize([collection.docs[d] for d in doc_ids], f"BM25 statistics of {collection.name}")
        self.n_docs = len(doc_ids)
        self.avgdl = sum(len(t) for t in tokens) / max(self.n_docs, 1)
        df: Counter = Counter()
        for t in tokens:
            df.update(set(t))
        self.df = dict(df)
        self._query_tokens: dict[str, list[str]] = {}

    def identity(self) -> Any:
        return {"bm25": self.bm25.params(), "collection": self.collection.fingerprint}

    def idf(self, term: str) -> float:
        n, df = self.n_docs, self.df[term]
        if self.method == "lucene":
            return math.log(1 + (n - df + 0.5) / (df + 0.5))
        if self.method == "robertson":
            return math.log(max(1.0, (n - df + 0.5) / (df + 0.5)))
        if self.method == "atire":
            return math.log(n / df)
        if self.method == "bm25l":
            return math.log((n + 1) / (df + 0.5))
        return math.log((n + 1) / df)  # bm25+

    def tfc(self, tf: float, dl: float) -> float:
        norm = 1 - self.b + self.b * dl / self.avgdl
        if self.method in ("lucene", "robertson"):
            return tf / (self.k1 * norm + tf)
        if self.method == "atire":
            return tf * (self.k1 + 1) / (tf + self.k1 * norm)
        if self.method == "bm25l":
            c = tf / norm
            return (self.k1 + 1) * (c + self.delta) / (self.k1 + c + self.delta)
        return (self.k1 + 1) * tf / (self.k1 * norm + tf) + self.delta  # bm25+

    def query_tokens(self, qid: str) -> list[str]:
        if qid not in self._query_tokens:
            self._query_tokens[qid] = [t for t in self.bm25._tokenize([self.query_text(qid)])[0] if t in self.df]
        return self._query_tokens[qid]

    def score_tokens(self, q_tokens: Sequence[str], d_tokens: Sequence[str]) -> float:
        tf = Counter(d_tokens)
        dl = len(d_tokens)
        absent_counts = self.method in ("bm25l", "bm25+")
        total = 0.0
        for t in q_tokens:
            if tf.get(t):
                total += self.idf(t) * self.tfc(tf[t], dl)
            elif absent_counts:
                total += self.idf(t) * self.tfc(0, self.avgdl)
        return total

    def _score_texts(self, qid: str, texts: list[str]) -> list[float]:
        q = self.query_tokens(qid)
        return [self.score_tokens(q, d) for d in self.bm25._tokenize(texts)]


class NeuralVictim(_Base):
    """A neural ranker behind a :class:`~rankexp.pipeline.rerank.RerankSession`."""

    def __init__(self, session, spec: str):
        super().__init__(session.collection, session.qids, {q: list(c) for q, c in session.candidates.items()}, session.k,
                         {"dataset": session.collection.name, "queries_label": session.label,
                          "candidates": session.source})
        self.session, self.spec = session, str(spec)
        self.kind = getattr(session.ranker.scorer, "kind", "cross")
        self.name = session.ranker.description
        self._hash: str | None = None

    def identity(self) -> Any:
        if self._hash is None:
            from rankexp.retrieval.dense import model_hash

            self._hash = model_hash(self.session.ranker.encoder.state_dict(), self.session.ranker.description)
        return {"model": self._hash}

    def _score_ids(self, qid: str, ids: Sequence[str]) -> list[float]:
        with quiet_bars():
            run = self.session.score(pairs=[(qid, d) for d in ids], description="victim: candidates").run
        return [run[qid][d] for d in ids]

    def _score_texts(self, qid: str, texts: list[str]) -> list[float]:
        ids = [f"__attack_text_{i}__" for i in range(len(texts))]
        with quiet_bars():
            run = self.session.score(docs=dict(zip(ids, texts)), pairs=[(qid, i) for i in ids], description="victim: texts").run
        return [run[qid][i] for i in ids]


def load_victim(spec: str, cfg, overrides: Sequence[str] = (), queries: str | Sequence[str] = "test"):
    """``(Victim, Ranker | None)`` for ``spec``: ``bm25`` (the configured first stage's BM25, or the
    default BM25 when the first stage is another), or anything :func:`rankexp.pipeline.loading.load_ranker`
    accepts. Returns the config actually used too (a run directory brings its own data and first
    stage): ``(victim, ranker, cfg)``."""
    from rankexp.pipeline.loading import load_ranker
    from rankexp.pipeline.rerank import RerankSession, rerank_config

    if str(spec).lower() == "bm25":
        return _bm25_victim(cfg, queries), None, cfg
    try:
        ranker = load_ranker(spec, cfg.get("model"))
    except ConfigError as e:
        raise ConfigError(f"VICTIM {spec!r} is not a ranker: give bm25, a rankexp run directory, a .ckpt, a Hugging Face "
                          f"cross-encoder or a sentence-transformers bi-encoder ({e})") from None
    cfg = rerank_config(cfg, ranker, overrides)
    session = RerankSession(cfg, ranker, queries=queries)
    return NeuralVictim(session, spec), ranker, cfg


def _bm25_victim(cfg, queries) -> BM25Victim:
    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.pipeline.rerank import candidates_from, select_queries
    from rankexp.retrieval.bm25 import BM25
    from rankexp.tracking.cache import Cache

    first_stage = build(cfg.first_stage, "first_stage")
    bm25 = first_stage if isinstance(first_stage, BM25) else BM25()
    collection = load_collection(cfg.data)
    qids, label = select_queries(collection, cfg.data, queries)
    cache = Cache(Path(cfg.paths.cache_dir))
    k = int(cfg.eval.rerank_k)
    top, _, source = candidates_from(None, first_stage, collection, cache, qids, k, {}, {})
    info = {"dataset": collection.name, "queries_label": label, "candidates": source}
    return BM25Victim(bm25, collection, qids, {q: list(top.get(q, {})) for q in qids}, k, info)
