"""Hard negatives: samplers, false-negative filters, exact dense search, ADORE, the mining cache."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from rankexp.data.collection import Collection
from rankexp.data.negatives import BM25Negatives, RandomNegatives
from rankexp.data.negatives.base import MiningContext
from rankexp.data.negatives.dense_dynamic import DenseDynamicNegatives
from rankexp.data.negatives.dense_static import DenseStaticNegatives
from rankexp.data.negatives.filters import FalseNegativeFilter
from rankexp.data.negatives.mined import FileNegatives, read_negatives, write_negatives
from rankexp.data.negatives.mixed import MixedNegatives
from rankexp.errors import ConfigError, DataError
from rankexp.retrieval.dense import DenseIndex, fuse
from rankexp.tracking.cache import Cache

TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
WORDS = "protein cell gene tumour virus immune enzyme membrane signal receptor binding kinase".split()


def toy_collection(n_docs=60, seed=0) -> Collection:
    rng = random.Random(seed)
    docs = {f"d{i}": " ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for i in range(n_docs)}
    queries = {f"q{i}": " ".join(rng.choices(WORDS, k=3)) for i in range(6)}
    qrels = {f"q{i}": {f"d{3 * i}": 1, f"d{3 * i + 1}": 2, f"d{3 * i + 2}": 0} for i in range(6)}
    return Collection("toy", f"toy{seed}-{n_docs}", docs, queries, qrels)


def tiny_bi(**kw):
    from rankexp.models.biencoder import BiEncoder

    torch.manual_seed(0)
    return BiEncoder(max_length=32, max_query_length=12, tiny=TINY, **kw)


def toy_run(coll: Collection) -> dict:
    rng = random.Random(1)
    return {q: {d: rng.random() * 10 for d in rng.sample(sorted(coll.docs), 40)} for q in coll.queries}


# ------------------------------------------------------------------ samplers never return positives
def samplers(tmp_path):
    return {
        "random": RandomNegatives(),
        "bm25": BM25Negatives(depth=30, skip_top=2, margin_rel=0.05),
        "dense_static": DenseStaticNegatives(depth=30),
        "mixed": MixedNegatives({"a": {"weight": 1, "sampler": BM25Negatives(depth=20)}, "b": {"weight": 1, "sampler": RandomNegatives()}}),
    }


@pytest.mark.parametrize("name", ["random", "bm25", "dense_static", "mixed"])
def test_samplers_never_return_a_relevant_document(name, tmp_path):
    coll = toy_collection()
    s = samplers(tmp_path)[name]
    s.setup(coll, toy_run(coll), MiningContext(Cache(tmp_path), tiny_bi(), list(coll.queries)))
    rng = random.Random(0)
    for _ in range(100):
        for q in coll.queries:
            pos = sorted(coll.relevant(q))[0]
            negs = s.sample(q, coll.relevant(q), 4, rng, positive=pos)
            assert len(negs) == len(set(negs)) == 4
            assert not set(negs) & coll.relevant(q)
            assert all(d in coll.docs for d in negs)


def test_mixed_follows_its_weights(tmp_path):
    coll = toy_collection()
    s = MixedNegatives({"bm25": {"weight": 3, "sampler": BM25Negatives(depth=40)}, "random": {"weight": 1, "sampler": RandomNegatives()}})
    s.setup(coll, toy_run(coll))
    rng = random.Random(0)
    for _ in range(2000):
        s.sample("q0", coll.relevant("q0"), 2, rng)
    drawn = s.stats()["drawn"]
    assert drawn["bm25"] + drawn["random"] == 4000
    assert abs(drawn["bm25"] / 4000 - 0.75) < 0.03   # binomial sd ~0.007
    with pytest.raises(ConfigError):
        MixedNegatives({"x": {"weight": 1, "sampler": DenseDynamicNegatives()}})


# ------------------------------------------------------------------ filters
RANKED = [("a", 10.0), ("b", 9.5), ("r", 9.0), ("c", 8.0), ("d", 7.0), ("e", 5.0), ("f", 1.0), ("g", 0.5)]


def test_each_filter_removes_exactly_its_rule():
    f = FalseNegativeFilter(depth=7, skip_top=1, max_score=9.6, margin_abs=1.5, margin_rel=None)
    kept = f.apply(RANKED, relevant={"r"}, pos_score=9.0)
    # depth 7 drops g; rank 1 (a) skip_top; r relevant; b (9.5 <= 9.6 passes max_score) margin_abs: > 9.0-1.5=7.5 -> b, c
    assert [d for d, _, _ in kept] == ["d", "e", "f"]
    assert [r for _, _, r in kept] == [5, 6, 7]
    st = f.stats()
    assert st["removed"] == {"relevant": 1, "skip_top": 1, "max_score": 0, "margin_abs": 2, "margin_rel": 0}
    assert st["considered"] == 7 and st["kept"] == 3

    g = FalseNegativeFilter(depth=10, max_score=8.5)
    assert [d for d, _, _ in g.apply(RANKED, set(), None)] == ["c", "d", "e", "f", "g"]
    assert g.stats()["removed"]["max_score"] == 3

    h = FalseNegativeFilter(depth=10, margin_rel=0.3)  # drop score > 10 - 0.3 * 10 = 7
    assert [d for d, _, _ in h.apply(RANKED, set(), 10.0)] == ["d", "e", "f", "g"]
    assert h.stats()["removed"]["margin_rel"] == 4
    neg = FalseNegativeFilter(depth=10, margin_rel=0.5)  # negative positive score: -2 - 0.5*2 = -3
    assert [d for d, _, _ in neg.apply([("x", -2.5), ("y", -3.5)], set(), -2.0)] == ["y"]

    u = FalseNegativeFilter(depth=10, margin_abs=1.0)
    u.apply(RANKED, set(), None)  # positive never scored: margins cannot apply, counted
    assert u.stats()["margin_unknown_positive"] == 1 and u.stats()["kept"] == 8


def test_filter_selection_top_and_uniform():
    top = FalseNegativeFilter(depth=10, select="top")
    kept = top.apply(RANKED, set(), None)
    assert top.choose(kept, 3, random.Random(0)) == ["a", "b", "r"]
    uni = FalseNegativeFilter(depth=10, skip_top=2)
    kept = uni.apply(RANKED, set(), None)
    seen = set()
    for seed in range(200):
        seen |= set(uni.choose(kept, 2, random.Random(seed)))
    assert seen == {"r", "c", "d", "e", "f", "g"}
    for bad in ({"depth": 3, "skip_top": 3}, {"select": "best"}, {"margin_abs": -1.0}):
        with pytest.raises(ConfigError):
            FalseNegativeFilter(**bad)


def test_bm25_sampler_margin_uses_the_positives_first_stage_score():
    coll = toy_collection()
    run = {"q0": {"d0": 5.0, "x1": 4.9, "x2": 4.0, "x3": 2.0}}
    coll.docs.update({"x1": "a", "x2": "b", "x3": "c"})
    s = BM25Negatives(depth=10, margin_abs=0.5, select="top")
    s.setup(coll, run)
    assert s.sample("q0", coll.relevant("q0"), 2, random.Random(0), positive="d0") == ["x2", "x3"]
    assert s.stats()["removed"]["margin_abs"] == 1 and s.stats()["removed"]["relevant"] == 1


# ------------------------------------------------------------------ dense search
@pytest.mark.parametrize("chunk", [7, 64, 10_000])
def test_dense_topk_equals_brute_force_numpy(chunk):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((250, 16)).astype(np.float32)
    q = rng.standard_normal((9, 16)).astype(np.float32)
    index = DenseIndex([f"d{i}" for i in range(250)], emb)
    s, i = index.search(torch.from_numpy(q), 20, chunk_size=chunk)
    full = q @ emb.T
    expect = np.argsort(-full, axis=1, kind="stable")[:, :20]
    assert np.array_equal(i.numpy(), expect)
    assert np.allclose(s.numpy(), np.take_along_axis(full, expect, 1), atol=1e-5)
    s_all, i_all = index.search(torch.from_numpy(q), 1000, chunk_size=chunk)  # k > N: every document
    assert i_all.shape == (9, 250)


def test_fusion_hand_computed():
    a = {"q": {"x": 3.0, "y": 1.0}}
    b = {"q": {"y": 10.0, "z": 0.0}}
    norm = fuse([a, b], [0.5, 0.5], "norm")["q"]
    assert norm == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.0})
    rrf = fuse([a, b], [1, 1], "rrf", rrf_k=60)["q"]
    assert rrf == pytest.approx({"x": 1 / 61, "y": 1 / 62 + 1 / 61, "z": 1 / 62})
    with pytest.raises(ConfigError):
        fuse([a], [1], "max")


def test_dense_static_mines_the_models_top_and_hits_the_cache(tmp_path):
    from rankexp.retrieval.dense import build_index, search_queries, texts_for

    coll = toy_collection()
    enc = tiny_bi()
    cache = Cache(tmp_path)
    s = DenseStaticNegatives(depth=15, select="top")
    s.setup(coll, {}, MiningContext(cache, enc, list(coll.queries)))
    assert [(e.kind, e.hit) for e in cache.events if e.kind == "negatives"] == [("negatives", False)]
    # the mined ranking is the model's own exact top-15 (relevant documents included; filters drop them)
    index = build_index(enc, coll, cache)
    _, qtext = texts_for(enc, coll, cache)
    run = search_queries(enc, index, qtext, ["q2"], 15)
    assert [d for d, _ in s.ranked["q2"]] == [d for d, _ in sorted(run["q2"].items(), key=lambda kv: -kv[1])]
    top = s.sample("q2", coll.relevant("q2"), 3, random.Random(0), positive="d6")
    assert top == [d for d, _ in s.ranked["q2"] if d not in coll.relevant("q2")][:3]
    # the readable file round-trips, and a second sampler with the same inputs reads it from the cache
    assert read_negatives(s.file) == {q: [(d, pytest.approx(v)) for d, v in r] for q, r in s.ranked.items()}
    again = DenseStaticNegatives(depth=15, select="top")
    again.setup(coll, {}, MiningContext(cache, enc, list(coll.queries)))
    assert [e.hit for e in cache.events if e.kind == "negatives"] == [False, True]
    assert again.file == s.file


def test_file_negatives_round_trip_and_errors(tmp_path):
    coll = toy_collection()
    path = tmp_path / "negs.tsv"
    write_negatives(path, {"q0": [("d10", 3.0), ("d0", 2.5), ("d11", 2.0)], "q1": [("d12", 1.0)]})
    s = FileNegatives(path=str(path), select="top")
    s.setup(coll, {}, MiningContext(Cache(tmp_path / "c"), None, list(coll.queries)))
    assert s.sample("q0", coll.relevant("q0"), 2, random.Random(0)) == ["d10", "d11"]
    (tmp_path / "two.tsv").write_text("q0 d13\nq0 d14\n")  # no rank, no score: file order
    s2 = FileNegatives(path=str(tmp_path / "two.tsv"), select="top")
    s2.setup(coll, {})
    assert s2.sample("q0", set(), 2, random.Random(0)) == ["d13", "d14"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("q0 d10 x 1.0\n")
    with pytest.raises(DataError, match="bad.tsv:1"):
        FileNegatives(path=str(bad)).setup(coll, {})
    bad.write_text("q0 nosuchdoc 1 1.0\n")
    with pytest.raises(DataError, match="not documents"):
        FileNegatives(path=str(bad)).setup(coll, {})
    with pytest.raises(DataError, match="not found"):
        FileNegatives(path=str(tmp_path / "missing.tsv")).setup(coll, {})


# ------------------------------------------------------------------ bi-encoder loss
def test_in_batch_softmax_masks_false_negatives_and_matches_hand_computation():
    from rankexp.losses.listwise import SoftmaxCELoss
    from rankexp.models.batch import Batch
    from rankexp.models.bimodule import BiEncoderModule

    enc = tiny_bi(temperature=0.05)
    module = BiEncoderModule(enc, SoftmaxCELoss(), relevant={"q0": {"a", "c"}, "q1": {"c"}}, length_buckets=1)
    qids, doc_ids = ["q0", "q1"], [["a", "b"], ["c", "d"]]
    mask = module.false_negative_mask(qids, doc_ids)
    # q0: its own group (a, b) never masked; c is relevant to q0 but sits in q1's group -> masked
    assert mask.tolist() == [[False, False, True, False], [False, False, False, False]]
    torch.manual_seed(0)
    q, d = torch.randn(2, 4), torch.randn(4, 4)
    enc.encode = lambda input_ids, attention_mask, side: q if side == "query" else d  # fixed embeddings
    batch = Batch.of_groups(qids, doc_ids, queries={"input_ids": None, "attention_mask": None},
                            docs={"input_ids": None, "attention_mask": None})
    got = module.example_losses(batch)
    s = (q @ d.T) / 0.05
    expect0 = -s[0, 0] + torch.logsumexp(s[0, [0, 1, 3]], 0)       # c (index 2) left out of q0's softmax
    expect1 = -s[1, 2] + torch.logsumexp(s[1, :], 0)
    assert got.tolist() == pytest.approx([expect0.item(), expect1.item()], rel=1e-5)
    enc.in_batch = False                                             # own group only
    got = module.example_losses(batch)
    assert got[0].item() == pytest.approx((-s[0, 0] + torch.logsumexp(s[0, :2], 0)).item(), rel=1e-5)


def adore_losses(sampler, q, qids, positives, temperature):
    """What the bi-encoder module computes in an ADORE step: mine, then the sampler's objective."""
    mined = sampler.mine(q, qids, positives)
    return sampler.objective(mined.scores / temperature, mined.batch())


