"""Stage ``prepare``: everything a run needs before a model is trained.

Seeding, the cheap components (loss, first stage, negative sampler, weighter: a bad value fails
before any expensive work), the collection and its split (official ``data.splits`` or the seeded
random split), the first stage's run, the model's encoder and scorer, the token tables, mining and
the weighter's tables. Techniques see only the training queries' run and judgments.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from rankexp.tracking.rundir import RunDir


@dataclass
class Prepared:
    cfg: DictConfig
    collection: Any
    split: dict[str, list[str]]
    cache: Any
    first_stage: Any
    fs_run: dict[str, dict[str, float]]
    loss: Any
    sampler: Any
    weighter: Any
    encoder: Any
    scorer: Any
    texts: Any
    pairs: Any  # the scorer's batch encoder (training groups, dev pairs)
    device: str
    measures: list[str]
    dev_measure: str
    dev_pairs: list[tuple[str, str]]
    dev_qrels: dict[str, dict[str, int]]
    t_start: float
    timings: dict[str, float] = field(default_factory=dict)
    pooling: dict | None = None  # data.pooling's record (pooling.json): the training positives hidden by the simulator

    def candidates(self, qids: Sequence[str], depth: int) -> list[tuple[str, str]]:
        """The first stage's top ``depth`` (query, document) pairs of ``qids``."""
        from rankexp.eval.trec_io import sort_ranking

        return [(q, d) for q in qids for d, _ in sort_ranking(self.fs_run.get(q, {}))[:depth]]


def run_device(cfg: DictConfig) -> str:
    """``cuda`` (this rank's GPU: ``cuda:LOCAL_RANK`` is made current) or ``cpu``."""
    from rankexp.distributed import device

    return device(cfg.trainer.get("accelerator"))


def seed(cfg: DictConfig) -> None:
    import pytorch_lightning as pl
    import torch

    if os.environ.get("RANKEXP_THREADS"):  # e.g. parallel sweep members sharing a machine's cores
        torch.set_num_threads(max(1, int(os.environ["RANKEXP_THREADS"])))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)


def prepare(cfg: DictConfig, rd: RunDir) -> Prepared:
    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.data.negatives.base import MiningContext
    from rankexp.data.splits import resolve_splits
    from rankexp.data.tokens import build_texts
    from rankexp.eval.measures import parse_measures
    from rankexp.pipeline.scorers import scorer_for
    from rankexp.tracking.cache import Cache

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    measures = [str(m) for m in parse_measures(list(cfg.eval.measures))]
    dev_measure = str(parse_measures([cfg.eval.dev_measure])[0])
    seed(cfg)
    loss = build(cfg.loss, "loss")
    first_stage = build(cfg.first_stage, "first_stage")
    sampler = build(cfg.negatives, "negatives")
    weighter = build(cfg.curriculum, "curriculum")
    from rankexp.data.pooling import parse as parse_pooling, simulate  # data.pooling: checked before any data work
    parse_pooling(cfg.data.get("pooling"))
    from rankexp.debias import check as check_debias  # debias=cet: a loss and sampler it can correct

    check_debias(cfg, loss, sampler)

    # ---- data, split, first stage
    collection = load_collection(cfg.data)
    split, split_record = resolve_splits(cfg.data, collection)  # official data.splits, else the seeded random split
    rd.write_json("split.json", split_record)
    cache = Cache(Path(cfg.paths.cache_dir))
    fs_run = first_stage.retrieve(collection, cache)
    # data.pooling: the training queries' qrels hide what the pool missed (dev/test untouched)
    collection, pooling = simulate(cfg.data.get("pooling"), collection, cache, split)
    if pooling is not None:
        rd.write_json("pooling.json", pooling)
    timings["preprocess_first_stage_s"] = time.perf_counter() - t_start

    # ---- model, tokens, training groups' sources
    t0 = time.perf_counter()
    encoder = build(cfg.model.encoder, "model.encoder")
    scorer = scorer_for(cfg.model, encoder)
    device = run_device(cfg)
    texts = build_texts(collection, encoder, cache)
    pairs = scorer.pair_encoder(texts)
    train_q = split["train"]
    t_mine = time.perf_counter()
    sampler.setup(collection, fs_run, MiningContext(cache, encoder, train_q, device, int(cfg.eval.batch_size)))
    timings["preprocess_negatives_s"] = time.perf_counter() - t_mine
    t_weights = time.perf_counter()
    train_run = {q: fs_run[q] for q in train_q if q in fs_run}
    weighter.setup(weighter.training_run(train_run, train_q, collection.docs.keys()),
                   {q: collection.qrels[q] for q in train_q if q in collection.qrels}, int(cfg.trainer.max_steps))
    timings["preprocess_weights_s"] = time.perf_counter() - t_weights  # e.g. the curriculum's easiness tables

    prep = Prepared(cfg, collection, split, cache, first_stage, fs_run, loss, sampler, weighter, encoder, scorer, texts,
                    pairs, device, measures, dev_measure, [], {q: collection.qrels[q] for q in split["dev"]}, t_start, timings,
                    pooling)
    prep.dev_pairs = prep.candidates(split["dev"], int(cfg.eval.dev_rerank_k))
    timings["preprocess_tokens_s"] = time.perf_counter() - t0
    return prep
