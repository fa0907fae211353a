"""The library API behind every command: ``compose`` → ``train`` → ``RunResult``; ``evaluate_run``.

Python users get exactly what the CLI does::

    from rankexp import api
    result = api.train(api.compose(["data=cranfield", "trainer.max_steps=200"]))
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.config.compose import compose as compose  # re-exported
from rankexp.config.compose import run_id as config_run_id
from rankexp.config.compose import to_container
from rankexp.errors import ConfigError, RankexpError, TrainingError, one_line
from rankexp.tracking.rundir import RunDir, process_rank

log = logging.getLogger("rankexp")


@dataclass
class RunResult:
    run_id: str
    path: Path
    metrics: dict[str, Any]
    skipped: bool = False
    cache: list[dict] = field(default_factory=list)


def rundir_for(cfg: DictConfig) -> RunDir:
    return RunDir(Path(cfg.paths.runs_dir) / config_run_id(cfg))


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train(cfg: DictConfig, overrides: Sequence[str] = (), force: bool = False, wait: bool | float = False) -> RunResult:
    """One run: fit, rerank the test split, evaluate model and first stage, write the run directory.

    A run whose status is ``complete`` is not redone unless ``force``; a run cut off earlier
    resumes from ``checkpoints/last.ckpt`` (a damaged one is moved aside and the run restarts).
    One process at a time owns a run directory: another live owner makes this call raise
    ``RunLocked`` (one line), or wait for it with ``wait`` (True, or at most that many seconds).
    SIGTERM/SIGINT save a resumable checkpoint, set ``failed: interrupted (SIGTERM)`` and raise
    ``Interrupted`` (exit code 143/130); a full disk raises ``DiskFullError``.
    """
    from rankexp.tracking import lifecycle as lc
    from rankexp.tracking.loggers import finish_all

    rd = rundir_for(cfg)
    if process_rank() != 0:  # a non-zero rank of a distributed run trains but writes nothing
        rd = RunDir(rd.path, readonly=True)
    lock = None if rd.readonly else lc.RunLock(rd.path).acquire(wait=wait)
    exit_code = 1
    try:
        if rd.is_complete() and not force:
            exit_code = 0
            return RunResult(rd.run_id, rd.path, rd.metrics(), skipped=True)
        resume = rd.checkpoints / "last.ckpt"
        if not rd.readonly:
            lc.clean_temp(rd.checkpoints)  # a save cut off by a crash
            if force and rd.path.exists():
                resume.unlink(missing_ok=True)
            elif resume.exists():
                ok, why = lc.checkpoint_ok(resume)
                if not ok:
                    moved = lc.quarantine(resume)
                    lc.notice(f"{resume}: {why}; moved aside to {moved.name}, run {rd.run_id} restarts from scratch")
        with lc.SignalGuard() as guard, lc.Heartbeat(rd):
            try:
                rd.start(cfg, overrides, int(cfg.seed), fresh=not resume.exists())
                result, _ = _train(cfg, rd, resume if resume.exists() else None)
                rd.set_status("complete")
                exit_code = 0
                return result
            except SystemExit as e:  # Lightning's own SIGTERM path (distributed runs)
                if guard.signum is None:
                    raise
                raise lc.Interrupted(guard.signum) from e
    except lc.Interrupted as e:
        exit_code = e.exit_code
        _final_status(rd, f"interrupted ({e.signame})")
        raise
    except KeyboardInterrupt:
        exit_code = 130
        _final_status(rd, "interrupted (SIGINT)")
        raise
    except lc.RunLocked:
        raise
    except RankexpError as e:
        _final_status(rd, one_line(e))
        raise
    except Exception as e:
        import torch

        if lc.disk_full(e):
            err = lc.disk_full_error(e)
            _final_status(rd, one_line(err))
            raise err from e
        if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
            err = TrainingError(f"out of memory: lower train.batch_size / eval.batch_size or model.encoder.max_length ({one_line(e)})")
            _final_status(rd, one_line(err))
            raise err from e
        _final_status(rd, f"{type(e).__name__}: {one_line(e)}")
        raise
    finally:
        finish_all(exit_code)  # every W&B run this attempt started, also on failure and interrupt
        if lock is not None:
            lock.release()


def _final_status(rd: RunDir, reason: str) -> None:
    """``failed: <reason>``; a status that cannot be written never hides the error itself."""
    try:
        rd.set_status("failed", reason)
    except Exception as e:  # pragma: no cover - the in-place fallback failed too
        log.warning("could not write %s/status (%s)", rd.path, one_line(e))


def _train(cfg: DictConfig, rd: RunDir, resume: Path | None):
    import pytorch_lightning as pl
    import torch

    from rankexp.config.compose import build

    from rankexp.data.collection import load_collection
    from rankexp.data.examples import build_groups
    from rankexp.data.splits import resolve_splits
    from rankexp.data.negatives.base import MiningContext
    from rankexp.data.tokens import BiPairEncoder, PairEncoder, build_token_tables
    from rankexp.eval.measures import PROVIDER, evaluate, parse_measures
    from rankexp.eval.trec_io import sort_ranking, write_run
    from rankexp.models.datamodule import RankingDataModule, pair_loader
    from rankexp.models.module import RankingModule, score_pairs
    from rankexp.tracking.cache import Cache
    from rankexp.tracking.history import HistoryCallback
    from rankexp.tracking.throughput import ThroughputCallback
    from rankexp.tracking.loggers import build_logger, log_final
    from rankexp.utils.progress import enabled as progress_enabled

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    measures = [str(m) for m in parse_measures(list(cfg.eval.measures))]
    dev_measure = str(parse_measures([cfg.eval.dev_measure])[0])
    if os.environ.get("RANKEXP_THREADS"):  # e.g. parallel sweep members sharing a machine's cores
        torch.set_num_threads(max(1, int(os.environ["RANKEXP_THREADS"])))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    # cheap components first, so a bad value fails before any expensive work
    loss = build(cfg.loss, "loss")
    first_stage = build(cfg.first_stage, "first_stage")
    sampler = build(cfg.negatives, "negatives")
    weighter = build(cfg.curriculum, "curriculum")

    # ---- data, split, first stage
    collection = load_collection(cfg.data)
    split, split_record = resolve_splits(cfg.data, collection)  # official data.splits, else the seeded random split
    rd.write_json("split.json", split_record)
    cache = Cache(Path(cfg.paths.cache_dir))
    fs_run = first_stage.retrieve(collection, cache)
    timings["preprocess_first_stage_s"] = time.perf_counter() - t_start

    # ---- model, tokens, training groups
    t0 = time.perf_counter()
    encoder = build(cfg.model.encoder, "model.encoder")
    bi = getattr(encoder, "kind", "cross") == "bi"
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto") else "cpu"
    docs_tok, queries_tok = build_token_tables(collection, encoder.tokenizer, encoder.max_length, encoder.max_query_length, cache)
    pairs = (BiPairEncoder if bi else PairEncoder)(encoder.tokenizer, docs_tok, queries_tok, encoder.max_length, encoder.max_query_length)
    t_mine = time.perf_counter()
    sampler.setup(collection, fs_run, MiningContext(cache, encoder, split["train"], device, int(cfg.eval.batch_size)))
    timings["preprocess_negatives_s"] = time.perf_counter() - t_mine
    max_steps = int(cfg.trainer.max_steps)
    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    # techniques see only the training queries' run and judgments (no dev/test labels leak into them)
    train_q = split["train"]
    t_weights = time.perf_counter()
    weights_run = {q: fs_run[q] for q in train_q if q in fs_run}
    if getattr(weighter, "run_file", None):  # curriculum.run_file: easiness from another ranker's run
        from rankexp.techniques.curriculum import load_run_file
        weights_run = load_run_file(weighter.run_file, train_q, collection.docs.keys())
    weighter.setup(weights_run, {q: collection.qrels[q] for q in train_q if q in collection.qrels}, max_steps)
    timings["preprocess_weights_s"] = time.perf_counter() - t_weights  # e.g. the curriculum's easiness tables

    def candidates(qids: Sequence[str], depth: int) -> list[tuple[str, str]]:
        return [(q, d) for q in qids for d, _ in sort_ranking(fs_run.get(q, {}))[:depth]]

    dev_pairs = candidates(split["dev"], int(cfg.eval.dev_rerank_k))
    dev_qrels = {q: collection.qrels[q] for q in split["dev"]}
    timings["preprocess_tokens_s"] = time.perf_counter() - t0

    module_cls, extra = RankingModule, {}
    if bi:
        from rankexp.models.bimodule import BiEncoderModule

        module_cls = BiEncoderModule
        extra = {"relevant": {q: collection.relevant(q) for q in train_q}, "dynamic": sampler if sampler.dynamic else None}
    module = module_cls(encoder, loss, weighter, **extra, lr=float(cfg.model.lr),
                           head_lr=float(cfg.model.head_lr) if cfg.model.get("head_lr") else None,
                           weight_decay=float(cfg.model.weight_decay),
                           warmup_steps=int(round(float(cfg.model.warmup_ratio) * max_steps)), max_steps=max_steps,
                           dev_qrels=dev_qrels, dev_measures=(dev_measure,),
                           length_buckets=int(cfg.train.length_buckets))

    # ---- trainer
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    monitor = f"val/{dev_measure}"
    has_dev = bool(dev_pairs)
    val_every = min(int(cfg.train.val_every_n_steps), max_steps)
    from rankexp.tracking.lifecycle import guard_callback  # signals -> last.ckpt; crash-safe checkpoint writes

    log_every = int(cfg.trainer.get("log_every_n_steps", 10) or 10)
    tf32 = bool(cfg.train.get("tf32", True))
    if device == "cuda" and tf32:  # TF32 tensor cores for the fp32 matmuls that bf16 autocast leaves in fp32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    throughput = ThroughputCallback(rd, log_every, cfg.train.get("peak_tflops"), str(cfg.trainer.get("precision", "32-true")),
                                    tf32 and device == "cuda")
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
    config_dict = to_container(cfg)
    logger = build_logger(cfg.logger, rd.run_id, rd.path, Path(cfg.paths.output_dir),
                          config_dict, [f"data:{collection.name}", f"loss:{module.loss_fn.name}"])
    trainer_kwargs = {k: v for k, v in to_container(cfg.trainer).items() if k != "_target_"}
    trainer_kwargs.setdefault("max_epochs", 1)  # the groups are exactly max_steps batches
    trainer = pl.Trainer(**trainer_kwargs, callbacks=callbacks, logger=logger, default_root_dir=str(rd.path),
                         val_check_interval=val_every if has_dev else None, check_val_every_n_epoch=None if has_dev else 1,
                         limit_val_batches=1.0 if has_dev else 0, num_sanity_val_steps=0,
                         enable_progress_bar=progress_enabled(),
                         enable_model_summary=False)
    # every rank of a distributed run consumes max_steps batches of its share of the groups
    groups = build_groups(collection, split["train"], sampler, int(cfg.train.num_negatives),
                          max_steps * int(cfg.train.batch_size) * accumulate * trainer.world_size, int(cfg.seed))
    dm = RankingDataModule(groups, dev_pairs, pairs, int(cfg.train.batch_size), int(cfg.eval.batch_size), accumulate * trainer.world_size)
    mode = str(cfg.eval.get("mode") or "auto")
    if mode not in ("auto", "rerank", "retrieve"):
        raise ConfigError(f"eval.mode must be auto, rerank or retrieve, got {mode!r}")
    if mode == "auto":
        mode = "retrieve" if bi else "rerank"
    if mode == "retrieve" and not bi:
        raise ConfigError("eval.mode=retrieve needs a bi-encoder (model=bi_encoder); a cross-encoder can only rerank")

    def score_candidates(mod, pair_list: list[tuple[str, str]], description: str, fast: str | None = None) -> dict:
        """(query, doc) pairs scored by ``mod``: a bi-encoder encodes each distinct query and document
        once; a cross-encoder scores the pairs in length-sorted batches."""
        if bi:
            from rankexp.retrieval.dense import rerank_pairs

            return rerank_pairs(mod.encoder, collection, cache, pair_list, int(cfg.eval.batch_size), device, fast=fast)
        return score_pairs(mod.encoder, pair_loader(pair_list, pairs, int(cfg.eval.batch_size)), description, device, fast=fast)

    def predict_test(mod) -> tuple[dict, dict[str, Any], int, list[str]]:
        """The test split's ranking by ``mod``: reranked first-stage candidates, or (a bi-encoder with
        ``eval.mode=retrieve``) exact top-k retrieval from the whole corpus."""
        t_pred = time.perf_counter()
        if mode == "retrieve":
            from rankexp.retrieval.dense import build_index, search_queries, texts_for

            k = int(cfg.eval.retrieval_k)
            n_events = len(cache.events)
            index = build_index(mod.encoder, collection, cache, int(cfg.eval.batch_size), device)
            index_s = time.perf_counter() - t_pred
            _, query_text = texts_for(mod.encoder, collection, cache)
            run = search_queries(mod.encoder, index, query_text, split["test"], k, int(cfg.eval.batch_size), device)
            built = [e for e in cache.events[n_events:] if e.kind == "dense_index" and not e.hit]
            info: dict[str, Any] = {"mode": "dense retrieval", "k": k, "index": index.digest(), "docs": len(index),
                                    "index_cached": not built,
                                    "docs_per_s": round(len(index) / built[0].build_s, 1) if built and built[0].build_s > 0 else None,
                                    "timings": {"index_s": index_s, "retrieve_s": time.perf_counter() - t_pred - index_s}}
            return run, info, k, [str(m) for m in parse_measures(list(cfg.eval.retrieval_measures))]
        k = int(cfg.eval.rerank_k)
        run = score_candidates(mod, candidates(split["test"], k), "reranking test", cfg.eval.get("fast"))
        return run, {"mode": "rerank", "k": k, "timings": {"rerank_s": time.perf_counter() - t_pred}}, k, measures

    # the untrained start on the same test queries (a row every study table needs): the module's
    # weights before fit are the fresh initialisation even when resuming (fit loads the checkpoint)
    untrained, untrained_run, untrained_dev = None, None, None
    select_start = bool(cfg.train.get("select_start", False)) and has_dev
    start_state = ({k: v.detach().clone() for k, v in module.state_dict().items()}
                   if select_start and cfg.eval.get("untrained", True) else None)
    if cfg.eval.get("untrained", True) and trainer.is_global_zero:
        t0 = time.perf_counter()
        untrained = predict_test(module)
        untrained_run = untrained[0]
        if has_dev:  # the dev measure at step 0, so dev curves start where training starts
            dev_run = score_candidates(module, dev_pairs, "scoring dev")
            untrained_dev = evaluate(dev_run, dev_qrels, [dev_measure], qids=split["dev"], complete=True).aggregate[dev_measure]
            if resume is None:
                rd.append_history({"step": 0, f"val/{dev_measure}": untrained_dev, "elapsed_s": 0.0})
        timings["untrained_eval_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    timings["train_s"] = time.perf_counter() - t0
    if sampler.dynamic and timings["train_s"] > 0:  # ADORE: the share of training spent re-retrieving
        timings["adore_retrieval_share"] = sampler.retrieval_s / timings["train_s"]
        timings["adore_retrieval_and_filter_share"] = (sampler.retrieval_s + sampler.candidates_s) / timings["train_s"]
    if not trainer.is_global_zero:
        return RunResult(rd.run_id, rd.path, {}), logger

    # ---- best checkpoint, rerank test, evaluate
    best_step = trainer.global_step
    if best_cb is not None and best_cb.best_model_path:
        state = torch.load(best_cb.best_model_path, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        best_step = int(state.get("global_step", best_step))
    best_dev = float(best_cb.best_model_score) if best_cb is not None and best_cb.best_model_score is not None else None
    kept_start = (start_state is not None and untrained_dev is not None and untrained_run is not None
                  and (best_dev is None or untrained_dev >= best_dev - 1e-6))  # the logged best is float32: ties go to the start
    if kept_start:  # train.select_start: no dev evaluation beat the start, so the start is the model
        module.load_state_dict(start_state)
        best_step, best_dev = 0, untrained_dev
        if best_cb is not None and best_cb.best_model_path:
            from rankexp.utils.io import atomic_open

            with atomic_open(best_cb.best_model_path, "wb", encoding=None) as fh:
                torch.save({"state_dict": start_state, "global_step": 0}, fh)
    # the kept start's test ranking is the untrained one already computed (same weights): not scored twice
    model_run, retrieval, depth, measures = untrained if kept_start else predict_test(module)
    retrieval = dict(retrieval)
    timings.update(retrieval.pop("timings"))
    baseline_run = {q: dict(sort_ranking(fs_run[q])[:depth]) for q in split["test"] if q in fs_run}
    test_qrels = {q: collection.qrels[q] for q in split["test"]}
    model_eval = evaluate(model_run, test_qrels, measures, qids=split["test"], complete=True)
    base_eval = evaluate(baseline_run, test_qrels, measures, qids=split["test"], complete=True)
    untrained_eval = evaluate(untrained_run, test_qrels, measures, qids=split["test"], complete=True) if untrained_run is not None else None

    write_run(rd.path / "run.trec", model_run, tag=f"rankexp-{rd.run_id}")
    perquery_tables = {"model": model_eval.perquery, first_stage.name: base_eval.perquery}
    if untrained_eval is not None:
        perquery_tables["untrained"] = untrained_eval.perquery
    rd.write_perquery(perquery_tables)
    timings["total_s"] = time.perf_counter() - t_start
    paired = {first_stage.name: paired_tests(model_eval.perquery, base_eval.perquery)}
    if untrained_eval is not None:
        paired["untrained"] = paired_tests(model_eval.perquery, untrained_eval.perquery)
    metrics = {
        "run_id": rd.run_id,
        "dataset": collection.name,
        "split": "test",
        "provider": model_eval.provider,
        "rerank_k": depth,
        "retrieval": retrieval,
        "queries": {"test": len(split["test"]), "evaluated": model_eval.num_queries,
                    "without_candidates": model_eval.missing_in_run, "dev": len(split["dev"]), "train": len(split["train"])},
        "model": model_eval.aggregate,
        "baseline": {"name": first_stage.name, "params": first_stage.params(), **base_eval.aggregate},
        "untrained": untrained_eval.aggregate if untrained_eval is not None else None,
        # paired two-sided t-tests of the model against each reference row on the test queries
        "paired_ttest": paired,
        "learned": learned_verdict(paired.get("untrained"), dev_measure),
        "dev": {"measure": dev_measure, "best": best_dev, "best_step": best_step, "untrained": untrained_dev,
                "kept_start": kept_start},
        "train": {"steps": trainer.global_step, "groups": len(groups), "group_size": len(groups[0].doc_ids) if groups else 0,
                  "negatives": sampler.stats(), "peak_rss_mb": peak_rss_mb(), "throughput": throughput.summary(), **{k: round(v, 4 if k.endswith("share") else 2) for k, v in timings.items()}},
        "cache": cache.summary(),
        "notes": collection.notes,
    }
    rd.write_json("metrics.json", metrics)
    systems = {"model": model_eval, first_stage.name: base_eval, **({"untrained": untrained_eval} if untrained_eval else {})}
    log_final(logger, {k: v.aggregate for k, v in systems.items()}, {k: v.perquery for k, v in systems.items()})
    if not cfg.train.keep_last_checkpoint:
        (rd.checkpoints / "last.ckpt").unlink(missing_ok=True)
    return RunResult(rd.run_id, rd.path, metrics, cache=cache.summary()), logger


def paired_tests(model: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``measure -> {diff, p, n}``: paired two-sided t-test of the model against ``other`` per measure,
    over the queries both evaluated (mean difference > 0: the model is better)."""
    from rankexp.eval.significance import paired_ttest

    out = {}
    for m, values in model.items():
        qids = [q for q in values if q in other.get(m, {})]
        if len(qids) < 2:
            continue
        r = paired_ttest([values[q] for q in qids], [other[m][q] for q in qids])
        out[m] = {"diff": r.mean_diff, "p": r.p_value, "n": r.n}
    return out


