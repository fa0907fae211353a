"""Word-substitution ranking attack, PRADA-like (``attack=prada``).

Wu et al., "PRADA: Practical Black-Box Adversarial Attacks against Neural Ranking Models"
(arXiv 2204.01321, TOIS 2023); the task ("word substitution ranking attack", WSRA) as restated in
Wu et al., "Certified Robustness to Word Substitution Ranking Attack for Neural Ranking Models"
(arXiv 2209.06691) and in "Are Neural Ranking Models Robust?" (arXiv 2108.05018).

**Task (WSRA).** For a query ``q`` and a target document ``d = (w_1 .. w_n)`` ranked by the victim
``f`` below the top, find ``d'`` that replaces some ``w_i`` by a synonym ``w_i' in S(w_i)`` so that
the target moves up:

    max_{d'} f(q, d')   s.t.   d'_i in {w_i} ∪ S(w_i),   |{i : d'_i != w_i}| <= ⌊budget/100 · n⌋      (1)

(the paper bounds the number of substituted words; rankexp states the bound as a percentage of the
document's words, as the issue and the other attacks do (``attack.budget=10`` is 10 %), and rounds
down, so a perturbation never exceeds it: a document of fewer than 100/budget words gets no swap,
which ``details.max_changes = 0`` shows).

**Algorithm** (the three PRADA steps; equation numbers are ours, the paper's could not be read):

1. *Important words.* The surrogate ``s`` (the victim's own model when white-box, else an imitation
   model trained on the victim's rankings, :mod:`rankexp.attacks.imitation`) gives the gradient of
   its score with respect to each word's input embeddings; words are ranked by

       I(w_i) = ||∂s(q, d)/∂e(w_i)||_2                                                          (2)

   (:mod:`rankexp.attacks.surrogate`; ``importance=grad_x_emb`` ranks by ``|∂s/∂e · e|``
   instead). Computed once, on the original document; ties by position.
2. *Candidate order.* For the next important word ``w_i`` that may change, its candidates
   ``c in S(w_i)`` (at most ``candidates``) are ordered either
   - ``choose=score`` (default): by the surrogate's score of the substituted document,
     ``s(q, d[w_i -> c])``, highest first (one batched forward pass per word); or
   - ``choose=nearest`` (PRADA's embedding-space step): the word's embedding is moved along the
     gradient and the candidates nearest to the moved point come first,

         e*(w_i) = e(w_i) + ε ||e(w_i)|| g/||g||,  g = ∂s/∂e(w_i);   c ranked by ||e(c) - e*(w_i)||   (3)

     (one projected-gradient step, with ``e`` the mean over a word's pieces; no forward pass).
3. *Greedy victim-checked swap.* The victim scores ``d[w_i -> c]`` for the first candidate (one
   counted query per attacked query); the swap is kept only if the victim's score rises,
   ``f(q, d[w_i -> c]) > f(q, d)``, else the next candidate (up to ``victim_checks`` per word) or the
   next word. With ``require_surrogate_gain`` a candidate the surrogate scores no higher than the
   current text is not sent to the victim (no query spent on it).

The loop stops when ``⌊budget/100 · n⌋`` words are changed, the important words are used up, or the
target reaches rank 1 for its query (``Victim.rank_with``, every other candidate unchanged).

**Which words may change.** Alphabetic words (punctuation around a word stays: ``car,`` ->
``auto,``) that are not stopwords and — ``keep_query_words`` — do not occur in the query: a query
word's synonym lowers exact-match relevance signals and would betray the intent; PRADA's text was
not available to check its exact rule, so this is our choice. Words cut off by the surrogate's
``max_length`` have importance 0 and come last.

**Synonyms** (``synonyms``): ``wordnet`` (WordNet 3.0 lemmas, :class:`~rankexp.attacks.synonyms.WordNetSynonyms`),
``embedding`` (nearest whole-word neighbours in an input embedding matrix: the surrogate's by
default, or ``embedding_model``'s; cosine ``>= embedding_threshold``), or ``both`` (interleaved).
PRADA takes synonyms from counter-fitted word embeddings (neighbours above a similarity threshold),
which rankexp does not ship; the embedding source is the nearest equivalent available offline.

**Sources and choices.** The PRADA text itself was not in the searchable library. The three steps
follow the same authors' description of their gradient-based ranking attack (Wu, Zhang, Guo, Fan,
"基于梯度的对抗排序攻击方法" / "Gradient-Based Adversarial Ranking Attack", Pattern Recognition and
Artificial Intelligence 35(3), 2022: word importance by gradient magnitude, a projected-gradient
perturbation of the most important words' embeddings, then the synonym semantically close to the
original and nearest to the perturbed vector; read from its abstract) and the one-line summaries of
PRADA in CertDR and the topic-oriented attack paper ("replacing important words in a document with
synonyms"). Ours: ``choose=score`` as the default (it asks the surrogate directly
instead of trusting a linear step), the single step of eq. 3 and its size ``epsilon``, the budget
default (10 % of the words), candidates per word (20) and checks per word (1). Deterministic: no
randomness at all (``ctx.seed`` matters only through the imitation model's training).

``Perturbation.details``: ``swaps`` ``[[word_index, old, new], ...]`` in the order made, the
victim's and the surrogate's scores before and after, ``max_changes``, ``checked`` (victim checks),
``reached_top``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Sequence

from rankexp.attacks.base import Attack, AttackContext, Perturbation, Target, join_words, words
from rankexp.errors import ConfigError

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
_ALPHA = re.compile(r"^[A-Za-z]+$")

SYNONYMS = ("wordnet", "embedding", "both")
SURROGATES = ("auto", "victim", "imitation")
CHOICES = ("score", "nearest")


def split_word(token: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation): ``"(car),"`` -> ``("(", "car", "),")``."""
    m = _SPLIT.match(token)
    return (m.group(1), m.group(2), m.group(3)) if m else ("", token, "")


