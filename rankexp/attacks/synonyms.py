"""Substitution candidates for a word (:class:`rankexp.attacks.base.SynonymSource`).

* :class:`WordNetSynonyms` — the lemma names of the word's WordNet 3.0 synsets (every part of
  speech; NLTK's ``morphy`` maps inflected forms to their base, so ``cars`` gets ``auto``). Single
  alphabetic words only (``railway_car`` and ``of_import`` are left out), never the word itself nor
  its base form (``car`` for ``cars``), in
  WordNet's sense order (most frequent sense first, then each synset's lemma order): a fixed,
  deterministic order, so the first ``k`` are the most common senses' synonyms. The data is read
  from ``$NLTK_DATA``, else ``$RANKEXP_SHARED/nltk_data``, else ``../shared/nltk_data`` beside the
  repository.
* :class:`EmbeddingNeighbours` — the nearest neighbours by cosine similarity in a model's input
  word-embedding matrix (the surrogate's, or all-MiniLM-L6-v2's): only whole-word vocabulary entries
  (alphabetic, no ``##`` continuation pieces, no special or ``[unused]`` tokens, no stopwords), an
  optional cosine threshold. A word that is not one whole-word vocabulary entry has no neighbours.
  Raw embedding neighbours are mostly the word's own inflections and derivations (``car`` ->
  ``cars``, ``computer`` -> ``computing``); with ``skip_same_stem`` (default) a neighbour that shares
  the word's stem (its first ``max(3, len - 3)`` letters, either way round) is left out.
  PRADA draws its candidates from (counter-fitted) word embeddings in the same way: the neighbours
  of the word in an embedding space, above a similarity threshold.
* :class:`SynonymUnion` — both: the sources' lists interleaved (first of each, second of each, ...),
  duplicates dropped.

Every source keeps the word's casing (``Car`` -> ``Auto``, ``CAR`` -> ``AUTO``) and returns bare
words; the attack strips and re-attaches punctuation (``car,`` -> ``auto,``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from rankexp.errors import ConfigError

# English function words: never substituted (a swap there changes grammar, not meaning) and never
# proposed as neighbours. Written for rankexp (NLTK's stopwords corpus is not in shared/nltk_data).
STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each either
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's may me might more
most must mustn't my myself neither no nor not now of off on once only or other ought our ours ourselves out over
own same shall shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them
themselves then there there's therefore these they they'd they'll they're they've this those though through thus to
too under until up upon us very via was wasn't we we'd we'll we're we've were weren't what what's when when's where
where's whether which while who who's whom whose why why's will with within without won't would wouldn't yet you
you'd you'll you're you've your yours yourself yourselves
""".split())

_ALPHA = re.compile(r"^[A-Za-z]+$")


def is_stopword(word: str) -> bool:
    return word.lower() in STOPWORDS


