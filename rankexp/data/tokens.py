"""Pre-tokenized text, cached once per (collection, tokenizer, lengths) and reused by every epoch and run.

Documents and queries are tokenized without special tokens and truncated; pairs are assembled at
collate time as ``[CLS] q [SEP] d [SEP]`` with dynamic padding to the longest pair in the batch.
The query table also keeps each query's untruncated length: when a model truncates queries, one
warning line says how many (and the same line goes to the collection's notes, so to metrics.json).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from rankexp.data.collection import Collection
from rankexp.tracking.cache import Cache, read_file
from rankexp.utils.hashing import stable_hash
from rankexp.utils.progress import track

log = logging.getLogger(__name__)


def _tokenize_all(tokenizer, ids: list[str], texts: dict[str, str], max_len: int, description: str, chunk: int = 1000,
                  full_lengths: list[int] | None = None):
    """Token ids truncated to ``max_len``; ``full_lengths`` (if given) receives the untruncated lengths."""
    lengths, flat = [], []
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    for part in track(chunks, description):
        if full_lengths is None:
            enc = tokenizer([texts[i] for i in part], add_special_tokens=False, truncation=True, max_length=max_len)["input_ids"]
        else:
            enc = tokenizer([texts[i] for i in part], add_special_tokens=False, truncation=False)["input_ids"]
            full_lengths.extend(len(row) for row in enc)
            enc = [row[:max_len] for row in enc]
        for row in enc:
            lengths.append(len(row))
            flat.extend(row)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.asarray(flat, dtype=np.int32), offsets


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides a tokenizer's output: its class and, for a fast tokenizer, its whole
    serialized pipeline (vocabulary, normalizer, pre-tokenizer); otherwise its vocabulary and
    simple init options. Computed once per tokenizer object."""
    cached = getattr(tokenizer, "_rankexp_fingerprint", None)
    if cached:
        return cached
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(stable_hash(sorted(tokenizer.get_vocab().items()), 64).encode())
        init = getattr(tokenizer, "init_kwargs", {}) or {}
        h.update(stable_hash({k: v for k, v in init.items() if isinstance(v, (bool, int, float, str, type(None)))
                              and not k.endswith(("_file", "name_or_path"))}, 64).encode())
    h.update(stable_hash(getattr(tokenizer, "special_tokens_map", {}), 64).encode())
    digest = h.hexdigest()[:16]
    try:
        tokenizer._rankexp_fingerprint = digest
    except AttributeError:  # pragma: no cover - a tokenizer that refuses attributes
        pass
    return digest


@dataclass
class TokenTable:
    ids: list[str]
    flat: np.ndarray
    offsets: np.ndarray
    full_lengths: np.ndarray | None = None  # untruncated lengths (queries)
    notes: list[str] | None = field(default=None, repr=False)  # the collection's notes (truncation counts)
    label: str = ""  # e.g. the collection's name, for messages

    def __post_init__(self):
        self.index = {x: i for i, x in enumerate(self.ids)}

    def get(self, key: str) -> np.ndarray:
        i = self.index[key]
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def length(self, key: str) -> int:
        i = self.index[key]
        return int(self.offsets[i + 1] - self.offsets[i])

    def save(self, path: Path) -> None:
        extra = {} if self.full_lengths is None else {"full_lengths": np.asarray(self.full_lengths, dtype=np.int64)}
        np.savez(path, flat=self.flat, offsets=self.offsets, ids=np.asarray(self.ids, dtype=object), **extra)

    @classmethod
    def load(cls, path: Path) -> "TokenTable":
        with np.load(path, allow_pickle=True) as z:
            table = cls(list(z["ids"]), z["flat"], z["offsets"], z["full_lengths"] if "full_lengths" in z.files else None)
        if len(table.offsets) != len(table.ids) + 1 or (len(table.ids) and int(table.offsets[-1]) != len(table.flat)):
            raise ValueError(f"inconsistent token table ({len(table.ids)} ids, {len(table.offsets)} offsets, {len(table.flat)} tokens)")
        return table

    def note_truncation(self, limit: int, special: bool) -> int:
        """Count the entries that a model keeping ``limit`` tokens (``special``: [CLS]/[SEP]
        included) truncates; warn once per message (one line) and add it to the collection's
        notes (metrics.json). Returns the count; 0 for a table without untruncated lengths."""
        if self.full_lengths is None:
            return 0
        kept = limit - 2 if special else limit
        n = int((np.asarray(self.full_lengths) > kept).sum())
        if n:
            where = f" of {self.label}" if self.label else ""
            incl = " (with [CLS]/[SEP])" if special else ""
            msg = (f"{n} of {len(self.ids)} queries{where} are longer than max_query_length={limit} tokens{incl} and were "
                   f"truncated; set model.encoder.max_query_length (first_stage.max_query_length for a dense first stage)")
            notes = self.notes if self.notes is not None else []
            if msg not in notes:
                notes.append(msg)
                log.warning("%s", msg)
        return n


