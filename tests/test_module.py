"""RankingModule pieces: length-bucketed forward equals the plain forward; weights reach the loss."""

from __future__ import annotations

import torch

from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.models.batch import Batch
from rankexp.models.encoders import CrossEncoder
from rankexp.models.module import RankingModule
from rankexp.techniques.base import Weighter

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def tiny_inputs(n=16, width=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(5, width, (n,), generator=g)
    mask = (torch.arange(width)[None, :] < lens[:, None]).long()
    ids = torch.randint(1000, 2000, (n, width), generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_length_buckets_match_plain_forward():
    torch.manual_seed(0)
    enc = CrossEncoder(tiny=TINY, dropout=0.0, max_length=64, max_query_length=8).eval()
    inputs = tiny_inputs()
    plain = enc(**inputs)
    for buckets in (1, 2, 4, 8):
        got = RankingModule(enc, SoftmaxCELoss(), length_buckets=buckets)(inputs)
        assert torch.allclose(got, plain, atol=1e-5), buckets
    # and the per-row mapping is preserved (not merely the multiset of scores)
    assert not torch.allclose(plain, plain.flip(0))


class Doubler(Weighter):
    def __call__(self, qids, doc_ids, step):
        return torch.tensor([2.0 if i == 0 else 0.0 for i in range(len(qids))])


def test_weights_reach_the_loss():
    torch.manual_seed(0)
    enc = CrossEncoder(tiny=TINY, dropout=0.0, max_length=64, max_query_length=8).eval()  # no dropout noise
    inputs = tiny_inputs(n=8)
    batch = Batch.of_groups(["a", "b"], [["1", "2", "3", "4"], ["5", "6", "7", "8"]], inputs=inputs)
    plain = RankingModule(enc, SoftmaxCELoss())
    weighted = RankingModule(enc, SoftmaxCELoss(), weighter=Doubler())
    for m in (plain, weighted):
        m.log = lambda *a, **k: None
    per = SoftmaxCELoss()(enc(**inputs).view(2, 4))
    assert torch.allclose(plain.training_step(batch, 0), per.mean(), atol=1e-6)
    # example weights (2, 0): sum(w * l) / B = l_0
    assert torch.allclose(weighted.training_step(batch, 0), per[0], atol=1e-6)
    assert batch.weights.tolist() == [2.0, 0.0]  # the step's weights travel with the batch
