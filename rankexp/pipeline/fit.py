"""Stage ``fit``: callbacks, logger and trainer; the untrained start; training; model selection.

Before training, the untrained module ranks the test split (the ``untrained`` row) and the dev
queries (step 0 of the dev curve). After training, the best dev checkpoint is loaded; with
``train.select_start`` the untrained start is kept when no dev evaluation beat it (its test ranking
is reused, not scored again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankexp.config.compose import to_container
from rankexp.pipeline.predict import Prediction, predict_split, resolve_mode
from rankexp.pipeline.prepare import Prepared
from rankexp.tracking.rundir import RunDir


@dataclass
class Fitted:
    module: Any
    trainer: Any
    logger: Any
    throughput: Any
    groups: list
    mode: str
    untrained: Prediction | None
    untrained_dev: float | None
    best_dev: float | None
    best_step: int
    kept_start: bool
    train_s: float
    wise_ft: dict | None = None  # train.wise_ft: the chosen alpha and every candidate's dev score


def untrained_start(prep: Prepared, encoder, mode: str, has_dev: bool) -> tuple[Prediction, dict | None]:
    """The untrained start's test ranking and dev run (None without dev queries). Reranking scores come
    from the project cache when a run with the same start weights and candidates scored them before
    (rankexp.pipeline.untrained); retrieval is computed."""
    cfg = prep.cfg
    batch = int(cfg.eval.batch_size)
    if mode != "rerank":
        dev_run = (prep.scorer.score_candidates(encoder, prep.texts, prep.dev_pairs, batch, prep.device, None, "scoring dev")
                   if has_dev else None)
        return predict_split(prep, encoder, mode), dev_run
    from rankexp.pipeline.untrained import untrained_scores

    k = int(cfg.eval.rerank_k)
    test_pairs = prep.candidates(prep.split["test"], k)
    fast = cfg.eval.get("fast")

    def score(pairs, what):
        return prep.scorer.score_candidates(encoder, prep.texts, pairs, batch, prep.device,
                                            fast if pairs is test_pairs else None, what)

    t0 = time.perf_counter()
    test_run, dev_run = untrained_scores(prep, encoder, test_pairs, list(prep.dev_pairs) if has_dev else [], score)
    info = {"mode": "rerank", "k": k, "timings": {"rerank_s": time.perf_counter() - t0}}
    return Prediction(test_run, info, k, list(prep.measures)), (dev_run if has_dev else None)


def callbacks_for(prep: Prepared, rd: RunDir, has_dev: bool, val_every: int):
    """History, throughput, signal guard, best/last checkpoints, early stopping, progress bar."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from rankexp.tracking.history import HistoryCallback
    from rankexp.tracking.lifecycle import guard_callback  # signals -> last.ckpt; crash-safe checkpoint writes
    from rankexp.tracking.throughput import ThroughputCallback
    from rankexp.utils.progress import enabled as progress_enabled

    cfg = prep.cfg
    monitor = f"val/{prep.dev_measure}"
    log_every = int(cfg.trainer.get("log_every_n_steps", 10) or 10)
    tf32 = bool(cfg.train.get("tf32", True))
    throughput = ThroughputCallback(rd, log_every, cfg.train.get("peak_tflops"), str(cfg.trainer.get("precision", "32-true")),
                                    tf32 and prep.device == "cuda")
    callbacks: list = [HistoryCallback(rd, log_every), throughput, guard_callback(rd)]
    best_cb = None
    if has_dev:
        best_cb = ModelCheckpoint(dirpath=rd.checkpoints, filename="best", monitor=monitor, mode="max", save_top_k=1,
                                  save_weights_only=True, enable_version_counter=False)
        callbacks.append(best_cb)
        if cfg.train.early_stopping.enabled:
            callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=int(cfg.train.early_stopping.patience)))
        # last.ckpt (for resuming) after each dev evaluation, so it holds that evaluation and the best so far:
        # a resumed run then makes the same checkpoint choice as an uninterrupted one
        callbacks.append(ModelCheckpoint(dirpath=rd.checkpoints, filename="last", save_top_k=1, save_on_train_epoch_end=False,
                                         enable_version_counter=False))
    else:
        callbacks.append(ModelCheckpoint(dirpath=rd.checkpoints, filename="last", every_n_train_steps=val_every, save_top_k=1,
                                         enable_version_counter=False))
    if progress_enabled():
        from pytorch_lightning.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    return callbacks, best_cb, throughput


