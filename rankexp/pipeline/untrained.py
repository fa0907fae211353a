"""The untrained start's scores, computed once per start and shared by every run that has it.

Every training run ranks the test split (and the dev queries, step 0 of the dev curve) with its
untrained module: the ``untrained`` row of every study table. The members of a sweep that differ only
in what training does (the loss, the distillation arm, the curriculum) start from the same weights
when they share a seed, so they would all score the same pairs with the same network. The scores go
in the project cache under ``untrained_scores/<hash>``, keyed by

* the start's weights (a digest of every tensor of the encoder's state dict, so a different seed,
  checkpoint, head initialisation or layer count is a different entry),
* the encoder and scorer configuration (lengths, pooling, similarity, temperature),
* the exact (query, document) pairs of the test and dev candidate sets, the collection, and the
  evaluation batch size (the batches' padding is part of the floating-point computation).

A hit is bitwise the scores a fresh computation gives on the same machine and software; a run whose
start is scored from the cache says so (``metrics.json`` → ``cache``: an ``untrained_scores`` hit). Only
reranking is cached: a bi-encoder's ``eval.mode=retrieve`` scores the whole corpus and is computed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

KIND = "untrained_scores"


def weights_digest(module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor in ``module.state_dict()``."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def cache_key(prep, encoder, test_pairs: Sequence[tuple[str, str]], dev_pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    from rankexp.config.compose import to_container
    from rankexp.utils.hashing import stable_hash

    cfg = prep.cfg
    return {"weights": weights_digest(encoder),
            "encoder": to_container(cfg.model.encoder), "scorer": to_container(cfg.model.scorer),
            "test": stable_hash(sorted(test_pairs), 16), "n_test": len(test_pairs),
            "dev": stable_hash(sorted(dev_pairs), 16), "n_dev": len(dev_pairs),
            "collection": prep.collection.fingerprint, "batch_size": int(cfg.eval.batch_size),
            "fast": cfg.eval.get("fast")}


def untrained_scores(prep, encoder, test_pairs: list[tuple[str, str]], dev_pairs: list[tuple[str, str]],
                     score) -> tuple[dict, dict]:
    """(test run, dev run) of the untrained ``encoder``: ``score(pairs, description)`` computes a run;
    the project cache holds the result for every later run with the same start and candidates."""
    from rankexp.tracking.cache import read_file
    from rankexp.utils.io import read_pair_scores, write_pair_scores

    cache = prep.cache

    def build(tmp: Path) -> None:
        write_pair_scores(tmp / "test.tsv", score(test_pairs, "reranking test (untrained)"))
        write_pair_scores(tmp / "dev.tsv", score(dev_pairs, "scoring dev (untrained)") if dev_pairs else {})

    def reader(entry: Path) -> tuple[dict, dict]:
        out = []
        for name, pairs in (("test.tsv", test_pairs), ("dev.tsv", dev_pairs)):
            def read(path: Path, pairs=pairs) -> dict:
                run = read_pair_scores(path)
                missing = sum(1 for q, d in pairs if d not in run.get(q, {}))
                if missing:  # an entry that does not hold what its key says is damaged: rebuilt once
                    raise ValueError(f"{missing} of its {len(pairs)} pairs are missing")
                return run
            out.append(read_file(entry / name, read))
        return out[0], out[1]

    return cache.load(KIND, cache_key(prep, encoder, test_pairs, dev_pairs), build, reader)