def test_adore_loss_hand_computed_with_lambda_weights():
    coll = Collection("c", "c", {"p": "x", "n1": "y", "n2": "z"}, {"q": "w"}, {"q": {"p": 1}})
    s = DenseDynamicNegatives(depth=3, lambda_weight=True)
    s.index = DenseIndex(["p", "n1", "n2"], np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32))
    s.relevant = {"q": {"p"}}
    q = torch.tensor([[0.6, 0.8]], requires_grad=True)   # scores: p 0.6, n1 0.8, n2 1.0 -> ranks n2 1, n1 2, p 3
    mined = s.mine(q, ["q"], ["p"])                       # the sampler only mines: ids, scores, ranks
    assert mined.doc_ids == [["p", "n2", "n1"]] and mined.ranks.tolist() == [[3.0, 1.0, 2.0]]
    assert mined.scores.tolist() == [pytest.approx([0.6, 1.0, 0.8])] and mined.mask.all()
    loss = adore_losses(s, q, ["q"], ["p"], temperature=0.5)
    sp = lambda x: math.log1p(math.exp(x))
    expect = abs(1 / 3 - 1 / 1) * sp((1.0 - 0.6) / 0.5) + abs(1 / 3 - 1 / 2) * sp((0.8 - 0.6) / 0.5)
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    loss.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    plain = DenseDynamicNegatives(depth=3, lambda_weight=False)
    plain.index, plain.relevant = s.index, s.relevant
    got = adore_losses(plain, q.detach(), ["q"], ["p"], temperature=0.5).item()
    assert got == pytest.approx((sp(0.8) + sp(0.4)) / 2, rel=1e-5)
    assert coll.relevant("q") == {"p"}


