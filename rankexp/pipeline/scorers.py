"""Scorers: how a model kind turns token tables into training batches and (query, document) scores.

A model config names its scorer (``model.scorer._target_``) beside its Lightning module
(``model.module._target_``); the stages call the scorer's methods and never ask which kind of model
they hold:

* :class:`CrossScorer` — the pair ``[CLS] q [SEP] d [SEP]`` through the encoder, in length-sorted
  batches (rankexp cross-encoders and Hugging Face sequence-classification models);
* :class:`BiScorer` — each distinct query and document embedded once, scored by the similarity of
  the two embeddings; it can also retrieve from the whole corpus (``eval.mode=retrieve``).
"""

from __future__ import annotations

from typing import Any, Sequence

from rankexp.data.tokens import BiPairEncoder, PairEncoder, Texts, TextEncoder

Run = dict[str, dict[str, float]]


class Scorer:
    """The interface every model kind implements."""

    kind = "?"
    can_retrieve = False

    def pair_encoder(self, texts: Texts):
        """Batches of training groups and dev pairs for the Lightning module."""
        raise NotImplementedError

    def score_candidates(self, encoder, texts: Texts, pairs: Sequence[tuple[str, str]], batch_size: int, device: str,
                         fast: str | None = None, description: str = "reranking") -> Run:
        """Scores of (query id, doc id) pairs; ``fast``: ``eval.fast`` (None = exact)."""
        raise NotImplementedError

    def retrieve(self, encoder, collection, cache, qids: Sequence[str], k: int, batch_size: int, device: str) -> tuple[Run, dict[str, Any]]:
        from rankexp.errors import ConfigError

        raise ConfigError(f"eval.mode=retrieve needs a bi-encoder (model=bi_encoder); a {self.kind}-encoder can only rerank")


class CrossScorer(Scorer):
    kind = "cross"

    def pair_encoder(self, texts: Texts) -> PairEncoder:
        return PairEncoder(texts.tokenizer, texts.docs, texts.queries, texts.max_length, texts.max_query_length)

    def score_candidates(self, encoder, texts, pairs, batch_size, device, fast=None, description="reranking"):
        from rankexp.models.datamodule import pair_loader
        from rankexp.models.module import score_pairs

        return score_pairs(encoder, pair_loader(list(pairs), self.pair_encoder(texts), batch_size), description, device, fast=fast)


class BiScorer(Scorer):
    kind = "bi"
    can_retrieve = True

    def pair_encoder(self, texts: Texts) -> BiPairEncoder:
        return BiPairEncoder(texts.tokenizer, texts.docs, texts.queries, texts.max_length, texts.max_query_length)

    def score_candidates(self, encoder, texts, pairs, batch_size, device, fast=None, description="reranking"):
        """Each distinct query and document encoded once (a pair-by-pair pass would encode a query
        once per candidate), then the two embeddings' similarity in float32; equal to
        ``BiEncoder.forward`` on each pair."""
        from rankexp.retrieval.dense import score_pairs_apart

        doc_text = TextEncoder(texts.tokenizer, texts.docs, texts.max_length)
        query_text = TextEncoder(texts.tokenizer, texts.queries, texts.max_query_length)
        return score_pairs_apart(encoder, doc_text, query_text, list(pairs), batch_size, device, fast, f"{description}: encoding")

    def retrieve(self, encoder, collection, cache, qids, k, batch_size, device):
        """Exact top-``k`` from the whole corpus; the index is cached by the document side's weights."""
        import time

        from rankexp.retrieval.dense import build_index, search_queries, texts_for

        t0 = time.perf_counter()
        n_events = len(cache.events)
        index = build_index(encoder, collection, cache, batch_size, device)
        index_s = time.perf_counter() - t0
        _, query_text = texts_for(encoder, collection, cache)
        run = search_queries(encoder, index, query_text, list(qids), k, batch_size, device)
        built = [e for e in cache.events[n_events:] if e.kind == "dense_index" and not e.hit]
        info: dict[str, Any] = {"mode": "dense retrieval", "k": k, "index": index.digest(), "docs": len(index),
                                "index_cached": not built,
                                "docs_per_s": round(len(index) / built[0].build_s, 1) if built and built[0].build_s > 0 else None,
                                "timings": {"index_s": index_s, "retrieve_s": time.perf_counter() - t0 - index_s}}
        return run, info


def scorer_for(model_cfg, encoder) -> Scorer:
    """The scorer a model config names (``model.scorer._target_``). A config written before scorers
    were named (an older run directory) gets the one its encoder declares (``encoder.kind``)."""
    from rankexp.config.compose import build

    node = model_cfg.get("scorer") if model_cfg is not None else None
    if node is not None:
        return build(node, "model.scorer")
    return BiScorer() if getattr(encoder, "kind", "cross") == "bi" else CrossScorer()
