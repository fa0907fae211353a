"""Training pairs/s: rankexp's training step vs sentence-transformers' ``CrossEncoderTrainer`` vs a
plain PyTorch loop, side by side in one process.

All three train all-MiniLM-L6-v2 (offline weights) on the SAME vaswani pairs, in the same order:
``--groups-per-step`` groups of 1 positive + ``--negatives`` BM25 negatives (16 pairs per step by
default), maximum pair length ``--max-length``, the same threads, AdamW and gradient clipping 1.0.

* rankexp: the real thing ``rankexp train`` runs -- :class:`RankingModule` (listwise softmax CE,
  its ``configure_optimizers``, its length bucketing) fed by :class:`GroupCollator` batches from the
  cached token tables, driven by a Lightning ``Trainer`` with the CPU trainer's settings.
* sentence-transformers: ``CrossEncoder(num_labels=1)`` + ``BinaryCrossEntropyLoss`` +
  ``CrossEncoderTrainer`` (its collator tokenizes each batch, pads to the batch's longest pair),
  batches in the same sequential order.
* plain: HF ``AutoModel`` + linear head on [CLS], the HF tokenizer per batch (padding to the
  longest), listwise softmax CE, ``torch.optim.AdamW``.

Each side runs ``--warmup`` untimed steps then ``--steps`` timed steps, per round; rounds are
interleaved (rankexp, ST, plain, rankexp, ...) and the median of the rounds' pairs/s counts. The
clock runs from the end of the last warm-up step to the end of the last step, so batch assembly
(tokenization, collation) is inside it. Also reported: real tokens per pair and padded tokens per
pair (what the forward pass actually computes) on each side.

    python benchmarks/train_vs_sentence_transformers.py --steps 20 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _common as C


def rankexp_side(env, groups, args):
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from rankexp.losses.listwise import SoftmaxCELoss
    from rankexp.models.datamodule import GroupCollator, GroupDataset
    from rankexp.models.module import RankingModule

    total = args.warmup + args.steps
    module = RankingModule(env["encoder"], SoftmaxCELoss(), lr=1e-4, head_lr=1e-3, weight_decay=0.01,
                           warmup_steps=0, max_steps=10_000, length_buckets=args.length_buckets)
    module.train()

    class Clock(pl.Callback):
        def __init__(self):
            self.t = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.t.append(time.perf_counter())

    def run_round() -> float:
        clock = Clock()
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=total, precision="32-true", gradient_clip_val=1.0,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                             callbacks=[clock], max_epochs=1)
        loader = DataLoader(GroupDataset(groups[: total * args.groups_per_step]), batch_size=args.groups_per_step,
                            shuffle=False, collate_fn=GroupCollator(env["pairs"]))
        trainer.fit(module, train_dataloaders=loader)
        assert len(clock.t) == total, len(clock.t)
        return clock.t[-1] - clock.t[args.warmup - 1]

    # tokens: real per pair, and what the bucketed forward computes (each chunk padded to its longest)
    real = padded = n = 0
    coll = GroupCollator(env["pairs"])
    for s in range(total):
        b = coll(groups[s * args.groups_per_step : (s + 1) * args.groups_per_step])
        lengths = b["inputs"]["attention_mask"].sum(1)
        real += int(lengths.sum())
        n += len(lengths)
        if args.length_buckets <= 1 or len(lengths) < 2 * args.length_buckets:
            padded += int(lengths.max()) * len(lengths)
        else:
            for c in torch.chunk(torch.argsort(lengths), args.length_buckets):
                padded += int(lengths[c].max()) * len(c)
    return run_round, {"real_tokens_per_pair": real / n, "padded_tokens_per_pair": padded / n}


def flat_pairs(env, groups):
    coll = env["collection"]
    rows = []
    for g in groups:
        for j, d in enumerate(g.doc_ids):
            rows.append((coll.queries[g.qid], coll.docs[d], 1.0 if j == 0 else 0.0))
    return rows


def st_side(env, groups, args):
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from torch.utils.data import BatchSampler, SequentialSampler
    from transformers import TrainerCallback

    from rankexp.models.encoders import resolve_model_path

    total = args.warmup + args.steps
    bs = args.groups_per_step * (1 + args.negatives)
    rows = flat_pairs(env, groups[: total * args.groups_per_step])
    ds = Dataset.from_dict({"query": [r[0] for r in rows], "document": [r[1] for r in rows], "label": [r[2] for r in rows]})
    model = CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=args.max_length, device="cpu")
    loss = BinaryCrossEntropyLoss(model)
    out = tempfile.mkdtemp(prefix="rankexp-bench-st-")

    def sequential(dataset, batch_size, drop_last, **_):
        return BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last)

    class Clock(TrainerCallback):
        def __init__(self):
            self.t = []

        def on_step_end(self, a, state, control, **kw):
            self.t.append(time.perf_counter())

    def run_round() -> float:
        clock = Clock()
        targs = CrossEncoderTrainingArguments(
            output_dir=out, per_device_train_batch_size=bs, max_steps=total, learning_rate=1e-4, weight_decay=0.01,
            max_grad_norm=1.0, warmup_steps=0, logging_steps=10_000, save_strategy="no", eval_strategy="no",
            report_to="none", dataloader_num_workers=0, use_cpu=True, batch_sampler=sequential, seed=0,
            disable_tqdm=True)
        trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=ds, loss=loss, callbacks=[clock])
        trainer.train()
        assert len(clock.t) == total, len(clock.t)
        return clock.t[-1] - clock.t[args.warmup - 1]

    tok = model.tokenizer
    real = padded = 0
    for s in range(total):
        part = rows[s * bs : (s + 1) * bs]
        enc = tok([r[0] for r in part], [r[1] for r in part], truncation=True, max_length=args.max_length)["input_ids"]
        real += sum(len(e) for e in enc)
        padded += max(len(e) for e in enc) * len(enc)
    return run_round, {"real_tokens_per_pair": real / len(rows), "padded_tokens_per_pair": padded / len(rows)}


def plain_side(env, groups, args):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rankexp.models.encoders import resolve_model_path

    total = args.warmup + args.steps
    bs = args.groups_per_step * (1 + args.negatives)
    rows = flat_pairs(env, groups[: total * args.groups_per_step])
    path = resolve_model_path("all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    body = AutoModel.from_pretrained(path)
    body.train()
    head = torch.nn.Linear(body.config.hidden_size, 1)
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    def run_round() -> float:
        t = []
        for s in range(total):
            part = rows[s * bs : (s + 1) * bs]
            enc = tok([r[0] for r in part], [r[1] for r in part], padding=True, truncation=True,
                      max_length=args.max_length, return_tensors="pt")
            scores = head(body(**enc).last_hidden_state[:, 0]).squeeze(-1).view(-1, 1 + args.negatives)
            loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(scores), dtype=torch.long))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            t.append(time.perf_counter())
        return t[-1] - t[args.warmup - 1]

    return run_round, None  # same batches as ST: same token counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round and side")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each round's clock starts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups-per-step", type=int, default=4)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--length-buckets", type=int, default=4, help="rankexp's train.length_buckets")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(C.RESULTS), help="append the result (one JSON line) here")
    ap.add_argument("--sides", default="rankexp,sentence_transformers,plain")
    args = ap.parse_args()
    C.setup_env(args.threads)
    import torch

    total = args.warmup + args.steps
    env = C.vaswani_setup(args.max_length, n_groups=total * args.groups_per_step, num_negatives=args.negatives)
    groups = env["groups"]
    builders = {"rankexp": rankexp_side, "sentence_transformers": st_side, "plain": plain_side}
    sides = [s for s in args.sides.split(",") if s]
    runners, tokens = {}, {}
    for s in sides:
        torch.manual_seed(0)
        runners[s], tokens[s] = builders[s](env, groups, args)
    if "plain" in tokens and tokens["plain"] is None:
        tokens["plain"] = tokens.get("sentence_transformers")
    pairs = args.steps * args.groups_per_step * (1 + args.negatives)
    rates = {s: [] for s in sides}
    for r in range(args.rounds):
        for s in (sides if r % 2 == 0 else sides[::-1]):  # alternate the order too
            secs = runners[s]()
            rates[s].append(pairs / secs)
            print(f"round {r + 1}: {s:22s} {pairs / secs:7.2f} pairs/s", flush=True)
    med = {s: C.median(v) for s, v in rates.items()}
    result = {"benchmark": "train", "model": "all-MiniLM-L6-v2", "data": "vaswani (train queries, BM25 negatives)",
              "pairs_per_step": args.groups_per_step * (1 + args.negatives), "max_length": args.max_length,
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads,
              "length_buckets": args.length_buckets,
              "pairs_per_s_median": {s: round(v, 2) for s, v in med.items()},
              "pairs_per_s_rounds": {s: [round(x, 2) for x in v] for s, v in rates.items()},
              "tokens": {s: {k: round(x, 1) for k, x in (t or {}).items()} for s, t in tokens.items()}}
    if "rankexp" in med:
        result["ratios"] = {f"rankexp/{s}": round(med["rankexp"] / med[s], 3) for s in sides if s != "rankexp"}
    C.record(result, args.out)


if __name__ == "__main__":
    main()
