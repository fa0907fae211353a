"""RankingModule: one LightningModule for every technique. Encoder, loss and weighter are injected."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pytorch_lightning as pl
import torch

from rankexp.errors import TrainingError
from rankexp.losses.base import RankingLoss
from rankexp.models.batch import Batch, Run, check_requirements, requirements
from rankexp.techniques.base import UniformWeighter, Weighter


def bucketed(fn, inputs: dict[str, torch.Tensor], buckets: int, **kwargs) -> torch.Tensor:
    """``fn(**inputs)`` computed in ``buckets`` chunks of rows sorted by length, each chunk trimmed
    to its own longest row, so short rows do not pay for the batch's longest one. Rows come back in
    the input order; the result equals one padded call (padding is masked out)."""
    mask = inputs["attention_mask"]
    if buckets <= 1 or mask.shape[0] < 2 * buckets:
        return fn(**inputs, **kwargs)
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths)
    chunks = torch.chunk(order, buckets)
    outs = [fn(**{k: v[c, : int(lengths[c].max())] for k, v in inputs.items()}, **kwargs) for c in chunks]
    return torch.cat(outs)[torch.argsort(torch.cat(chunks))]


class RankingModule(pl.LightningModule):
    """Trains ``encoder`` with ``loss`` on groups ``[B, 1+n]``, weighting examples by ``weighter``.

    Each training step gets a :class:`~rankexp.models.batch.Batch`; the weighter sees it first
    (``weighter.weights(batch, step)``, stored as ``batch.weights``), then the loss sees the scores and
    the batch (``loss(scores, batch) -> [B]``), and the module reduces. What the loss and the weighter
    need beyond scores (their ``requires``) is :attr:`requires`; :meth:`check_inputs` says which runs
    the collate function must read it from, or fails with one line.

    Dev evaluation reranks the dev queries' first-stage candidates and logs ``val/<measure>``
    (trec_eval semantics) after each validation pass.
    """

    def __init__(self, encoder: torch.nn.Module, loss: RankingLoss, weighter: Weighter | None = None,
                 lr: float = 3e-5, weight_decay: float = 0.01, warmup_steps: int = 0, max_steps: int = 100,
                 head_lr: float | None = None,
                 dev_qrels: Mapping[str, Mapping[str, int]] | None = None, dev_measures: tuple[str, ...] = ("nDCG@10",),
                 length_buckets: int = 4):
        super().__init__()
        self.length_buckets = max(1, int(length_buckets))
        self.encoder, self.loss_fn = encoder, loss
        self.weighter = weighter or UniformWeighter()
        self.lr, self.weight_decay, self.warmup_steps, self.max_steps = lr, weight_decay, warmup_steps, max_steps
        self.head_lr = head_lr  # a fresh scoring head learns faster at a larger rate than the pretrained encoder
        self.dev_qrels, self.dev_measures = dev_qrels, dev_measures
        self._val_scores: list[tuple[str, str, float]] = []
        self.last_dev: dict[str, float] = {}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores ``[N]``, the pairs encoded in ``length_buckets`` length-sorted chunks (see
        :func:`bucketed`): the same scores as one padded batch, less padding work."""
        return bucketed(self.encoder, inputs, self.length_buckets).float()

    # ------------------------------------------------------------------ what the techniques need
    def techniques(self) -> list[Any]:
        """The components that see the batch: the loss(es) the step uses and the weighter."""
        return [self.loss_fn, self.weighter]

    @property
    def provided(self) -> frozenset[str]:
        """Batch extras a part of the module supplies during the step (a dynamic sampler's)."""
        return frozenset()

    @property
    def requires(self) -> frozenset[str]:
        """What the loss and the weighter need in the batch beyond what the step itself provides."""
        return frozenset(requirements(self.techniques())) - self.provided

    def check_inputs(self, sources: Mapping[str, Run | None] | None = None) -> dict[str, Run]:
        """The runs the collate function must fill the required batch fields from (``sources``:
        ``{"first_stage_scores": run, "teacher_scores": run | None}``); one-line ConfigError when a
        requirement cannot be provided."""
        return check_requirements(self.techniques(), sources, self.provided)

    # ------------------------------------------------------------------ train
    def example_losses(self, batch: Batch) -> torch.Tensor:
        """The loss of each group of the batch, ``[B]``."""
        scores = self(batch.inputs).view(batch.size, batch.group_size)
        return self.loss_fn(scores, batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        batch.weights = None if self.weighter.uniform else self.weighter.weights(batch, self.global_step)
        per_example = self.example_losses(batch)
        if batch.weights is None:
            loss = per_example.mean()
        else:
            w = batch.weights.to(per_example)
            if self.weighter.application == "batch":
                loss = w.mean() * per_example.mean()
            else:
                loss = (w * per_example).sum() / len(per_example)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss is {loss.item()} at step {self.global_step} (lr={self.lr}); lower model.lr or check the data"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.size)
        if hasattr(self.loss_fn, "log_dict"):  # debias=cet: its guards and selection model (rankexp.debias.cet)
            self.log_dict(self.loss_fn.log_dict(), batch_size=batch.size)
        return loss

    # ------------------------------------------------------------------ dev
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        scores = self(batch["inputs"]).float().cpu().tolist()
        self._val_scores.extend(zip(batch["qids"], batch["dids"], scores))

    def on_validation_epoch_end(self) -> None:
        from rankexp.eval.measures import evaluate

        triples = self._val_scores
        self._val_scores = []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, triples)
            triples = [t for part in gathered for t in part]
        if not triples or not self.dev_qrels:
            return
        run: dict[str, dict[str, float]] = {}
        for q, d, s in triples:
            run.setdefault(q, {})[d] = s
        result = evaluate(run, self.dev_qrels, list(self.dev_measures), qids=list(run), complete=True)
        self.last_dev = result.aggregate
        for name, value in result.aggregate.items():
            self.log(f"val/{name}", value, prog_bar=True, sync_dist=False, rank_zero_only=False)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            is_head = name.startswith("encoder.head.")
            no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
            groups.setdefault((is_head, no_decay), []).append(p)
        opt = torch.optim.AdamW([{"params": ps, "weight_decay": 0.0 if no_decay else self.weight_decay,
                                  "lr": (self.head_lr or self.lr) if is_head else self.lr}
                                 for (is_head, no_decay), ps in groups.items()], lr=self.lr, **self._adamw_impl())
        warm, total = max(0, self.warmup_steps), max(1, self.max_steps)

        def schedule(step: int) -> float:  # linear warmup, then linear decay to 0
            if step < warm:
                return (step + 1) / (warm + 1)
            return max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _adamw_impl(self) -> dict[str, bool]:
        """``fused=True`` (one kernel for all parameters: the same AdamW update, ~6x less optimizer time
        on a CPU, see benchmarks/README.md) unless a mixed-precision trainer clips gradients, which
        Lightning refuses for optimizers that unscale internally; the default multi-tensor otherwise."""
        trainer = getattr(self, "_trainer", None)
        precision = str(getattr(trainer, "precision", "32-true")) if trainer is not None else "32-true"
        if "mixed" in precision:
            return {}
        return {"fused": True}


