"""``retrieve``: a first stage over the whole corpus for one split's queries, evaluated and written.

Shares the query selection of ``rerank`` and the ``evaluate`` stage of ``train``; writes
``run.trec``, ``perquery.tsv`` and ``metrics.json`` under ``<output_dir>/retrievals/<id>/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rankexp.config.compose import to_container
from rankexp.errors import ConfigError


def retrieve(cfg: DictConfig, split_name: str = "test") -> tuple[str, Path, dict[str, Any]]:
    """``(id, output directory, metrics)`` of the configured first stage on ``split_name``'s queries."""
    from rankexp.config.compose import build
    from rankexp.data.collection import load_collection
    from rankexp.eval.measures import parse_measures
    from rankexp.eval.trec_io import write_run
    from rankexp.pipeline.evaluate import evaluate_beside, first_stage_top
    from rankexp.pipeline.rerank import select_queries
    from rankexp.tracking.cache import Cache
    from rankexp.tracking.rundir import RunDir
    from rankexp.utils.hashing import stable_hash
    from rankexp.utils.io import write_json

    if split_name not in ("train", "dev", "test", "all"):
        raise ConfigError(f"--split must be train, dev, test or all, got {split_name!r}")
    t0 = time.perf_counter()
    measures = [str(m) for m in parse_measures(list(cfg.eval.retrieval_measures))]
    first_stage = build(cfg.first_stage, "first_stage")
    collection = load_collection(cfg.data)
    qids, _ = select_queries(collection, cfg.data, split_name)
    from rankexp.config.compose import drop_id_neutral, id_neutral

    cont = drop_id_neutral(to_container(cfg), id_neutral())  # options added later keep the id (README "Run ids")
    rid = stable_hash({"data": cont["data"], "first_stage": cont["first_stage"], "split": split_name,
                       "k": cont["eval"]["retrieval_k"]}, 10)
    out = Path(cfg.paths.output_dir) / "retrievals" / rid
    cache = Cache(Path(cfg.paths.cache_dir))
    run = first_stage.retrieve(collection, cache, {q: collection.queries[q] for q in qids})
    depth = int(cfg.eval.retrieval_k)
    run = first_stage_top(run, list(run), depth)
    ev = evaluate_beside(run, {}, {q: collection.qrels.get(q, {}) for q in qids}, qids, measures)
    rd = RunDir(out)
    rd.path.mkdir(parents=True, exist_ok=True)
    write_run(out / "run.trec", run, tag=f"rankexp-{first_stage.name}")
    rd.write_perquery(ev.perquery_tables(first_stage.name))
    metrics = {"run_id": rid, "dataset": collection.name, "split": split_name, "provider": ev.model.provider, "k": depth,
               "first_stage": {"name": first_stage.name, "params": first_stage.params()},
               "queries": {"evaluated": ev.model.num_queries, "without_results": ev.model.missing_in_run},
               "model": ev.model.aggregate, "wall_s": round(time.perf_counter() - t0, 2), "cache": cache.summary()}
    write_json(out / "metrics.json", metrics)
    return rid, out, metrics
