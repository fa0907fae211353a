"""CertDR: certified top-K robustness of a ranker to word substitution, by randomized smoothing.

Wu, Zhang, Guo, Chen, Fan, de Rijke, Cheng, "Certified Robustness to Word Substitution Ranking
Attack for Neural Ranking Models", CIKM 2022 (arXiv 2209.06691), building on the random word
substitution smoothing of Ye, Gong, Liu, "SAFER" (ACL 2020) and on randomized smoothing (Cohen et
al., ICML 2019).

What could be read, and what had to be chosen
-----------------------------------------------
Only the paper's abstract and introduction were readable here (the body, with its numbered
definitions and theorem, was not). The statements below are written from the abstract, from SAFER's
construction (which the paper says it follows) and from the authors' released evaluation procedure
(a random-substitution table, a total-variation table, the smoothed score as the mean of
sigmoid-normalised scores, and the certification margin with a Hoeffding term). **The numbering
(Definition 1, Theorem 1) is this module's, not verified against the paper.** Where rankexp chose,
it says so ("choice").

Setting
-------
A query q, a ranked list of candidates L_q = [d_1 > d_2 > ... > d_n] by a ranking model. A word
substitution ranking attack (WSRA) promotes one target document d (out of the top K) by replacing
words w_j of d with synonyms from the **perturbation set** S(w_j); S(d) is every document reachable
that way (any number of words replaced).

Definition 1 (Certified Top-K Robustness). A ranking model is certified top-K robust on L_q when
no document out of the top K can be moved into the top K by any attack: for every d_i with
i > K and every d' in S(d_i), d' ranks below d_K.

Random substitution (SAFER). Each word w has a **random-substitution set** T(w) that contains w;
the distribution Pi_d over texts draws each word of d independently and uniformly from T(w_j)
(a word without synonyms stays). The **smoothed ranker** scores

    g(q, d) = E_{Z ~ Pi_d} [ f(q, Z) ],   f = sigmoid(s(q, Z))  in [0, 1]              (1)

with s the base ranker's score (the paper normalises BERT's logit with a sigmoid).

Total variation bound (SAFER Theorem 1, as used by CertDR). For an attacked word w -> w' in S(w),
the per-position overlap of the two uniform distributions is |T(w) & T(w')| / max(|T(w)|, |T(w')|);
taking the worst synonym,

    q(w) = min_{w' in S(w)} |T(w) & T(w')| / max(|T(w)|, |T(w')|)   (q(w) = 1 if S(w) is empty)
    Delta_d = 1 - prod_j q(w_j)   >=   max_{d' in S(d)} TV(Pi_d, Pi_d')                      (2)

(a coupling that agrees on every position with probability prod_j q(w_j)). As f is in [0, 1],
|g(q, d') - g(q, d)| <= TV(Pi_d, Pi_d') <= Delta_d for every d' in S(d).

Theorem 1 (certification). Rank the candidates by g. The smoothed ranker is certified top-K
robust on q if

    g(q, d_K) - g(q, d_{K+1}) - max_{i > K} Delta_{d_i} > 0                                 (3)

since any attacked d' of d_i (i > K) then scores g(q, d') <= g(q, d_i) + Delta_{d_i} < g(q, d_K).

Monte Carlo (the released procedure). g is estimated from N samples, ĝ = mean of f; Hoeffding gives
|ĝ - g| <= eps = sqrt(ln(2/alpha) / (2N)) with probability >= 1 - alpha for each estimate; the
certification subtracts 2 eps (one for d_K, one for the strongest challenger):

    ĝ(d_K) - ĝ(d_{K+1}) - max_{i > K} Delta_{d_i} - 2 eps > 0                              (4)

CRQ@K, the certified robust query rate, is the share of queries for which (4) holds.

rankexp's choices
-----------------
* Perturbation set S(w): the first ``synonyms_k`` candidates of a synonym source (WordNet by
  default, the source the attacks use; or a TSV table) for alphabetic words; stopwords are never
  substituted (as rankexp's attacks), so S(stopword) is empty.
* Random-substitution set T(w) (``random_set``). SAFER (and the released CertDR tables) take the
  connected components of the synonym graph of a counter-fitted embedding: a component of at most M
  words is T for each of its words (so q(w) = 1 inside it), a larger one gives each word its M
  nearest. rankexp's ``reach`` is the same idea on the synonym source's graph: T(w) = the words
  reachable from w through S, breadth first, at most M = ``random_set_size`` (100, as the released
  tables); ``synonyms`` (the default) is T(w) = [w] + S(w). Any T is sound: q(w) in (2) is computed
  exactly from the sets; T only decides how tight Delta is and how far the draws drift. WordNet's
  synonym graph is one giant component, so ``reach`` sets are 100-word neighbourhoods that overlap
  little and drift in meaning (5 vaswani queries, BM25, N=200, budget 1: max Delta 0.99 vs 0.91 and
  the smoothed nDCG@10 0.41 vs 0.49, victim 0.57); hence the default ``synonyms``.
* Attack budget (``budget``). The released procedure sorts the per-word factors of (2) into a
  variable named ``truncated`` before the product (apparently the hook for a budget; it uses all). If an attack substitutes at most r words, the positions it leaves
  unchanged have identical distributions, so Delta_d(r) = 1 - (product of the r smallest q(w_j)).
  ``budget: null`` (any number of words, the default) is Definition 1 as stated; ``r`` or ``"p%"``
  (ceil(p/100 * |d|) words, as the attacks' percentage budgets) certify against budgeted attacks.
* The overlap in (2) divides by max(|T(w)|, |T(w')|), the exact overlap of two uniform
  distributions; the released code divides by |T(w)|, which overstates it when |T(w')| > |T(w)|.
* A document none of whose words has a synonym is drawn without randomness: its ĝ is exact (its
  eps is 0) and it cannot be attacked (Delta = 0). (4) is evaluated per document:
  ĝ(d_K) - eps_K - max_{i>K} (ĝ(d_i) + eps_i) - max_{i>K} Delta_i > 0, which is (4) when every
  document has synonyms. When no document below K can be attacked at all, Definition 1 holds
  trivially and the query is certified (counted as ``trivial``).
* ``correction: bonferroni`` uses alpha / (number of candidates) for eps, so that all estimates of
  a query hold together with probability >= 1 - alpha (the paper's eps, ``none``, is the default).
  ``off`` drops the Monte Carlo term (eps = 0), condition (3) on the estimates: the released
  evaluation script's default (its ``--consider_mc_error`` flag is off unless given); not a
  certificate with a stated confidence, only for comparing with numbers computed that way.
* f = sigmoid((s - shift) / scale): ``scale`` makes a BM25 or cosine score range usable.
* Casing and punctuation of a word are kept when it is replaced (``Car,`` -> ``Auto,``); the
  certificate covers attacks that do the same (rankexp's attacks do).
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rankexp.attacks.base import join_words, words
from rankexp.errors import ConfigError, DataError

_AFFIX = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
_ALPHA = re.compile(r"^[A-Za-z]+$")


# ------------------------------------------------------------------------------------- settings
@dataclass
class CertifySettings:
    samples: int = 1000  # N random substitutions per (query, document)
    alpha: float = 0.05  # 1 - confidence of each Hoeffding estimate
    ks: tuple[int, ...] = (10, 20)  # certify top-K for each K
    synonyms: str = "wordnet"  # wordnet | a TSV file (word<TAB>synonym synonym ...)
    synonyms_k: int = 10  # |S(w)|: at most this many synonyms per word
    random_set: str = "synonyms"  # T(w): synonyms ([w] + S(w)) | reach (SAFER-like clusters)
    random_set_size: int = 100  # at most this many words in T(w) (SAFER's perturbation_constraint)
    budget: Any = None  # the attacker substitutes at most: null (any number) | r words | "p%" of the words
    skip_stopwords: bool = True
    depth: int = 100  # candidates per query (the first stage's top depth)
    max_queries: int | None = None  # the first n selected queries (None: all)
    seed: int = 0
    scale: float = 1.0  # f = sigmoid((s - shift) / scale)
    shift: float = 0.0
    correction: str = "none"  # none | bonferroni | off (no Monte Carlo term)
    batch_texts: int = 4096  # texts per victim call (memory)

    @classmethod
    def from_node(cls, node: Mapping[str, Any] | None) -> "CertifySettings":
        node = dict(node or {})
        unknown = sorted(set(node) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"certify.{unknown[0]}: unknown setting (known: {', '.join(cls.__dataclass_fields__)})")
        ks = node.pop("ks", cls.ks)
        ks = (ks,) if isinstance(ks, (int, str)) else tuple(ks)
        try:
            s = cls(**node, ks=tuple(int(k) for k in ks))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"certify: {e}") from None
        s.validate()
        return s

    def validate(self) -> None:
        def bad(key, what, value):
            raise ConfigError(f"certify.{key} must be {what}, got {value!r}")

        def number(key, kind=float):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                bad(key, "an integer" if kind is int else "a number", value)
            return value

        if number("samples", int) < 1:
            bad("samples", "an integer >= 1", self.samples)
        if not 0.0 < number("alpha") < 1.0:
            bad("alpha", "in (0, 1)", self.alpha)
        for key in ("synonyms_k", "random_set_size", "depth", "seed", "batch_texts"):
            number(key, int)
        number("scale"), number("shift")
        if not self.ks or any(k < 1 for k in self.ks):
            bad("ks", "a list of integers >= 1", list(self.ks))
        if self.synonyms_k < 1:
            bad("synonyms_k", "an integer >= 1", self.synonyms_k)
        if self.random_set not in ("reach", "synonyms"):
            bad("random_set", "reach or synonyms", self.random_set)
        if self.random_set_size < 2:
            bad("random_set_size", "an integer >= 2", self.random_set_size)
        parse_budget(self.budget)
        if self.depth < 2:
            bad("depth", "an integer >= 2", self.depth)
        if max(self.ks) >= self.depth:  # no candidate below rank K: every query would be certified trivially
            k = max(self.ks)
            raise ConfigError(f"certify.depth must exceed every K of certify.ks (the candidates below rank K are the "
                              f"challengers): got depth {self.depth} for K = {k}; use certify.depth > {k} or smaller certify.ks")
        if self.max_queries is not None and int(self.max_queries) < 1:
            bad("max_queries", "null or an integer >= 1", self.max_queries)
        if not float(self.scale) > 0:
            bad("scale", "> 0", self.scale)
        if self.correction not in ("none", "bonferroni", "off"):
            bad("correction", "none, bonferroni or off", self.correction)
        if self.batch_texts < 1:
            bad("batch_texts", "an integer >= 1", self.batch_texts)

    def identity(self) -> dict[str, Any]:
        """What the results depend on (max_queries and batch_texts do not: a re-run with more
        queries continues the same output directory)."""
        d = asdict(self)
        d.pop("max_queries"), d.pop("batch_texts")
        d["ks"] = list(self.ks)
        if self.synonyms != "wordnet" and Path(self.synonyms).expanduser().is_file():  # a table: its content
            from rankexp.utils.hashing import stable_hash

            d["synonyms_table"] = stable_hash(Path(self.synonyms).expanduser().read_text(encoding="utf-8"), 16)
        return d


# ----------------------------------------------------------------------------- synonym sources
class TableSynonyms:
    """A synonym table from a TSV file: ``word<TAB>synonym synonym ...`` per line (lower case)."""

    name = "table"

    def __init__(self, path: str | Path):
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"certify.synonyms={path}: neither 'wordnet' nor a TSV file (word<TAB>synonyms)")
        self.table: dict[str, list[str]] = {}
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if "\t" not in line:
                raise DataError(f"{p}:{n}: expected 'word<TAB>synonym synonym ...', got {line[:60]!r}")
            word, syns = line.split("\t", 1)
            self.table[word.strip().lower()] = [s for s in syns.lower().split() if s != word.strip().lower()]

    def candidates(self, word: str, k: int) -> list[str]:
        return self.table.get(word.lower(), [])[:k]


def synonym_source(spec: str):
    if spec == "wordnet":
        from rankexp.attacks.synonyms import WordNetSynonyms

        return WordNetSynonyms()
    return TableSynonyms(spec)


# ------------------------------------------------------------------------ perturbation sets (2)
class PerturbationSets:
    """S(w) (what an attack may substitute), T(w) = [w] + S(w) (the random substitution), q(w), Delta_d."""

    def __init__(self, source, k: int, skip_stopwords: bool = True, random_set: str = "synonyms", random_set_size: int = 100,
                 budget: int | str | None = None):
        self.source, self.k, self.skip_stopwords = source, int(k), skip_stopwords
        self.mode, self.size = random_set, int(random_set_size)
        self.budget = parse_budget(budget)
        self._s: dict[str, tuple[str, ...]] = {}
        self._t: dict[str, tuple[str, ...]] = {}
        self._q: dict[str, float] = {}

    def attack_set(self, key: str) -> tuple[str, ...]:
        if key not in self._s:
            syns: tuple[str, ...] = ()
            if _ALPHA.match(key) and not (self.skip_stopwords and _stopword(key)):
                seen, out = {key}, []
                for c in self.source.candidates(key, self.k):
                    c = c.lower()
                    if _ALPHA.match(c) and c not in seen:
                        seen.add(c)
                        out.append(c)
                syns = tuple(out[: self.k])
            self._s[key] = syns
        return self._s[key]

    def random_set(self, key: str) -> tuple[str, ...]:
        """T(w): ``synonyms``: [w] + S(w); ``reach``: the words reachable from w through S (breadth
        first, w first), at most ``random_set_size`` of them (SAFER's cluster sets, with the synonym
        graph's reachability for its embedding components: words of one small cluster share T, q = 1)."""
        if key not in self._t:
            if self.mode == "synonyms" or not self.attack_set(key):
                self._t[key] = (key, *self.attack_set(key))
            else:
                order, seen, i = [key], {key}, 0
                while i < len(order) and len(order) < self.size:
                    for nb in self.attack_set(order[i]):
                        if nb not in seen:
                            seen.add(nb)
                            order.append(nb)
                    i += 1
                self._t[key] = tuple(order[: self.size])
        return self._t[key]

    def overlap(self, key: str) -> float:
        """q(w) of (2)."""
        if key not in self._q:
            t = set(self.random_set(key))
            q = 1.0
            for other in self.attack_set(key):
                t2 = set(self.random_set(other))
                q = min(q, len(t & t2) / max(len(t), len(t2)))
            self._q[key] = q
        return self._q[key]

    def delta(self, text: str) -> float:
        """Delta_d of (2): an upper bound on TV(Pi_d, Pi_d') over every attacked d' of d."""
        qs = sorted(self.overlap(split_word(w)[1].lower()) for w in words(text))
        if self.budget is not None:  # at most r words substituted: the r smallest q(w) bound the TV
            qs = qs[: self.budget(len(qs))]
        return max(0.0, 1.0 - math.prod(qs))

    def attackable(self, text: str) -> bool:
        return any(self.attack_set(split_word(w)[1].lower()) for w in words(text))

    def sample(self, text: str, n: int, rng: random.Random) -> list[str]:
        """``n`` draws from Pi_d: each word uniformly from T(w), casing and punctuation kept."""
        slots = []
        for w in words(text):
            pre, core, post = split_word(w)
            options = self.random_set(core.lower())
            slots.append((w, pre, core, post, options))
        out = []
        for _ in range(n):
            ws = []
            for w, pre, core, post, options in slots:
                if len(options) == 1:
                    ws.append(w)
                    continue
                pick = options[rng.randrange(len(options))]
                ws.append(w if pick == core.lower() else pre + _match_case(core, pick) + post)
            out.append(join_words(ws))
        return out


def parse_budget(budget: int | str | None) -> Callable[[int], int] | None:
    """``None`` (any number of words), ``r`` (at most r words) or ``"p%"`` (at most ceil(p/100 * words))."""
    if budget is None:
        return None
    text = str(budget).strip()
    try:
        if text.endswith("%"):
            p = float(text[:-1])
            if not 0 < p <= 100:
                raise ValueError
            return lambda n: math.ceil(p / 100.0 * n - 1e-9)
        r = int(text)
        if r < 1:
            raise ValueError
        return lambda n: r
    except ValueError:
        raise ConfigError(f"certify.budget must be null, a number of words >= 1 or a percentage in (0, 100]%, got {budget!r}") from None


def split_word(w: str) -> tuple[str, str, str]:
    """``"(Car),"`` -> ``("(", "Car", "),")``."""
    m = _AFFIX.match(w)
    return (m.group(1), m.group(2), m.group(3)) if m else ("", w, "")


def _match_case(word: str, candidate: str) -> str:
    from rankexp.attacks.synonyms import match_case

    return match_case(word, candidate)


def _stopword(key: str) -> bool:
    from rankexp.attacks.synonyms import is_stopword

    return is_stopword(key)


# ---------------------------------------------------------------------- smoothing (1) and (4)
def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def hoeffding(n: int, alpha: float) -> float:
    """eps with P(|ĝ - g| >= eps) <= alpha for the mean of n samples in [0, 1]."""
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


ScoreTexts = Callable[[str, Sequence[str]], Sequence[float]]


@dataclass
class Smoothed:
    scores: dict[str, float]  # ĝ per document, (1)
    delta: dict[str, float]  # Delta_d, (2)
    attackable: dict[str, bool]
    texts_scored: int  # distinct texts the victim scored
    samples: int


def smooth_query(score_texts: ScoreTexts, qid: str, docs: Mapping[str, str], sets: PerturbationSets, n: int, seed: int,
                 scale: float = 1.0, shift: float = 0.0, batch_texts: int = 4096) -> Smoothed:
    """ĝ(q, d) for each document: the mean of f over ``n`` draws from Pi_d (each distinct text scored
    once, weighted by how often it was drawn). Each document's draws depend only on (seed, qid, doc)."""
    counts: dict[str, Counter] = {}
    for doc, text in docs.items():
        if sets.attackable(text):
            counts[doc] = Counter(sets.sample(text, n, random.Random(f"{seed}\t{qid}\t{doc}")))
        else:
            counts[doc] = Counter({text: n})
    flat = [(doc, t) for doc, c in counts.items() for t in c]
    values: list[float] = []
    for i in range(0, len(flat), batch_texts):
        chunk = flat[i:i + batch_texts]
        got = list(score_texts(qid, [t for _, t in chunk]))
        if len(got) != len(chunk):
            raise DataError(f"the victim returned {len(got)} scores for {len(chunk)} texts")
        values.extend(got)
    total: dict[str, float] = {d: 0.0 for d in docs}
    for (doc, t), s in zip(flat, values):
        total[doc] += counts[doc][t] * sigmoid((float(s) - shift) / scale)
    return Smoothed({d: total[d] / n for d in docs}, {d: sets.delta(t) for d, t in docs.items()},
                    {d: sets.attackable(t) for d, t in docs.items()}, len(flat), n)


def certify_ranking(scores: Mapping[str, float], delta: Mapping[str, float], attackable: Mapping[str, bool],
                    ks: Sequence[int], eps: float) -> dict[int, dict[str, Any]]:
    """Condition (4) for each K on one query's smoothed scores (ranked in trec_eval order).

    Returns K -> {certified, margin, trivial, kth, challenger, max_delta}; a query with at most K
    candidates is trivially certified (nothing can enter its top K)."""
    from rankexp.eval.trec_io import sort_ranking

    ranked = [d for d, _ in sort_ranking(dict(scores))]
    out: dict[int, dict[str, Any]] = {}
    for k in ks:
        below = ranked[k:]
        if not below or not any(attackable[d] for d in below):
            out[k] = {"certified": True, "trivial": True, "margin": None, "kth": ranked[min(k, len(ranked)) - 1] if ranked else None,
                      "challenger": None, "max_delta": 0.0}
            continue
        kth = ranked[k - 1]
        e = lambda d: eps if attackable[d] else 0.0  # noqa: E731
        challenger = max(below, key=lambda d: scores[d] + e(d))
        max_delta = max(delta[d] for d in below)
        margin = (scores[kth] - e(kth)) - (scores[challenger] + e(challenger)) - max_delta
        out[k] = {"certified": margin > 0, "trivial": False, "margin": margin, "kth": kth, "challenger": challenger,
                  "max_delta": max_delta}
    return out


@dataclass
class QueryResult:
    qid: str
    plain: dict[str, float]  # the victim's own scores of the candidates
    smoothed: dict[str, float]
    delta: dict[str, float]
    attackable: dict[str, bool]
    eps: float
    cert: dict[int, dict[str, Any]] = field(default_factory=dict)
    texts_scored: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cert"] = {str(k): v for k, v in self.cert.items()}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "QueryResult":
        d = dict(d)
        d["cert"] = {int(k): v for k, v in d["cert"].items()}
        return cls(**d)


def certify_query(score_texts: ScoreTexts, qid: str, docs: Mapping[str, str], plain: Mapping[str, float],
                  sets: PerturbationSets, settings: CertifySettings) -> QueryResult:
    """Smooth one query's candidates (1) and certify its top-K for every K (4)."""
    sm = smooth_query(score_texts, qid, docs, sets, settings.samples, settings.seed, settings.scale, settings.shift,
                      settings.batch_texts)
    alpha = settings.alpha / (len(docs) if settings.correction == "bonferroni" else 1)
    eps = 0.0 if settings.correction == "off" else hoeffding(settings.samples, alpha)
    cert = certify_ranking(sm.scores, sm.delta, sm.attackable, settings.ks, eps)
    return QueryResult(qid, dict(plain), sm.scores, sm.delta, sm.attackable, eps, cert, sm.texts_scored)


def crq(results: Sequence[QueryResult], ks: Sequence[int]) -> dict[str, Any]:
    """CRQ@K (share of queries certified), with counts and the trivially certified ones."""
    n = len(results)
    out: dict[str, Any] = {}
    for k in ks:
        c = sum(bool(r.cert[k]["certified"]) for r in results)
        t = sum(bool(r.cert[k]["trivial"]) for r in results)
        margins = [r.cert[k]["margin"] for r in results if r.cert[k]["margin"] is not None]
        out[f"CRQ@{k}"] = c / n if n else None
        out[f"certified@{k}"] = {"queries": c, "of": n, "trivial": t,
                                 "median_margin": statistics.median(margins) if margins else None}
    return out


# ------------------------------------------------------------------------------ the certify run
@dataclass
class CertifyRun:
    id: str
    path: Path
    metrics: dict[str, Any]
    results: list[QueryResult]


def read_results(path: Path) -> list[QueryResult]:
    """``results.jsonl``; a last line cut by an interruption is dropped (and cut from the file)."""
    import json

    if not path.exists():
        return []
    raw = path.read_bytes()
    out, good = [], 0
    for line in raw.split(b"\n"):
        if not line.strip():
            good += len(line) + 1
            continue
        try:
            out.append(QueryResult.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            break
        good += len(line) + 1
    if good < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(min(good, len(raw)))
    return out


def append_result(path: Path, r: QueryResult) -> None:
    import json
    import os

    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(r.to_json(), sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_certify_victim(spec: str | Path, base, overrides: Sequence[str], depth: int, queries):
    """A :mod:`rankexp.attacks.victims` victim over the first stage's top ``depth``: ``bm25`` (scored by
    formula), or a run directory / HF cross-encoder / sentence-transformers model (a RerankSession)."""
    from omegaconf import OmegaConf

    from rankexp.attacks.victims import NeuralVictim, load_victim
    from rankexp.pipeline.loading import load_ranker
    from rankexp.pipeline.rerank import RerankSession, rerank_config

    if str(spec).lower() == "bm25":
        cfg = base.copy()
        OmegaConf.update(cfg, "eval.rerank_k", depth, merge=False)
        victim, _, cfg = load_victim("bm25", cfg, overrides, queries)
        return victim, cfg
    try:
        ranker = load_ranker(spec, base.get("model"))
    except ConfigError as e:
        raise ConfigError(f"VICTIM {spec!r} is not a ranker: give bm25, a rankexp run directory, a .ckpt, a Hugging Face "
                          f"cross-encoder or a sentence-transformers bi-encoder ({e})") from None
    cfg = rerank_config(base, ranker, overrides).copy()  # a run directory's own data, first stage and eval
    OmegaConf.update(cfg, "eval.rerank_k", depth, merge=False)
    return NeuralVictim(RerankSession(cfg, ranker, queries=queries), spec), cfg


def run_certify(victim: str | Path, overrides: Sequence[str] = (), *, cfg=None, queries: str | Sequence[str] = "test",
                out: str | Path | None = None) -> CertifyRun:
    """Certify ``victim``'s smoothed ranker on the selected queries' candidates (see the module
    docstring); writes ``outputs/certify/<id>/`` and continues a cut-off run from ``results.jsonl``."""
    import time

    from omegaconf import OmegaConf

    from rankexp.attacks.victims import quiet_bars
    from rankexp.config.compose import compose, to_container
    from rankexp.utils.hashing import stable_hash
    from rankexp.utils.io import write_text
    from rankexp.utils.progress import task

    t0 = time.perf_counter()
    base = cfg if cfg is not None else compose(list(overrides))
    settings = CertifySettings.from_node(OmegaConf.to_container(base.certify, resolve=True) if base.get("certify") else None)
    sets = PerturbationSets(synonym_source(settings.synonyms), settings.synonyms_k, settings.skip_stopwords,
                            settings.random_set, settings.random_set_size, settings.budget)
    vic, cfg = load_certify_victim(victim, base, overrides, settings.depth, queries)
    qids = vic.qids[: settings.max_queries] if settings.max_queries else list(vic.qids)
    cont = to_container(cfg)
    encoder = getattr(getattr(vic, "session", None), "ranker", None)
    encoder = encoder.encoder if encoder is not None else None
    rid = stable_hash({"victim": vic.identity(), "data": cont["data"], "candidates": vic.info.get("candidates"),
                       "queries": queries if isinstance(queries, str) else list(queries),
                       "lengths": [getattr(encoder, "max_length", None), getattr(encoder, "max_query_length", None)],
                       "fast": cont["eval"].get("fast"), "certify": settings.identity()}, 10)
    path = Path(out).expanduser() if out is not None else Path(cfg.paths.output_dir) / "certify" / rid
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / "config.yaml", OmegaConf.to_yaml(cfg))
    done = {r.qid: r for r in read_results(path / "results.jsonl")}
    todo = [q for q in qids if q not in done and vic.candidate_ids.get(q)]
    used0 = vic.queries_used

    def score_texts(qid, texts):
        with quiet_bars():  # one bar for the whole certification, not one per victim call
            return vic.score_texts(qid, texts)

    if todo:
        n_docs = sum(len(vic.candidate_ids[q]) for q in todo)
        with task(f"certdr: {len(todo)} queries x {settings.samples} substitutions", n_docs) as advance:
            for q in todo:
                with quiet_bars():
                    plain = vic.candidates(q)
                docs = {d: vic.doc_text(d) for d in vic.candidate_ids[q]}
                r = certify_query(score_texts, q, docs, plain, sets, settings)
                append_result(path / "results.jsonl", r)
                done[q] = r
                advance(len(docs))
    results = [done[q] for q in qids if q in done]
    metrics = write_outputs(path, rid, results, vic, cfg, settings,
                            {"wall_s": round(time.perf_counter() - t0, 2), "texts_scored_now": vic.queries_used - used0,
                             "queries_resumed": len(qids) - len(todo)})
    return CertifyRun(rid, path, metrics, results)


def write_outputs(path: Path, rid: str, results: Sequence[QueryResult], vic, cfg, settings: CertifySettings,
                  info: Mapping[str, Any]) -> dict[str, Any]:
    """``run.trec`` (the smoothed ranker), ``perquery.tsv`` and ``metrics.json``; measured beside the
    victim's own ranking (and the first stage's, for a neural victim) on the judged queries."""
    from rankexp.eval.measures import parse_measures
    from rankexp.eval.trec_io import write_run
    from rankexp.pipeline.evaluate import evaluate_beside
    from rankexp.tracking.rundir import RunDir
    from rankexp.utils.io import write_json

    coll = vic.collection
    smoothed = {r.qid: r.smoothed for r in results}
    plain = {r.qid: r.plain for r in results}
    write_run(path / "run.trec", smoothed, tag=f"rankexp-certdr-{rid}")
    judged = [r.qid for r in results if coll.relevant(r.qid)]
    tables: dict[str, dict] = {"certdr": {}}
    for k in settings.ks:
        tables["certdr"][f"certified@{k}"] = {r.qid: float(bool(r.cert[k]["certified"])) for r in results}
        tables["certdr"][f"margin@{k}"] = {r.qid: r.cert[k]["margin"] for r in results if r.cert[k]["margin"] is not None}
    session = getattr(vic, "session", None)
    cand_name = session.candidates_name if session is not None else "first_stage"
    metrics: dict[str, Any] = {
        "id": rid, "victim": vic.name, "dataset": coll.name, "split": vic.info.get("queries_label"),
        "candidates": {"name": cand_name, "depth": settings.depth, "source": vic.info.get("candidates")},
        "settings": {**settings.identity(), "max_queries": settings.max_queries},
        "epsilon": results[0].eps if results else hoeffding(settings.samples, settings.alpha),
        "queries": {"certified_on": len(results), "evaluated": len(judged)},
        **crq(results, settings.ks),
        "mean_max_delta": {str(k): _mean([r.cert[k]["max_delta"] for r in results]) for k in settings.ks},
        "texts_scored": sum(r.texts_scored for r in results),
        **dict(info),
    }
    if judged:
        refs = {"victim": {q: plain[q] for q in judged}}
        if session is not None:  # a neural victim reranked the first stage's candidates: that ranking too
            refs[cand_name] = {q: session.candidates[q] for q in judged}
        measures = [str(m) for m in parse_measures(list(cfg.eval.measures))]
        ev = evaluate_beside({q: smoothed[q] for q in judged}, refs, {q: coll.qrels[q] for q in judged}, judged, measures)
        metrics.update({"provider": ev.model.provider, "smoothed": ev.model.aggregate, "victim_plain": ev.references["victim"].aggregate,
                        "baseline": ({"name": cand_name, **ev.references[cand_name].aggregate} if cand_name in ev.references else None),
                        "paired_ttest": ev.paired})
        tables.update(ev.perquery_tables("smoothed"))
    else:
        metrics.update({"smoothed": None, "victim_plain": None, "baseline": None})
    RunDir(path).write_perquery(tables)
    write_json(path / "metrics.json", metrics)
    return metrics


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
