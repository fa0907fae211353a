"""STAR-style static dense negatives (Zhan et al., SIGIR 2021, Sec. 5.1).

A warm-up dense retriever ranks the whole corpus once for every training query; negatives are
drawn from its top ``depth`` (200 in the paper) after the false-negative filters. With a
bi-encoder and ``model.encoder.in_batch=true`` (the default) the other groups' documents of the
batch are added as random negatives, with any that are judged relevant to the query masked: STAR's
"hard negatives + in-batch random negatives" stabilisation. With a cross-encoder the same mined
negatives make its training groups.

The warm-up retriever: ``retriever: null`` is the run's own bi-encoder as it is before training
(all-MiniLM-L6-v2 is already a trained retriever), or for a cross-encoder run the default
all-MiniLM-L6-v2 bi-encoder; ``retriever.model`` may name any HF bi-encoder or a rankexp
bi-encoder run directory. Its index is cached by the hash of its document encoder's weights.
"""

from __future__ import annotations

from rankexp.data.negatives.mined import MinedNegatives


class DenseStaticNegatives(MinedNegatives):
    name = "dense_static"

    def __init__(self, depth: int = 200, retriever: dict | None = None, **filters):
        super().__init__(depth=depth, **filters)
        self.retriever_cfg = dict(retriever) if retriever else None

    def _retriever(self, ctx):
        from rankexp.retrieval.dense import DenseRetriever

        r = DenseRetriever(**{**(self.retriever_cfg or {}), "k": self.depth})  # mining depth is the sampler's
        if self.retriever_cfg is None and ctx is not None and getattr(ctx.encoder, "kind", None) == "bi":
            r._encoder = ctx.encoder  # the run's model before training
        if ctx is not None:
            r.device, r.batch_size = ctx.device, ctx.batch_size
        return r

    def mining_key(self, collection, first_stage, ctx, qids):
        from rankexp.retrieval.dense import doc_encoder_hash, query_encoder_hash

        enc = self._retriever(ctx).encoder()
        return {"model": doc_encoder_hash(enc), "query_model": query_encoder_hash(enc)}

    def mine(self, collection, first_stage, ctx, qids):
        import torch

        from rankexp.retrieval.dense import encode_ids, search_embeddings, texts_for
        from rankexp.tracking.cache import Cache

        r = self._retriever(ctx)
        cache = ctx.cache if ctx is not None and ctx.cache is not None else Cache(collection_tmp_cache())
        enc = r.encoder()
        index = r.index(collection, cache)
        _, query_text = texts_for(enc, collection, cache)
        qids = [q for q in qids if q in collection.queries]
        q_emb = torch.from_numpy(encode_ids(enc, query_text, qids, "query", r.batch_size, r.device, "encoding queries"))
        run = search_embeddings(index, q_emb.numpy(), qids, self.depth)  # no queries: no search, {}
        ranking = {q: sorted(run[q].items(), key=lambda kv: -kv[1]) for q in qids}
        # the miner's exact score of every relevant document (for the margin filters)
        pos: dict[str, dict[str, float]] = {}
        for i, q in enumerate(qids):
            rel = [d for d in collection.relevant(q) if d in index.position]
            if rel:
                pos[q] = dict(zip(rel, (index.lookup(rel) @ q_emb[i]).tolist()))
        return ranking, pos


def collection_tmp_cache():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="rankexp-mining-"))
