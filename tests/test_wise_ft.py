"""WiSE-FT (Wortsman et al. 2022): θ_α = (1 − α)·θ_start + α·θ_fine-tuned, α chosen on dev."""

from __future__ import annotations

import pytest
import torch

from conftest import fast_overrides
from rankexp.errors import ConfigError
from rankexp.techniques import wise_ft


def test_interpolate_mixes_float_tensors_by_hand_and_keeps_integer_buffers():
    start = {"w": torch.tensor([1.0, -2.0, 4.0]), "ids": torch.tensor([0, 1, 2])}
    tuned = {"w": torch.tensor([3.0, 2.0, 0.0]), "ids": torch.tensor([5, 6, 7])}
    mid = wise_ft.interpolate(start, tuned, 0.25)
    # 0.75*start + 0.25*tuned, by hand
    assert torch.equal(mid["w"], torch.tensor([1.5, -1.0, 3.0]))
    assert torch.equal(mid["ids"], tuned["ids"])
    assert torch.equal(wise_ft.interpolate(start, tuned, 0.0)["w"], start["w"])
    assert torch.equal(wise_ft.interpolate(start, tuned, 1.0)["w"], tuned["w"])
    with pytest.raises(ValueError):
        wise_ft.interpolate(start, tuned, 1.5)
    with pytest.raises(ValueError, match="differ"):
        wise_ft.interpolate(start, {"w": tuned["w"]}, 0.5)


def test_alphas_and_choice():
    assert wise_ft.alphas([0.75, 0.25, 1.0, 0.0, 0.25]) == [0.25, 0.75]
    assert wise_ft.alphas(None) == []
    with pytest.raises(ValueError):
        wise_ft.alphas([-0.1])
    assert wise_ft.choose({0.0: 0.4, 0.5: 0.45, 1.0: 0.44}) == 0.5
    assert wise_ft.choose({0.0: 0.4, 0.5: 0.45, 1.0: 0.45}) == 0.5  # a tie goes to the network nearer the start
    assert wise_ft.choose({0.0: 0.5, 0.5: 0.5, 1.0: 0.3}) == 0.0


def test_choose_weights_leaves_the_module_at_the_best_dev_alpha():
    lin = torch.nn.Linear(2, 1, bias=False)
    start = {"weight": torch.tensor([[0.0, 0.0]])}
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[4.0, -4.0]]))  # the "fine-tuned" weights
    # dev score peaks where weight[0] == 1, i.e. at alpha = 0.25
    out = wise_ft.choose_weights(lin, start, [0.25, 0.5, 0.75], lambda: -abs(float(lin.weight[0, 0]) - 1.0),
                                 start_dev=-1.0, tuned_dev=-3.0)
    assert out["alpha"] == 0.25 and set(out["dev"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert torch.equal(lin.weight.detach(), torch.tensor([[1.0, -1.0]]))
    with pytest.raises(ConfigError):
        wise_ft.choose_weights(lin, start, [2.0], lambda: 0.0, start_dev=0.0, tuned_dev=0.0)


def test_wise_ft_run_evaluates_the_chosen_interpolation(vaswani_slice, tmp_path):
    """The network in best.ckpt (the one the test split saw) is (1-α)·start + α·best, where best is
    the same run's best checkpoint without WiSE-FT; dev scores of the ends are the recorded ones."""
    from hydra.utils import instantiate

    from rankexp.api import compose, train

    common = {"model.lr": 5e-3, "trainer.max_steps": 6, "train.val_every_n_steps": 3}
    cfg = compose(fast_overrides(vaswani_slice, tmp_path / "wise", **common, **{"train.select_start": True, "train.wise_ft": "[0.5]"}))
    torch.manual_seed(int(cfg.seed))
    init = {f"encoder.{k}": v for k, v in instantiate(cfg.model.encoder).state_dict().items()}
    m = train(cfg).metrics
    w = m["dev"]["wise_ft"]
    assert set(w["dev"]) == {"0.0", "0.5", "1.0"} and w["dev"]["0.0"] == pytest.approx(m["dev"]["untrained"])
    assert m["dev"]["best"] == pytest.approx(w["dev"][str(w["alpha"])]) and m["dev"]["kept_start"] == (w["alpha"] == 0.0)
    plain = train(compose(fast_overrides(vaswani_slice, tmp_path / "plain", **common))).metrics  # same training, no selection
    assert w["dev"]["1.0"] == pytest.approx(plain["dev"]["best"])
    load = lambda root, rid: torch.load(root / "runs" / rid / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    chosen, tuned = load(tmp_path / "wise", m["run_id"]), load(tmp_path / "plain", plain["run_id"])
    expect = wise_ft.interpolate({k: init[k] for k in tuned}, tuned, w["alpha"])
    for k, v in expect.items():
        assert torch.allclose(chosen[k], v, atol=1e-6), k
