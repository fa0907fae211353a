"""Debiasing the training signal (``debias=``): ``none`` (default) or ``cet`` (pooling-bias correction,
Cai et al. 2022: :mod:`rankexp.debias.cet`). :func:`attach` is stage build's hook; the diagnostics
against the pooling simulator's known truth are :mod:`rankexp.debias.diagnostics`."""

from __future__ import annotations

from typing import Any


def attach(prep: Any, module: Any) -> Any:
    """Stage build: with ``debias=cet``, wrap the module's loss in a :class:`~rankexp.debias.cet.CET`
    (assigned as ``module.loss_fn``, a submodule: checkpointed and resumed with the module). Returns it, or None."""
    from rankexp.config.compose import build
    from rankexp.errors import ConfigError

    node = prep.cfg.get("debias")
    if node is None or node.get("_target_") is None:
        return None
    if getattr(module, "dynamic", None) is not None:
        raise ConfigError("debias=cet cannot correct a dynamic sampler's own objective (negatives=adore); "
                          "use a static negative sampler")
    cet = build(node, "debias")
    train = [q for q in prep.split["train"] if q in prep.collection.queries]
    from rankexp.retrieval.bm25 import BM25

    pool_run = BM25(k=max(1000, int(cet.depth))).retrieve(prep.collection, prep.cache,
                                                         queries={q: prep.collection.queries[q] for q in train})
    hidden = (prep.pooling or {}).get("hidden_docs") or {}
    cet.bind(module.loss_fn, pool_run, hidden)
    module.loss_fn = cet
    return cet
