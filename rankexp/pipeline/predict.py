"""Stage ``predict``: the one place where test queries are ranked by a model.

``rerank``: the first stage's top ``k`` candidates of each query (or a given run's) scored by the
model's scorer; ``retrieve``: a bi-encoder's exact top ``k`` from the whole corpus. ``train`` (the
untrained start and the trained model), ``rerank`` and later commands call :func:`predict`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from rankexp.errors import ConfigError

MODES = ("auto", "rerank", "retrieve")


@dataclass
class Prediction:
    run: dict[str, dict[str, float]]
    info: dict[str, Any]  # mode, k, timings (and the index's description when retrieving)
    depth: int
    measures: list[str]


def resolve_mode(mode: str | None, scorer) -> str:
    """``eval.mode``: ``auto`` is ``retrieve`` for a scorer that can retrieve, else ``rerank``."""
    mode = str(mode or "auto")
    if mode not in MODES:
        raise ConfigError(f"eval.mode must be auto, rerank or retrieve, got {mode!r}")
    if mode == "auto":
        return "retrieve" if scorer.can_retrieve else "rerank"
    if mode == "retrieve" and not scorer.can_retrieve:
        raise ConfigError("eval.mode=retrieve needs a bi-encoder (model=bi_encoder); a cross-encoder can only rerank")
    return mode


def predict(scorer, encoder, texts, qids: Sequence[str], *, mode: str, k: int, measures: Sequence[str],
            candidates: Sequence[tuple[str, str]] = (), batch_size: int = 64, device: str = "cpu", fast: str | None = None,
            collection=None, cache=None, description: str = "reranking test") -> Prediction:
    """``qids``' ranking by ``encoder``: ``candidates`` (query, document) pairs scored (``rerank``),
    or top-``k`` retrieval from ``collection`` (``retrieve``)."""
    t0 = time.perf_counter()
    if mode == "retrieve":
        run, info = scorer.retrieve(encoder, collection, cache, qids, k, batch_size, device)
        return Prediction(run, info, k, list(measures))
    run = scorer.score_candidates(encoder, texts, candidates, batch_size, device, fast, description)
    return Prediction(run, {"mode": "rerank", "k": k, "timings": {"rerank_s": time.perf_counter() - t0}}, k, list(measures))


def predict_split(prep, encoder, mode: str) -> Prediction:
    """The test split of a prepared training run, ranked as ``eval.mode`` says."""
    from rankexp.eval.measures import parse_measures

    cfg = prep.cfg
    qids = prep.split["test"]
    if mode == "retrieve":
        k = int(cfg.eval.retrieval_k)
        measures = [str(m) for m in parse_measures(list(cfg.eval.retrieval_measures))]
        return predict(prep.scorer, encoder, prep.texts, qids, mode=mode, k=k, measures=measures,
                       batch_size=int(cfg.eval.batch_size), device=prep.device, collection=prep.collection, cache=prep.cache)
    k = int(cfg.eval.rerank_k)
    return predict(prep.scorer, encoder, prep.texts, qids, mode=mode, k=k, measures=prep.measures,
                   candidates=prep.candidates(qids, k), batch_size=int(cfg.eval.batch_size), device=prep.device,
                   fast=cfg.eval.get("fast"))
