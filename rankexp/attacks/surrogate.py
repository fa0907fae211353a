"""A differentiable stand-in for the victim: scores and per-word gradients of a rankexp ranker.

``Surrogate(ranker)`` wraps a :class:`rankexp.pipeline.loading.Ranker` (or its encoder): a
cross-encoder (rankexp :class:`~rankexp.models.encoders.CrossEncoder` or a Hugging Face
sequence-classification model, :class:`~rankexp.pipeline.loading.HFCrossEncoder`) or a bi-encoder
(:class:`~rankexp.models.biencoder.BiEncoder`). It is the victim itself in the white-box setting and
an imitation model trained on the victim's rankings in the black-box one (PRADA's "surrogate model";
an imitation model is a Ranker too).

Inputs are built exactly as the rankexp scorers build them from cached tokens, so the surrogate's
score of an unchanged document equals the reranking score: a cross-encoder sees
``[CLS] q[:max_query_length] [SEP] d[:max_length - |q| - 3] [SEP]`` (token types 0 then 1); a
bi-encoder embeds ``[CLS] q[:max_query_length - 2] [SEP]`` and ``[CLS] d[:max_length - 2] [SEP]``
apart and scores their similarity. Text is tokenized without special tokens, as the token cache does.

Word importance (PRADA's first step, "which words to substitute"). Let ``s(q, d)`` be the surrogate's
score and ``e_t`` the input (word-piece) embedding of document token ``t``, read where the model looks
them up (a forward hook on ``get_input_embeddings()``, so position and type embeddings are not
included). With ``g_t = ds/de_t``:

* ``grad_norm`` (default; the authors' choice as far as could be checked, see below):
  ``I(w) = sqrt(sum_{t in w} ||g_t||_2^2)`` — the L2 norm of the gradient with respect to the word's
  whole block of word-piece embeddings;
* ``grad_x_emb``: ``I(w) = |sum_{t in w} g_t . e_t|`` — the first-order estimate of how much the score
  would move if the word's embeddings were removed (gradient x input).

For the embedding-space step of the attack (``choose=nearest``) each word also gets the mean of its
pieces' gradients and embeddings, ``g(w)`` and ``e(w)`` (punctuation pieces left out: ``car,`` is
``car``), and a candidate the mean embedding of its own pieces (:meth:`Surrogate.word_embedding`).

Word pieces are mapped back to the words of :func:`rankexp.attacks.base.words` by the tokenizer's
character offsets (fast tokenizers) or by tokenizing word by word (others; identical for WordPiece,
which never merges across whitespace). Words cut off by ``max_length`` get importance 0.

PRADA (Wu et al., arXiv 2204.01321) computes the gradient of its attack loss — a pairwise hinge
between the target document and the documents above it — rather than of the score. Where the hinge
is active its gradient with respect to the target's embeddings is ``-ds/de_t`` (the other documents'
scores do not depend on them), so the gradient-norm ranking of the target's words is the same. The
PRADA text itself was not in the searchable library when this was written: "importance by gradient
magnitude" is from the abstract of the same authors' earlier gradient-based ranking attack (Wu,
Zhang, Guo, Fan, Pattern Recognition and Artificial Intelligence 35(3), 2022); ``grad_x_emb`` and
the per-word aggregation over word pieces are ours.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Sequence

import torch

from rankexp.errors import ConfigError

_WORD = re.compile(r"\S+")  # rankexp.attacks.base.words splits on the same pattern

IMPORTANCE = ("grad_norm", "grad_x_emb")


def input_embeddings(encoder):
    """The word(-piece) embedding module a rankexp encoder looks its document tokens up in."""
    body = encoder.side("doc") if getattr(encoder, "kind", None) == "bi" and hasattr(encoder, "side") else getattr(encoder, "model", encoder)
    get = getattr(body, "get_input_embeddings", None)
    module = get() if callable(get) else None
    if module is None:
        raise ConfigError(f"surrogate: {type(encoder).__name__} exposes no input embeddings (get_input_embeddings); "
                          f"a word-gradient surrogate needs a transformer ranker")
    return module


@dataclass
class WordGradients:
    """The surrogate's view of one (query, document) pair."""

    score: float
    importance: list[float]  # one per word of base.words(text); 0 for words cut off by max_length
    words: list[str]
    token_words: list[int] = field(default_factory=list)  # the word index of each document token the model saw
    grad_vectors: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # word -> mean of its pieces' ds/de
    emb_vectors: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # word -> mean of its pieces' e


