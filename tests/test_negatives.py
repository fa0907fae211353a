"""Negative samplers never return a relevant document, respect their pool, and are seeded."""

from __future__ import annotations

import random

import pytest

from rankexp.data.collection import Collection
from rankexp.data.examples import build_groups
from rankexp.data.negatives import BM25Negatives, RandomNegatives
from rankexp.errors import ConfigError, DataError

DOCS = {f"d{i}": f"text {i}" for i in range(30)}
COLL = Collection("toy", "toy", DOCS, {"q1": "a", "q2": "b"}, {"q1": {"d0": 1, "d1": 2, "d2": 0}, "q2": {"d5": 1}})
RUN = {"q1": {f"d{i}": 10.0 - i for i in range(10)}, "q2": {"d5": 3.0, "d6": 2.0}}


@pytest.mark.parametrize("sampler", [BM25Negatives(depth=5), BM25Negatives(depth=8, skip_top=2), RandomNegatives()], ids=repr)
def test_never_relevant(sampler):
    sampler.setup(COLL, RUN)
    rng = random.Random(0)
    for _ in range(200):
        negs = sampler.sample("q1", COLL.relevant("q1"), 3, rng)
        assert len(negs) == len(set(negs)) == 3
        assert not set(negs) & {"d0", "d1"}


def test_bm25_pool_is_the_rank_window():
    s = BM25Negatives(depth=6, skip_top=2)
    s.setup(COLL, RUN)
    seen = set()
    rng = random.Random(1)
    for _ in range(300):
        seen |= set(s.sample("q1", COLL.relevant("q1"), 2, rng))
    # ranks 3..6 of q1 are d2..d5; none relevant (d2 is judged non-relevant: a valid negative)
    assert seen == {"d2", "d3", "d4", "d5"}
    assert s.stats()["fallback_to_random"] == 0


def test_bm25_falls_back_to_random_and_counts_it():
    s = BM25Negatives(depth=5)
    s.setup(COLL, RUN)
    negs = s.sample("q2", COLL.relevant("q2"), 3, random.Random(0))  # pool: only d6
    assert "d6" in negs and "d5" not in negs and len(set(negs)) == 3
    assert s.stats()["fallback_to_random"] == 2


def test_groups_are_seeded_and_positive_first():
    s = BM25Negatives(depth=10)
    s.setup(COLL, RUN)
    a = build_groups(COLL, ["q1", "q2"], s, 2, 10, seed=3)
    b = build_groups(COLL, ["q1", "q2"], s, 2, 10, seed=3)
    assert a == b and len(a) == 10
    for g in a:
        assert g.doc_ids[0] in COLL.relevant(g.qid) and not set(g.doc_ids[1:]) & COLL.relevant(g.qid)
    assert build_groups(COLL, ["q1", "q2"], s, 2, 10, seed=4) != a


def test_bad_arguments_and_tiny_corpus():
    with pytest.raises(ConfigError):
        BM25Negatives(depth=5, skip_top=5)
    tiny = Collection("t", "t", {"a": "x", "b": "y"}, {"q": "z"}, {"q": {"a": 1}})
    s = RandomNegatives()
    s.setup(tiny, {})
    with pytest.raises(DataError, match="corpus too small"):
        s.sample("q", {"a"}, 3, random.Random(0))
