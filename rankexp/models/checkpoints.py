"""Loading rankexp checkpoints: one place that knows a run directory's layout and a checkpoint's keys.

* :func:`resolve_checkpoint` — a run directory (its ``checkpoints/best.ckpt``, else ``last.ckpt``)
  or a ``.ckpt`` file -> the checkpoint and the run's ``config.yaml`` beside it.
* :func:`load_weights` — a checkpoint's ``encoder.*`` tensors into an encoder module.

The bi-encoder (:mod:`rankexp.models.biencoder`) and dense retrieval (:mod:`rankexp.retrieval.dense`)
both load through here, so neither imports the other's module to do it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rankexp.errors import ConfigError

__all__ = ["resolve_checkpoint", "load_weights"]


def resolve_checkpoint(spec: str | Path) -> tuple[Path, Path | None]:
    """A run directory (its ``checkpoints/best.ckpt`` or ``last.ckpt``) or a ``.ckpt`` file ->
    (checkpoint path, the run's ``config.yaml`` if there is one)."""
    p = Path(spec).expanduser()
    if p.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (p / "checkpoints" / name).exists():
                return p / "checkpoints" / name, p / "config.yaml" if (p / "config.yaml").exists() else None
        raise ConfigError(f"{p}: a run directory without checkpoints/best.ckpt or last.ckpt")
    if p.is_file():
        cfg = p.parent.parent / "config.yaml"
        return p, cfg if cfg.exists() else None
    raise ConfigError(f"checkpoint {str(spec)!r}: no such run directory or .ckpt file")


def load_weights(encoder: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load a rankexp checkpoint's ``encoder.*`` weights into ``encoder`` (a shared model's weights
    go to both sides of an unshared one)."""
    path, _ = resolve_checkpoint(checkpoint)
    state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
    weights = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if not weights:
        raise ConfigError(f"{path}: no encoder weights in this checkpoint")
    if getattr(encoder, "doc_model", None) is not None and not any(k.startswith("doc_model.") for k in weights):
        weights.update({"doc_model." + k[len("query_model."):]: v for k, v in weights.items() if k.startswith("query_model.")})
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    if unexpected or missing:
        raise ConfigError(f"{path}: checkpoint does not fit this model (missing {len(missing)}, unexpected {len(unexpected)} tensors)")
