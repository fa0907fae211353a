"""Dense retrieval: encode the corpus once, search exactly with chunked matrix products.

* :func:`encode_ids` encodes texts in length-sorted batches under ``inference_mode`` (little
  padding, no per-document Python work beyond slicing the cached token table).
* :class:`DenseIndex` holds the document matrix and answers exact top-k by ``torch.topk`` over
  document chunks (faiss ``IndexFlatIP`` when installed and asked for); the result equals a brute
  force ``argsort`` of all scores.
* :func:`build_index` caches the matrix under ``cache/dense_index/<hash>`` keyed by the hash of the
  document encoder's weights and the collection, so a model's index is built once.
* :class:`DenseRetriever` is a first stage (``first_stage=dense``): any bi-encoder (a HF name, or a
  rankexp run directory / ``.ckpt``, loaded by :mod:`rankexp.models.checkpoints`) retrieves the top ``k`` of the whole corpus for every query.
  :class:`Hybrid` fuses BM25 with it (``first_stage=hybrid``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from rankexp.data.collection import Collection
from rankexp.errors import ConfigError
from rankexp.eval.trec_io import Run, write_run
from rankexp.models.biencoder import load_bi_encoder as load_bi_encoder  # checkpoint loading lives in rankexp.models
from rankexp.models.checkpoints import load_weights as load_weights
from rankexp.models.checkpoints import resolve_checkpoint as resolve_checkpoint
from rankexp.tracking.cache import Cache, read_file
from rankexp.utils.hashing import stable_hash

log = logging.getLogger(__name__)


def model_hash(state: Mapping[str, torch.Tensor], extra: Any = None, length: int = 16) -> str:
    """sha256 over a state dict's names, shapes, dtypes and bytes (plus ``extra``)."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length]


def _side_identity(encoder) -> dict:
    # pooling, similarity, tiny sizes and the tokenizer's content (not the name, nor whether the
    # query side shares the weights: ADORE unshares a model and reuses the index of the same weights)
    from rankexp.data.tokens import tokenizer_fingerprint

    return {k: v for k, v in encoder.identity.items() if k not in ("name", "shared")} | {"tokenizer": tokenizer_fingerprint(encoder.tokenizer)}


def doc_encoder_hash(encoder) -> str:
    """What document embeddings depend on: the document side's weights, pooling, similarity,
    tokenizer and document length."""
    return model_hash(encoder.doc_state(), _side_identity(encoder) | {"max_length": encoder.max_length})


def query_encoder_hash(encoder) -> str:
    """What query embeddings depend on: the query side's weights, pooling, similarity, tokenizer
    and query length (``max_query_length``)."""
    return model_hash(encoder.side("query").state_dict(), _side_identity(encoder) | {"max_query_length": encoder.max_query_length})


