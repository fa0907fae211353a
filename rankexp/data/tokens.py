"""Pre-tokenized text, cached once per (collection, tokenizer, lengths) and reused by every epoch and run.

Documents and queries are tokenized without special tokens and truncated; pairs are assembled at
collate time as ``[CLS] q [SEP] d [SEP]`` with dynamic padding to the longest pair in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rankexp.data.collection import Collection
from rankexp.tracking.cache import Cache
from rankexp.utils.progress import track


def _tokenize_all(tokenizer, ids: list[str], texts: dict[str, str], max_len: int, description: str, chunk: int = 1000):
    lengths, flat = [], []
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    for part in track(chunks, description):
        enc = tokenizer([texts[i] for i in part], add_special_tokens=False, truncation=True, max_length=max_len)["input_ids"]
        for row in enc:
            lengths.append(len(row))
            flat.extend(row)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.asarray(flat, dtype=np.int32), offsets


@dataclass
class TokenTable:
    ids: list[str]
    flat: np.ndarray
    offsets: np.ndarray

    def __post_init__(self):
        self.index = {x: i for i, x in enumerate(self.ids)}

    def get(self, key: str) -> np.ndarray:
        i = self.index[key]
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def length(self, key: str) -> int:
        i = self.index[key]
        return int(self.offsets[i + 1] - self.offsets[i])

    def save(self, path: Path) -> None:
        np.savez(path, flat=self.flat, offsets=self.offsets, ids=np.asarray(self.ids, dtype=object))

    @classmethod
    def load(cls, path: Path) -> "TokenTable":
        z = np.load(path, allow_pickle=True)
        return cls(list(z["ids"]), z["flat"], z["offsets"])


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


def build_token_tables(collection: Collection, tokenizer, max_length: int, max_query_length: int, cache: Cache) -> tuple[TokenTable, TokenTable]:
    key = {
        "collection": collection.fingerprint,
        "tokenizer": getattr(tokenizer, "name_or_path", type(tokenizer).__name__).split("site-packages/")[-1],
        "vocab": tokenizer.vocab_size,
        "max_length": max_length,
        "max_query_length": max_query_length,
    }

    def build(tmp: Path) -> None:
        doc_ids = list(collection.docs)
        flat, off = _tokenize_all(tokenizer, doc_ids, collection.docs, max_length, f"tokenizing {collection.name} documents")
        TokenTable(doc_ids, flat, off).save(tmp / "docs.npz")
        qids = list(collection.queries)
        flat, off = _tokenize_all(tokenizer, qids, collection.queries, max_query_length, "tokenizing queries")
        TokenTable(qids, flat, off).save(tmp / "queries.npz")

    path = cache.get_or_build("tokens", key, build)
    return TokenTable.load(path / "docs.npz"), TokenTable.load(path / "queries.npz")


class TextEncoder:
    """Single texts ``[CLS] text [SEP]`` from a cached token table, truncated to ``max_length``."""

    def __init__(self, tokenizer, table: TokenTable, max_length: int):
        self.table, self.max_length = table, max_length
        self.cls, self.sep, self.pad = special_ids(tokenizer)

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
