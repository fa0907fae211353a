"""Curriculum weighting: MacAvaney, Nardini, Perego, Tonellotto, Goharian, Frieder,
"Training Curricula for Open Domain Answer Re-Ranking", SIGIR 2020 (arXiv:2004.14269).

A first-stage run (the run's own first stage, BM25 top-1000 by default, or any TREC run file via
``curriculum.run_file`` and :func:`load_run_file`) says how *easy* each training sample is: a relevant document
the first stage ranks high, or a non-relevant one it ranks low, is easy (the paper's Figure 1). Early
in training a sample's loss is multiplied by its easiness D in [0, 1]; the weight rises linearly to 1
over the first m optimizer steps and stays 1 afterwards (the paper's weighting function W(q, d, i)):

    W = D + (1 - D) * i / m     for i < m            W = 1     for i >= m

Three easiness heuristics (the paper's difficulty heuristics), each a pure function of
(first_stage_run, qrels) returning ``{qid: {doc_id: D}}``; relevant means grade >= 1:

* ``reciprank``  D = 1/r for a relevant document at rank r, 1 - 1/r for a non-relevant one.
* ``normscore``  S' = first-stage score min-max normalised within the query; D = S' (relevant),
  1 - S' (non-relevant).
* ``kdescore``   Gaussian kernel density estimates f_rel, f_non of S' for relevant and non-relevant
  documents (pooled over the training queries); D = f_own(S') / (f_rel(S') + f_non(S')), i.e. the
  share of the density at S' that belongs to the document's own class.

Pairwise samples (for the paper's pairwise loss): D(q, d+, d-) = (D(q, d+) + D(q, d-)) / 2, which is
(v+ - v- + 1) / 2 with v the "relevance-likeness" 1/r, S' or P(rel | S') -- the form the authors'
released pairwise trainer computes. For a group with several negatives the hardest negative decides:
D = (D(q, d+) + min_j D(q, d-_j)) / 2. A group of size 1 (pointwise) uses D(q, d+).
Anti-curriculum (hardest first): 1 - D replaces the group's D.

Equations are cited by the paper's names, not numbers: only the abstract and Figure 1 of the paper
could be read offline, so the numbering could not be checked. The heuristics and the pairwise
combination were cross-checked against the authors' released trainers (OpenNIR ``pairwise-cl``).

Choices where the paper leaves room (all in docs/curriculum.md):

* The paper's training samples are drawn from the first-stage run, so it needs no rule for documents
  the run lacks. We use the limit r -> inf (a score below every retrieved one): an absent *relevant*
  document has D = 0 (hardest), an absent non-relevant / unjudged one D = 1 (easiest).
* normscore's S' is min-max within each query (our reading of "normalised score").
* Ranks follow trec_eval's order (score descending, ties by doc id descending). A query whose scores
  are all equal (or that has one document) has S' = 1 for every document: all tie with the top.
* kdescore pools S' over queries that have at least one relevant document in qrels, with scipy's
  ``gaussian_kde`` (Scott's bandwidth) and equal class priors. On large runs (points x samples
  > ``KDE_EXACT_LIMIT``) the density share is evaluated on a 4097-point grid over [0, 1] and
  linearly interpolated, and a class with more than ``KDE_MAX_SAMPLES`` scores is fitted on that
  many evenly spaced order statistics with the full sample's Scott bandwidth (an exact evaluation
  of a top-1000 run would be quadratic in its size). When a class has < 2 samples or its
  KDE is singular (all values equal), kdescore falls back to normscore (a warning is logged).
* In a group, a document's role (first = positive, rest = negatives) decides which form it enters
  with, as in the paper's pairwise formula; qrels only decide the per-document tables.
* ``application="example"`` multiplies each sample's loss by its W (the paper's formulation);
  ``application="batch"`` scales the batch-mean loss by the batch-mean W (the reduction the authors'
  released trainer uses; the parts of the paper we could read define no batch-level variant).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence

import numpy as np
import torch

from rankexp.techniques.base import Weighter

log = logging.getLogger(__name__)

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]
Table = dict[str, dict[str, float]]

HEURISTICS = ("reciprank", "normscore", "kdescore")
KDE_EXACT_LIMIT = 50_000_000  # evaluation points x KDE samples up to which kdescore evaluates exactly
KDE_GRID_POINTS = 4097        # beyond it: grid over S' in [0, 1], linear interpolation
KDE_MAX_SAMPLES = 20_000      # a larger class is fitted on this many evenly spaced order statistics
APPLICATIONS = ("example", "batch")


def _relevant(qrels: Qrels, qid: str, doc: str) -> bool:
    return qrels.get(qid, {}).get(doc, 0) >= 1


def _ranks(docs: Mapping[str, float]) -> dict[str, int]:
    """1-based ranks in trec_eval order: score descending, ties by doc id descending."""
    ordered = sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    return {doc: r for r, (doc, _) in enumerate(ordered, 1)}


def _minmax(docs: Mapping[str, float]) -> dict[str, float]:
    """S' = (s - min) / (max - min) within one query; 1.0 for all when max == min."""
    if not docs:
        return {}
    lo, hi = min(docs.values()), max(docs.values())
    if hi <= lo:
        return {doc: 1.0 for doc in docs}
    return {doc: (float(s) - lo) / (hi - lo) for doc, s in docs.items()}