def test_adore_groups_of_different_sizes_are_masked():
    from rankexp.losses.pairwise import LambdaRankNetLoss

    s = DenseDynamicNegatives(depth=3, lambda_weight=True, skip_top=1)   # the top-ranked document is skipped
    s.index = DenseIndex(["p", "n1", "n2"], np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32))
    s.relevant = {"a": {"p"}, "b": {"n1"}}
    q = torch.tensor([[0.6, 0.8], [0.0, 1.0]])  # a: n2 (1, skipped), n1 (2), p (3); b: n1 (1, skipped), n2 (2), p (3)
    mined = s.mine(q, ["a", "b"], ["p", "n1"])
    assert mined.doc_ids == [["p", "n1"], ["n1", "n2", "p"]]  # b's positive n1 (rank 1); p is not relevant to b
    assert mined.mask.tolist() == [[True, True, False], [True, True, True]]
    losses = LambdaRankNetLoss(True)(mined.scores, mined.batch())
    sp = lambda x: math.log1p(math.exp(x))
    assert losses[0].item() == pytest.approx(abs(1 / 3 - 1 / 2) * sp(0.8 - 0.6), rel=1e-5)  # padding adds nothing
    assert losses[1].item() == pytest.approx(abs(1 - 1 / 2) * sp(0.8 - 1.0) + abs(1 - 1 / 3) * sp(0.0 - 1.0), rel=1e-5)
    none = DenseDynamicNegatives(depth=3, max_score=0.1)                # nothing survives: loss 0, counted
    none.index, none.relevant = s.index, s.relevant
    assert adore_losses(none, q[:1], ["a"], ["p"], 1.0).tolist() == [0.0] and none.no_negative == 1


