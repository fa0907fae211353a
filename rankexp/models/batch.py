"""The training batch: everything a loss or a weighter may look at, in one object.

The datamodule's collate function builds a :class:`Batch` from ``B`` training groups (a query, its
positive document and ``G - 1`` negatives); the LightningModule scores it and hands scores and batch
to the loss and the weighter. A technique that needs more than scores says so with a class attribute
``requires`` (a set of names); the optional fields below are filled only when some component
requires them, and a requirement nothing can provide is one :class:`~rankexp.errors.ConfigError`
before training starts (:func:`check_requirements`).

Fields (``B`` groups of ``G`` documents, the positive in column 0):

* ``qids``            ``[B]`` query ids
* ``doc_ids``         ``[B][G]`` document ids, positive first
* ``labels``          ``[B, G]`` float: 1 for the group's positive, 0 for its negatives
* ``inputs``          the cross-encoder's tokenized pairs ``[B*G, L]`` (group-major); empty for a bi-encoder
* ``queries``/``docs`` the bi-encoder's tokenized queries ``[B, Lq]`` and documents ``[B*G, Ld]``
* ``teacher_scores``  ``[B, G]`` a teacher's score for each document (``requires = {"teacher_scores"}``)
* ``first_stage_scores`` ``[B, G]`` the first-stage run's score (``requires = {"first_stage_scores"}``)
* ``weights``         ``[B]`` the example weights of this step (set by the module from the weighter; None = uniform)
* ``extras``          anything else a technique adds during the step, e.g. ``ranks``/``mask`` from ADORE's miner

A score field is NaN for a (query, document) pair its run does not hold (a random negative is rarely in
the first stage's top k); a technique that requires it decides what that means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch

from rankexp.errors import ConfigError

Run = Mapping[str, Mapping[str, float]]

# the optional per-document fields the datamodule fills from a run when a component requires them,
# each with what it takes to provide it (for the error message)
SCORE_FIELDS: dict[str, str] = {
    "teacher_scores": "a teacher's scored run (no teacher run is configured for this run)",
    "first_stage_scores": "the first-stage run (first_stage=...)",
}


@dataclass
class Batch:
    qids: list[str]
    doc_ids: list[list[str]]
    labels: torch.Tensor
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    queries: dict[str, torch.Tensor] | None = None
    docs: dict[str, torch.Tensor] | None = None
    teacher_scores: torch.Tensor | None = None
    first_stage_scores: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_groups(cls, qids: Sequence[str], doc_ids: Sequence[Sequence[str]], **fields) -> "Batch":
        """A batch of groups (positive first) with binary labels; ``fields`` fill the rest."""
        doc_ids = [list(g) for g in doc_ids]
        if not doc_ids or len({len(g) for g in doc_ids}) != 1:
            raise ValueError(f"a batch needs groups of one size, got sizes {sorted({len(g) for g in doc_ids})}")
        if len(qids) != len(doc_ids):
            raise ValueError(f"{len(qids)} query ids for {len(doc_ids)} groups")
        labels = torch.zeros((len(doc_ids), len(doc_ids[0])))
        labels[:, 0] = 1.0
        return cls(list(qids), doc_ids, labels, **fields)

    @property
    def size(self) -> int:
        """B, the number of groups."""
        return len(self.qids)

    @property
    def group_size(self) -> int:
        """G, the documents per group (1 positive + negatives)."""
        return len(self.doc_ids[0]) if self.doc_ids else 0

    def require(self, name: str, who: str) -> Any:
        """The field or extra ``name``; a one-line error naming ``who`` needs it when it is absent."""
        value = getattr(self, name, None) if name in SCORE_FIELDS else self.extras.get(name)
        if value is None:
            raise ConfigError(f"{who} needs {name} in the training batch, but this run does not provide it "
                              f"(declare requires = {{{name!r}}} so the run checks it before training)")
        return value


def scores_for(run: Run, qids: Sequence[str], doc_ids: Sequence[Sequence[str]]) -> torch.Tensor:
    """``[B, G]`` scores of each group's documents in ``run``; NaN for a pair the run lacks."""
    out = [[float(run.get(q, {}).get(d, math.nan)) for d in group] for q, group in zip(qids, doc_ids)]
    return torch.tensor(out, dtype=torch.float32)


def requirements(components: Iterable[Any]) -> dict[str, list[str]]:
    """``name -> [component, ...]``: what the given losses/weighters (anything with ``requires``) need."""
    needed: dict[str, list[str]] = {}
    for c in components:
        for name in sorted(getattr(c, "requires", ()) or ()):
            needed.setdefault(name, []).append(type(c).__name__)
    return needed


def check_requirements(components: Iterable[Any], sources: Mapping[str, Run | None] | None = None,
                       provided: Iterable[str] = ()) -> dict[str, Run]:
    """The runs the collate function must read the required score fields from.

    ``sources`` maps a score field (:data:`SCORE_FIELDS`) to the run that can fill it (None = not
    available in this run); ``provided`` names extras another component supplies during the step (a
    dynamic sampler's ``provides``). A requirement nothing provides is one :class:`ConfigError` naming
    the component and what it needs.
    """
    sources = dict(sources or {})
    provided = set(provided)
    runs: dict[str, Run] = {}
    for name, who in requirements(components).items():
        if name in provided:
            continue
        if name not in SCORE_FIELDS:
            raise ConfigError(f"{', '.join(who)} requires {name!r}, which no part of this run provides "
                              f"(the batch can carry {', '.join(SCORE_FIELDS)}; other inputs come from a sampler "
                              f"that provides them)")
        run = sources.get(name)
        if run is None:
            raise ConfigError(f"{', '.join(who)} requires {name} in every training batch: that needs "
                              f"{SCORE_FIELDS[name]}")
        runs[name] = run
    return runs