def special_ids(tokenizer) -> tuple[int, int, int]:
    """(start, separator, padding) token ids: [CLS]/[SEP] or, for models without them, BOS/EOS."""
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return cls, sep, tokenizer.pad_token_id or 0


def pad_rows(rows: Sequence[np.ndarray], pad: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows to the longest: ``input_ids`` and ``attention_mask`` ``[N, width]``."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.from_numpy(np.asarray(r, dtype=np.int64))
        attention[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention}


class PairEncoder:
    """Assembles padded pair tensors from cached token tables."""

    def __init__(self, tokenizer, docs: TokenTable, queries: TokenTable, max_length: int, max_query_length: int):
        self.docs, self.queries = docs, queries
        self.max_length, self.max_query_length = max_length, max_query_length
        self.cls, self.sep, self.pad = special_ids(tokenizer)
        queries.note_truncation(max_query_length, special=False)

    def pair_length(self, qid: str, did: str) -> int:
        q = min(self.queries.length(qid), self.max_query_length)
        return min(q + self.docs.length(did) + 3, self.max_length)

    def encode(self, qids: Sequence[str], dids: Sequence[str]) -> dict[str, torch.Tensor]:
        rows, types = [], []
        for qid, did in zip(qids, dids):
            q = self.queries.get(qid)[: self.max_query_length]
            d = self.docs.get(did)[: self.max_length - len(q) - 3]
            rows.append(np.concatenate([[self.cls], q, [self.sep], d, [self.sep]]))
            types.append(len(q) + 2)
        out = pad_rows(rows, self.pad)
        token_types = torch.zeros_like(out["input_ids"])
        for i, (r, t) in enumerate(zip(rows, types)):
            token_types[i, t : len(r)] = 1
        return {**out, "token_type_ids": token_types}


def token_key(collection: Collection, tokenizer, max_length: int, max_query_length: int) -> dict:
    """The tokens cache key: everything the tables depend on."""
    return {
        "collection": collection.fingerprint,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": max_length,
        "max_query_length": max_query_length,
    }


def build_token_tables(collection: Collection, tokenizer, max_length: int, max_query_length: int, cache: Cache) -> tuple[TokenTable, TokenTable]:
    key = token_key(collection, tokenizer, max_length, max_query_length)

    def build(tmp: Path) -> None:
        doc_ids = list(collection.docs)
        flat, off = _tokenize_all(tokenizer, doc_ids, collection.docs, max_length, f"tokenizing {collection.name} documents")
        TokenTable(doc_ids, flat, off).save(tmp / "docs.npz")
        qids = list(collection.queries)
        full: list[int] = []
        flat, off = _tokenize_all(tokenizer, qids, collection.queries, max_query_length, "tokenizing queries", full_lengths=full)
        TokenTable(qids, flat, off, np.asarray(full, dtype=np.int64)).save(tmp / "queries.npz")

    def reader(entry: Path) -> tuple[TokenTable, TokenTable]:
        return read_file(entry / "docs.npz", TokenTable.load), read_file(entry / "queries.npz", TokenTable.load)

    docs, queries = cache.load("tokens", key, build, reader)
    queries.notes, queries.label = collection.notes, collection.name
    return docs, queries


class TextEncoder:
    """Single texts ``[CLS] text [SEP]`` from a cached token table, truncated to ``max_length``."""

    def __init__(self, tokenizer, table: TokenTable, max_length: int):
        self.table, self.max_length = table, max_length
        self.cls, self.sep, self.pad = special_ids(tokenizer)
        table.note_truncation(max_length, special=True)  # counts only for a query table

    def length(self, key: str) -> int:
        return min(self.table.length(key) + 2, self.max_length)

    def row(self, key: str) -> np.ndarray:
        return np.concatenate([[self.cls], self.table.get(key)[: self.max_length - 2], [self.sep]])

    def encode(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return pad_rows([self.row(k) for k in keys], self.pad)


class BiPairEncoder:
    """The bi-encoder's batches: queries and documents tokenized apart.

    ``encode(qids, dids)`` gives one (query, document) row pair per input pair (dev reranking);
    ``encode_groups`` gives each group's query once and all its documents (training).
    """

    def __init__(self, tokenizer, docs: TokenTable, queries: TokenTable, max_length: int, max_query_length: int):
        self.doc_text = TextEncoder(tokenizer, docs, max_length)
        self.query_text = TextEncoder(tokenizer, queries, max_query_length)

    def pair_length(self, qid: str, did: str) -> int:
        return self.doc_text.length(did)

    def encode(self, qids: Sequence[str], dids: Sequence[str]) -> dict[str, torch.Tensor]:
        q, d = self.query_text.encode(qids), self.doc_text.encode(dids)
        return {"q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
                "d_input_ids": d["input_ids"], "d_attention_mask": d["attention_mask"]}

    def encode_groups(self, qids: Sequence[str], flat_dids: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
        return {"queries": self.query_text.encode(qids), "docs": self.doc_text.encode(flat_dids)}


class OverlayTable:
    """A token table with some entries' text given in memory (e.g. perturbed documents): those ids
    are tokenized now, exactly as the cached table tokenizes (no special tokens, truncated to
    ``max_len``); every other id reads the cached ``base`` table. Ids absent from ``base`` may be added."""

    def __init__(self, base: TokenTable, tokenizer, texts: Mapping[str, str], max_len: int):
        self.base = base
        ids = list(texts)
        rows = tokenizer([texts[i] for i in ids], add_special_tokens=False, truncation=True, max_length=max_len)["input_ids"] if ids else []
        self.rows = {i: np.asarray(r, dtype=np.int32) for i, r in zip(ids, rows)}
        self.ids = list(base.ids) + [i for i in ids if i not in base.index]
        self.full_lengths = None
        self.label = base.label

    def __contains__(self, key: str) -> bool:
        return key in self.rows or key in self.base.index

    def get(self, key: str) -> np.ndarray:
        row = self.rows.get(key)
        return row if row is not None else self.base.get(key)

    def length(self, key: str) -> int:
        row = self.rows.get(key)
        return len(row) if row is not None else self.base.length(key)

    def note_truncation(self, limit: int, special: bool) -> int:
        return self.base.note_truncation(limit, special)


@dataclass
class Texts:
    """The token tables a scorer reads: a collection's cached documents and queries, optionally with
    some texts given in memory (:meth:`with_texts`)."""

    docs: TokenTable | OverlayTable
    queries: TokenTable | OverlayTable
    tokenizer: object = field(repr=False)
    max_length: int = 0
    max_query_length: int = 0

    def with_texts(self, docs: Mapping[str, str] | None = None, queries: Mapping[str, str] | None = None) -> "Texts":
        """These tables with ``docs`` / ``queries`` (id -> text) replacing or adding entries."""
        d = OverlayTable(self.docs, self.tokenizer, docs, self.max_length) if docs else self.docs
        q = OverlayTable(self.queries, self.tokenizer, queries, self.max_query_length) if queries else self.queries
        return Texts(d, q, self.tokenizer, self.max_length, self.max_query_length)

    def has_doc(self, doc_id: str) -> bool:
        return doc_id in self.docs if isinstance(self.docs, OverlayTable) else doc_id in self.docs.index


def build_texts(collection: Collection, encoder, cache: Cache) -> Texts:
    """``encoder``'s (tokenizer, max_length, max_query_length) token tables of ``collection``, cached."""
    docs, queries = build_token_tables(collection, encoder.tokenizer, encoder.max_length, encoder.max_query_length, cache)
    return Texts(docs, queries, encoder.tokenizer, encoder.max_length, encoder.max_query_length)
