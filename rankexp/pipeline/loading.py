"""A trained or published ranker from a name: the model ``rankexp rerank MODEL`` applies.

``MODEL`` is one of:

* a rankexp run directory (its ``checkpoints/best.ckpt``, else ``last.ckpt``) or a ``.ckpt`` inside
  one: the run's ``config.yaml`` gives the encoder and the model kind (``model.scorer``);
* a Hugging Face model (name or local directory) with a sequence-classification head: a
  cross-encoder, scored on ``[CLS] query [SEP] document [SEP]`` (BERT-style pair layout);
* a sentence-transformers model (``modules.json``; ``all-MiniLM-L6-v2`` works offline): a
  bi-encoder with the model's pooling, cosine when it normalizes, else the dot product.

Anything else is refused with one line (exit 2): it is not a ranker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rankexp.errors import ConfigError


@dataclass
class Ranker:
    encoder: Any
    scorer: Any
    description: str  # e.g. "run 1a2b3c (best.ckpt)", "HF cross-encoder NAME"
    run_config: Any = None  # the run's config (a rankexp run), else None


class HFCrossEncoder(nn.Module):
    """A Hugging Face sequence-classification model as a cross-encoder: one score per pair (the
    single logit, or for two labels the log-odds of the second, 'relevant')."""

    kind = "cross"

    def __init__(self, path: str, max_length: int = 512, max_query_length: int = 64):
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        from rankexp.models.encoders import load_tokenizer

        self.tokenizer = load_tokenizer(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path)
        limit = int(getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:  # RoBERTa-style models reserve two positions for the padding offset
            limit = min(limit, int(positions) - (2 if self.model.config.model_type in ("roberta", "xlm-roberta", "camembert") else 0))
        self.max_length, self.max_query_length = min(int(max_length), limit), int(max_query_length)
        self.token_types = int(getattr(self.model.config, "type_vocab_size", 0) or 0) > 1
        if self.model.config.num_labels not in (1, 2):
            raise ConfigError(f"{path}: a classification head with {self.model.config.num_labels} labels is not a relevance "
                              f"ranker (1 or 2 labels expected)")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if self.token_types and token_type_ids is not None else {}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        return logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]


def is_run(p: Path) -> bool:
    return p.exists() and ((p.is_dir() and ((p / "checkpoints").exists() or (p / "config.yaml").exists())) or p.suffix == ".ckpt")


def load_ranker(spec: str | Path, model_cfg=None) -> Ranker:
    """The ranker ``spec`` names; ``model_cfg`` (the composed ``model`` group) gives the lengths
    (``encoder.max_length``, ``encoder.max_query_length``) of a published model."""
    p = Path(str(spec)).expanduser()
    if is_run(p):
        return load_run(p)
    return load_published(str(spec), model_cfg)


def load_run(p: Path) -> Ranker:
    from omegaconf import OmegaConf

    from rankexp.config.compose import build
    from rankexp.models.checkpoints import load_weights, resolve_checkpoint
    from rankexp.pipeline.scorers import scorer_for

    ckpt, cfg_path = resolve_checkpoint(p)
    if cfg_path is None:
        raise ConfigError(f"{p}: cannot tell the model (no config.yaml beside the checkpoint)")
    run_cfg = OmegaConf.load(cfg_path)
    enc_cfg = OmegaConf.to_container(run_cfg.model.encoder, resolve=True)
    if "checkpoint" in enc_cfg:
        enc_cfg["checkpoint"] = None  # the weights come from this run's checkpoint
    encoder = build(enc_cfg, f"{cfg_path}: model.encoder")
    load_weights(encoder, ckpt)
    return Ranker(encoder, scorer_for(run_cfg.model, encoder), f"run {ckpt.parent.parent.name} ({ckpt.name})", run_cfg)


def _model_file(path: str, name: str) -> Path | None:
    """A file of a local model directory or of a cached Hugging Face model (offline)."""
    local = Path(path) / name
    if Path(path).is_dir():
        return local if local.exists() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(path, name))
    except Exception:
        return None


def load_published(spec: str, model_cfg=None) -> Ranker:
    from transformers import AutoConfig

    from rankexp.models.encoders import resolve_model_path

    path = resolve_model_path(spec)
    enc = model_cfg.get("encoder", {}) if model_cfg is not None else {}
    max_length, max_query_length = int(enc.get("max_length", 256)), int(enc.get("max_query_length", 32))
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise ConfigError(f"MODEL {spec!r}: not a rankexp run directory, a .ckpt or a loadable Hugging Face model "
                          f"({type(e).__name__}; offline? a local path?)") from None
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in archs):
        from rankexp.pipeline.scorers import CrossScorer

        encoder = HFCrossEncoder(path, max_length=max_length, max_query_length=max_query_length)
        return Ranker(encoder, CrossScorer(), f"Hugging Face cross-encoder {spec}")
    modules = _model_file(path, "modules.json")
    if modules is not None:
        from rankexp.models.biencoder import BiEncoder
        from rankexp.pipeline.scorers import BiScorer

        kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
        pooling = "mean"
        pool_cfg = _model_file(path, "1_Pooling/config.json")
        if pool_cfg is not None and json.loads(pool_cfg.read_text()).get("pooling_mode_cls_token"):
            pooling = "cls"
        similarity = "cos" if any(k.endswith("Normalize") for k in kinds) else "dot"
        encoder = BiEncoder(name=spec, max_length=max_length, max_query_length=max_query_length, pooling=pooling,
                            similarity=similarity)
        return Ranker(encoder, BiScorer(), f"sentence-transformers bi-encoder {spec} ({pooling} pooling, {similarity})")
    raise ConfigError(f"MODEL {spec!r} is not a ranker: neither a rankexp run, a sequence-classification model "
                      f"(cross-encoder; architectures: {', '.join(archs) or 'none'}) nor a sentence-transformers bi-encoder")
