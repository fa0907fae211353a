"""Losses against hand-computed values; per-example shape; gradients flow."""

from __future__ import annotations

import math

import pytest
import torch

from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.losses.pairwise import MarginLoss, RankNetLoss
from rankexp.losses.pointwise import BCELoss

S = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, -1.0]])


def sp(x):  # softplus
    return math.log1p(math.exp(x))


def test_listwise_hand_computed():
    # row 0: log(e^2 + e^0 + e^1) - 2 ; row 1: log(e^0 + e^1 + e^-1) - 0
    expected = [math.log(math.e**2 + 1 + math.e) - 2, math.log(1 + math.e + math.exp(-1))]
    assert SoftmaxCELoss()(S).tolist() == pytest.approx(expected, abs=1e-6)
    # temperature 2 halves the logits
    expected_t = [math.log(math.e + 1 + math.exp(0.5)) - 1, math.log(1 + math.exp(0.5) + math.exp(-0.5))]
    assert SoftmaxCELoss(temperature=2.0)(S).tolist() == pytest.approx(expected_t, abs=1e-6)


def test_ranknet_hand_computed():
    # row 0: diffs 2, 1 -> mean(softplus(-2), softplus(-1)); row 1: diffs -1, 1
    expected = [(sp(-2) + sp(-1)) / 2, (sp(1) + sp(-1)) / 2]
    assert RankNetLoss()(S).tolist() == pytest.approx(expected, abs=1e-6)


def test_margin_hand_computed():
    # margin 1: row 0: max(0, 1-2)=0, max(0, 1-1)=0 -> 0; row 1: max(0, 1+1)=2, max(0, 1-1)=0 -> 1
    assert MarginLoss(1.0)(S).tolist() == pytest.approx([0.0, 1.0])
    assert MarginLoss(3.0)(S).tolist() == pytest.approx([(1 + 2) / 2, (4 + 2) / 2])


def test_bce_hand_computed():
    # row 0: [softplus(-2), softplus(0), softplus(1)] mean; row 1: [softplus(0), softplus(1), softplus(-1)]
    expected = [(sp(-2) + sp(0) + sp(1)) / 3, (sp(0) + sp(1) + sp(-1)) / 3]
    assert BCELoss()(S).tolist() == pytest.approx(expected, abs=1e-6)
    expected_w = [(2 * sp(-2) + sp(0) + sp(1)) / 3, (2 * sp(0) + sp(1) + sp(-1)) / 3]
    assert BCELoss(pos_weight=2.0)(S).tolist() == pytest.approx(expected_w, abs=1e-6)


@pytest.mark.parametrize("loss", [BCELoss(), RankNetLoss(), MarginLoss(), SoftmaxCELoss()], ids=lambda l: type(l).__name__)
def test_per_example_finite_with_grad(loss):
    scores = torch.randn(5, 4, requires_grad=True)
    out = loss(scores)
    assert out.shape == (5,) and torch.isfinite(out).all()
    out.mean().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0
    # raising the positive's score lowers every loss (a ranking loss must prefer the positive on top)
    better = scores.detach().clone()
    better[:, 0] += 5
    assert (loss(better) <= out.detach() + 1e-6).all()


@pytest.mark.parametrize("ctor", [lambda: SoftmaxCELoss(temperature=0), lambda: MarginLoss(-1), lambda: BCELoss(0)])
def test_bad_arguments(ctor):
    with pytest.raises(ValueError):
        ctor()


def test_needs_a_negative():
    with pytest.raises(ValueError, match="at least one negative"):
        RankNetLoss()(torch.zeros(3, 1))


# ------------------------------------------------------------------ loss(scores, batch)
from rankexp.losses.pairwise import LambdaRankNetLoss  # noqa: E402
from rankexp.models.batch import Batch  # noqa: E402

BATCH = Batch.of_groups(["q0", "q1"], [["p0", "a", "b"], ["p1", "c", "d"]])


@pytest.mark.parametrize("loss", [BCELoss(), RankNetLoss(), MarginLoss(), SoftmaxCELoss(temperature=2.0)], ids=lambda l: type(l).__name__)
def test_the_batch_signature_gives_the_same_hand_computed_values(loss):
    assert loss(S, BATCH).tolist() == pytest.approx(loss(S).tolist(), abs=1e-7)
    assert loss.requires == frozenset()  # scores (and labels) are all they need


def test_bce_reads_the_batch_labels():
    # labels that say the *last* document of row 0 is the relevant one: BCE follows them
    batch = Batch.of_groups(["q0", "q1"], [["p0", "a", "b"], ["p1", "c", "d"]])
    batch.labels = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    # row 0: [softplus(2), softplus(0), softplus(-1)] mean; row 1 as before
    expected = [(sp(2) + sp(0) + sp(-1)) / 3, (sp(0) + sp(1) + sp(-1)) / 3]
    assert BCELoss()(S, batch).tolist() == pytest.approx(expected, abs=1e-6)


def test_lambda_ranknet_hand_computed_with_ranks_and_padding():
    # row 0: positive at rank 3, negatives at ranks 1 and 2; row 1: one real negative (rank 4), one padded column
    scores = torch.tensor([[0.5, 2.0, 1.0], [1.0, 0.0, 7.0]], requires_grad=True)
    batch = Batch.of_groups(["q0", "q1"], [["p", "x", "y"], ["p", "z", ""]],
                            extras={"ranks": torch.tensor([[3.0, 1.0, 2.0], [1.0, 4.0, 1.0]]),
                                    "mask": torch.tensor([[True, True, True], [True, True, False]])})
    got = LambdaRankNetLoss(lambda_weight=True)(scores, batch)
    expect = [abs(1 / 3 - 1) * sp(2.0 - 0.5) + abs(1 / 3 - 1 / 2) * sp(1.0 - 0.5), abs(1 - 1 / 4) * sp(0.0 - 1.0)]
    assert got.tolist() == pytest.approx(expect, rel=1e-6)
    got.sum().backward()
    assert scores.grad[1, 2].item() == 0.0  # the padded column gets no gradient
    mean = LambdaRankNetLoss(lambda_weight=False)(scores.detach(), batch)
    assert mean.tolist() == pytest.approx([(sp(1.5) + sp(0.5)) / 2, sp(-1.0)], rel=1e-6)
    assert LambdaRankNetLoss.requires == {"ranks", "mask"}
    with pytest.raises(ValueError, match="needs the batch"):
        LambdaRankNetLoss()(scores.detach())
    with pytest.raises(ValueError, match="lambda_weight must be true or false"):
        LambdaRankNetLoss(lambda_weight="yes")
