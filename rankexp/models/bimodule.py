"""The bi-encoder's LightningModule: contrastive training with in-batch and sampled negatives.

For a batch of B groups (query, positive, n negatives) the query side embeds the B queries and the
document side the B*(1+n) documents; similarities are divided by the encoder's temperature. With
``model.encoder.in_batch=true`` and a loss that accepts extra negatives (``accepts_extra_negatives``:
``loss=listwise``) each query's softmax runs over *all* B*(1+n) documents (its own group plus every
other group's documents as random negatives), its positive the target; another group's document that
is judged relevant to the query is masked out (a false in-batch negative). Otherwise the configured
loss scores each group's own documents only. With a dynamic sampler (ADORE) the sampler mines each
query's negatives from its frozen index (``mine``) and the module trains on them with the sampler's
``objective`` (ADORE's pairwise loss, not ``loss=``); a sampler that needs the document side fixed
(``frozen_documents``) has the module freeze it (:meth:`BiEncoderModule.freeze_documents`).

Dev evaluation and checkpoint selection are those of :class:`RankingModule` (the dev queries'
first-stage candidates, scored by similarity).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from rankexp.distributed import gather_in_batch
from rankexp.models.batch import Batch
from rankexp.models.module import RankingModule, bucketed


class BiEncoderModule(RankingModule):
    def __init__(self, encoder, loss, weighter=None, relevant: Mapping[str, set[str]] | None = None, dynamic=None, **kwargs):
        super().__init__(encoder, loss, weighter, **kwargs)
        self.relevant = relevant or {}
        self.dynamic = dynamic
        self.dynamic_loss = dynamic.objective if dynamic is not None else None
        if getattr(dynamic, "frozen_documents", False):
            self.freeze_documents()

    def freeze_documents(self) -> None:
        """Give the document side its own copy of the current weights and never train it (ADORE: the
        frozen index holds that side's embeddings, so only the query encoder learns)."""
        self.encoder.unshare()
        for p in self.encoder.doc_model.parameters():
            p.requires_grad_(False)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(**inputs)

    def techniques(self) -> list[Any]:
        if self.dynamic is not None:  # ADORE trains with its own objective; loss= is not used
            return [self.dynamic_loss, self.weighter]
        return super().techniques()

    @property
    def uses_in_batch(self) -> bool:
        """Whether training scores each query against the batch's other groups' documents too: the
        encoder asks for it (``model.encoder.in_batch``), no dynamic sampler trains with its own
        objective, and the loss accepts extra negatives."""
        return (self.dynamic is None and bool(getattr(self.encoder, "in_batch", False))
                and bool(getattr(self.loss_fn, "accepts_extra_negatives", False)))

    @property
    def in_batch_dropped(self) -> bool:
        """``model.encoder.in_batch=true`` asked for in-batch negatives that this run's loss cannot take
        (distillation, ``debias=cet``, pairwise/pointwise losses): it trains on each group's own documents."""
        return (self.dynamic is None and bool(getattr(self.encoder, "in_batch", False))
                and not self.uses_in_batch)

    @property
    def provided(self) -> frozenset[str]:
        return frozenset(getattr(self.dynamic, "provides", ()) or ())

    def example_losses(self, batch: Batch) -> torch.Tensor:
        enc = self.encoder
        q = bucketed(enc.encode, batch.queries, self.length_buckets, side="query")
        if self.dynamic is not None:
            mined = self.dynamic.mine(q, batch.qids, [g[0] for g in batch.doc_ids])
            return self.dynamic_loss(mined.scores.float() / enc.temperature, mined.batch())
        d = bucketed(enc.encode, batch.docs, self.length_buckets, side="doc")
        b, g = batch.size, batch.group_size
        if self.uses_in_batch:
            # distributed (model.encoder.gather_negatives): every rank's documents; group `first` is this rank's first
            d, groups, first = gather_in_batch(d, batch.doc_ids) if getattr(enc, "gather_negatives", True) else (d, batch.doc_ids, 0)
            first //= g
            logits = (q @ d.T).float() / enc.temperature  # [B, W*B*G]
            logits = logits.masked_fill(self.false_negative_mask(batch.qids, groups, first).to(logits.device), float("-inf"))
            target = (torch.arange(b, device=logits.device) + first) * g
            return self.loss_fn.with_extra_negatives(logits, target, batch)
        scores = (q.unsqueeze(1) * d.view(b, g, -1)).sum(-1).float() / enc.temperature
        return self.loss_fn(scores, batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.dynamic is None:
            return super().validation_step(batch, batch_idx)
        # ADORE: the document side is frozen, so its embeddings are the index's; only queries are encoded
        inputs = batch["inputs"]
        q = self.encoder.encode(inputs["q_input_ids"], inputs["q_attention_mask"], side="query")
        d = self.dynamic.index.lookup(batch["dids"]).to(q)
        self._val_scores.extend(zip(batch["qids"], batch["dids"], (q * d).sum(-1).float().cpu().tolist()))

    def false_negative_mask(self, qids, doc_ids, first: int = 0) -> torch.Tensor:
        """``[B, N*G]``: True where another group's document is judged relevant to row's query (row i's
        own group is ``doc_ids[first + i]``)."""
        g = len(doc_ids[0])
        flat = [d for group in doc_ids for d in group]
        mask = torch.zeros((len(qids), len(flat)), dtype=torch.bool)
        for i, q in enumerate(qids):
            rel = self.relevant.get(q, ())
            for j, d in enumerate(flat):
                if j // g != first + i and d in rel:
                    mask[i, j] = True
        return mask
