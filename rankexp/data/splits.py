"""Deterministic train/dev/test query splits for collections that ship without a training split.

Rule (documented in the README): take the queries that have at least one relevant judgment, in
natural id order; shuffle them with ``random.Random(split_seed)``; the first ``round(test·n)`` are
test, the next ``round(dev·n)`` dev, the rest train. ``split_seed`` is separate from the training
``seed`` so that runs with different seeds are evaluated on the same test queries (paired tests
need that). The split is stored in every run directory as ``split.json``.
"""

from __future__ import annotations

import random
from typing import Sequence

from rankexp.errors import DataError


def split_queries(qids: Sequence[str], dev: float = 0.1, test: float = 0.3, seed: int = 0) -> dict[str, list[str]]:
    if not (0 <= dev < 1 and 0 < test < 1 and dev + test < 1):
        raise DataError(f"data.split: need 0 <= dev, 0 < test and dev + test < 1, got dev={dev}, test={test}")
    order = list(qids)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = max(1, round(test * n))
    n_dev = round(dev * n)
    split = {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "train": order[n_test + n_dev :]}
    if not split["train"]:
        raise DataError(f"empty train split: {n} queries with relevant judgments, dev={dev}, test={test} leave none for training")
    return split