def learned_verdict(vs_untrained: dict | None, measure: str, alpha: float = 0.05) -> str | None:
    """Whether training paid off: ``yes`` (the model beats its untrained start on ``measure``, paired
    t-test p < alpha), ``no`` (it does not beat it significantly), ``worse`` (significantly worse)."""
    if not vs_untrained or measure not in vs_untrained:
        return None
    t = vs_untrained[measure]
    if t["p"] < alpha:
        return "yes" if t["diff"] > 0 else "worse"
    return "no"


def evaluate_run(run_path: str | Path, qrels_spec: str | None, measures: str | Sequence[str], complete: bool = False):
    """Evaluate a TREC run file (or a run directory) against qrels given as a file, a local
    collection directory, a data config name (``vaswani``) or an ir_datasets id."""
    from rankexp.eval.measures import evaluate
    from rankexp.eval.trec_io import read_run

    path = Path(run_path)
    qrels_source = qrels_spec
    if path.is_dir():
        if not (path / "run.trec").exists():
            raise RankexpError(f"{path}: not a run directory with a run.trec (status: {RunDir(path).status() or 'unknown'})")
        if qrels_source is None:
            cfg = OmegaConf.load(path / "config.yaml")
            qrels_source = cfg.data.get("path") or cfg.data.get("id")
        path = path / "run.trec"
    if qrels_source is None:
        raise RankexpError("--qrels is required for a run file (a qrels file, a collection directory, a data name or an ir_datasets id)")
    run = read_run(path)
    qrels = load_qrels(qrels_source)
    return evaluate(run, qrels, measures, complete=complete), len(run)


