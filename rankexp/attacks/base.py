"""The contracts every attack (and the CertDR defense) is written against.

An attack run (``rankexp attack VICTIM attack=NAME``, :mod:`rankexp.attacks.runner`):

1. loads the **victim** (a rankexp run directory, a Hugging Face / sentence-transformers model, or
   ``bm25``) as a :class:`Victim`: a black box that scores (query, document text) pairs and counts
   every pair it is asked to score;
2. ranks each selected test query's candidates (the first stage's top ``eval.rerank_k``) with the
   victim and samples **targets** (:class:`Target`): documents at the chosen rank range (default
   51-100), a seeded sample per query (or one document for a group of queries, topic-oriented);
3. calls the attack's :meth:`Attack.setup` once (e.g. train an imitation model on the victim's
   rankings) and :meth:`Attack.perturb` per target, which returns a :class:`Perturbation` (the new
   document text and what changed);
4. re-scores the perturbed text with the real victim (in-memory text, never the cached tokens of the
   original) and records the new rank among the other, unchanged candidates; measures
   (:mod:`rankexp.attacks.measures`) go to ``metrics.json``; per-target results are appended to
   ``results.jsonl`` atomically so that a re-run continues where it stopped.

Words: documents are split into words by :func:`words` and joined back by :func:`join_words`;
budgets ("at most 10 % of the words") and the perturbation percentage count these words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

_WORD = re.compile(r"\S+")


def words(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` (punctuation stays attached to its word)."""
    return _WORD.findall(text)


def join_words(ws: Sequence[str]) -> str:
    return " ".join(ws)


@dataclass(frozen=True)
class Target:
    """A document to promote: ``doc_id`` for each query of ``qids`` (one query, or a topic group)."""

    doc_id: str
    qids: tuple[str, ...]
    ranks: Mapping[str, int]  # the victim's rank of doc_id per query before the attack (1 = top)
    key: str = ""  # stable id of the target in results.jsonl (set by the runner)


@dataclass
class Perturbation:
    """What an attack did to one target's document."""

    text: str  # the perturbed document (what the victim re-scores)
    original: str
    changed: int  # words substituted, or tokens inserted (a trigger), counted in words()
    total_words: int  # words() of the original
    victim_queries: int = 0  # pairs the attack itself asked the black-box victim to score
    details: dict[str, Any] = field(default_factory=dict)  # e.g. {"swaps": [[pos, old, new], ...]} or {"trigger": "..."}

    @property
    def percent(self) -> float:
        """Perturbation percentage: changed words over the original's words, in %."""
        return 100.0 * self.changed / max(self.total_words, 1)


class Victim(Protocol):
    """A black-box ranker. ``queries_used`` counts every (query, document) pair it scored for an
    attack (re-scoring for the measures is not counted)."""

    name: str
    kind: str  # "cross" | "bi" | "bm25"
    queries_used: int

    def query_text(self, qid: str) -> str: ...

    def doc_text(self, doc_id: str) -> str: ...

    def candidates(self, qid: str) -> dict[str, float]:
        """The victim's scores of the query's original candidates (doc id -> score), not counted."""

    def score_texts(self, qid: str, texts: Sequence[str], count: bool = True) -> list[float]:
        """Scores of in-memory document ``texts`` for query ``qid``; adds len(texts) to
        ``queries_used`` when ``count``."""

    def rank_with(self, qid: str, doc_id: str, score: float) -> int:
        """The rank ``doc_id`` would get for ``qid`` with ``score``, every other candidate's score
        unchanged (1 = top; ties go against the target)."""


class SynonymSource(Protocol):
    """Substitution candidates for a word: WordNet lemmas, embedding neighbours, or both."""

    name: str

    def candidates(self, word: str, k: int) -> list[str]:
        """Up to ``k`` replacement words for ``word`` (never ``word`` itself; same casing)."""


@dataclass
class AttackContext:
    """What an attack may use. ``white_box``: the attack may read the victim's own gradients
    (``ranker`` is then the victim's model); otherwise it must work through ``victim`` (black box)
    and a surrogate it builds itself (e.g. an imitation model trained on ``victim`` rankings)."""

    cfg: Any  # the composed config (cfg.attack is the attack's own node)
    victim: Victim
    ranker: Any | None  # rankexp.pipeline.loading.Ranker of the victim when it is a neural model
    white_box: bool
    seed: int
    queries: Sequence[str]  # the attacked queries (test split by default)
    device: str = "cpu"
    cache: Any = None  # rankexp.tracking.cache.Cache for anything worth keeping across runs
    state_dir: Any = None  # the attack run's directory (e.g. an imitation model's checkpoint)


class Attack:
    """One attack = one module under ``rankexp/attacks/`` + one ``conf/attack/NAME.yaml``
    (``_target_`` names the class; its other keys are the constructor's keyword arguments)."""

    name = "attack"
    groups_queries = False  # True: one perturbation per target for all of target.qids (topic-oriented)

    def setup(self, ctx: AttackContext) -> dict[str, Any]:
        """Once per run, before any target; returns facts for metrics.json (e.g. imitation fidelity)."""
        return {}

    def perturb(self, target: Target, ctx: AttackContext) -> Perturbation:
        raise NotImplementedError