FAST_MODES = ("int8", "bf16")


def fast_inference(encoder: torch.nn.Module, fast: str | None, device: str | torch.device = "cpu"):
    """The model and the context to run inference in for ``eval.fast``:

    * ``None``: ``encoder`` itself, no context (the exact path; its scores never change);
    * ``int8``: a copy of ``encoder`` whose ``nn.Linear`` layers are dynamically quantized to int8
      (weights int8 per output channel, activations quantized per batch, so a pair's score can
      depend slightly on its batch; CPU only). ``encoder`` is untouched;
    * ``bf16``: ``encoder`` itself under bfloat16 autocast (for GPUs and CPUs with native bf16; on
      an AVX2-only CPU it is several times slower than exact).

    Measured speed and nDCG@10 effect: benchmarks/README.md.
    """
    import contextlib

    from rankexp.errors import ConfigError

    if fast in (None, "null", "none", "None", False):
        return encoder, contextlib.nullcontext()
    if fast not in FAST_MODES:
        raise ConfigError(f"eval.fast must be null, int8 or bf16, got {fast!r}")
    device_type = torch.device(device).type
    if fast == "bf16":
        return encoder, torch.autocast(device_type, dtype=torch.bfloat16)
    if device_type != "cpu":
        raise ConfigError(f"eval.fast=int8 runs on the CPU only (device is {device}); use eval.fast=bf16 or null")
    import copy
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's dynamic quantization is deprecated in favour of torchao, still shipped
        warnings.simplefilter("ignore")
        # per-output-channel weight scales: half the score error of per-tensor ones at the same speed
        model = quantize_dynamic(copy.deepcopy(encoder).cpu().eval(), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                 dtype=torch.qint8)
    return model, contextlib.nullcontext()


@torch.inference_mode()
def score_pairs(encoder: torch.nn.Module, loader, description: str = "reranking", device: str | torch.device = "cpu",
                fast: str | None = None) -> dict[str, dict[str, float]]:
    """Score every (qid, doc) pair of ``loader`` with ``encoder`` (eval mode, inference mode).

    ``fast`` (``eval.fast``): ``None`` = exact; ``int8`` or ``bf16``: see :func:`fast_inference`.
    """
    from rankexp.utils.progress import task

    was_training = encoder.training
    encoder.eval()
    encoder.to(device)
    model, context = fast_inference(encoder, fast, device)
    run: dict[str, dict[str, float]] = {}
    try:
        with task(description, len(loader.dataset)) as advance:
            for batch in loader:
                inputs = {k: v.to(device) for k, v in batch["inputs"].items()}
                with context:
                    scores = model(**inputs)
                scores = scores.float().cpu().tolist()
                for q, d, s in zip(batch["qids"], batch["dids"], scores):
                    if not math.isfinite(s):
                        raise TrainingError(f"model produced a non-finite score for query {q}, doc {d}")
                    run.setdefault(q, {})[d] = s
                advance(len(scores))
    finally:
        encoder.train(was_training)
    return run