def _label(likeness: Mapping[str, Mapping[str, float]], run: Run, qrels: Qrels) -> Table:
    """Turn relevance-likeness v into easiness: D = v (relevant), 1 - v (otherwise).
    Judged documents missing from the run get v = 0 (rank -> inf): relevant 0, non-relevant 1."""
    table: Table = {}
    for qid, docs in likeness.items():
        table[qid] = {d: (v if _relevant(qrels, qid, d) else 1.0 - v) for d, v in docs.items()}
    for qid, judged in qrels.items():
        row = table.setdefault(qid, {})
        for doc, grade in judged.items():
            if doc not in run.get(qid, {}):
                row[doc] = 0.0 if grade >= 1 else 1.0
    return table


def reciprank(first_stage_run: Run, qrels: Qrels) -> Table:
    """Reciprocal-rank heuristic: D = 1/r (relevant at rank r), 1 - 1/r (non-relevant)."""
    return _label({q: {d: 1.0 / r for d, r in _ranks(docs).items()} for q, docs in first_stage_run.items()},
                  first_stage_run, qrels)


def normscore(first_stage_run: Run, qrels: Qrels) -> Table:
    """Normalised-score heuristic: D = S' (relevant), 1 - S' (non-relevant); S' min-max per query."""
    return _label({q: _minmax(docs) for q, docs in first_stage_run.items()}, first_stage_run, qrels)


def _fit_kde(gaussian_kde, values: list[float]):
    """gaussian_kde with Scott's bandwidth for len(values); a class larger than KDE_MAX_SAMPLES is
    represented by that many evenly spaced order statistics (same distribution, same bandwidth)."""
    x = np.asarray(values, dtype=float)
    if x.size <= KDE_MAX_SAMPLES:
        return gaussian_kde(x)
    sub = np.sort(x)[np.linspace(0, x.size - 1, KDE_MAX_SAMPLES).round().astype(int)]
    return gaussian_kde(sub, bw_method=x.size ** -0.2)


def kdescore(first_stage_run: Run, qrels: Qrels) -> Table:
    """KDE heuristic: D = f_own(S') / (f_rel(S') + f_non(S')), f_* Gaussian KDEs of S' per class.

    Fitted on S' pooled over queries with >= 1 relevant document; falls back to :func:`normscore`
    when a class has < 2 samples or a singular KDE."""
    from scipy.stats import gaussian_kde

    norm = {q: _minmax(docs) for q, docs in first_stage_run.items()}
    rel, non = [], []
    for qid, docs in norm.items():
        if not any(g >= 1 for g in qrels.get(qid, {}).values()):
            continue
        for doc, s in docs.items():
            (rel if _relevant(qrels, qid, doc) else non).append(s)
    try:
        if len(rel) < 2 or len(non) < 2:
            raise ValueError(f"{len(rel)} relevant and {len(non)} non-relevant scores; need >= 2 of each")
        f_rel, f_non = _fit_kde(gaussian_kde, rel), _fit_kde(gaussian_kde, non)
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.warning("kdescore: cannot fit the score KDEs (%s); falling back to normscore", exc)
        return normscore(first_stage_run, qrels)

    def share(xs: np.ndarray) -> np.ndarray:
        pr, pn = f_rel(xs), f_non(xs)
        total = pr + pn
        return np.divide(pr, total, out=np.full_like(total, 0.5), where=total > 0)

    xs = np.fromiter((s for docs in norm.values() for s in docs.values()), dtype=float)
    if xs.size * (len(rel) + len(non)) <= KDE_EXACT_LIMIT:
        p = share(xs)
    else:  # a full BM25 top-1000 run: evaluate on a grid over [0, 1] and interpolate (S' is in [0, 1])
        grid = np.linspace(0.0, 1.0, KDE_GRID_POINTS)
        p = np.interp(xs, grid, share(grid))
    likeness: dict[str, dict[str, float]] = {}
    pos = 0
    for qid, docs in norm.items():
        likeness[qid] = {doc: float(v) for doc, v in zip(docs, p[pos:pos + len(docs)])}
        pos += len(docs)
    return _label(likeness, first_stage_run, qrels)