def load_qrels(spec: str) -> dict[str, dict[str, int]]:
    from rankexp.data.collection import read_qrels
    from rankexp.errors import DataError

    p = Path(spec).expanduser()
    if p.is_file():
        return read_qrels(p)
    if p.is_dir():
        return read_qrels(p / "qrels.txt")
    data_cfg = Path(__file__).parent / "conf" / "data" / f"{spec}.yaml"
    dataset_id = OmegaConf.load(data_cfg).get("id") if data_cfg.exists() else spec
    import ir_datasets

    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(f"--qrels {spec!r}: not a file, a directory or a known ir_datasets id") from None
    if not ds.has_qrels():
        raise DataError(f"--qrels {spec!r}: ir_datasets id {dataset_id!r} has no qrels")
    from rankexp.eval.trec_io import _settings

    lenient, warn = _settings(None, None)
    dropped: list[tuple[str, str]] = []
    try:
        out: dict[str, dict[str, int]] = {}
        for qr in ds.qrels_iter():
            docs = out.setdefault(qr.query_id, {})
            if qr.doc_id in docs:  # as strict as the file reader: trec_eval refuses a pair judged twice
                if not lenient:
                    raise DataError(f"ir_datasets {dataset_id!r}: qrels judge query {qr.query_id!r}, document {qr.doc_id!r} twice "
                                    f"({docs[qr.doc_id]}, then {int(qr.relevance)}); --lenient keeps the first")
                dropped.append((qr.query_id, qr.doc_id))
                continue
            docs[qr.doc_id] = int(qr.relevance)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"ir_datasets could not provide qrels for {dataset_id!r} ({type(e).__name__}; offline? set IR_DATASETS_HOME)") from e
    if dropped:
        warn(f"ir_datasets {dataset_id!r}: {len(dropped)} duplicate qrels pair(s) dropped, the first judgment kept "
             f"(first: query {dropped[0][0]!r}, document {dropped[0][1]!r})")
    return out


