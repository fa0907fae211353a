"""ADORE: dynamic hard negatives over a frozen document index (Zhan et al., SIGIR 2021, Sec. 5.2).

The document encoder is fixed and the corpus is encoded once (the index). At every training step
the *current* query encoder embeds the batch's queries, retrieves their top ``depth`` (200 in the
paper) from the frozen index, and is trained on what it retrieves now: the positive against every
retrieved non-relevant document that survives the false-negative filters. Only the query encoder
learns, so the index never has to be rebuilt and the negatives are always the model's own hardest.

This sampler only mines: :meth:`DenseDynamicNegatives.mine` returns each query's positive and
surviving negatives with their scores (differentiable in the query embeddings) and their ranks in the
current retrieval. The bi-encoder module computes the loss: ADORE's pairwise objective
(:class:`~rankexp.losses.pairwise.LambdaRankNetLoss`, the sampler's ``objective``),

    l(q) = sum_j  w_j * log(1 + exp((s_j - s_+) / T))

with ``lambda_weight=true`` the paper's LambdaRank-style weight w_j = |1/r_+ - 1/r_j|, the change
in reciprocal rank if the positive (at rank r_+ among all documents) and the negative (rank r_j)
swapped, so pairs that decide the top of the ranking count most; with ``lambda_weight=false``
w_j = 1/|negatives| (a plain mean of the pair losses). T is the model's temperature.

Only a bi-encoder has a query encoder to train this way: with a cross-encoder the sampler stops
with a one-line error. Starting ADORE from a STAR-trained model (the paper's best combination):
``model.encoder.checkpoint=<STAR run directory>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rankexp.data.negatives.base import MiningContext, NegativeSampler
from rankexp.data.negatives.filters import FalseNegativeFilter
from rankexp.errors import ConfigError


@dataclass
class MinedGroups:
    """What one ADORE step mined for ``B`` queries, each group padded to the widest (``G``):

    * ``doc_ids`` ``[B][k_b]``: the positive, then the surviving negatives best first (unpadded);
    * ``scores`` ``[B, G]``: their similarity to the query (differentiable in the query embeddings);
    * ``ranks`` ``[B, G]``: 1-based ranks in the current retrieval over the whole index;
    * ``mask`` ``[B, G]``: True for a real document (padding repeats the positive).
    """

    qids: list[str]
    doc_ids: list[list[str]]
    scores: torch.Tensor
    ranks: torch.Tensor
    mask: torch.Tensor

    def batch(self):
        """The step's groups as a :class:`~rankexp.models.batch.Batch` (``extras``: ranks, mask) for the loss."""
        from rankexp.models.batch import Batch

        labels = torch.zeros(self.mask.shape)
        labels[:, 0] = 1.0
        width = self.mask.shape[1]
        doc_ids = [g + [""] * (width - len(g)) for g in self.doc_ids]
        return Batch(self.qids, doc_ids, labels, extras={"ranks": self.ranks, "mask": self.mask})


