"""Throughput logging: real tokens, the FLOPs estimate and MFU against hand-computed values."""

from __future__ import annotations

import json

import pytest
import torch

from rankexp.api import compose, train
from rankexp.tracking.throughput import step_tokens, train_flops, transformer_shape
from tests.conftest import fast_overrides


def test_step_tokens_counts_real_tokens_only():
    batch = {"inputs": {"input_ids": torch.ones(3, 5, dtype=torch.long),
                        "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])}}
    assert step_tokens(batch) == (9, 15, 3)
    bi = {"queries": {"attention_mask": torch.tensor([[1, 1, 0]])}, "docs": {"attention_mask": torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])}}
    assert step_tokens(bi) == (2 + 5, 3 + 8, 3)


def test_train_flops_formula():
    # 6·N·T + 12·L·H·S·T with N=1000, T=10, L=2, H=4, S=5
    assert train_flops(1000, 2, 4, 10, 5.0) == 6 * 1000 * 10 + 12 * 2 * 4 * 5 * 10


def test_transformer_shape_excludes_embeddings():
    from rankexp.models.encoders import CrossEncoder

    enc = CrossEncoder(tiny={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
                       max_length=64, max_query_length=16)
    n, layers, hidden = transformer_shape(enc)
    emb = sum(p.numel() for name, p in enc.named_parameters() if "embeddings" in name)
    assert emb > 0 and n == sum(p.numel() for p in enc.parameters()) - emb
    assert (layers, hidden) == (2, 32)


def test_run_logs_throughput_and_mfu_with_a_given_peak(vaswani_slice, tmp_path):
    result = train(compose(fast_overrides(vaswani_slice, tmp_path, **{"train.peak_tflops": 1.0, "trainer.log_every_n_steps": 2})))
    tp = result.metrics["train"]["throughput"]
    assert tp["tokens_per_s"] > 0 and tp["pairs_per_s"] > 0 and 0 <= tp["pad_share"] < 1
    assert tp["mfu"] == pytest.approx(tp["model_tflops"] / 1.0, rel=1e-2, abs=1e-5)
    hist = [json.loads(l) for l in (result.path / "history.jsonl").read_text().splitlines()]
    perf = [h for h in hist if "perf/tokens_per_s" in h]
    assert perf and all(h["step"] % 2 == 0 for h in perf) and all("perf/mfu" in h for h in perf)


def test_no_mfu_on_cpu_without_a_peak(vaswani_slice, tmp_path):
    result = train(compose(fast_overrides(vaswani_slice, tmp_path)))
    assert result.metrics["train"]["throughput"]["mfu"] is None