@torch.inference_mode()
def encode_ids(encoder, text, ids: Sequence[str], side: str, batch_size: int = 64, device: str | torch.device = "cpu",
               description: str | None = None, fast: str | None = None) -> np.ndarray:
    """Embeddings ``[len(ids), dim]`` float32 in the order of ``ids``; batches are length-sorted.
    ``fast`` (``eval.fast``: None = exact, ``int8``, ``bf16``): see ``rankexp.models.module.fast_inference``."""
    from rankexp.models.module import fast_inference
    from rankexp.utils.progress import task

    was_training = encoder.training
    encoder.eval()
    encoder.to(device)
    model, context = fast_inference(encoder, fast, device)
    order = sorted(range(len(ids)), key=lambda i: text.length(ids[i]))
    out: np.ndarray | None = None
    try:
        with task(description or f"encoding {side}s", len(ids)) as advance:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                inputs = {k: v.to(device) for k, v in text.encode([ids[i] for i in chunk]).items()}
                with context:
                    emb = model.encode(**inputs, side=side)
                emb = emb.float().cpu().numpy()
                if out is None:
                    out = np.empty((len(ids), emb.shape[1]), dtype=np.float32)
                out[chunk] = emb
                advance(len(chunk))
    finally:
        encoder.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class DenseIndex:
    """A frozen document matrix ``[N, dim]`` with exact top-k search."""

    def __init__(self, doc_ids: Sequence[str], emb: np.ndarray | torch.Tensor, use_faiss: bool = False):
        self.doc_ids = list(doc_ids)
        self.emb = torch.as_tensor(np.ascontiguousarray(emb), dtype=torch.float32)
        self.position = {d: i for i, d in enumerate(self.doc_ids)}
        self.use_faiss = use_faiss
        self._faiss = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    def digest(self) -> str:
        return hashlib.sha256(self.emb.numpy().tobytes()).hexdigest()[:16]

    def lookup(self, doc_ids: Sequence[str]) -> torch.Tensor:
        return self.emb[[self.position[d] for d in doc_ids]]

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """All scores ``[M, N]`` (differentiable in ``q``)."""
        if self.emb.device != q.device or self.emb.dtype != q.dtype:
            key = (str(q.device), q.dtype)
            if getattr(self, "_moved_key", None) != key:
                self._moved, self._moved_key = self.emb.to(q.device, q.dtype), key
            return q @ self._moved.T
        return q @ self.emb.T

    @torch.no_grad()
    def search(self, q: torch.Tensor | np.ndarray, k: int, chunk_size: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-``k`` (scores ``[M, k]``, document positions ``[M, k]``), best first. Documents are
        scanned in chunks of ``chunk_size``; each chunk's top-k is merged into the running top-k."""
        q = torch.as_tensor(q, dtype=torch.float32)
        k = min(k, len(self))
        if self.use_faiss:
            return self._faiss_search(q, k)
        best_s = torch.full((q.shape[0], 0), -torch.inf)
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
        emb = self.emb.to(q.device)
        for start in range(0, len(self), chunk_size):
            s = q @ emb[start : start + chunk_size].T
            top = torch.topk(s, min(k, s.shape[1]), dim=1)
            cand_s = torch.cat([best_s, top.values], dim=1)
            cand_i = torch.cat([best_i, top.indices + start], dim=1)
            keep = torch.topk(cand_s, min(k, cand_s.shape[1]), dim=1)
            best_s, best_i = keep.values, torch.gather(cand_i, 1, keep.indices)
        return best_s, best_i

    def _faiss_search(self, q: torch.Tensor, k: int):
        if self._faiss is None:
            import faiss

            self._faiss = faiss.IndexFlatIP(self.emb.shape[1])
            self._faiss.add(self.emb.numpy())
        s, i = self._faiss.search(np.ascontiguousarray(q.cpu().numpy()), k)
        return torch.from_numpy(s), torch.from_numpy(i).long()

    def save(self, path: Path) -> None:
        np.save(path / "embeddings.npy", self.emb.numpy())
        (path / "doc_ids.json").write_text(json.dumps(self.doc_ids))

    @classmethod
    def load(cls, path: Path, use_faiss: bool = False) -> "DenseIndex":
        doc_ids = read_file(path / "doc_ids.json", lambda p: json.loads(p.read_text(encoding="utf-8")))

        def embeddings(p: Path) -> np.ndarray:
            emb = np.load(p)
            if emb.ndim != 2 or emb.shape[0] != len(doc_ids):
                raise ValueError(f"{emb.shape} embeddings for {len(doc_ids)} documents")
            return emb

        return cls(doc_ids, read_file(path / "embeddings.npy", embeddings), use_faiss)


def want_faiss(option: str | bool) -> bool:
    """``auto``: faiss when importable; ``true``: require it; ``false``: torch only."""
    if option in (False, "false", "no", None):
        return False
    try:
        import faiss  # noqa: F401

        return True
    except ImportError:
        if option in (True, "true", "yes"):
            raise ConfigError("faiss requested (use_faiss=true) but not installed: pip install faiss-cpu") from None
        return False


def texts_for(encoder, collection: Collection, cache: Cache):
    """Cached token tables of ``collection`` for ``encoder``'s tokenizer, as doc and query text encoders."""
    from rankexp.data.tokens import TextEncoder, build_token_tables

    docs, queries = build_token_tables(collection, encoder.tokenizer, encoder.max_length, encoder.max_query_length, cache)
    return TextEncoder(encoder.tokenizer, docs, encoder.max_length), TextEncoder(encoder.tokenizer, queries, encoder.max_query_length)


def build_index(encoder, collection: Collection, cache: Cache, batch_size: int = 64, device: str = "cpu",
                use_faiss: bool = False) -> DenseIndex:
    """The document matrix of ``collection`` under ``encoder``'s document side, cached by its weights' hash."""
    doc_text, _ = texts_for(encoder, collection, cache)

    def build(tmp: Path) -> None:
        ids = list(collection.docs)
        emb = encode_ids(encoder, doc_text, ids, "doc", batch_size, device, f"encoding {collection.name} corpus")
        DenseIndex(ids, emb).save(tmp)

    return cache.load("dense_index", index_key(encoder, collection), build, lambda entry: DenseIndex.load(entry, use_faiss))


def index_key(encoder, collection: Collection) -> dict:
    """The dense_index cache key."""
    return {"collection": collection.fingerprint, "model": doc_encoder_hash(encoder)}


def search_queries(encoder, index: DenseIndex, query_text, queries: Sequence[str], k: int, batch_size: int = 64,
                   device: str = "cpu") -> Run:
    """Top-``k`` of ``index`` for each query id (scores are the similarities)."""
    if not queries:
        return {}
    q = encode_ids(encoder, query_text, list(queries), "query", batch_size, device, "encoding queries")
    return search_embeddings(index, q, queries, k)


def search_embeddings(index: DenseIndex, q: np.ndarray, queries: Sequence[str], k: int) -> Run:
    """Top-``k`` of ``index`` for query embeddings ``q`` (row i is ``queries[i]``)."""
    run: Run = {}
    for start in range(0, len(queries), 256):
        s, i = index.search(torch.from_numpy(q[start : start + 256]), k)
        for row, qid in enumerate(queries[start : start + 256]):
            run[qid] = {index.doc_ids[int(j)]: float(v) for v, j in zip(s[row], i[row])}
    return run


class DenseRetriever:
    """First stage by a bi-encoder over the whole corpus (exact search).

    ``model``: a HF name/path (default all-MiniLM-L6-v2, offline), or a rankexp bi-encoder run
    directory / checkpoint. The other arguments describe a bare HF model (ignored for a run dir).
    """

    name = "dense"

    def __init__(self, model: str = "all-MiniLM-L6-v2", k: int = 1000, pooling: str = "mean", similarity: str = "cos",
                 max_length: int = 256, max_query_length: int = 32, shared: bool = True, tiny: dict | None = None,
                 batch_size: int = 64, use_faiss: str | bool = "auto", device: str = "auto"):
        if k < 1 or batch_size < 1:
            raise ConfigError(f"first_stage: need k >= 1 and batch_size >= 1, got k={k}, batch_size={batch_size}")
        self.model, self.k, self.batch_size = str(model), int(k), int(batch_size)
        self.arch = {"pooling": pooling, "similarity": similarity, "max_length": max_length,
                     "max_query_length": max_query_length, "shared": shared, "tiny": tiny}
        self.use_faiss = want_faiss(use_faiss)
        if device == "auto":  # this rank's GPU in a distributed run (rankexp.distributed), else the only one
            from rankexp.distributed import device as rank_device

            device = rank_device("auto")
        self.device = device
        self._encoder = None

    def params(self) -> dict:
        return {"model": self.model, "k": self.k, **{k: v for k, v in self.arch.items() if k != "tiny"}}

    def encoder(self):
        if self._encoder is None:
            self._encoder = load_bi_encoder(self.model, **self.arch)
        return self._encoder

    def index(self, collection: Collection, cache: Cache) -> DenseIndex:
        return build_index(self.encoder(), collection, cache, self.batch_size, self.device, self.use_faiss)

    def retrieve(self, collection: Collection, cache: Cache, queries: Mapping[str, str] | None = None) -> Run:
        """Top-k for every query of ``queries`` (default: all the collection's), cached as a run file."""
        encoder = self.encoder()
        qids = list(queries if queries is not None else collection.queries)
        key = self.run_key(collection, qids)

        def build(tmp: Path) -> None:
            index = self.index(collection, cache)
            _, query_text = texts_for(encoder, collection, cache)
            run = search_queries(encoder, index, query_text, qids, self.k, self.batch_size, self.device)
            write_run(tmp / "run.trec", run, tag="dense")

        from rankexp.retrieval.bm25 import read_cached_run

        return cache.load("dense_run", key, build, lambda entry: read_file(entry / "run.trec", read_cached_run))

    def run_key(self, collection: Collection, qids: Sequence[str]) -> dict:
        """The dense_run cache key: both sides' weights and lengths, the depth, the query texts."""
        encoder = self.encoder()
        return {"collection": collection.fingerprint, "model": doc_encoder_hash(encoder),
                "query_model": query_encoder_hash(encoder), "k": self.k,
                "queries": stable_hash(sorted((q, collection.queries.get(q, "")) for q in qids), 16)}


def fuse(runs: Sequence[Run], weights: Sequence[float], method: str = "norm", rrf_k: int = 60) -> Run:
    """``norm``: weighted sum of per-query min-max normalised scores (a document a run did not
    retrieve gets 0 from it); ``rrf``: weighted reciprocal rank fusion, sum of w / (rrf_k + rank)."""
    from rankexp.eval.trec_io import sort_ranking

    if method not in ("norm", "rrf"):
        raise ConfigError(f"first_stage.fusion must be 'norm' or 'rrf', got {method!r}")
    out: Run = {}
    for run, w in zip(runs, weights):
        for q, docs in run.items():
            target = out.setdefault(q, {})
            if method == "rrf":
                for rank, (d, _) in enumerate(sort_ranking(docs), start=1):
                    target[d] = target.get(d, 0.0) + w / (rrf_k + rank)
            else:
                lo, hi = min(docs.values()), max(docs.values())
                for d, s in docs.items():
                    target[d] = target.get(d, 0.0) + w * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    return out


class Hybrid:
    """BM25 and a dense retriever fused: ``alpha`` weights the dense side, ``1 - alpha`` BM25."""

    name = "hybrid"

    def __init__(self, bm25, dense, alpha: float = 0.5, fusion: str = "norm", k: int = 1000):
        if not 0 <= alpha <= 1:
            raise ConfigError(f"first_stage.alpha must be in [0, 1], got {alpha}")
        self.bm25, self.dense, self.alpha, self.fusion, self.k = bm25, dense, float(alpha), fusion, int(k)

    def params(self) -> dict:
        return {"alpha": self.alpha, "fusion": self.fusion, "k": self.k, "bm25": self.bm25.params(), "dense": self.dense.params()}

    def retrieve(self, collection: Collection, cache: Cache, queries: Mapping[str, str] | None = None) -> Run:
        from rankexp.eval.trec_io import sort_ranking

        fused = fuse([self.bm25.retrieve(collection, cache, queries), self.dense.retrieve(collection, cache, queries)],
                     [1 - self.alpha, self.alpha], self.fusion)
        return {q: dict(sort_ranking(docs)[: self.k]) for q, docs in fused.items()}


def rerank_pairs(encoder, collection: Collection, cache: Cache, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
                 device: str = "cpu", fast: str | None = None) -> Run:
    """Score (query id, doc id) pairs with a bi-encoder: each distinct query and document is encoded
    once (a pair-by-pair pass would encode a query once per candidate), then the similarity of the two
    embeddings, in float32. Equal to ``BiEncoder.forward`` on each pair (tested)."""
    if not pairs:
        return {}
    doc_text, query_text = texts_for(encoder, collection, cache)
    return score_pairs_apart(encoder, doc_text, query_text, pairs, batch_size, device, fast)


def score_pairs_apart(encoder, doc_text, query_text, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
                      device: str = "cpu", fast: str | None = None, description: str = "encoding") -> Run:
    """:func:`rerank_pairs` on given text encoders (e.g. token tables with in-memory texts)."""
    if not pairs:
        return {}
    qids = sorted({q for q, _ in pairs})
    dids = sorted({d for _, d in pairs})
    q = encode_ids(encoder, query_text, qids, "query", batch_size, device, f"{description} queries", fast=fast)
    d = encode_ids(encoder, doc_text, dids, "doc", batch_size, device, f"{description} candidates", fast=fast)
    q_row = {x: i for i, x in enumerate(qids)}
    d_row = {x: i for i, x in enumerate(dids)}
    qi = np.fromiter((q_row[a] for a, _ in pairs), dtype=np.int64, count=len(pairs))
    di = np.fromiter((d_row[b] for _, b in pairs), dtype=np.int64, count=len(pairs))
    scores = np.einsum("ij,ij->i", q[qi], d[di])
    run: Run = {}
    for (a, b), s in zip(pairs, scores.tolist()):
        run.setdefault(a, {})[b] = float(s)
    return run