class DenseDynamicNegatives(NegativeSampler):
    name = "dense_dynamic"
    dynamic = True
    provides = frozenset({"ranks", "mask"})  # what mine() gives the loss beyond scores
    frozen_documents = True  # the model's document side must stay as the index was built (the module freezes it)

    def __init__(self, depth: int = 200, lambda_weight: bool = True, skip_top: int = 0, margin_abs: float | None = None,
                 margin_rel: float | None = None, max_score: float | None = None):
        self.filter = FalseNegativeFilter(depth, skip_top, margin_abs, margin_rel, max_score, "top")
        self.depth, self.lambda_weight = depth, bool(lambda_weight)
        self.index = None
        self.retrieval_s = 0.0   # scoring the frozen index and its top-k, per step
        self.candidates_s = 0.0  # turning the top-k into filtered negatives
        self.steps = 0
        self.no_negative = 0

    def setup(self, collection, first_stage, ctx: MiningContext | None = None) -> None:
        super().setup(collection, first_stage, ctx)
        encoder = getattr(ctx, "encoder", None)
        if encoder is None or getattr(encoder, "kind", None) != "bi":
            raise ConfigError("negatives=dense_dynamic (ADORE) trains a bi-encoder's query side over a frozen document "
                              "index; use it with model=bi_encoder (for a cross-encoder use dense_static)")
        from rankexp.retrieval.dense import build_index

        # the index is the document side's embeddings now; the module keeps that side frozen (frozen_documents)
        self.index = build_index(encoder, collection, ctx.cache, ctx.batch_size, ctx.device)
        self.index_digest = self.index.digest()
        self.relevant = {q: collection.relevant(q) for q in collection.queries}

    def train_timings(self, train_s: float) -> dict[str, float]:
        """The share of training spent re-retrieving (and filtering) per step."""
        if train_s <= 0:
            return {}
        return {"adore_retrieval_share": self.retrieval_s / train_s,
                "adore_retrieval_and_filter_share": (self.retrieval_s + self.candidates_s) / train_s}

    def sample(self, qid, exclude, n, rng, positive=None):
        return []  # negatives come from the training step

    @property
    def objective(self):
        """The loss the module trains with on what :meth:`mine` returns (ADORE's pairwise loss)."""
        from rankexp.losses.pairwise import LambdaRankNetLoss

        return LambdaRankNetLoss(self.lambda_weight)

    def mine(self, q: torch.Tensor, qids, positives) -> MinedGroups:
        """Each query's positive and its surviving negatives in the frozen index's top ``depth`` for
        query embeddings ``q [B, dim]`` (with gradient); see :class:`MinedGroups`."""
        import time

        t0 = time.perf_counter()
        scores = self.index.scores(q)  # [B, N], differentiable in q
        with torch.no_grad():
            detached = scores.detach()
            top_s, top_i = torch.topk(detached, min(self.depth, detached.shape[1]), dim=1)
        self.retrieval_s += time.perf_counter() - t0
        self.steps += 1
        groups: list[list[tuple[str, int, float]]] = []  # (doc, index position, rank), positive first
        for b, (qid, pos) in enumerate(zip(qids, positives)):
            p = self.index.position[pos]
            t1 = time.perf_counter()
            ranked = [(self.index.doc_ids[int(i)], float(s)) for s, i in zip(top_s[b].tolist(), top_i[b].tolist())]
            kept = self.filter.apply(ranked, self.relevant.get(qid, set()), float(detached[b, p]))
            self.candidates_s += time.perf_counter() - t1
            if not kept:
                self.no_negative += 1
            r_pos = 1 + int((detached[b] > detached[b, p]).sum())
            groups.append([(pos, p, float(r_pos))] + [(d, self.index.position[d], float(r)) for d, _, r in kept])
        width = max(2, max(len(g) for g in groups))  # a loss needs a negative column, even if all are padding
        positions = torch.zeros((len(groups), width), dtype=torch.long)
        ranks = torch.ones((len(groups), width))
        mask = torch.zeros((len(groups), width), dtype=torch.bool)
        for b, g in enumerate(groups):
            positions[b, : len(g)] = torch.tensor([x[1] for x in g])
            positions[b, len(g):] = g[0][1]  # padding points at the positive (masked out)
            ranks[b, : len(g)] = torch.tensor([x[2] for x in g])
            mask[b, : len(g)] = True
        positions = positions.to(scores.device)
        return MinedGroups(qids=list(qids), doc_ids=[[x[0] for x in g] for g in groups],
                           scores=scores.gather(1, positions), ranks=ranks.to(scores.device), mask=mask.to(scores.device))

    def stats(self) -> dict:
        return {**super().stats(), **self.filter.stats(), "index": getattr(self, "index_digest", None),
                "steps": self.steps, "retrieval_s": round(self.retrieval_s, 3),
                "candidates_s": round(self.candidates_s, 3), "queries_without_negative": self.no_negative}
