"""Measures of an attack run (Wu et al., "Are Neural Ranking Models Robust?", arXiv 2108.05018, and the
measures PRADA / PAT report), as pure functions of per-target records.

A target's record holds one *pair* per attacked query (one for a plain target, one per query of
the group for a topic-oriented target): ``old_rank`` / ``new_rank`` (1 = top; ties against the
target, :func:`rankexp.attacks.victims.rank_among`) and Kendall's τ of the victim's ranking of the
query's candidates before vs after. Rank measures are means over all pairs::

    success rate   SR    = mean[ new_rank < old_rank ]                (the target moved up)
    top-10 rate    T10   = mean[ new_rank <= 10 ]
    top-50 rate    T50   = mean[ new_rank <= 50 ]
    avg rank boost Boost = mean( old_rank - new_rank )
    Kendall's τ          = mean τ_b(scores before, scores after)  (pairs with a defined τ)

Text measures are means over targets: the perturbation percentage (changed words / words of the
original, :attr:`rankexp.attacks.base.Perturbation.percent`), the semantic similarity
``cos(E(original), E(perturbed))`` of sentence embeddings (all-MiniLM-L6-v2 by default,
:class:`SentenceEmbedder`), and the victim queries the attack used (total and per target).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

RANK_MEASURES = ("success_rate", "top10_rate", "top50_rate", "avg_boost", "kendall_tau")
TEXT_MEASURES = ("perturbation_pct", "similarity", "victim_queries_per_target")
MEASURES = RANK_MEASURES + TEXT_MEASURES


def _mean(xs: Sequence[float]) -> float | None:
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else None


def success_rate(old: Sequence[int], new: Sequence[int]) -> float | None:
    return _mean([1.0 if n < o else 0.0 for o, n in zip(old, new)])


def top_rate(new: Sequence[int], k: int) -> float | None:
    return _mean([1.0 if n <= k else 0.0 for n in new])


def avg_boost(old: Sequence[int], new: Sequence[int]) -> float | None:
    return _mean([o - n for o, n in zip(old, new)])


def ranking_tau(before: Mapping[str, float], doc_id: str, new_score: float) -> float:
    """Kendall's τ-b between the victim's scores of ``before``'s documents and the same scores with
    ``doc_id``'s replaced by ``new_score``; ``before`` must hold ``doc_id`` with its old score (the
    runner passes the query's candidates plus the target, for a target outside them)."""
    from rankexp.eval.correlation import kendall_tau

    ids = list(before)
    after = dict(before)
    after[doc_id] = float(new_score)
    return kendall_tau([before[d] for d in ids], [after[d] for d in ids])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def similarities(originals: Sequence[str], perturbed: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> list[float]:
    """``cos(E(o), E(p))`` per pair; ``embed(texts) -> [n, dim]``."""
    if not originals:
        return []
    e = np.asarray(embed(list(originals) + list(perturbed)), dtype=np.float64)
    n = len(originals)
    return [cosine(e[i], e[n + i]) for i in range(n)]


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The measures over per-target records (``results.jsonl`` lines)."""
    pairs = [p for r in records for p in r["pairs"]]
    old = [int(p["old_rank"]) for p in pairs]
    new = [int(p["new_rank"]) for p in pairs]
    queries = [int(r.get("victim_queries", 0)) for r in records]
    taus = [p.get("kendall_tau") for p in pairs]
    return {
        "targets": len(records), "pairs": len(pairs),
        "success_rate": success_rate(old, new), "top10_rate": top_rate(new, 10), "top50_rate": top_rate(new, 50),
        "avg_boost": avg_boost(old, new),
        "kendall_tau": _mean([t for t in taus if t is not None]),
        "kendall_tau_undefined": sum(1 for t in taus if t is None or (isinstance(t, float) and math.isnan(t))),
        "perturbation_pct": _mean([r["percent"] for r in records]),
        "similarity": _mean([r.get("similarity") for r in records]),
        "victim_queries": sum(queries), "victim_queries_per_target": _mean(queries),
        "old_rank_mean": _mean(old), "new_rank_mean": _mean(new),
    }


def per_target_values(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """measure -> target key -> value (mean over the target's pairs), for ``perquery.tsv`` and
    paired comparisons across attack runs on the same targets."""
    out: dict[str, dict[str, float]] = {m: {} for m in MEASURES}
    for r in records:
        ps = r["pairs"]
        vals = {"success_rate": success_rate([p["old_rank"] for p in ps], [p["new_rank"] for p in ps]),
                "top10_rate": top_rate([p["new_rank"] for p in ps], 10), "top50_rate": top_rate([p["new_rank"] for p in ps], 50),
                "avg_boost": avg_boost([p["old_rank"] for p in ps], [p["new_rank"] for p in ps]),
                "kendall_tau": _mean([p.get("kendall_tau") for p in ps]), "perturbation_pct": r["percent"],
                "similarity": r.get("similarity"), "victim_queries_per_target": float(r.get("victim_queries", 0))}
        for m, v in vals.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                out[m][r["key"]] = float(v)
    return out


def changed_snippet(original: str, perturbed: str, context: int = 5) -> dict[str, str]:
    """The first changed region of two texts (in words) with ``context`` words either side."""
    import difflib

    from rankexp.attacks.base import join_words, words

    a, b = words(original), words(perturbed)
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops:
        return {"original": join_words(a[: 2 * context]), "perturbed": join_words(b[: 2 * context])}
    _, i1, i2, j1, j2 = ops[0]
    last = ops[min(len(ops), 3) - 1]  # up to the first three changes, when close together
    if last[1] - i2 <= 2 * context:
        i2, j2 = last[2], last[4]
    pre = "... " if i1 - context > 0 else ""
    return {"original": pre + join_words(a[max(0, i1 - context): i2 + context]) + (" ..." if i2 + context < len(a) else ""),
            "perturbed": pre + join_words(b[max(0, j1 - context): j2 + context]) + (" ..." if j2 + context < len(b) else "")}


class SentenceEmbedder:
    """``embed(texts) -> [n, dim]`` with rankexp's bi-encoder (mean pooling, L2-normalised):
    ``all-MiniLM-L6-v2`` by default, the sentence encoder rankexp ships. Loaded on first use."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", max_length: int = 256, batch_size: int = 32, device: str = "cpu"):
        self.name, self.max_length, self.batch_size, self.device = name, max_length, batch_size, device
        self._model = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            from rankexp.models.biencoder import BiEncoder

            self._model = BiEncoder(name=self.name, max_length=self.max_length, pooling="mean", similarity="cos").eval().to(self.device)
        m = self._model
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = m.tokenizer(texts[i: i + self.batch_size], padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="pt")
                out.append(m.encode(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)