def test_adore_loss_needs_mined_ranks():
    from rankexp.errors import ConfigError as CE
    from rankexp.losses.pairwise import LambdaRankNetLoss
    from rankexp.models.batch import Batch

    with pytest.raises(CE, match="LambdaRankNetLoss needs mask"):
        LambdaRankNetLoss()(torch.zeros(1, 2), Batch.of_groups(["q"], [["a", "b"]]))


def test_adore_retrieval_follows_the_query_encoder_over_a_frozen_index(tmp_path):
    from rankexp.retrieval.dense import build_index, doc_encoder_hash, search_queries, texts_for

    coll = toy_collection(n_docs=80)
    enc = tiny_bi()
    s = DenseDynamicNegatives(depth=20)
    cache = Cache(tmp_path)
    s.setup(coll, {}, MiningContext(cache, enc, list(coll.queries)))
    assert enc.shared  # the sampler only mines: it leaves the model alone
    from rankexp.models.bimodule import BiEncoderModule

    BiEncoderModule(enc, s.objective, dynamic=s)  # the module freezes the document side the index came from
    assert not enc.shared and not any(p.requires_grad for p in enc.doc_model.parameters())
    doc_hash, digest = doc_encoder_hash(enc), s.index.digest()
    _, qtext = texts_for(enc, coll, cache)
    before = search_queries(enc, s.index, qtext, list(coll.queries), 20)
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=5.0)
    qids = list(coll.queries)
    for _ in range(3):
        inputs = qtext.encode(qids)
        qv = enc.encode(**inputs, side="query")
        loss = adore_losses(s, qv, qids, [sorted(coll.relevant(q))[0] for q in qids], enc.temperature).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = search_queries(enc, s.index, qtext, list(coll.queries), 20)
    assert before != after                               # the query encoder moved, and so did what it retrieves
    assert doc_encoder_hash(enc) == doc_hash             # the document encoder did not
    assert s.index.digest() == digest                    # nor the index
    assert build_index(enc, coll, cache).digest() == digest and cache.events[-1].hit
    assert s.stats()["steps"] == 3


