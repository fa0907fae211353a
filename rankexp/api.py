"""The library API behind every command: ``compose`` → ``train`` → ``RunResult``; ``evaluate_run``.

Python users get exactly what the CLI does::

    from rankexp import api
    result = api.train(api.compose(["data=cranfield", "trainer.max_steps=200"]))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.config.compose import compose as compose  # re-exported
from rankexp.config.compose import run_id as config_run_id
from rankexp.config.compose import to_container
from rankexp.errors import RankexpError, TrainingError, one_line
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


from rankexp.pipeline.evaluate import learned_verdict, paired_tests  # noqa: E402,F401  (re-exported)
from rankexp.pipeline.write import peak_rss_mb  # noqa: E402,F401  (re-exported)


def train(cfg: DictConfig, overrides: Sequence[str] = (), force: bool = False, wait: bool | float = False) -> RunResult:
    """One run: fit, rerank the test split, evaluate model and first stage, write the run directory.

    A run whose status is ``complete`` is not redone unless ``force``; a run cut off earlier
    resumes from ``checkpoints/last.ckpt`` (a damaged one is moved aside and the run restarts).
    One process at a time owns a run directory: another live owner makes this call raise
    ``RunLocked`` (one line), or wait for it with ``wait`` (True, or at most that many seconds).
    SIGTERM/SIGINT save a resumable checkpoint, set ``failed: interrupted (SIGTERM)`` and raise
    ``Interrupted`` (exit code 143/130); a full disk raises ``DiskFullError``.
    """
    from rankexp.distributed import barrier
    from rankexp.tracking import lifecycle as lc
    from rankexp.tracking.loggers import finish_all

    rd = rundir_for(cfg)
    if process_rank() != 0:  # a non-zero rank of a distributed run trains but writes nothing
        rd = RunDir(rd.path, readonly=True)
    lock = None if rd.readonly else lc.RunLock(rd.path).acquire(wait=wait)
    exit_code = 1
    try:
        resume = rd.checkpoints / "last.ckpt"
        if not rd.readonly and not (rd.is_complete() and not force):
            lc.clean_temp(rd.checkpoints)  # a save cut off by a crash
            if force and rd.path.exists():
                resume.unlink(missing_ok=True)
            elif resume.exists():
                ok, why = lc.checkpoint_ok(resume)
                if not ok:
                    moved = lc.quarantine(resume)
                    lc.notice(f"{resume}: {why}; moved aside to {moved.name}, run {rd.run_id} restarts from scratch")
        # ranks started together (torchrun, SLURM) decide skip/resume only after rank 0 settled the
        # checkpoint above; under Lightning's launcher ranks > 0 start later anyway (rankexp.distributed)
        barrier(cfg.trainer.get("accelerator"))
        if rd.is_complete() and not force:
            exit_code = 0
            return RunResult(rd.run_id, rd.path, rd.metrics(), skipped=True)
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
    """The stages of a run (:mod:`rankexp.pipeline`): prepare → build → fit → predict → evaluate → write."""
    from rankexp.pipeline.train import run_training

    metrics, logger = run_training(cfg, rd, resume)
    cache = metrics.get("cache", []) if metrics else []
    return RunResult(rd.run_id, rd.path, metrics, cache=cache), logger


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
    from rankexp.pipeline.retrieve import retrieve as run_retrieve

    rid, out, metrics = run_retrieve(cfg, split_name)
    return RunResult(rid, out, metrics, cache=metrics["cache"])


def rerank(model: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None, run_file: str | Path | None = None,
           queries: str | Sequence[str] = "test", out: str | Path | None = None, docs: Mapping[str, str] | None = None,
           query_texts: Mapping[str, str] | None = None, write: bool = True):
    """Rerank a first stage's candidates with ``model`` and evaluate beside them when qrels exist.

    ``model``: a rankexp run directory (its best checkpoint; the run's data and first stage unless
    ``overrides`` name others), a ``.ckpt``, a Hugging Face cross-encoder (sequence-classification
    head) or a sentence-transformers bi-encoder. ``run_file``: a TREC run of candidates (else the
    configured first stage's top ``eval.rerank_k``). ``queries``: ``test``/``dev``/``train`` (the split
    rule of ``train``), ``all``, or a list of query ids. ``docs`` / ``query_texts``: ``{id: text}``
    that replace (or add to) the collection's texts, e.g. perturbed documents. ``out``: a ``.trec``
    file, or a directory for ``run.trec``, ``metrics.json`` and ``perquery.tsv`` (default
    ``<output_dir>/reranks/<id>/``); ``write=False`` writes nothing. Returns a ``Reranked``.
    """
    from rankexp.pipeline.loading import load_ranker
    from rankexp.pipeline.rerank import Reranked, rerank as run_rerank, rerank_config, rerank_metrics
    from rankexp.pipeline.write import write_rerank
    from rankexp.retrieval.dense import model_hash
    from rankexp.utils.hashing import stable_hash

    base = cfg if cfg is not None else compose(list(overrides))
    ranker = load_ranker(model, base.get("model"))
    cfg = rerank_config(base, ranker, overrides)
    run, ev, info = run_rerank(cfg, ranker, run_file=run_file, queries=queries, docs=docs, query_texts=query_texts)
    metrics = rerank_metrics(ranker.description, ev, info["candidates"], info)
    if not write:
        return Reranked(run, metrics, evaluation=ev)
    cont = to_container(cfg)
    rid = stable_hash({"model": model_hash(ranker.encoder.state_dict(), ranker.description), "data": cont["data"],
                       "candidates": info["source"], "k": info["k"], "queries": queries if isinstance(queries, str) else list(queries),
                       "docs": stable_hash(sorted((docs or {}).items()), 16), "query_texts": stable_hash(sorted((query_texts or {}).items()), 16),
                       "fast": cont["eval"].get("fast")}, 10)
    metrics["id"] = rid
    target = Path(out).expanduser() if out is not None else Path(cfg.paths.output_dir) / "reranks" / rid
    is_file = out is not None and target.suffix in (".trec", ".run", ".txt", ".tsv") and not target.is_dir()
    out_dir = None if is_file else target
    run_file_out = target if is_file else target / "run.trec"
    write_rerank(out_dir, run_file_out, run, f"rankexp-rerank-{rid}", metrics, ev)
    return Reranked(run, metrics, run_file_out, out_dir, ev)


def reranker(model: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None,
             run_file: str | Path | None = None, queries: str | Sequence[str] = "test"):
    """A :class:`~rankexp.pipeline.rerank.RerankSession`: ``model`` and the selected queries'
    candidates loaded once (as :func:`rerank` selects them), for scoring many in-memory variants::

        s = api.reranker("outputs/runs/ID")
        before = s.score().run
        after = s.score(docs={"1234": "perturbed text"}).run
    """
    from rankexp.pipeline.loading import load_ranker
    from rankexp.pipeline.rerank import RerankSession, rerank_config

    base = cfg if cfg is not None else compose(list(overrides))
    ranker = load_ranker(model, base.get("model"))
    return RerankSession(rerank_config(base, ranker, overrides), ranker, run_file=run_file, queries=queries)


def certify(victim: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None,
            queries: str | Sequence[str] = "test", out: str | Path | None = None):
    """CertDR (Wu et al., CIKM 2022): ``victim`` (a run directory, a HF cross-encoder or a
    sentence-transformers bi-encoder) smoothed over random synonym substitutions; each selected
    query's top-K certified against word substitution attacks; CRQ@K and the smoothed ranker's
    measures beside the victim's in ``outputs/certify/<id>/`` (``config.yaml``, ``results.jsonl``,
    ``metrics.json``, ``perquery.tsv``, ``run.trec``). Settings are ``certify.*`` (composed from
    ``certify=default`` unless ``overrides`` choose the group). A re-run continues a cut-off one.
    Returns a :class:`~rankexp.attacks.certdr.CertifyRun`."""
    from rankexp.attacks.certdr import run_certify

    overrides = list(overrides)
    if cfg is None:
        if not any(o.lstrip("+~").split("=", 1)[0] == "certify" for o in overrides):
            overrides = ["certify=default", *overrides]
        cfg = compose(overrides)
    return run_certify(victim, overrides, cfg=cfg, queries=queries, out=out)


def attack(victim: str | Path, overrides: Sequence[str] = (), *, cfg: DictConfig | None = None, force: bool = False,
           embed=None, attack_obj=None):
    """An adversarial attack on ``victim`` (``bm25``, a rankexp run directory, a Hugging Face
    cross-encoder or a sentence-transformers bi-encoder): ``attack=NAME`` in ``overrides`` names the
    attack (``conf/attack/NAME.yaml``); ``attack.seed``, ``attack.targets.*``, ``attack.max_queries``,
    ``attack.white_box`` the runner's choices (``conf/attack/runner/default.yaml``). Writes
    ``<output_dir>/attacks/<id>/`` (resumable) and returns an
    :class:`~rankexp.attacks.runner.AttackResult` (``path``, ``metrics``)::

        r = api.attack("bm25", ["attack=prada", "data=vaswani", "attack.max_queries=10"])
        r.metrics["attack"]["success_rate"]

    ``embed`` (texts -> embeddings) replaces the sentence encoder of the similarity measure and the
    topic groups; ``attack_obj`` an Attack object instead of ``attack._target_`` (tests)."""
    from rankexp.attacks.runner import run_attack

    overrides = list(overrides)
    if cfg is None:
        runner = [] if any(o.lstrip("+~").startswith("attack/runner") for o in overrides) else ["attack/runner@attack=default"]
        cfg = compose(runner + overrides)
    return run_attack(cfg, str(victim), overrides, force=force, embed=embed, attack=attack_obj)