class WordSubstitution(Attack):
    """PRADA-like word substitution (see the module docstring).

    Args:
        budget: at most this percentage of the document's words is substituted, in (0, 100] (10 = 10 %).
        candidates: synonyms considered per word (k >= 1).
        synonyms: ``wordnet`` | ``embedding`` | ``both``.
        surrogate: ``victim`` (white-box: the victim's own gradients) | ``imitation`` (black-box: a
            model trained on the victim's rankings, :func:`rankexp.attacks.imitation.train_imitation`)
            | ``auto`` (``victim`` when the run is white-box and the victim is a neural model, else
            ``imitation``: BM25 and black-box victims work with the defaults).
        importance: ``grad_norm`` | ``grad_x_emb`` (:mod:`rankexp.attacks.surrogate`).
        victim_checks: candidates of one word sent to the victim at most (>= 1).
        require_surrogate_gain: send a candidate to the victim only if the surrogate scores it above
            the current text.
        keep_query_words: never substitute a word that occurs in the query.
        embedding_model: ``surrogate`` (its input embeddings) or a model name/path (e.g.
            ``all-MiniLM-L6-v2``) for ``synonyms=embedding|both``.
        embedding_threshold: minimum cosine similarity of an embedding neighbour (null: none). 0.4
            (ours): in all-MiniLM-L6-v2's input embeddings, neighbours above it were mostly near-synonyms
            (altitude -> elevation, injected -> inserted), below it often related but different words
            (electrons -> polynomials).
        batch_size: surrogate scoring batch.
        choose: ``score`` (the candidates the surrogate scores highest first) or ``nearest``
            (PRADA's embedding-space step: the candidates nearest the word's embedding moved along the
            gradient first, eq. 3).
        epsilon: the step of ``nearest``, in units of the word's embedding norm.
        source: a ready :class:`~rankexp.attacks.base.SynonymSource` (Python use and tests); replaces
            ``synonyms``.
    """

    name = "prada"

    def __init__(self, budget: float = 10.0, candidates: int = 20, synonyms: str = "wordnet", surrogate: str = "auto",
                 importance: str = "grad_norm", victim_checks: int = 1, require_surrogate_gain: bool = True,
                 keep_query_words: bool = True, embedding_model: str = "surrogate",
                 embedding_threshold: float | None = 0.4, batch_size: int = 32, choose: str = "score",
                 epsilon: float = 1.0, source: Any = None):
        from rankexp.attacks.runner import check_budget

        budget = check_budget(budget, "attack.budget")  # a percentage of the words in (0, 100]; else one line
        if int(candidates) < 1:
            raise ConfigError(f"attack.candidates (synonyms per word) must be >= 1, got {candidates}")
        if synonyms not in SYNONYMS:
            raise ConfigError(f"attack.synonyms must be one of {', '.join(SYNONYMS)}, got {synonyms!r}")
        if surrogate not in SURROGATES:
            raise ConfigError(f"attack.surrogate must be one of {', '.join(SURROGATES)}, got {surrogate!r}")
        from rankexp.attacks.surrogate import IMPORTANCE

        if importance not in IMPORTANCE:
            raise ConfigError(f"attack.importance must be one of {', '.join(IMPORTANCE)}, got {importance!r}")
        if int(victim_checks) < 1:
            raise ConfigError(f"attack.victim_checks must be >= 1, got {victim_checks}")
        if embedding_threshold is not None and not -1.0 <= float(embedding_threshold) <= 1.0:
            raise ConfigError(f"attack.embedding_threshold is a cosine similarity in [-1, 1] (or null), got {embedding_threshold}")
        if int(batch_size) < 1:
            raise ConfigError(f"attack.batch_size must be >= 1, got {batch_size}")
        if choose not in CHOICES:
            raise ConfigError(f"attack.choose must be one of {', '.join(CHOICES)}, got {choose!r}")
        try:
            epsilon = float(epsilon)
        except (TypeError, ValueError):
            raise ConfigError(f"attack.epsilon must be a number > 0, got {epsilon!r}") from None
        if not epsilon > 0:
            raise ConfigError(f"attack.epsilon (the embedding step, in units of the word's embedding norm) must be > 0, got {epsilon}")
        self.budget, self.k, self.synonyms, self.surrogate_kind = budget, int(candidates), synonyms, surrogate
        self.importance, self.victim_checks = importance, int(victim_checks)
        self.require_surrogate_gain, self.keep_query_words = bool(require_surrogate_gain), bool(keep_query_words)
        self.embedding_model = embedding_model
        self.embedding_threshold = None if embedding_threshold is None else float(embedding_threshold)
        self.batch_size = int(batch_size)
        self.choose, self.epsilon = choose, epsilon
        self.source = source
        self.surrogate = None
        self.used_surrogate = None
        self._warned_small = False
        self._facts: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ setup
    def resolved_surrogate(self, ctx: AttackContext) -> str:
        if self.surrogate_kind != "auto":
            return self.surrogate_kind
        return "victim" if ctx.white_box and ctx.ranker is not None else "imitation"

    def _surrogate_ranker(self, ctx: AttackContext):
        if self.resolved_surrogate(ctx) == "victim":
            if not ctx.white_box:
                raise ConfigError("attack.surrogate=victim reads the victim's gradients and needs white-box access; "
                                  "run the attack white-box or use attack.surrogate=imitation")
            if ctx.ranker is None:
                raise ConfigError(f"attack.surrogate=victim needs a neural victim (the victim {getattr(ctx.victim, 'name', '?')!r} "
                                  f"of kind {getattr(ctx.victim, 'kind', '?')!r} has no model); use attack.surrogate=imitation")
            return ctx.ranker, {}
        try:
            from rankexp.attacks.imitation import train_imitation
        except ImportError:
            raise ConfigError("surrogate=imitation needs rankexp.attacks.imitation") from None
        ranker = train_imitation(ctx)
        facts = dict(getattr(ranker, "facts", {}) or {})
        return ranker, {"imitation": facts} if facts else {}

    def _source(self):
        from rankexp.attacks.synonyms import EmbeddingNeighbours, SynonymUnion, WordNetSynonyms

        if self.source is not None:
            return self.source
        parts = []
        if self.synonyms in ("wordnet", "both"):
            parts.append(WordNetSynonyms(max_candidates=self.k))
        if self.synonyms in ("embedding", "both"):
            if self.embedding_model == "surrogate":
                parts.append(EmbeddingNeighbours.from_encoder(self.surrogate.encoder, self.embedding_threshold, self.k))
            else:
                parts.append(EmbeddingNeighbours.from_model(self.embedding_model, self.embedding_threshold, self.k))
        return parts[0] if len(parts) == 1 else SynonymUnion(parts)

    def setup(self, ctx: AttackContext) -> dict[str, Any]:
        from rankexp.attacks.surrogate import Surrogate

        ranker, facts = self._surrogate_ranker(ctx)
        self.surrogate = Surrogate(ranker, importance=self.importance, batch_size=self.batch_size)
        self.source = self._source()
        self.used_surrogate = self.resolved_surrogate(ctx)
        self._facts = {"surrogate": self.used_surrogate, "surrogate_model": self.surrogate.description,
                       "synonyms": getattr(self.source, "name", type(self.source).__name__), "importance": self.importance,
                       **facts}
        return dict(self._facts)

    # ------------------------------------------------------------------------------ attack
    def max_changes(self, n_words: int) -> int:
        """⌊budget/100 · n⌋ (a float error is not allowed to round 30 % of 10 down to 2)."""
        return int(math.floor(self.budget * n_words / 100.0 + 1e-9))

    def allowed(self, ws: Sequence[str], query_words: set[str]) -> list[bool]:
        from rankexp.attacks.synonyms import is_stopword

        out = []
        for w in ws:
            _, core, _ = split_word(w)
            ok = bool(_ALPHA.match(core)) and len(core) > 1 and not is_stopword(core)
            if ok and self.keep_query_words and core.lower() in query_words:
                ok = False
            out.append(ok)
        return out

    def _victim_scores(self, ctx: AttackContext, qids: Sequence[str], text: str) -> list[float]:
        return [float(ctx.victim.score_texts(q, [text], count=True)[0]) for q in qids]

    def _surrogate_scores(self, queries: Sequence[str], texts: Sequence[str]) -> list[float]:
        """The surrogate's score of each text, summed over the target's queries."""
        total = [0.0] * len(texts)
        for qt in queries:
            total = [a + b for a, b in zip(total, self.surrogate.score_texts(qt, texts))]
        return total

    def _nearest(self, cands: Sequence[str], grads, i: int) -> list[int] | None:
        """Candidate order of ``choose=nearest`` (eq. 3): by distance to ``e(w) + epsilon ||e(w)|| g/||g||``,
        ``g`` the word's gradient summed over the queries; None when the surrogate did not see the word."""
        import torch

        if any(i not in g.grad_vectors for g in grads):
            return None
        g = sum(gr.grad_vectors[i] for gr in grads)
        e = grads[0].emb_vectors[i]
        norm = float(g.norm())
        if norm == 0.0:
            return None
        point = e + self.epsilon * float(e.norm()) * g / norm
        dist = []
        for j, c in enumerate(cands):
            v = self.surrogate.word_embedding(c)
            dist.append(float("inf") if v is None else float(torch.linalg.vector_norm(v - point)))
        return sorted(range(len(cands)), key=lambda j: (dist[j], j))

    def perturb(self, target: Target, ctx: AttackContext) -> Perturbation:
        if self.surrogate is None:
            self.setup(ctx)
        victim, qids = ctx.victim, list(target.qids)
        if not qids:
            raise ConfigError(f"target {target.doc_id!r}: no query to attack it for")
        used0 = int(getattr(victim, "queries_used", 0))
        original = victim.doc_text(target.doc_id)
        ws = words(original)
        n = len(ws)
        budget = self.max_changes(n)
        if budget == 0 and n and not self._warned_small:
            self._warned_small = True
            log.warning("attack.budget=%g %% allows no substitution in a document of %d words (at least %d words "
                        "needed for one); such targets stay unchanged", self.budget, n, math.ceil(100.0 / self.budget))
        queries = [victim.query_text(q) for q in qids]
        query_words = {split_word(w)[1].lower() for qt in queries for w in words(qt)}

        # the victim's score of the original: its candidate score (free), else one counted query
        before = []
        for q in qids:
            cand = victim.candidates(q)
            before.append(float(cand[target.doc_id]) if target.doc_id in cand else float(victim.score_texts(q, [join_words(ws)])[0]))
        current_victim = list(before)

        grads = [self.surrogate.word_gradients(qt, join_words(ws)) for qt in queries]
        importance = [sum(g.importance[i] for g in grads) for i in range(n)]
        current_surrogate = sum(g.score for g in grads)
        surrogate_before = current_surrogate
        allowed = self.allowed(ws, query_words)
        order = sorted((i for i in range(n) if allowed[i]), key=lambda i: (-importance[i], i))

        def at_top() -> bool:
            return all(victim.rank_with(q, target.doc_id, s) == 1 for q, s in zip(qids, current_victim))

        swaps: list[list[Any]] = []
        checked = 0
        reached = at_top()
        for i in order:
            if len(swaps) >= budget or reached:
                break
            lead, core, trail = split_word(ws[i])
            cands = [c for c in self.source.candidates(core, self.k) if c and c.lower() != core.lower() and _ALPHA.match(c)]
            if not cands:
                continue
            variants = []
            for c in cands:
                trial = list(ws)
                trial[i] = f"{lead}{c}{trail}"
                variants.append(trial)
            texts = [join_words(v) for v in variants]
            sur: list[float | None] = [None] * len(texts)
            ranked = self._nearest(cands, grads, i) if self.choose == "nearest" else None
            if ranked is None:  # choose=score, or a word the surrogate did not see (cut off): score them all
                sur = self._surrogate_scores(queries, texts)
                ranked = sorted(range(len(texts)), key=lambda j: (-sur[j], j))
            tried = 0
            for j in ranked:
                if tried >= self.victim_checks:
                    break
                if sur[j] is None:  # choose=nearest: the surrogate scores only what is about to be checked
                    sur[j] = self._surrogate_scores(queries, [texts[j]])[0]
                if self.require_surrogate_gain and not sur[j] > current_surrogate:
                    if self.choose == "score":
                        break  # the rest score lower still
                    continue
                tried += 1
                checked += 1
                scores = self._victim_scores(ctx, qids, texts[j])
                if sum(scores) > sum(current_victim):
                    swaps.append([i, ws[i], variants[j][i]])
                    ws = variants[j]
                    current_victim, current_surrogate = scores, sur[j]
                    reached = at_top()
                    break
        text = join_words(ws)
        details = {"swaps": swaps, "max_changes": budget, "checked": checked, "reached_top": reached,
                   "victim_score_before": before[0] if len(before) == 1 else before,
                   "victim_score_after": current_victim[0] if len(current_victim) == 1 else current_victim,
                   "surrogate_score_before": surrogate_before, "surrogate_score_after": current_surrogate,
                   "surrogate": self.used_surrogate}
        return Perturbation(text=text, original=original, changed=len(swaps), total_words=n,
                            victim_queries=int(getattr(victim, "queries_used", 0)) - used0, details=details)