def retrieve(cfg: DictConfig, split_name: str = "test") -> RunResult:
    """Run the configured first stage (``first_stage=bm25|dense|hybrid``) on one split's queries (or
    ``all``), evaluate it with ``eval.retrieval_measures`` to depth ``eval.retrieval_k``, and write
    ``run.trec``, ``metrics.json`` and ``perquery.tsv`` under ``<output_dir>/retrievals/<id>/``."""
    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.data.splits import resolve_splits
    from rankexp.errors import ConfigError
    from rankexp.eval.measures import PROVIDER, evaluate, parse_measures
    from rankexp.eval.trec_io import sort_ranking, write_run
    from rankexp.tracking.cache import Cache
    from rankexp.utils.hashing import stable_hash
    from rankexp.utils.io import write_json

    if split_name not in ("train", "dev", "test", "all"):
        raise ConfigError(f"--split must be train, dev, test or all, got {split_name!r}")
    t0 = time.perf_counter()
    measures = [str(m) for m in parse_measures(list(cfg.eval.retrieval_measures))]
    first_stage = build(cfg.first_stage, "first_stage")
    collection = load_collection(cfg.data)
    judged = collection.queries_with_relevant()
    qids = judged if split_name == "all" else resolve_splits(cfg.data, collection)[0][split_name]
    cont = to_container(cfg)
    rid = stable_hash({"data": cont["data"], "first_stage": cont["first_stage"], "split": split_name,
                       "k": cont["eval"]["retrieval_k"]}, 10)
    out = Path(cfg.paths.output_dir) / "retrievals" / rid
    cache = Cache(Path(cfg.paths.cache_dir))
    run = first_stage.retrieve(collection, cache, {q: collection.queries[q] for q in qids})
    depth = int(cfg.eval.retrieval_k)
    run = {q: dict(sort_ranking(r)[:depth]) for q, r in run.items()}
    result = evaluate(run, {q: collection.qrels[q] for q in qids}, measures, qids=qids, complete=True)
    rd = RunDir(out)
    rd.path.mkdir(parents=True, exist_ok=True)
    write_run(out / "run.trec", run, tag=f"rankexp-{first_stage.name}")
    rd.write_perquery({first_stage.name: result.perquery})
    metrics = {"run_id": rid, "dataset": collection.name, "split": split_name, "provider": result.provider, "k": depth,
               "first_stage": {"name": first_stage.name, "params": first_stage.params()},
               "queries": {"evaluated": result.num_queries, "without_results": result.missing_in_run},
               "model": result.aggregate, "wall_s": round(time.perf_counter() - t0, 2), "cache": cache.summary()}
    write_json(out / "metrics.json", metrics)
    return RunResult(rid, out, metrics, cache=cache.summary())
