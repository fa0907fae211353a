"""Shared fixtures: offline environment, a small slice of a shared collection, fast training overrides."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RANKEXP_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["RANKEXP_PROGRESS"] = "0"
os.environ.setdefault("RANKEXP_THREADS", "1")  # tiny models; avoids oversubscribing 2 cores across processes
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    if not DATA.is_dir():
        raise pytest.UsageError(f"shared data not found at {DATA}; set RANKEXP_SHARED to the shared/ directory")


@pytest.fixture(scope="session", autouse=True)
def irds_home(tmp_path_factory):
    """A writable copy of the ir_datasets cache seed, so ir_datasets.load('vaswani') works offline."""
    home = tmp_path_factory.mktemp("irds")
    if (SHARED / "irds_home").is_dir():
        shutil.copytree(SHARED / "irds_home", home, dirs_exist_ok=True)
    old = os.environ.get("IR_DATASETS_HOME")
    os.environ["IR_DATASETS_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("IR_DATASETS_HOME", None)
    else:
        os.environ["IR_DATASETS_HOME"] = old


def make_slice(src: Path, dst: Path, n_queries: int = 20, n_other_docs: int = 300, seed: int = 0) -> Path:
    """A small local collection cut from a shared one: n queries with qrels, their judged docs plus others."""
    dst.mkdir(parents=True, exist_ok=True)
    qrels_lines = (src / "qrels.txt").read_text().splitlines()
    by_q: dict[str, list[str]] = {}
    for line in qrels_lines:
        q = line.split()[0]
        by_q.setdefault(q, []).append(line)
    qids = sorted(by_q, key=lambda q: (len(q), q))[:n_queries]
    judged = {l.split()[2] for q in qids for l in by_q[q]}
    docs = [json.loads(l) for l in (src / "corpus.jsonl").read_text().splitlines()]
    rng = random.Random(seed)
    others = [d for d in docs if d["doc_id"] not in judged]
    keep_ids = judged | {d["doc_id"] for d in rng.sample(others, min(n_other_docs, len(others)))}
    with open(dst / "corpus.jsonl", "w") as fh:
        for d in docs:
            if d["doc_id"] in keep_ids:
                fh.write(json.dumps(d) + "\n")
    queries = dict(l.split("\t", 1) for l in (src / "queries.tsv").read_text().splitlines())
    (dst / "queries.tsv").write_text("".join(f"{q}\t{queries[q]}\n" for q in qids))
    (dst / "qrels.txt").write_text("".join(l + "\n" for q in qids for l in by_q[q]))
    return dst


@pytest.fixture(scope="session")
def vaswani_slice(tmp_path_factory) -> Path:
    return make_slice(DATA / "vaswani", tmp_path_factory.mktemp("slice") / "vaswani20")


def fast_overrides(data_dir: Path, out: Path, **extra) -> list[str]:
    """Overrides for a seconds-long run: tiny random BERT, few steps, shallow reranking."""
    ovr = {
        "data": "local", "data.path": str(data_dir), "model": "tiny", "logger": "none",
        "trainer.max_steps": 6, "train.val_every_n_steps": 3, "train.batch_size": 4, "train.num_negatives": 2,
        "eval.rerank_k": 20, "eval.dev_rerank_k": 10, "eval.batch_size": 32, "paths.output_dir": str(out),
        "train.select_start": False,  # tests pin the trained model; select_start has its own tests
    }
    ovr.update(extra)
    return [f"{k}={v}" for k, v in ovr.items()]


def wait_for(pred, timeout: float = 300.0, step: float = 0.05) -> bool:
    """Poll ``pred`` until it holds (True) or ``timeout`` seconds pass (False): for tests that watch a child process."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def save_tiny_hf_cross(path: Path, tokenizer, max_positions: int = 128, seed: int = 0) -> Path:
    """A tiny random Hugging Face sequence-classification cross-encoder (1 layer, hidden 16, one logit)
    with ``tokenizer``'s vocabulary, saved with the tokenizer at ``path``: a victim/teacher that loads
    like a real HF cross-encoder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=max_positions, num_labels=1)
    torch.manual_seed(seed)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
