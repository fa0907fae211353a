"""Weight-space ensembling of the start and the fine-tuned model (WiSE-FT).

Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022): fine-tuning a strong
pre-trained model on a small task can lose what the pre-trained model knew; the linear
interpolation of the two weight vectors,

    θ_α = (1 − α) · θ_start + α · θ_fine-tuned,        0 ≤ α ≤ 1,

is one network of the same size and cost that is often better than either end. α = 0 is the
start, α = 1 the fine-tuned model. rankexp chooses α on the **dev** queries among
``train.wise_ft`` (the ends included) after training; the test split sees only the chosen network.
Only floating-point tensors are mixed; integer buffers (e.g. position ids) are the fine-tuned ones.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch


def interpolate(start: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 − alpha)·start + alpha·tuned`` for every floating-point tensor (same keys required)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT alpha must be in [0, 1], got {alpha}")
    if set(start) != set(tuned):
        missing = sorted(set(start) ^ set(tuned))[:3]
        raise ValueError(f"WiSE-FT: the start and the fine-tuned model differ in parameters ({', '.join(missing)} ...)")
    out = {}
    for k, t in tuned.items():
        s = start[k]
        if torch.is_floating_point(t):
            out[k] = (s.to(t.dtype) * (1.0 - alpha) + t * alpha) if alpha not in (0.0, 1.0) else (s.clone() if alpha == 0.0 else t.clone())
        else:
            out[k] = t.clone()
    return out


def alphas(values: Sequence[float] | None) -> list[float]:
    """The interior mixing coefficients to try (the ends 0 and 1 are always candidates), sorted."""
    out = sorted({float(a) for a in (values or [])})
    bad = [a for a in out if not 0.0 <= a <= 1.0]
    if bad:
        raise ValueError(f"train.wise_ft: mixing coefficients must be in [0, 1], got {bad}")
    return [a for a in out if 0.0 < a < 1.0]


def choose(scores: Mapping[float, float]) -> float:
    """The α with the best dev score; a tie goes to the smaller α (the network closer to the start)."""
    best = max(scores.values())
    return min(a for a, v in scores.items() if v >= best - 1e-9)


def select(start: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], candidates: Sequence[float],
           dev_score: Callable[[dict[str, torch.Tensor]], float], known: Mapping[float, float]) -> tuple[float, dict[float, float]]:
    """Score each interior α on dev with ``dev_score(state)``; ``known`` holds the ends' dev scores
    already measured (0: the start, 1: the fine-tuned best). Returns the chosen α and every score."""
    scores = dict(known)
    for a in candidates:
        scores[a] = float(dev_score(interpolate(start, tuned, a)))
    return choose(scores), scores


def choose_weights(module: torch.nn.Module, start_state: Mapping[str, torch.Tensor], values: Sequence[float],
                   dev_score: Callable[[], float], start_dev: float, tuned_dev: float) -> dict:
    """Leave ``module`` (holding the fine-tuned weights) holding θ_α for the α chosen on dev.

    ``dev_score()`` measures the module's current weights; the ends' dev scores are given. Returns
    ``{"alpha": α, "dev": {str(α): score}}`` for metrics.json.
    """
    try:
        candidates = alphas(values)
    except ValueError as e:
        from rankexp.errors import ConfigError

        raise ConfigError(str(e)) from e
    tuned = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def score(state: dict[str, torch.Tensor]) -> float:
        module.load_state_dict(state)
        return dev_score()

    alpha, scores = select(start_state, tuned, candidates, score, {0.0: float(start_dev), 1.0: float(tuned_dev)})
    module.load_state_dict(interpolate(start_state, tuned, alpha))
    return {"alpha": alpha, "dev": {str(a): v for a, v in sorted(scores.items())}}
