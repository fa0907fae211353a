"""Shared pieces of the side-by-side benchmarks: environment, vaswani training data built the way
``rankexp train`` builds it, machine/version facts and the results file (one JSON line per result)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "results.jsonl"


def setup_env(threads: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["RANKEXP_PROGRESS"] = "0"
    shared = Path(os.environ.get("RANKEXP_SHARED", REPO.parent / "shared"))
    irds = Path.home() / ".ir_datasets"
    if (shared / "irds_home").is_dir() and not (irds / "vaswani").exists():
        import shutil

        shutil.copytree(shared / "irds_home", irds, dirs_exist_ok=True)
    import torch

    torch.set_num_threads(threads)


def machine() -> dict:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    for mod in ("sentence_transformers", "ir_measures", "pytrec_eval", "ranx", "onnxruntime"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    try:
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def record(result: dict, path: str | Path | None = None) -> None:
    """Print ``result`` and append it as one JSON line to ``path`` (``benchmarks/results/results.jsonl``)."""
    result = {"date": _dt.date.today().isoformat(), "argv": sys.argv[1:], **result, "machine": machine()}
    line = json.dumps(result, sort_keys=False)
    print(json.dumps(result, indent=2))
    path = Path(path or RESULTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(line + "\n")


def vaswani_setup(max_length: int, max_query_length: int = 32, n_groups: int = 0, num_negatives: int = 3, seed: int = 42,
                  cache_dir: str | None = None):
    """The vaswani collection, its split, BM25 run, MiniLM cross-encoder, cached token tables, pair
    encoder and ``n_groups`` training groups (1 positive + BM25 negatives) -- as ``rankexp train``."""
    from rankexp.config.compose import build, compose
    from rankexp.data.collection import load_collection
    from rankexp.data.examples import build_groups
    from rankexp.data.negatives.base import MiningContext
    from rankexp.data.splits import split_queries
    from rankexp.data.tokens import PairEncoder, build_token_tables
    from rankexp.tracking.cache import Cache

    cfg = compose(["data=vaswani", "model=cross_encoder", f"model.encoder.max_length={max_length}",
                   f"model.encoder.max_query_length={max_query_length}", f"train.num_negatives={num_negatives}",
                   f"seed={seed}", "logger=none"])
    collection = load_collection(cfg.data)
    split = split_queries(collection.queries_with_relevant(), cfg.data.split.dev, cfg.data.split.test, cfg.data.split.seed)
    cache = Cache(Path(cache_dir or cfg.paths.cache_dir))
    fs_run = build(cfg.first_stage, "first_stage").retrieve(collection, cache)
    encoder = build(cfg.model.encoder, "model.encoder")
    docs_tok, q_tok = build_token_tables(collection, encoder.tokenizer, encoder.max_length, encoder.max_query_length, cache)
    pairs = PairEncoder(encoder.tokenizer, docs_tok, q_tok, encoder.max_length, encoder.max_query_length)
    groups = []
    if n_groups:
        sampler = build(cfg.negatives, "negatives")
        sampler.setup(collection, fs_run, MiningContext(cache, encoder, split["train"], "cpu", 64))
        groups = build_groups(collection, split["train"], sampler, num_negatives, n_groups, seed)
    return {"cfg": cfg, "collection": collection, "split": split, "fs_run": fs_run, "encoder": encoder,
            "pairs": pairs, "groups": groups, "cache": cache}
