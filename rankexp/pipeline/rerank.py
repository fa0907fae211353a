"""``rerank``: a model (a rankexp run or a published ranker) applied to a first stage's candidates.

Stages: the ranker (:mod:`rankexp.pipeline.loading`) → the collection, its queries and the
candidates (a TREC run file, or the configured first stage's top ``eval.rerank_k``) → ``predict``
(the same one ``train`` uses; documents or queries may be given in memory) → ``evaluate`` beside
the candidates' ranking when qrels exist (same measures and paired tests as ``train``) → ``write``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.errors import ConfigError, DataError
from rankexp.pipeline.evaluate import Evaluation, evaluate_beside, first_stage_top
from rankexp.pipeline.predict import predict

QUERY_SETS = ("test", "dev", "train", "all")


@dataclass
class Reranked:
    run: dict[str, dict[str, float]]
    metrics: dict[str, Any]
    run_file: Path | None = None
    path: Path | None = None  # the output directory (None when only a run file was asked for)
    evaluation: Evaluation | None = field(default=None, repr=False)


def rerank_config(cfg: DictConfig, ranker, overrides: Sequence[str]) -> DictConfig:
    """A rankexp run's own data, first stage and eval settings, unless the command line names others."""
    if ranker.run_config is None:
        return cfg
    cfg = cfg.copy()
    given = {o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] for o in overrides}
    for group in ("data", "first_stage", "eval"):
        if group not in given and group in ranker.run_config:
            OmegaConf.update(cfg, group, ranker.run_config[group], merge=False)
    return cfg


def select_queries(collection, data_cfg, which: str | Sequence[str]) -> tuple[list[str], str]:
    """The query ids to rerank and a label: a split part (the run's rule: official ``data.splits``
    or the seeded random split), ``all`` judged queries (every query when there are no qrels), or
    an explicit list of ids."""
    from rankexp.data.collection import natural_sorted
    from rankexp.data.splits import resolve_splits

    if not isinstance(which, str):
        qids = [str(q) for q in which]
        missing = [q for q in qids if q not in collection.queries]
        if missing:
            raise DataError(f"{collection.name}: {len(missing)} of the {len(qids)} query ids given are not in its queries "
                            f"(e.g. {missing[0]!r})")
        return qids, f"{len(qids)} given queries"
    if which not in QUERY_SETS:
        raise ConfigError(f"--queries must be one of {', '.join(QUERY_SETS)}, got {which!r}")
    judged = collection.queries_with_relevant()
    if which == "all":
        return (judged or natural_sorted(collection.queries)), "all queries"
    if not judged:
        raise DataError(f"{collection.name}: no judged queries to split into {which}; use --queries all")
    split, _ = resolve_splits(data_cfg, collection)
    if not split[which]:
        raise DataError(f"{collection.name}: the {which} split has no queries (data.split.{which}?); use --queries all")
    return split[which], f"{which} split"


def candidates_from(run_file: str | Path | None, first_stage, collection, cache, qids: Sequence[str], k: int,
                    docs: Mapping[str, str], queries: Mapping[str, str]) -> tuple[dict, str, dict[str, Any]]:
    """The candidates' ranking (top ``k`` per query of ``qids``), its name and description; every
    query and document it names must be in the collection (or given in memory)."""
    from rankexp.eval.trec_io import read_run

    if run_file is None:
        if any(q in queries for q in qids):  # queries given in memory: retrieve for their texts
            run = first_stage.retrieve(collection, cache, {q: queries.get(q, collection.queries[q]) for q in qids})
        else:  # the collection's cached run, as train reads it
            full = first_stage.retrieve(collection, cache)
            run = {q: full[q] for q in qids if q in full}
        name, source = first_stage.name, {"first_stage": first_stage.name, "params": first_stage.params()}
    else:
        path = Path(run_file).expanduser()
        if not path.is_file():
            raise DataError(f"--run {run_file}: no such file")
        full = read_run(path)
        unknown = [q for q in full if q not in collection.queries and q not in queries]
        if unknown:
            raise DataError(f"--run {path}: {len(unknown)} of its {len(full)} queries are not in {collection.name}'s queries "
                            f"(e.g. {unknown[0]!r}); a run of another collection?")
        run = {q: full[q] for q in qids if q in full}
        if not run:
            raise DataError(f"--run {path}: none of the {len(qids)} selected queries is in it (e.g. {qids[0]!r}); see --queries")
        name, source = path.stem, {"run_file": str(path)}
    top = first_stage_top(run, list(run), k)
    absent = sorted({d for r in run.values() for d in r if d not in collection.docs and d not in docs})
    if absent:
        where = f"--run {run_file}" if run_file is not None else f"first stage {name}"
        raise DataError(f"{where}: {len(absent)} candidate documents are not in {collection.name}'s corpus "
                        f"(e.g. {absent[0]!r}); a run of another collection?")
    return top, name, source


