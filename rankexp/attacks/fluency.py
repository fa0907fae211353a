"""A bigram language model estimated on documents: the fluency term of the trigger attack (PAT).

PAT (Liu et al., "Order-Disorder: Imitation Adversarial Attacks for Black-box Neural Ranking
Models", arXiv 2209.06506) scores a trigger's fluency with a pre-trained causal language model. No
causal LM is available offline here, so this module substitutes a count-based bigram model
estimated on the attacked collection's documents (the candidate documents the victim ranks): a
weaker notion of fluency (local word order only), stated wherever it is reported.

Words are lower-cased runs of letters and digits (:func:`lm_words`). With ``c(.)`` the counts,
``N`` the number of word tokens and ``V`` the number of distinct words seen in training:

    P_uni(w)     = (c(w) + 1) / (N + V + 1)                                   (add-one; one slot for unseen words)
    P(w | v)     = lam * c(v, w) / c(v) + (1 - lam) * P_uni(w)     if c(v) > 0 as a history
                 = P_uni(w)                                         otherwise

A sentence's log-probability sums ``log P(w_i | w_{i-1})`` with ``w_0`` the context word before the
trigger (``<s>`` at the start of a document, which counts each document's first word as following
``<s>``). :meth:`BigramLM.fluency` is the mean log-probability per predicted word (higher = more
fluent).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

_TOKEN = re.compile(r"[a-z0-9]+")
BOS = "<s>"


def lm_words(text: str) -> list[str]:
    """The language model's words of ``text``: lower-cased runs of letters and digits."""
    return _TOKEN.findall(text.lower())


class BigramLM:
    """Interpolated bigram model (see the module docstring for the equations).

    Args:
        texts: the training documents.
        lam: weight of the bigram relative frequency (0 <= lam < 1; 0 = unigram model).
    """

    def __init__(self, texts: Iterable[str], lam: float = 0.7):
        from rankexp.errors import ConfigError

        if not 0.0 <= float(lam) < 1.0:
            raise ConfigError(f"attack.lm_lambda must be in [0, 1), got {lam!r}")
        self.lam = float(lam)
        self.unigrams: Counter = Counter()
        self.bigrams: Counter = Counter()
        self.history: Counter = Counter()  # c(v) as the first word of a bigram
        for text in texts:
            ws = lm_words(text)
            self.unigrams.update(ws)
            prev = BOS
            for w in ws:
                self.bigrams[(prev, w)] += 1
                self.history[prev] += 1
                prev = w
        self.total = sum(self.unigrams.values())
        self.vocab = set(self.unigrams)

    def unigram(self, w: str) -> float:
        return (self.unigrams.get(w, 0) + 1) / (self.total + len(self.vocab) + 1)

    def prob(self, w: str, prev: str) -> float:
        h = self.history.get(prev, 0)
        if h == 0:
            return self.unigram(w)
        return self.lam * self.bigrams.get((prev, w), 0) / h + (1.0 - self.lam) * self.unigram(w)

    def logprob(self, ws: Sequence[str], prev: str = BOS) -> float:
        """Sum of ``log P(w_i | w_{i-1})`` over ``ws``, ``w_0 = prev``."""
        total = 0.0
        for w in ws:
            total += math.log(self.prob(w, prev))
            prev = w
        return total

    def fluency(self, ws: Sequence[str], prev: str = BOS, nxt: str | None = None) -> float:
        """Mean log-probability per predicted word of ``ws`` after ``prev`` (and of ``nxt``, the word
        after the trigger, when given): the fluency term (higher is more fluent)."""
        seq = list(ws) + ([nxt] if nxt else [])
        return self.logprob(seq, prev) / max(len(seq), 1)
