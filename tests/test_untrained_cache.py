"""The untrained start's scores are cached per start (weights digest, candidates): every sweep member
with the same seed reads them, and a hit is exactly what a fresh computation gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import fast_overrides
from rankexp.cli import app
from rankexp.pipeline.untrained import KIND, weights_digest


def _train(slice_dir: Path, out: Path, **extra) -> tuple[dict, Path]:
    before = set((out / "runs").iterdir()) if (out / "runs").exists() else set()
    r = CliRunner().invoke(app, ["train", *fast_overrides(slice_dir, out, **extra)])
    assert r.exit_code == 0, r.output
    run = next(p for p in (out / "runs").iterdir() if p not in before)
    return json.loads((run / "metrics.json").read_text()), run


def _events(metrics: dict) -> list[dict]:
    return [e for e in metrics["cache"] if e["kind"] == KIND]


def _step0(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]
    return next(v for r in rows if r.get("step") == 0 for k, v in r.items() if k.startswith("val/"))


def test_weights_digest_sees_every_tensor():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    b = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b[1].bias.add_(1e-7)  # one float32 ulp-sized change in the last tensor
    assert weights_digest(a) != weights_digest(b)
    c = torch.nn.Sequential(torch.nn.Linear(4, 3))  # a prefix of a's tensors (fewer layers) is another start
    c.load_state_dict({k: v for k, v in a.state_dict().items() if k.startswith("0.")})
    assert weights_digest(c) != weights_digest(a)


def test_sweep_members_share_the_untrained_scores_and_a_hit_equals_a_fresh_computation(vaswani_slice, tmp_path):
    out = tmp_path / "out"
    first, run1 = _train(vaswani_slice, out, seed=7, loss="listwise")
    assert [e["hit"] for e in _events(first)] == [False]
    # another member of the same sweep (other loss, same seed): same start, scores read from the cache
    second, run2 = _train(vaswani_slice, out, seed=7, loss="pairwise")
    assert [e["hit"] for e in _events(second)] == [True]
    assert second["untrained"] == first["untrained"] and second["dev"]["untrained"] == first["dev"]["untrained"]
    assert _step0(run2) == _step0(run1) == first["dev"]["untrained"]
    # the same member computed without the cache (another output folder, an empty cache): bitwise the cached numbers
    fresh, _ = _train(vaswani_slice, tmp_path / "fresh", seed=7, loss="pairwise")
    assert [e["hit"] for e in _events(fresh)] == [False]
    assert fresh["untrained"] == second["untrained"] and fresh["dev"]["untrained"] == second["dev"]["untrained"]
    # another seed is another start: computed, not read
    other, _ = _train(vaswani_slice, out, seed=8, loss="listwise")
    assert [e["hit"] for e in _events(other)] == [False]
    assert other["untrained"] != first["untrained"]


def test_a_damaged_untrained_entry_is_rebuilt_with_one_warning(vaswani_slice, tmp_path, caplog):
    out = tmp_path / "out"
    first, _ = _train(vaswani_slice, out, seed=3)
    entry = next(p for p in (out / "cache" / KIND).iterdir() if p.is_dir() and not p.name.startswith("."))
    lines = (entry / "test.tsv").read_text().splitlines()
    (entry / "test.tsv").write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # a test ranking cut in half
    again, _ = _train(vaswani_slice, out, seed=3, loss="pairwise")
    events = _events(again)
    assert events[-1]["hit"] is False and events[-1].get("repaired")
    assert again["untrained"] == first["untrained"]


@pytest.mark.parametrize("untrained", [False])
def test_no_untrained_evaluation_touches_no_cache_entry(vaswani_slice, tmp_path, untrained):
    metrics, _ = _train(vaswani_slice, tmp_path / "out", **{"eval.untrained": untrained})
    assert _events(metrics) == [] and metrics["untrained"] is None