class Surrogate:
    """Scores and word gradients of a ranker (see the module docstring).

    Args:
        ranker: a ``Ranker`` (``.encoder``) or the encoder itself (``kind`` ``cross`` or ``bi``).
        importance: ``grad_norm`` or ``grad_x_emb``.
        batch_size: texts per forward pass in :meth:`score_texts`.
    """

    def __init__(self, ranker, importance: str = "grad_norm", batch_size: int = 32):
        encoder = getattr(ranker, "encoder", ranker)
        kind = getattr(encoder, "kind", None) or getattr(getattr(ranker, "scorer", None), "kind", None)
        if kind not in ("cross", "bi"):
            raise ConfigError(f"surrogate: the ranker must be a cross- or bi-encoder (model kind 'cross' or 'bi'), got {kind!r}")
        if importance not in IMPORTANCE:
            raise ConfigError(f"attack.importance must be one of {', '.join(IMPORTANCE)}, got {importance!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"surrogate batch_size must be >= 1, got {batch_size}")
        for attr in ("tokenizer", "max_length", "max_query_length"):
            if not hasattr(encoder, attr):
                raise ConfigError(f"surrogate: {type(encoder).__name__} has no {attr}; not a rankexp ranker encoder")
        self.encoder, self.kind, self.importance, self.batch_size = encoder, kind, importance, int(batch_size)
        self.description = getattr(ranker, "description", type(encoder).__name__)
        self.tokenizer = encoder.tokenizer
        self.max_length, self.max_query_length = int(encoder.max_length), int(encoder.max_query_length)
        self.embedding = input_embeddings(encoder)
        from rankexp.data.tokens import special_ids

        self.cls, self.sep, self.pad = special_ids(self.tokenizer)
        encoder.eval()  # no dropout: the same text always gets the same score and gradients

    @property
    def device(self) -> torch.device:
        try:
            return next(self.encoder.parameters()).device
        except StopIteration:  # pragma: no cover - a parameter-free encoder
            return torch.device("cpu")

    # ------------------------------------------------------------------------------- tokens
    def _query_ids(self, query: str) -> list[int]:
        return list(self.tokenizer(query, add_special_tokens=False)["input_ids"])

    def _doc_tokens(self, text: str) -> tuple[list[int], list[int], list[str]]:
        """(token ids, the word index of each token, the words) of ``text``, untruncated."""
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        words = [text[a:b] for a, b in spans]
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            starts = [a for a, _ in spans]
            ids, owners = [], []
            for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
                w = bisect.bisect_right(starts, a) - 1
                ids.append(tid)
                owners.append(max(w, 0))
            return ids, owners, words
        ids, owners = [], []
        for i, w in enumerate(words):
            piece = self.tokenizer(w, add_special_tokens=False)["input_ids"]
            ids.extend(piece)
            owners.extend([i] * len(piece))
        return ids, owners, words

    def _cross_row(self, q: list[int], d: list[int]) -> tuple[list[int], int, int]:
        """The pair row, where the document starts in it, and how many document tokens it keeps."""
        q = q[: self.max_query_length]
        d = d[: max(self.max_length - len(q) - 3, 0)]
        return [self.cls, *q, self.sep, *d, self.sep], len(q) + 2, len(d)

    def _cross_batch(self, q: list[int], docs: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        from rankexp.data.tokens import pad_rows

        rows, starts = [], []
        for d in docs:
            row, start, _ = self._cross_row(q, d)
            rows.append(row)
            starts.append(start)
        out = pad_rows(rows, self.pad)
        types = torch.zeros_like(out["input_ids"])
        for i, (r, s) in enumerate(zip(rows, starts)):
            types[i, s : len(r)] = 1
        out["token_type_ids"] = types
        return {k: v.to(self.device) for k, v in out.items()}

    def _bi_rows(self, ids: Sequence[list[int]], limit: int) -> dict[str, torch.Tensor]:
        from rankexp.data.tokens import pad_rows

        out = pad_rows([[self.cls, *r[: max(limit - 2, 0)], self.sep] for r in ids], self.pad)
        return {k: v.to(self.device) for k, v in out.items()}

    def _bi_query(self, q: list[int]) -> torch.Tensor:
        batch = self._bi_rows([q], self.max_query_length)
        return self.encoder.encode(batch["input_ids"], batch["attention_mask"], "query")

    # ------------------------------------------------------------------------------- scores
    @torch.no_grad()
    def score_texts(self, query: str, texts: Sequence[str]) -> list[float]:
        """The surrogate's scores of ``texts`` for ``query`` (batched, no gradients)."""
        texts = list(texts)
        if not texts:
            return []
        q = self._query_ids(query)
        docs = [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        scores: list[float] = []
        qv = self._bi_query(q) if self.kind == "bi" else None
        for i in range(0, len(docs), self.batch_size):
            chunk = docs[i : i + self.batch_size]
            if self.kind == "cross":
                s = self.encoder(**self._cross_batch(q, chunk))
            else:
                b = self._bi_rows(chunk, self.max_length)
                s = (self.encoder.encode(b["input_ids"], b["attention_mask"], "doc") * qv).sum(-1)
            scores.extend(float(x) for x in s.float().reshape(-1).cpu())
        return scores

    def word_gradients(self, query: str, text: str) -> WordGradients:
        """The score of (query, text) and each word's importance (see the module docstring)."""
        q = self._query_ids(query)
        d, owners, words = self._doc_tokens(text)
        captured: list[torch.Tensor] = []

        def hook(module, inputs, output):  # a fresh leaf: its gradient, whatever the weights' requires_grad
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            return leaf

        with torch.enable_grad():
            if self.kind == "cross":
                batch = self._cross_batch(q, [d])
                _, start, kept = self._cross_row(q, d)
                handle = self.embedding.register_forward_hook(hook)
                try:
                    score = self.encoder(**batch).reshape(-1)[0]
                finally:
                    handle.remove()
            else:
                with torch.no_grad():
                    qv = self._bi_query(q)
                b = self._bi_rows([d], self.max_length)
                start, kept = 1, min(len(d), max(self.max_length - 2, 0))
                handle = self.embedding.register_forward_hook(hook)
                try:
                    score = (self.encoder.encode(b["input_ids"], b["attention_mask"], "doc") * qv).sum(-1)[0]
                finally:
                    handle.remove()
            if len(captured) != 1:
                raise ConfigError(f"surrogate: expected one look-up of the input embeddings per pass, saw {len(captured)}")
            leaf = captured[0]
            (grad,) = torch.autograd.grad(score, leaf)
        g = grad[0, start : start + kept].float()
        e = leaf[0, start : start + kept].detach().float()
        importance = [0.0] * len(words)
        if self.importance == "grad_norm":
            per_token = (g * g).sum(-1).tolist()
            for t, v in enumerate(per_token):
                importance[owners[t]] += v
            importance = [v ** 0.5 for v in importance]
        else:
            per_token = (g * e).sum(-1).tolist()
            for t, v in enumerate(per_token):
                importance[owners[t]] += v
            importance = [abs(v) for v in importance]
        grad_vectors, emb_vectors = {}, {}
        pieces = self.tokenizer.convert_ids_to_tokens(d[:kept])
        for w in sorted(set(owners[:kept])):
            rows = [t for t in range(kept) if owners[t] == w]
            core = [t for t in rows if any(ch.isalnum() for ch in str(pieces[t]))]  # not the word's punctuation
            rows = core or rows
            grad_vectors[w], emb_vectors[w] = g[rows].mean(0).cpu(), e[rows].mean(0).cpu()
        return WordGradients(float(score.detach()), importance, words, owners[:kept], grad_vectors, emb_vectors)

    @torch.no_grad()
    def word_embedding(self, word: str) -> torch.Tensor | None:
        """The mean input embedding of ``word``'s pieces (None for a word with no tokens)."""
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            return None
        weight = self.embedding.weight
        return weight[torch.tensor(ids, device=weight.device)].float().mean(0).cpu()