class RerankSession:
    """A ranker, a collection, its selected queries and their candidates, loaded once.

    :meth:`score` may be called many times, each time with other texts given in memory (an
    attack's loop: perturbed documents re-scored by the victim); :meth:`evaluate` puts a scored run
    beside the candidates' ranking. ``query_texts`` given here also change the first stage's
    candidates; given to :meth:`score`, only the model's input.
    """

    def __init__(self, cfg: DictConfig, ranker, *, run_file: str | Path | None = None, queries: str | Sequence[str] = "test",
                 docs: Mapping[str, str] | None = None, query_texts: Mapping[str, str] | None = None):
        from rankexp.config.compose import build
        from rankexp.data.collection import load_collection
        from rankexp.data.tokens import build_texts
        from rankexp.eval.measures import parse_measures
        from rankexp.pipeline.prepare import run_device, seed
        from rankexp.tracking.cache import Cache

        self.cfg, self.ranker = cfg, ranker
        seed(cfg)
        self.measures = [str(m) for m in parse_measures(list(cfg.eval.measures))]
        self.k = int(cfg.eval.rerank_k)
        first_stage = build(cfg.first_stage, "first_stage") if run_file is None else None
        self.collection = load_collection(cfg.data)
        qids, self.label = select_queries(self.collection, cfg.data, queries)
        self.cache = Cache(Path(cfg.paths.cache_dir))
        self.candidates, self.candidates_name, self.source = candidates_from(
            run_file, first_stage, self.collection, self.cache, qids, self.k, dict(docs or {}), dict(query_texts or {}))
        self.qids = [q for q in qids if q in self.candidates] if run_file is not None else qids
        self.pairs = [(q, d) for q in self.qids for d in self.candidates.get(q, {})]
        self.texts = build_texts(self.collection, ranker.encoder, self.cache)
        self.device = run_device(cfg)
        self.judged = [q for q in self.qids if self.collection.relevant(q)]

    def score(self, docs: Mapping[str, str] | None = None, query_texts: Mapping[str, str] | None = None,
              pairs: Sequence[tuple[str, str]] | None = None, description: str = "reranking"):
        """The model's scores of ``pairs`` (default: every candidate of the selected queries), with
        ``docs`` / ``query_texts`` (id -> text) replacing the collection's texts. Returns a
        :class:`~rankexp.pipeline.predict.Prediction`."""
        pairs = self.pairs if pairs is None else list(pairs)
        texts = self.texts.with_texts(docs or None, query_texts or None)
        absent = sorted({d for _, d in pairs if not texts.has_doc(d)})
        if absent:
            raise DataError(f"{len(absent)} documents to score are neither in {self.collection.name}'s corpus nor given "
                            f"in memory (e.g. {absent[0]!r})")
        return predict(self.ranker.scorer, self.ranker.encoder, texts, self.qids, mode="rerank", k=self.k, measures=self.measures,
                       candidates=pairs, batch_size=int(self.cfg.eval.batch_size), device=self.device,
                       fast=self.cfg.eval.get("fast"), description=description)

    def evaluate(self, run: Mapping[str, Mapping[str, float]]) -> Evaluation | None:
        """``run`` beside the candidates' ranking on the judged selected queries (None: no qrels)."""
        if not self.judged:
            return None
        return evaluate_beside({q: dict(run.get(q, {})) for q in self.judged}, {self.candidates_name: self.candidates},
                               {q: self.collection.qrels[q] for q in self.judged}, self.judged, self.measures)


def rerank(cfg: DictConfig, ranker, *, run_file: str | Path | None = None, queries: str | Sequence[str] = "test",
           docs: Mapping[str, str] | None = None, query_texts: Mapping[str, str] | None = None) -> tuple[dict, Evaluation | None, dict[str, Any]]:
    """Score the candidates of the selected queries with ``ranker``; evaluate when qrels exist.
    Returns ``(run, evaluation, info)``."""
    t0 = time.perf_counter()
    session = RerankSession(cfg, ranker, run_file=run_file, queries=queries, docs=docs, query_texts=query_texts)
    prediction = session.score(docs, query_texts)
    ev = session.evaluate(prediction.run)
    info = {"dataset": session.collection.name, "queries_label": session.label, "queries": len(session.qids),
            "judged": len(session.judged), "candidates": session.candidates_name, "source": session.source, "k": session.k,
            "pairs": len(session.pairs), "docs_in_memory": len(docs or {}), "queries_in_memory": len(query_texts or {}),
            "rerank_s": round(prediction.info["timings"]["rerank_s"], 2), "wall_s": round(time.perf_counter() - t0, 2),
            "cache": session.cache.summary(), "notes": session.collection.notes}
    return prediction.run, ev, info


def rerank_metrics(model_desc: str, ev: Evaluation | None, cand_name: str, info: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` of a rerank: the model's and the candidates' measures as ``train`` writes them."""
    out = {"model_source": model_desc, "dataset": info["dataset"], "split": info["queries_label"], "rerank_k": info["k"],
           "retrieval": {"mode": "rerank", "k": info["k"], "candidates": info["source"]}, **{k: info[k] for k in
           ("pairs", "docs_in_memory", "queries_in_memory", "rerank_s", "wall_s", "cache", "notes")}}
    if ev is None:
        return {**out, "queries": {"reranked": info["queries"], "evaluated": 0}, "model": None}
    base = ev.references[cand_name]
    return {**out, "provider": ev.model.provider,
            "queries": {"reranked": info["queries"], "evaluated": ev.model.num_queries, "without_candidates": ev.model.missing_in_run},
            "model": ev.model.aggregate, "baseline": {"name": cand_name, **({"params": info["source"]["params"]} if "params" in info["source"] else {}),
                                                      **base.aggregate}, "untrained": None,
            "paired_ttest": ev.paired}
