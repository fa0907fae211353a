"""A Lightning callback that appends train/dev curves to ``history.jsonl`` in the run directory,
whatever logger is configured (the reports read curves from there), and, for a loss that collects
values to draw (``debias=cet``: ``drain_histograms``), their histograms (``hist/<name>``: edges, counts,
n, mean; rank zero's values under DDP) to history.jsonl and W&B."""

from __future__ import annotations

import time

import pytorch_lightning as pl

from rankexp.tracking.rundir import RunDir


class HistoryCallback(pl.Callback):
    def __init__(self, rundir: RunDir, every_n_steps: int = 10):
        self.rundir, self.every = rundir, max(1, every_n_steps)
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero and trainer.global_step > 0:
            self.rundir.append_history({"event": "resumed", "step": trainer.global_step})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if not (step % self.every == 0 or step == 1):
            return
        stats = pl_module.weighter.log_stats()  # drained on every rank, recorded on rank zero
        drain = getattr(getattr(pl_module, "loss_fn", None), "drain_histograms", None)
        values = drain() if callable(drain) else {}  # debias=cet: weights/propensities since the last drawing
        if not trainer.is_global_zero:
            return
        loss = outputs["loss"].item() if isinstance(outputs, dict) else float(outputs)
        rec = {"step": step, "train/loss": loss, "lr": trainer.optimizers[0].param_groups[0]["lr"],
               "elapsed_s": round(time.perf_counter() - self.t0, 2)}
        weights = {f"train/weight_{k}": float(v) for k, v in stats.items()}
        rec.update(weights)
        if weights:  # straight to the loggers: Lightning would drop steps off its log_every_n_steps grid
            for logger in trainer.loggers:
                logger.log_metrics(weights, step=step)
        if values:
            from rankexp.tracking.loggers import histogram, log_histograms

            hists = {name: histogram(v.numpy()) for name, v in values.items() if v.numel()}
            rec.update({f"hist/{name}": h for name, h in hists.items()})
            for logger in trainer.loggers:
                log_histograms(logger, hists, step)
        self.rundir.append_history(rec)

    def on_validation_end(self, trainer, pl_module):
        if trainer.is_global_zero and pl_module.last_dev and not trainer.sanity_checking:
            rec = {"step": trainer.global_step, **{f"val/{k}": v for k, v in pl_module.last_dev.items()},
                   "elapsed_s": round(time.perf_counter() - self.t0, 2)}
            self.rundir.append_history(rec)