def match_case(word: str, candidate: str) -> str:
    """``candidate`` in ``word``'s casing: UPPER (two letters or more), Title, or as given (lower)."""
    if len(word) > 1 and word.isupper():
        return candidate.upper()
    if word[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def same_stem(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` share a stem: either contains the other's first ``max(3, len - 3)`` letters."""
    return a[: max(3, len(a) - 3)] in b or b[: max(3, len(b) - 3)] in a


def _dedupe(words: Iterable[str], exclude: str, k: int) -> list[str]:
    out, seen = [], {exclude.lower()}
    for w in words:
        key = w.lower()
        if key not in seen:
            seen.add(key)
            out.append(w)
            if len(out) >= k:
                break
    return out


# --------------------------------------------------------------------------------------- WordNet
def nltk_data_dirs() -> list[Path]:
    """Where WordNet is looked for, in order: $NLTK_DATA (a path list), $RANKEXP_SHARED/nltk_data,
    ../shared/nltk_data beside the repository."""
    dirs = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if os.environ.get("RANKEXP_SHARED"):
        dirs.append(Path(os.environ["RANKEXP_SHARED"]) / "nltk_data")
    dirs.append(Path(__file__).resolve().parents[3] / "shared" / "nltk_data")
    return dirs


_WORDNET = None


def load_wordnet():
    """NLTK's WordNet reader over the first directory that holds ``corpora/wordnet(.zip)``; one
    line (ConfigError) when there is none."""
    global _WORDNET
    if _WORDNET is not None:
        return _WORDNET
    dirs = nltk_data_dirs()
    found = [d for d in dirs if (d / "corpora" / "wordnet.zip").is_file() or (d / "corpora" / "wordnet").is_dir()]
    if not found:
        raise ConfigError(f"WordNet not found (looked for corpora/wordnet.zip under {', '.join(map(str, dirs))}): "
                          f"set NLTK_DATA to the folder that holds it, e.g. ../shared/nltk_data")
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:  # pragma: no cover - nltk is a dependency of rankexp
        raise ConfigError("synonyms=wordnet needs the nltk package (pip install nltk)") from None
    root = found[0]
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    try:
        location = "corpora/wordnet.zip/wordnet/" if (root / "corpora" / "wordnet.zip").is_file() else "corpora/wordnet/"
        with warnings.catch_warnings():  # "multilingual functions are not available": English only, as intended
            warnings.simplefilter("ignore")
            _WORDNET = WordNetCorpusReader(nltk.data.find(location), None)
    except Exception as e:  # a corrupt or incomplete copy (e.g. no lexnames)
        raise ConfigError(f"WordNet under {root} cannot be read ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                          f"set NLTK_DATA to a complete copy") from None
    return _WORDNET


class WordNetSynonyms:
    """WordNet synonyms (see the module docstring).

    Args:
        max_candidates: at most this many candidates per word, whatever ``k`` asks (None: no cap).
    """

    name = "wordnet"

    def __init__(self, max_candidates: int | None = None):
        if max_candidates is not None and int(max_candidates) < 1:
            raise ConfigError(f"WordNetSynonyms: max_candidates must be >= 1, got {max_candidates}")
        self.max_candidates = None if max_candidates is None else int(max_candidates)
        self.wordnet = load_wordnet()
        self._cache: dict[str, list[str]] = {}

    def all_candidates(self, word: str) -> list[str]:
        """Every single-word lemma of ``word``'s synsets, lower case, in sense order, without ``word``."""
        key = word.lower()
        if key not in self._cache:
            # the word's own base forms (cars -> car) are not substitutions either
            own = {key} | {b for pos in ("n", "v", "a", "r") for b in [self.wordnet.morphy(key, pos)] if b}
            lemmas = (name.lower() for s in self.wordnet.synsets(key) for name in s.lemma_names())
            self._cache[key] = _dedupe((n for n in lemmas if _ALPHA.match(n) and n not in own), key, 10**9)
        return self._cache[key]

    def candidates(self, word: str, k: int) -> list[str]:
        if not word or not _ALPHA.match(word):
            return []
        limit = k if self.max_candidates is None else min(k, self.max_candidates)
        return [match_case(word, c) for c in self.all_candidates(word)[: max(int(limit), 0)]]


# ------------------------------------------------------------------------------------- embeddings
class EmbeddingNeighbours:
    """Nearest whole-word neighbours in an input embedding matrix.

    Args:
        embeddings: ``[V, H]`` (a torch tensor or array): row ``i`` is vocabulary id ``i``.
        vocab: token -> id (``tokenizer.get_vocab()``).
        threshold: keep neighbours whose cosine similarity is at least this (None: no threshold).
        max_candidates: at most this many candidates per word (None: no cap).
        skip_same_stem: leave out neighbours that share the word's stem (inflections, derivations).
    """

    name = "embedding"

    def __init__(self, embeddings, vocab: dict[str, int], threshold: float | None = None,
                 max_candidates: int | None = None, skip_same_stem: bool = True):
        import torch

        if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"EmbeddingNeighbours: threshold is a cosine similarity in [-1, 1], got {threshold}")
        matrix = torch.as_tensor(embeddings).detach().float().cpu()
        if matrix.dim() != 2:
            raise ConfigError(f"EmbeddingNeighbours: embeddings must be a [vocab, dim] matrix, got shape {tuple(matrix.shape)}")
        self.threshold = None if threshold is None else float(threshold)
        self.max_candidates = None if max_candidates is None else int(max_candidates)
        self.skip_same_stem = bool(skip_same_stem)
        self.vocab = {t: i for t, i in vocab.items() if 0 <= i < matrix.shape[0]}
        # the neighbours' pool: whole alphabetic words, no ## pieces / [CLS] / [unused0] / stopwords
        pool = sorted((t, i) for t, i in self.vocab.items() if _ALPHA.match(t) and not is_stopword(t))
        self.pool_tokens = [t for t, _ in pool]
        ids = torch.tensor([i for _, i in pool], dtype=torch.long)
        self.normed = torch.nn.functional.normalize(matrix, dim=-1)
        self.pool = self.normed[ids] if len(ids) else self.normed[:0]
        self._cache: dict[str, list[tuple[str, float]]] = {}

    @classmethod
    def from_encoder(cls, encoder, threshold: float | None = None, max_candidates: int | None = None) -> "EmbeddingNeighbours":
        """The input embeddings of a rankexp encoder (cross or bi) and its tokenizer."""
        from rankexp.attacks.surrogate import input_embeddings

        return cls(input_embeddings(encoder).weight, encoder.tokenizer.get_vocab(), threshold, max_candidates)

    @classmethod
    def from_model(cls, name: str = "all-MiniLM-L6-v2", threshold: float | None = None,
                   max_candidates: int | None = None) -> "EmbeddingNeighbours":
        """The input embeddings of a Hugging Face model (``all-MiniLM-L6-v2`` works offline)."""
        from transformers import AutoModel

        from rankexp.models.encoders import load_tokenizer, resolve_model_path

        tokenizer = load_tokenizer(name)
        try:
            model = AutoModel.from_pretrained(resolve_model_path(name))
        except Exception as e:
            raise ConfigError(f"embedding neighbours: cannot load {name!r} ({type(e).__name__}); not a local path, or offline") from None
        return cls(model.get_input_embeddings().weight, tokenizer.get_vocab(), threshold, max_candidates)

    def neighbours(self, word: str) -> list[tuple[str, float]]:
        """(token, cosine) of the pool words, most similar first (ties by token), without ``word``;
        empty when ``word`` is not one whole-word vocabulary entry."""
        key = word.lower()
        if key in self._cache:
            return self._cache[key]
        i = self.vocab.get(key) if key in self.vocab else self.vocab.get(word)
        if i is None or not _ALPHA.match(word) or not len(self.pool_tokens):
            self._cache[key] = []
            return []
        sims = (self.pool @ self.normed[i]).tolist()
        ranked = sorted(((t, s) for t, s in zip(self.pool_tokens, sims) if t.lower() != key), key=lambda x: (-x[1], x[0]))
        if self.threshold is not None:
            ranked = [(t, s) for t, s in ranked if s >= self.threshold]
        if self.skip_same_stem:
            ranked = [(t, s) for t, s in ranked if not same_stem(key, t.lower())]
        self._cache[key] = ranked[:256]  # no caller asks for more
        return self._cache[key]

    def candidates(self, word: str, k: int) -> list[str]:
        if not word or not _ALPHA.match(word):
            return []
        limit = k if self.max_candidates is None else min(k, self.max_candidates)
        return [match_case(word, t) for t, _ in self.neighbours(word)[: max(int(limit), 0)]]


class SynonymUnion:
    """The candidates of several sources, interleaved (round robin), duplicates dropped."""

    def __init__(self, sources: Sequence):
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)

    def candidates(self, word: str, k: int) -> list[str]:
        lists = [s.candidates(word, k) for s in self.sources]
        merged = [lst[j] for j in range(max((len(l) for l in lists), default=0)) for lst in lists if j < len(lst)]
        return _dedupe(merged, word, max(int(k), 0))