def test_dense_dynamic_needs_a_bi_encoder():
    coll = toy_collection()
    with pytest.raises(ConfigError, match="bi-encoder"):
        DenseDynamicNegatives().setup(coll, {}, MiningContext(None, object(), None))


def test_length_bucketed_encoding_equals_one_padded_batch():
    from rankexp.models.module import bucketed

    enc = tiny_bi().eval()
    torch.manual_seed(1)
    lengths = [5, 30, 12, 7, 22, 3, 16, 9, 28, 11]
    ids = torch.randint(1000, 2000, (10, 30))
    mask = torch.tensor([[1] * n + [0] * (30 - n) for n in lengths])
    with torch.no_grad():
        whole = enc.encode(ids, mask, side="doc")
        parts = bucketed(enc.encode, {"input_ids": ids, "attention_mask": mask}, 3, side="doc")
    assert torch.allclose(whole, parts, atol=1e-5)


def test_adore_reuses_the_index_of_the_same_weights(tmp_path):
    from rankexp.retrieval.dense import build_index, doc_encoder_hash

    coll = toy_collection()
    cache = Cache(tmp_path)
    shared = tiny_bi()
    build_index(shared, coll, cache)
    h = doc_encoder_hash(shared)
    s = DenseDynamicNegatives(depth=10)
    s.setup(coll, {}, MiningContext(cache, shared, list(coll.queries)))  # unshares the same weights
    assert doc_encoder_hash(shared) == h
    assert [e.hit for e in cache.events if e.kind == "dense_index"] == [False, True]


def test_adore_dev_scores_from_the_frozen_index_equal_encoding_the_documents(tmp_path):
    from rankexp.data.tokens import BiPairEncoder, build_token_tables
    from rankexp.losses.listwise import SoftmaxCELoss
    from rankexp.models.bimodule import BiEncoderModule

    coll = toy_collection()
    enc = tiny_bi()
    cache = Cache(tmp_path)
    s = DenseDynamicNegatives(depth=10)
    s.setup(coll, {}, MiningContext(cache, enc, list(coll.queries)))
    docs, queries = build_token_tables(coll, enc.tokenizer, enc.max_length, enc.max_query_length, cache)
    pairs = [("q0", "d5"), ("q1", "d7"), ("q2", "d40")]
    batch = {"inputs": BiPairEncoder(enc.tokenizer, docs, queries, enc.max_length, enc.max_query_length).encode(*zip(*pairs)),
             "qids": [q for q, _ in pairs], "dids": [d for _, d in pairs]}
    enc.eval()
    with torch.no_grad():
        fast, plain = BiEncoderModule(enc, SoftmaxCELoss(), dynamic=s), BiEncoderModule(enc, SoftmaxCELoss())
        fast.validation_step(batch, 0)
        plain.validation_step(batch, 0)
    assert [t[:2] for t in fast._val_scores] == pairs
    assert [t[2] for t in fast._val_scores] == pytest.approx([t[2] for t in plain._val_scores], abs=1e-5)