HEURISTIC_FNS: dict[str, Callable[[Run, Qrels], Table]] = {
    "reciprank": reciprank, "normscore": normscore, "kdescore": kdescore,
}


def load_run_file(path: str, train_qids: Sequence[str], doc_ids: Collection[str]) -> dict[str, dict[str, float]]:
    """The curriculum's own first-stage run from a TREC run file (``curriculum.run_file``), restricted
    to the training queries. One-line :class:`DataError` when the file is missing or malformed, holds
    none of the training queries, or none of its documents is in the corpus; documents the corpus
    lacks are dropped with a warning (they can never appear in a training group)."""
    from rankexp.errors import DataError
    from rankexp.eval.trec_io import read_run

    try:
        run = read_run(path)
    except DataError as e:
        raise DataError(f"curriculum.run_file: {e}") from None
    wanted = set(train_qids)
    kept = {q: docs for q, docs in run.items() if q in wanted}
    if not kept:
        raise DataError(f"curriculum.run_file {path}: none of the {len(wanted)} training query ids is in it "
                        f"(run e.g. {sorted(run)[:3]}, training e.g. {sorted(wanted)[:3]})")
    known = {q: {d: s for d, s in docs.items() if d in doc_ids} for q, docs in kept.items()}
    n_all, n_known = sum(map(len, kept.values())), sum(map(len, known.values()))
    if n_known == 0:
        example = next(iter(next(iter(kept.values()))))
        raise DataError(f"curriculum.run_file {path}: no document id of the training queries is in the corpus (e.g. {example!r})")
    if n_known < n_all:
        log.warning("curriculum.run_file %s: %d of %d entries name documents the corpus lacks; dropped", path, n_all - n_known, n_all)
    missing = len(wanted - set(kept))
    if missing:
        log.warning("curriculum.run_file %s: %d of %d training queries are not in it; their documents count as "
                    "absent from the run", path, missing, len(wanted))
    return {q: docs for q, docs in known.items() if docs}


def schedule(d: torch.Tensor, step: int, m: int) -> torch.Tensor:
    """W = D + (1 - D) * i / m for i < m, else 1 (the paper's weighting function W(q, d, i))."""
    if step >= m:
        return torch.ones_like(d)
    return d + (1.0 - d) * (max(step, 0) / m)


