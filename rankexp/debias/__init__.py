"""Debiasing the training signal (``debias=``): ``none`` (default) or ``cet`` (pooling-bias correction,
Cai et al. 2022: :mod:`rankexp.debias.cet`). :func:`attach` is stage build's hook; the diagnostics
against the pooling simulator's known truth are :mod:`rankexp.debias.diagnostics`."""

from __future__ import annotations

from typing import Any

import torch


def check(cfg: Any, loss: Any, sampler: Any) -> None:
    """Stage prepare, before any data work: ``debias=cet`` needs a listwise or pointwise loss without
    distillation and a static negative sampler (one-line ConfigError otherwise)."""
    from rankexp.debias.cet import SUPPORTED_LOSSES
    from rankexp.errors import ConfigError

    node = cfg.get("debias")
    if node is None or node.get("_target_") is None:
        return
    name = getattr(loss, "name", type(loss).__name__)
    if name not in SUPPORTED_LOSSES:
        raise ConfigError(f"debias=cet corrects loss=listwise or loss=pointwise (weights on negatives); "
                          f"loss={name} cannot use them")
    distill = cfg.get("distill")
    if distill is not None and str(distill.get("kind", "none")) != "none":
        raise ConfigError(f"debias=cet corrects the label loss only; it cannot be combined with distill={distill.get('kind')}")
    if getattr(sampler, "dynamic", False):
        raise ConfigError("debias=cet cannot correct a dynamic sampler's own objective (negatives=dense_dynamic); "
                          "use a static negative sampler")


def attach(prep: Any, module: Any) -> Any:
    """Stage build: with ``debias=cet``, wrap the module's loss in a :class:`~rankexp.debias.cet.CET`
    (assigned as ``module.loss_fn``, a submodule: checkpointed and resumed with the module). Returns it, or None."""
    from rankexp.config.compose import build
    from rankexp.errors import ConfigError

    node = prep.cfg.get("debias")
    if node is None or node.get("_target_") is None:
        hidden = (prep.pooling or {}).get("hidden_docs") or {}
        if hidden and getattr(module, "dynamic", None) is None:  # naive training under the simulator: watch only
            module.loss_fn = Observer(module.loss_fn, hidden)
        return None
    if getattr(module, "dynamic", None) is not None:
        raise ConfigError("debias=cet cannot correct a dynamic sampler's own objective (negatives=dense_dynamic); "
                          "use a static negative sampler")
    cet = build(node, "debias")
    train = [q for q in prep.split["train"] if q in prep.collection.queries]
    from rankexp.retrieval.bm25 import BM25

    pool_run = BM25(k=max(1000, int(cet.depth))).retrieve(prep.collection, prep.cache,
                                                         queries={q: prep.collection.queries[q] for q in train})
    hidden = (prep.pooling or {}).get("hidden_docs") or {}
    cet.bind(module.loss_fn, pool_run, hidden, module=module)  # selection=model copies module.encoder
    module.loss_fn = cet
    return cet


class Observer(torch.nn.Module):
    """Naive training (``debias=none``) under ``data.pooling``: the run's loss unchanged, and for the
    diagnostics the relevance model's own estimate ``sigmoid(s_j - s+)`` of each negative of the
    groups it scores (no parameters, no buffers: checkpoints are those of an unwatched run). A
    bi-encoder's in-batch path (:meth:`with_extra_negatives`) is passed through unobserved."""

    def __init__(self, base: Any, hidden: Any, limit: int = 200000):
        super().__init__()
        self.base, self.limit = base, int(limit)
        self.hidden = {q: set(v) for q, v in hidden.items()}
        self.seen: list[tuple[bool, float]] = []
        self.requires = frozenset(getattr(base, "requires", ()) or ())
        self.accepts_extra_negatives = bool(getattr(base, "accepts_extra_negatives", False))

    @property
    def name(self) -> str:
        return getattr(self.base, "name", type(self.base).__name__)

    def with_extra_negatives(self, *args, **kwargs):
        return self.base.with_extra_negatives(*args, **kwargs)

    def forward(self, scores, batch=None):
        if batch is not None and torch.is_grad_enabled() and len(self.seen) < self.limit:
            s = scores.detach().float()
            p_r = torch.sigmoid(s[:, 1:] - s[:, :1]).tolist()
            for q, group, row in zip(batch.qids, batch.doc_ids, p_r):
                hid = self.hidden.get(q, ())
                self.seen.extend((d in hid, p) for d, p in zip(group[1:], row))
        return self.base(scores, batch)