def fit(prep: Prepared, module, rd: RunDir, resume: Path | None) -> Fitted:
    import pytorch_lightning as pl
    import torch

    from rankexp.data.examples import build_groups
    from rankexp.eval.measures import evaluate
    from rankexp.models.datamodule import RankingDataModule
    from rankexp.pipeline.build import batch_sources
    from rankexp.tracking.loggers import build_logger
    from rankexp.utils.progress import enabled as progress_enabled

    cfg = prep.cfg
    max_steps = int(cfg.trainer.max_steps)
    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    has_dev = bool(prep.dev_pairs)
    val_every = min(int(cfg.train.val_every_n_steps), max_steps)
    if prep.device == "cuda" and bool(cfg.train.get("tf32", True)):  # TF32 for the fp32 matmuls bf16 autocast leaves
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    callbacks, best_cb, throughput = callbacks_for(prep, rd, has_dev, val_every)
    logger = build_logger(cfg.logger, rd.run_id, rd.path, Path(cfg.paths.output_dir),
                          to_container(cfg), [f"data:{prep.collection.name}", f"loss:{module.loss_fn.name}"])
    trainer_kwargs = {k: v for k, v in to_container(cfg.trainer).items() if k != "_target_"}
    trainer_kwargs.setdefault("max_epochs", 1)  # the groups are exactly max_steps batches
    trainer = pl.Trainer(**trainer_kwargs, callbacks=callbacks, logger=logger, default_root_dir=str(rd.path),
                         val_check_interval=val_every if has_dev else None, check_val_every_n_epoch=None if has_dev else 1,
                         limit_val_batches=1.0 if has_dev else 0, num_sanity_val_steps=0,
                         enable_progress_bar=progress_enabled(), enable_model_summary=False)
    # every rank of a distributed run consumes max_steps batches of its share of the groups
    groups = build_groups(prep.collection, prep.split["train"], prep.sampler, int(cfg.train.num_negatives),
                          max_steps * int(cfg.train.batch_size) * accumulate * trainer.world_size, int(cfg.seed))
    from rankexp.distill.teachers import prepare_teacher  # distill: teacher scores of these groups (cached)

    prepare_teacher(prep, groups)
    dm = RankingDataModule(groups, prep.dev_pairs, prep.pairs, int(cfg.train.batch_size), int(cfg.eval.batch_size),
                           accumulate * trainer.world_size, sources=batch_sources(prep))
    mode = resolve_mode(cfg.eval.get("mode"), prep.scorer)

    # the untrained start on the same test queries (a row every study table needs): the module's
    # weights before fit are the fresh initialisation even when resuming (fit loads the checkpoint)
    untrained, untrained_dev = None, None
    select_start = bool(cfg.train.get("select_start", False)) and has_dev
    want_untrained = bool(cfg.eval.get("untrained", True))
    start_state = {k: v.detach().clone() for k, v in module.state_dict().items()} if select_start and want_untrained else None
    if want_untrained and trainer.is_global_zero:
        t0 = time.perf_counter()
        untrained, dev_run = untrained_start(prep, module.encoder, mode, has_dev)
        if has_dev:  # the dev measure at step 0, so dev curves start where training starts
            untrained_dev = evaluate(dev_run, prep.dev_qrels, [prep.dev_measure], qids=prep.split["dev"],
                                     complete=True).aggregate[prep.dev_measure]
            if resume is None:
                rd.append_history({"step": 0, f"val/{prep.dev_measure}": untrained_dev, "elapsed_s": 0.0})
        prep.timings["untrained_eval_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    train_s = time.perf_counter() - t0
    prep.timings["train_s"] = train_s
    prep.timings.update(prep.sampler.train_timings(train_s))  # e.g. ADORE: the share spent re-retrieving
    fitted = Fitted(module, trainer, logger, throughput, groups, mode, untrained, untrained_dev, None, trainer.global_step,
                    False, train_s)
    if trainer.is_global_zero:
        def dev_score() -> float:  # the dev measure of the module's current weights (train.wise_ft)
            run = prep.scorer.score_candidates(module.encoder, prep.texts, prep.dev_pairs, int(cfg.eval.batch_size),
                                               prep.device, None, "scoring dev (WiSE-FT)")
            return evaluate(run, prep.dev_qrels, [prep.dev_measure], qids=prep.split["dev"], complete=True).aggregate[prep.dev_measure]

        select(fitted, best_cb, start_state, cfg.train.get("wise_ft"), dev_score)
    return fitted


def select(f: Fitted, best_cb, start_state: dict | None, wise_ft=None, dev_score=None) -> None:
    """Load the best dev checkpoint; with ``train.wise_ft``, choose on dev among the start, the best
    checkpoint and their weight interpolations; keep the untrained start when nothing beat it."""
    import torch

    if best_cb is not None and best_cb.best_model_path:
        state = torch.load(best_cb.best_model_path, map_location="cpu", weights_only=False)
        f.module.load_state_dict(state["state_dict"])
        f.best_step = int(state.get("global_step", f.best_step))
    f.best_dev = float(best_cb.best_model_score) if best_cb is not None and best_cb.best_model_score is not None else None
    if wise_ft and dev_score is not None and start_state is not None and f.untrained_dev is not None and f.best_dev is not None:
        from rankexp.techniques.wise_ft import choose_weights

        f.wise_ft = choose_weights(f.module, start_state, wise_ft, dev_score, f.untrained_dev, f.best_dev)
        if 0.0 < f.wise_ft["alpha"] < 1.0:
            f.best_dev = f.wise_ft["dev"][str(f.wise_ft["alpha"])]
            if best_cb is not None and best_cb.best_model_path:  # best.ckpt is the network the test split sees
                from rankexp.utils.io import atomic_open

                with atomic_open(best_cb.best_model_path, "wb", encoding=None) as fh:
                    torch.save({"state_dict": f.module.state_dict(), "global_step": f.best_step,
                                "wise_ft_alpha": f.wise_ft["alpha"]}, fh)
    f.kept_start = (start_state is not None and f.untrained_dev is not None and f.untrained is not None
                    and (f.best_dev is None or f.untrained_dev >= f.best_dev - 1e-6))  # the logged best is float32: ties go to the start
    if f.kept_start:  # train.select_start: no dev evaluation beat the start, so the start is the model
        f.module.load_state_dict(start_state)
        f.best_step, f.best_dev = 0, f.untrained_dev
        if best_cb is not None and best_cb.best_model_path:
            from rankexp.utils.io import atomic_open

            with atomic_open(best_cb.best_model_path, "wb", encoding=None) as fh:
                torch.save({"state_dict": start_state, "global_step": 0}, fh)