class CurriculumWeighter(Weighter):
    """Curriculum (or anti-curriculum) example weights from a first-stage run.

    Args:
        heuristic: "reciprank", "normscore" or "kdescore".
        m_steps: end of the curriculum in optimizer steps (takes precedence over ``m_fraction``).
        m_fraction: end of the curriculum as a fraction (0, 1] of ``max_steps``.
        anti: anti-curriculum: hardest samples weighted highest (1 - D replaces D).
        application: "example" (sum(w_i * loss_i) / B) or "batch" (mean(w) * mean(loss)).
        run_file: a TREC run file to take the easiness from instead of the run's first stage (read by
            :meth:`training_run` with :func:`load_run_file`; ``setup`` receives its contents).

    The module calls ``weights(batch, step)``, which reads the batch's query and document ids
    (``__call__(qids, doc_ids, step)``, the same weights from ids alone).
    """

    def __init__(self, heuristic: str, m_steps: int | None = None, m_fraction: float | None = None,
                 anti: bool = False, application: str = "example", run_file: str | None = None) -> None:
        if heuristic not in HEURISTICS:
            raise ValueError(f"curriculum heuristic must be one of {', '.join(HEURISTICS)}; got {heuristic!r}")
        if application not in APPLICATIONS:
            raise ValueError(f"curriculum application must be one of {', '.join(APPLICATIONS)}; got {application!r}")
        if m_steps is None and m_fraction is None:
            raise ValueError("curriculum needs its end m: set m_steps (optimizer steps) or m_fraction (of max_steps)")
        if m_steps is not None and (isinstance(m_steps, bool) or not isinstance(m_steps, int) or m_steps < 1):
            raise ValueError(f"curriculum m_steps must be an integer >= 1; got {m_steps!r}")
        if m_steps is None and (isinstance(m_fraction, bool) or not isinstance(m_fraction, (int, float))
                                or not 0.0 < float(m_fraction) <= 1.0):
            raise ValueError(f"curriculum m_fraction must be a number in (0, 1]; got {m_fraction!r}")
        if not isinstance(anti, bool):
            raise ValueError(f"curriculum anti must be true or false; got {anti!r}")
        self.heuristic, self.m_steps, self.m_fraction = heuristic, m_steps, m_fraction
        self.anti, self.application = anti, application
        if run_file and not Path(str(run_file)).is_file():  # fail before any expensive work
            raise ValueError(f"curriculum run_file not found: {run_file}")
        self.run_file = str(run_file) if run_file else None
        self.m: int | None = None
        self._likeness: dict[str, dict[str, float]] = {}
        self._seen: list[torch.Tensor] = []

    def training_run(self, first_stage, train_qids, doc_ids):
        """``curriculum.run_file``: the easiness comes from another ranker's run (training queries only)."""
        return load_run_file(self.run_file, train_qids, doc_ids) if self.run_file else first_stage

    def setup(self, first_stage: Run, qrels: Qrels, max_steps: int) -> None:
        if self.m_steps is not None:
            self.m = int(self.m_steps)
        else:
            if max_steps is None or max_steps < 1:
                raise ValueError(f"curriculum m_fraction needs max_steps >= 1 (got {max_steps!r}); set m_steps instead")
            self.m = max(1, round(float(self.m_fraction) * max_steps))
        table = HEURISTIC_FNS[self.heuristic](first_stage, qrels)
        # store relevance-likeness v (D of the document *as a positive*); a negative's D is 1 - v
        self._likeness = {q: {d: (e if _relevant(qrels, q, d) else 1.0 - e) for d, e in row.items()}
                          for q, row in table.items()}

    def easiness(self, qid: str, doc_ids: Sequence[str]) -> float:
        """The group's D: (D(q, d+) + min_j D(q, d-_j)) / 2; D(q, d+) for a group of one."""
        row = self._likeness.get(qid, {})
        d_pos = row.get(doc_ids[0], 0.0)
        if len(doc_ids) == 1:
            return d_pos
        d_neg = min(1.0 - row.get(doc, 0.0) for doc in doc_ids[1:])
        return (d_pos + d_neg) / 2.0

    def __call__(self, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], step: int) -> torch.Tensor:
        if self.m is None:
            raise RuntimeError("CurriculumWeighter.setup(first_stage, qrels, max_steps) must run before training")
        if len(qids) != len(doc_ids):
            raise ValueError(f"got {len(qids)} qids but {len(doc_ids)} document groups")
        d = torch.tensor([self.easiness(q, docs) for q, docs in zip(qids, doc_ids)], dtype=torch.float32)
        if self.anti:
            d = 1.0 - d
        w = schedule(d.clamp(0.0, 1.0), int(step), self.m)
        self._seen.append(w.detach())
        return w

    def log_stats(self) -> dict[str, float]:
        if not self._seen:
            return {}
        w = torch.cat(self._seen).double()
        self._seen = []
        q = torch.quantile(w, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
        stats = {"mean": w.mean(), "min": w.min(), "max": w.max(), "p10": q[0], "p50": q[1], "p90": q[2]}
        return {k: float(v) for k, v in stats.items()}
