"""Bi-encoder (dense retriever): queries and documents encoded apart, scored by dot product or cosine.

``shared=True`` uses one transformer for both sides (as all-MiniLM-L6-v2 was trained);
``shared=False`` starts a separate document encoder from the same weights. Pooling is ``mean``
(all-MiniLM-L6-v2's) or ``cls``; ``similarity`` is ``dot`` or ``cos`` (vectors L2-normalised).
Training divides similarities by ``temperature`` before the softmax (cos with 0.05 is the usual
"scale 20" of contrastive training).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rankexp.errors import ConfigError
from rankexp.models.checkpoints import load_weights, resolve_checkpoint
from rankexp.models.encoders import load_tokenizer, load_transformer, pool


class BiEncoder(nn.Module):
    """Args:
        name: HF model name or path (its tokenizer is always used); ``all-MiniLM-L6-v2`` is offline.
        max_length: document length in tokens, special tokens included.
        max_query_length: query length in tokens, special tokens included.
        pooling: ``mean`` or ``cls``.
        similarity: ``cos`` or ``dot``.
        shared: one encoder for queries and documents.
        temperature: similarities are divided by it in the training loss (> 0).
        in_batch: use the other groups' documents of the batch as extra negatives (masking any that
            are judged relevant to the query).
        gather_negatives: in a distributed run, the in-batch negatives are every rank's documents
            (gathered, gradients flowing back to each rank), as one process with the whole batch
            would have; false: each rank's own documents only (``rankexp.distributed``).
        tiny: BertConfig sizes of a random model (tests), as for the cross-encoder.
        num_layers: keep only the first k transformer layers (a smaller student, as for the cross-encoder; None = all).
        checkpoint: start from a rankexp bi-encoder run directory or ``.ckpt`` (e.g. ADORE on top
            of a STAR-trained model) instead of ``name``'s weights.
    """

    kind = "bi"

    def __init__(self, name: str = "all-MiniLM-L6-v2", max_length: int = 256, max_query_length: int = 32,
                 pooling: str = "mean", similarity: str = "cos", shared: bool = True, temperature: float = 0.05,
                 in_batch: bool = True, tiny: dict[str, Any] | None = None, checkpoint: str | None = None,
                 gather_negatives: bool = True, num_layers: int | None = None):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"model.encoder.pooling must be 'cls' or 'mean', got {pooling!r}")
        if similarity not in ("cos", "dot"):
            raise ConfigError(f"model.encoder.similarity must be 'cos' or 'dot', got {similarity!r}")
        if not temperature > 0:
            raise ConfigError(f"model.encoder.temperature must be > 0, got {temperature}")
        if max_length < 8 or max_query_length < 4:
            raise ConfigError(f"model.encoder: max_length ({max_length}) >= 8 and max_query_length ({max_query_length}) >= 4 needed")
        self.name, self.max_length, self.max_query_length = name, max_length, max_query_length
        self.pooling, self.similarity, self.shared = pooling, similarity, shared
        self.temperature, self.in_batch, self.gather_negatives = float(temperature), bool(in_batch), bool(gather_negatives)
        self.tokenizer = load_tokenizer(name)
        self.query_model = load_transformer(name, self.tokenizer, tiny, max(max_length, max_query_length))
        if num_layers is not None:  # a smaller student (distillation): keep the first num_layers transformer layers
            from rankexp.distill.students import truncate_layers

            truncate_layers(self.query_model, int(num_layers))
        self.doc_model = None if shared else copy.deepcopy(self.query_model)
        self.identity = {"name": name, "tiny": dict(tiny) if tiny else None, "pooling": pooling,
                         "similarity": similarity, "shared": shared}
        if num_layers is not None:
            self.identity["num_layers"] = int(num_layers)
        if checkpoint:
            load_weights(self, checkpoint)

    def unshare(self) -> None:
        """Give the document side its own copy of the current weights (ADORE freezes it)."""
        if self.doc_model is None:
            self.doc_model = copy.deepcopy(self.query_model)
            self.shared = False
            self.identity["shared"] = False

    def side(self, which: str) -> nn.Module:
        return self.query_model if which == "query" or self.doc_model is None else self.doc_model

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, side: str = "doc") -> torch.Tensor:
        """Embeddings ``[N, dim]`` (L2-normalised when ``similarity == 'cos'``)."""
        hidden = self.side(side)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        emb = pool(hidden, attention_mask, self.pooling)
        return F.normalize(emb, dim=-1) if self.similarity == "cos" else emb

    def forward(self, q_input_ids: torch.Tensor, q_attention_mask: torch.Tensor,
                d_input_ids: torch.Tensor, d_attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores ``[N]`` of N (query, document) pairs: the similarity of each row's two embeddings."""
        q = self.encode(q_input_ids, q_attention_mask, "query")
        d = self.encode(d_input_ids, d_attention_mask, "doc")
        return (q * d).sum(-1)

    def doc_state(self) -> dict[str, torch.Tensor]:
        """The weights that determine document embeddings (for the index's cache key)."""
        return self.side("doc").state_dict()


def load_bi_encoder(model: str, **kwargs):
    """A :class:`BiEncoder` from a HF name/path, or from a rankexp run directory / ``.ckpt``
    (its ``config.yaml`` gives the architecture; ``kwargs`` fill in for a bare HF name)."""
    from omegaconf import OmegaConf

    p = Path(str(model)).expanduser()
    if p.exists() and (p.is_dir() and (p / "checkpoints").exists() or p.suffix == ".ckpt"):
        ckpt, cfg_path = resolve_checkpoint(p)
        if cfg_path is None:
            raise ConfigError(f"{model}: cannot tell the architecture (no config.yaml beside the checkpoint)")
        enc = OmegaConf.to_container(OmegaConf.load(cfg_path).model.encoder, resolve=True)
        if not str(enc.get("_target_", "")).endswith("BiEncoder"):
            raise ConfigError(f"{model}: not a bi-encoder run ({enc.get('_target_')}); dense retrieval needs one")
        enc.pop("_target_")
        enc["checkpoint"] = None
        encoder = BiEncoder(**enc)
        load_weights(encoder, ckpt)
        return encoder
    return BiEncoder(name=model, **kwargs)
