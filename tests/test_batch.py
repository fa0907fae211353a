"""The training Batch: what the collate function builds, what reaches a loss or a weighter that
requires more than scores, and the one-line error when a requirement cannot be provided."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from rankexp.data.examples import Group
from rankexp.data.tokens import BiPairEncoder, PairEncoder, build_token_tables
from rankexp.errors import ConfigError
from rankexp.losses.base import RankingLoss
from rankexp.losses.listwise import SoftmaxCELoss
from rankexp.losses.pairwise import LambdaRankNetLoss, MarginLoss, RankNetLoss
from rankexp.losses.pointwise import BCELoss
from rankexp.models.batch import Batch, check_requirements, scores_for
from rankexp.models.datamodule import GroupCollator, RankingDataModule
from rankexp.models.encoders import CrossEncoder
from rankexp.models.module import RankingModule
from rankexp.techniques.base import Weighter
from rankexp.tracking.cache import Cache
from tests.conftest import fast_overrides
from tests.test_hard_negatives import tiny_bi, toy_collection
from tests.test_module import TINY

GROUPS = [Group("q0", ("d0", "d7", "d9")), Group("q1", ("d3", "d8", "d0"))]
# a teacher that scored some pairs; (q1, d0) it never saw
TEACHER = {"q0": {"d0": 3.0, "d7": 1.0, "d9": -1.0}, "q1": {"d3": 2.0, "d8": 0.5}}


class TeacherLoss(RankingLoss):
    """A distillation-style loss for the test: MSE to the teacher's scores where the teacher has one."""

    name = "teacher_mse"
    requires = frozenset({"teacher_scores"})

    def __init__(self):
        self.seen: list[torch.Tensor] = []

    def forward(self, scores, batch):
        teacher = batch.teacher_scores.to(scores)
        self.seen.append(teacher.clone())
        known = ~torch.isnan(teacher)
        return ((scores - teacher.nan_to_num()) ** 2 * known).sum(1) / known.sum(1)


class FirstStageWeighter(Weighter):
    """Weights each group by the sigmoid of its positive's first-stage score (0.5 when it has none)."""

    requires = frozenset({"first_stage_scores"})

    def weights(self, batch, step):
        return torch.sigmoid(batch.first_stage_scores[:, 0].nan_to_num(0.0))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    coll = toy_collection()
    enc = CrossEncoder(tiny=TINY, dropout=0.0, max_length=64, max_query_length=8).eval()
    docs, queries = build_token_tables(coll, enc.tokenizer, enc.max_length, enc.max_query_length,
                                       Cache(tmp_path_factory.mktemp("cache")))
    return coll, enc, PairEncoder(enc.tokenizer, docs, queries, enc.max_length, enc.max_query_length), (docs, queries)


def test_collate_builds_the_batch(toy):
    coll, enc, pairs, (docs, queries) = toy
    batch = GroupCollator(pairs)(GROUPS)
    assert isinstance(batch, Batch)
    assert batch.qids == ["q0", "q1"] and batch.doc_ids == [["d0", "d7", "d9"], ["d3", "d8", "d0"]]
    assert (batch.size, batch.group_size) == (2, 3)
    assert batch.labels.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert batch.inputs["input_ids"].shape[0] == 6  # group-major pairs
    assert torch.equal(batch.inputs["input_ids"], pairs.encode(["q0"] * 3 + ["q1"] * 3, ["d0", "d7", "d9", "d3", "d8", "d0"])["input_ids"])
    assert batch.teacher_scores is None and batch.first_stage_scores is None and batch.weights is None
    bi = tiny_bi()
    bi_batch = GroupCollator(BiPairEncoder(bi.tokenizer, docs, queries, 32, 12))(GROUPS)
    assert bi_batch.queries["input_ids"].shape[0] == 2 and bi_batch.docs["input_ids"].shape[0] == 6 and not bi_batch.inputs


def test_batch_moves_to_a_device_as_a_batch():
    from lightning_fabric.utilities.apply_func import move_data_to_device

    batch = Batch.of_groups(["a"], [["x", "y"]], inputs={"input_ids": torch.ones(2, 3, dtype=torch.long)},
                            extras={"ranks": torch.ones(1, 2)})
    moved = move_data_to_device(batch, torch.device("cpu"))
    assert isinstance(moved, Batch) and moved.qids == ["a"] and torch.equal(moved.inputs["input_ids"], batch.inputs["input_ids"])
    assert torch.equal(moved.extras["ranks"], torch.ones(1, 2))


def test_a_loss_requiring_teacher_scores_gets_them(toy):
    coll, enc, pairs, _ = toy
    loss = TeacherLoss()
    module = RankingModule(enc, loss)
    module.log = lambda *a, **k: None
    assert module.requires == {"teacher_scores"}
    # the datamodule asks the module what its techniques require and reads it from the given runs
    dm = RankingDataModule(GROUPS, [], pairs, batch_size=2, eval_batch_size=8,
                           sources={"teacher_scores": TEACHER, "first_stage_scores": None})
    dm.trainer = SimpleNamespace(lightning_module=module, global_step=0, world_size=1, global_rank=0)
    dm.setup("fit")
    assert dm.score_runs == {"teacher_scores": TEACHER}  # only what is required: no first-stage scores read
    batch = next(iter(dm.train_dataloader()))
    assert batch.first_stage_scores is None
    want = [[3.0, 1.0, -1.0], [2.0, 0.5, math.nan]]
    assert torch.allclose(batch.teacher_scores, torch.tensor(want), equal_nan=True)
    with torch.no_grad():
        got = module.training_step(batch, 0)
        scores = enc(**batch.inputs).view(2, 3)
    assert torch.allclose(loss.seen[-1], torch.tensor(want), equal_nan=True)  # the loss saw them
    by_hand = [((scores[0] - torch.tensor(want[0])) ** 2).mean(), ((scores[1, :2] - torch.tensor(want[1][:2])) ** 2).mean()]
    assert got.item() == pytest.approx(float(sum(by_hand) / 2), rel=1e-5)


