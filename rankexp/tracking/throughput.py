"""Training throughput: pairs/s, real tokens/s and model FLOPs utilisation (MFU), logged as curves.

Tokens are the *real* (non-padding) tokens of each step's inputs (the attention masks' sum), so
padding never counts as work. Model FLOPs follow the usual dense-transformer estimate (Kaplan et
al. 2020; PaLM, Chowdhery et al. 2022, appendix B): a forward and backward pass over T tokens of
sequences of length S costs ``6·N·T + 12·L·H·S·T`` FLOPs, where N is the number of non-embedding
parameters, L the layers and H the hidden size. MFU divides the achieved model FLOPs per second by
the device's peak: known for common GPUs (dense bf16/fp16 tensor-core peak, or TF32 when training
in fp32 with TF32 on), or given by ``train.peak_tflops``; on a CPU without a given peak it is not
reported (null), never guessed.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

from rankexp.tracking.rundir import RunDir

# dense (no sparsity) peak TFLOP/s per device: (bf16/fp16 tensor cores, tf32 tensor cores)
PEAK_TFLOPS = {
    "h200": (989.0, 494.0), "h100": (989.0, 494.0), "gh200": (989.0, 494.0),
    "a100": (312.0, 156.0), "a10g": (70.0, 35.0), "a10": (125.0, 62.5), "l40s": (362.0, 183.0),
    "l4": (121.0, 60.0), "v100": (125.0, 0.0), "t4": (65.0, 0.0), "rtx 4090": (165.0, 82.6),
    "rtx 3090": (71.0, 35.6), "b200": (2250.0, 1100.0),
}


def device_peak_tflops(precision: str, tf32: bool) -> float | None:
    """The peak TFLOP/s of the current CUDA device for ``precision`` (None when unknown)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name().lower()
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            half, tf = PEAK_TFLOPS[key]
            if "16" in str(precision):
                return half
            return tf if tf32 and tf else None
    return None


def transformer_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(non-embedding parameters, layers, hidden size) of the encoder's transformer(s)."""
    n_params = 0
    layers = hidden = 0
    for name, p in model.named_parameters():
        if "embeddings" not in name:
            n_params += p.numel()
    for mod in model.modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and hasattr(cfg, "num_hidden_layers"):
            layers, hidden = int(cfg.num_hidden_layers), int(cfg.hidden_size)
            break
    return n_params, layers, hidden


def batch_field(batch: Any, key: str, default: Any = None) -> Any:
    """A field of a training batch (a :class:`~rankexp.models.batch.Batch`, or a dict)."""
    return batch.get(key, default) if isinstance(batch, dict) else getattr(batch, key, default)


def step_tokens(batch: Any) -> tuple[int, int, int]:
    """(real tokens, padded tokens, sequences) of a training batch (cross- or bi-encoder)."""
    real = padded = seqs = 0
    for key in ("inputs", "queries", "docs"):
        inputs = batch_field(batch, key)
        if not isinstance(inputs, dict) or "attention_mask" not in inputs:
            continue
        mask = inputs["attention_mask"]
        real += int(mask.sum())
        padded += int(mask.numel())
        seqs += int(mask.shape[0])
    return real, padded, seqs


def train_flops(n_params: int, layers: int, hidden: int, tokens: int, mean_len: float) -> float:
    return 6.0 * n_params * tokens + 12.0 * layers * hidden * mean_len * tokens


class ThroughputCallback(pl.Callback):
    """Logs ``perf/pairs_per_s``, ``perf/tokens_per_s`` (real tokens), ``perf/pad_share`` and
    ``perf/mfu`` (when the peak is known) every ``every_n_steps`` steps, to ``history.jsonl`` and the
    loggers; keeps run totals for ``metrics.json``."""

    def __init__(self, rundir: RunDir, every_n_steps: int = 10, peak_tflops: float | None = None,
                 precision: str = "32-true", tf32: bool = False):
        self.rundir, self.every = rundir, max(1, int(every_n_steps))
        self.peak_given, self.precision, self.tf32 = peak_tflops, precision, tf32
        self.peak: float | None = None
        self.shape = (0, 0, 0)
        self._t = 0.0
        self.window = {"s": 0.0, "pairs": 0, "tokens": 0, "padded": 0, "flops": 0.0}
        self.total = dict(self.window)

    def on_train_start(self, trainer, pl_module):
        self.shape = transformer_shape(pl_module.encoder)
        self.peak = float(self.peak_given) if self.peak_given else device_peak_tflops(self.precision, self.tf32)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        dt = time.perf_counter() - self._t
        real, padded, seqs = step_tokens(batch)
        pairs = sum(len(d) for d in batch_field(batch, "doc_ids", []))
        flops = train_flops(*self.shape, real, real / max(1, seqs))
        for acc in (self.window, self.total):
            acc["s"] += dt
            acc["pairs"] += pairs
            acc["tokens"] += real
            acc["padded"] += padded
            acc["flops"] += flops
        step = trainer.global_step
        if step % self.every == 0 and trainer.is_global_zero and self.window["s"] > 0:
            rec = {"step": step, **{f"perf/{k}": v for k, v in self.rates(self.window).items() if v is not None}}
            for logger in trainer.loggers:
                logger.log_metrics({k: v for k, v in rec.items() if k != "step"}, step=step)
            self.rundir.append_history(rec)
            self.window = {k: 0 if k != "s" and k != "flops" else 0.0 for k in self.window}

    def rates(self, acc: dict[str, float]) -> dict[str, float | None]:
        s = max(acc["s"], 1e-9)
        achieved = acc["flops"] / s
        return {"pairs_per_s": round(acc["pairs"] / s, 2), "tokens_per_s": round(acc["tokens"] / s, 1),
                "pad_share": round(1 - acc["tokens"] / acc["padded"], 4) if acc["padded"] else None,
                "model_tflops": round(achieved / 1e12, 6),
                "mfu": round(achieved / (self.peak * 1e12), 5) if self.peak else None}

    def summary(self) -> dict[str, Any]:
        """Run totals (time inside training steps only) for ``metrics.json``."""
        return {**self.rates(self.total), "peak_tflops": self.peak, "step_s": round(self.total["s"], 2)}
