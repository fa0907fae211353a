"""Smaller students for distillation: a cross-encoder cut to its first k transformer layers
(``model.encoder.num_layers=k``), so distillation compresses as well as transfers (issue 15 item 3).

The first k layers keep their pretrained weights (the embeddings too); the layers above are dropped
and the model's config says ``num_hidden_layers = k``, so a saved checkpoint reloads at that size.
"""

from __future__ import annotations

from rankexp.errors import ConfigError


def truncate_layers(model, k: int) -> None:
    """Keep the first ``k`` layers of a BERT-style encoder (``model.encoder.layer``) in place."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"model.encoder.num_layers: {type(model).__name__} has no encoder.layer list to truncate "
                          f"(BERT-style models only)")
    n = len(layers)
    if not 1 <= k <= n:
        raise ConfigError(f"model.encoder.num_layers={k}: expected 1..{n} (the model has {n} layers)")
    model.encoder.layer = layers[:k]
    model.config.num_hidden_layers = k