def test_a_weighter_requiring_first_stage_scores_gets_them(toy):
    coll, enc, pairs, _ = toy
    first_stage = {"q0": {"d0": 1.5, "d9": 0.2}, "q1": {"d8": 4.0}}  # q1's positive d3 not retrieved
    module = RankingModule(enc, SoftmaxCELoss(), weighter=FirstStageWeighter())
    module.log = lambda *a, **k: None
    runs = module.check_inputs({"first_stage_scores": first_stage})
    batch = GroupCollator(pairs, runs)(GROUPS)
    assert torch.allclose(batch.first_stage_scores, torch.tensor([[1.5, math.nan, 0.2], [math.nan, 4.0, math.nan]]),
                          equal_nan=True)
    with torch.no_grad():
        got = module.training_step(batch, 0)
        per = SoftmaxCELoss()(enc(**batch.inputs).view(2, 3))
    w = torch.tensor([1 / (1 + math.exp(-1.5)), 0.5])
    assert batch.weights.tolist() == pytest.approx(w.tolist())
    assert got.item() == pytest.approx(float((w * per).sum() / 2), rel=1e-5)


def test_a_missing_requirement_is_one_clear_error(toy):
    coll, enc, pairs, _ = toy
    module = RankingModule(enc, TeacherLoss())
    with pytest.raises(ConfigError) as err:
        module.check_inputs({"first_stage_scores": {"q0": {}}})
    msg = str(err.value)
    assert msg == ("TeacherLoss requires teacher_scores in every training batch: that needs a teacher's scored run "
                   "(no teacher run is configured for this run)") and "\n" not in msg
    with pytest.raises(ConfigError, match="FirstStageWeighter requires first_stage_scores"):
        check_requirements([FirstStageWeighter()], {})
    odd = Weighter()
    odd.requires = frozenset({"perturbed_text"})
    with pytest.raises(ConfigError, match="'perturbed_text', which no part of this run provides"):
        check_requirements([odd], {})
    # ADORE's loss needs what its miner provides, nothing else
    assert check_requirements([LambdaRankNetLoss()], {}, provided={"ranks", "mask"}) == {}
    with pytest.raises(ConfigError, match="LambdaRankNetLoss requires 'mask'"):
        check_requirements([LambdaRankNetLoss()], {})
    # the datamodule refuses before the first batch
    dm = RankingDataModule(GROUPS, [], pairs, batch_size=2, eval_batch_size=8)
    dm.trainer = SimpleNamespace(lightning_module=module, global_step=0, world_size=1, global_rank=0)
    with pytest.raises(ConfigError, match="TeacherLoss requires teacher_scores"):
        dm.setup("fit")


def test_cli_train_with_an_unprovidable_requirement_is_one_line_exit_2(vaswani_slice, tmp_path):
    from rankexp.cli import app

    result = CliRunner().invoke(app, ["train", *fast_overrides(vaswani_slice, tmp_path, **{
        "loss._target_": "tests.test_batch.TeacherLoss", "trainer.max_steps": 2}), "~loss.temperature"])
    assert result.exit_code == 2, result.output
    errors = [l for l in result.output.splitlines() if "error" in l.lower()]
    assert errors == ["error: TeacherLoss requires teacher_scores in every training batch: that needs a teacher's "
                      "scored run (no teacher run is configured for this run)"], result.output
    assert "Traceback" not in result.output


def test_only_listwise_accepts_extra_negatives():
    assert SoftmaxCELoss.accepts_extra_negatives
    assert not any(c.accepts_extra_negatives for c in (RankNetLoss, MarginLoss, BCELoss, LambdaRankNetLoss))
    torch.manual_seed(0)
    logits, target = torch.randn(3, 6), torch.tensor([0, 2, 4])
    logits[0, 3] = float("-inf")  # a masked false negative
    got = SoftmaxCELoss(temperature=2.0).with_extra_negatives(logits, target, None)
    by_hand = [torch.logsumexp(logits[i] / 2, 0) - logits[i, t] / 2 for i, t in enumerate(target.tolist())]
    assert got.tolist() == pytest.approx([float(x) for x in by_hand], rel=1e-6)
    with pytest.raises(NotImplementedError, match="own documents only"):
        RankNetLoss().with_extra_negatives(logits, target, None)


def test_scores_for_fills_nan_for_unscored_pairs():
    got = scores_for({"a": {"x": 1.0}}, ["a", "b"], [["x", "y"], ["x", "y"]])
    assert got.shape == (2, 2) and got[0, 0].item() == 1.0 and torch.isnan(got[0, 1]) and torch.isnan(got[1]).all()
