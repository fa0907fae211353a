"""Teachers for distillation (``distill=margin_mse|kl|pld``): who scores, which pairs, cached once.

A teacher is ``distill.teacher.model`` (anything ``rankexp rerank MODEL`` takes, through
:func:`rankexp.pipeline.loading.load_ranker`: a rankexp run directory or ``.ckpt``, a Hugging Face
cross-encoder, a sentence-transformers bi-encoder such as the zero-shot ``all-MiniLM-L6-v2``) or
``distill.teacher.run`` (a TREC run file whose scores are the teacher's).

:class:`Teacher` is the run (``qid -> {doc: score}``) the training batches read ``teacher_scores``
from (:func:`rankexp.pipeline.build.batch_sources`). It is filled by :meth:`Teacher.fill` once the
training groups exist (stage ``fit``): the pairs are scored with a progress bar and stored in the
project cache under ``teacher_scores/<hash>``, keyed by (teacher weights or file hash, the pair set,
the collection's fingerprint), so every member of a sweep with the same groups reuses them. Scoring
writes its finished chunks to ``teacher_scores/.partial-<hash>.tsv`` as it goes; an interrupted
scoring resumes from there. The test split's candidates are scored the same way for fidelity
(:func:`fidelity_metrics`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from rankexp.errors import ConfigError, DataError

KIND = "teacher_scores"
CHUNK = 2048  # pairs per resumable chunk


def teacher_for(prep) -> "Teacher | None":
    """The run's teacher (one per prepared run), or None under ``distill=none``."""
    if "_teacher" in prep.__dict__:
        return prep.__dict__["_teacher"]
    cfg = prep.cfg.get("distill")
    teacher = None
    if cfg is not None and str(cfg.get("kind", "none")) != "none":
        teacher = Teacher(cfg, prep)
    prep.__dict__["_teacher"] = teacher
    return teacher


class Teacher(dict):
    """The teacher's scores filled so far (``qid -> {doc: score}``), and how to get more."""

    def __init__(self, distill_cfg, prep):
        super().__init__()
        t = distill_cfg.get("teacher") or {}
        model, run, fs = t.get("model"), t.get("run"), t.get("first_stage")
        if sum(x is not None for x in (model, run, fs)) != 1:
            raise ConfigError(f"distill={distill_cfg.get('kind')} needs exactly one teacher: distill.teacher.model=RUN_DIR|HF_NAME, "
                              f"distill.teacher.run=TREC_FILE or distill.teacher.first_stage=bm25|dense|hybrid "
                              f"(got model={model!r}, run={run!r}, first_stage={fs!r})")
        self.prep = prep
        self.batch_size = int(t.get("batch_size", 64) or 64)
        self.scale = float(t.get("scale", 1.0) if t.get("scale") is not None else 1.0)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"distill.teacher.scale={t.get('scale')}: expected a number > 0 (the teacher's scores are multiplied by it)")
        self.ranker = None
        self.file_run = None
        self.info: dict[str, Any] = {"scored_pairs": 0, "cached_pairs": 0, "scoring_s": 0.0, "cache_hits": 0, "cache_builds": 0}
        if fs is not None:  # a (fused) first stage: its ranking of every query, the floor below it for the rest
            self.file_run, self.identity, self.description = first_stage_teacher(fs, prep)
        elif run is not None:
            from rankexp.eval.trec_io import read_run
            from rankexp.utils.hashing import file_digest

            p = Path(str(run)).expanduser()
            if not p.is_file():
                raise DataError(f"distill.teacher.run: {p} is not a file")
            self.file_run = read_run(p)
            self.identity = {"run_file": file_digest(p)}
            self.description = f"run file {p}"
        else:
            from rankexp.pipeline.loading import load_ranker

            self.ranker = load_ranker(str(model), prep.cfg.get("model"))  # not a ranker: one line, exit 2
            self.identity = {"model": _weights_identity(str(model)), "kind": self.ranker.scorer.kind,
                             "max_length": getattr(self.ranker.encoder, "max_length", None),
                             "max_query_length": getattr(self.ranker.encoder, "max_query_length", None)}
            self.description = self.ranker.description
        self.info["teacher"] = self.description

    # ------------------------------------------------------------------ scoring
    def key(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        from rankexp.utils.hashing import stable_hash

        return {"teacher": self.identity, "pairs": stable_hash(sorted(set(pairs)), 16), "n": len(set(pairs)),
                "collection": self.prep.collection.fingerprint}

    def fill(self, pairs: Sequence[tuple[str, str]], what: str = "training groups", strict: bool = True) -> dict[str, Any]:
        """Score ``pairs`` (from the cache when another run scored the same set) into this run.
        ``strict``: a pair the teacher cannot score (absent from a teacher run file, or NaN) is a
        :class:`DataError`; otherwise such pairs are left out and counted."""
        pairs = sorted(set(pairs))
        cache = self.prep.cache
        n_events = len(cache.events)
        t0 = time.perf_counter()
        scores = cache.load(KIND, self.key(pairs), lambda tmp: self._build(tmp, pairs, what), _read_scores)
        built = [e for e in cache.events[n_events:] if e.kind == KIND and not e.hit]
        self.info["cache_builds" if built else "cache_hits"] += 1
        self.info["scoring_s"] += time.perf_counter() - t0
        self.info["scored_pairs" if built else "cached_pairs"] += len(pairs)
        bad = [(q, d) for q, d in pairs if not math.isfinite(scores.get(q, {}).get(d, math.nan))]
        if bad and strict:
            q, d = bad[0]
            raise DataError(f"teacher {self.description}: no finite score for {len(bad)} of the {len(pairs)} {what} pairs "
                            f"(e.g. query {q}, document {d}); a teacher run must hold every pair it is asked for")
        for q, docs in scores.items():  # the cache keeps the teacher's own scores; the scale applies here
            self.setdefault(q, {}).update({d: s * self.scale for d, s in docs.items() if math.isfinite(s)})
        return {"pairs": len(pairs), "missing": len(bad), "cached": not built}

    def _build(self, tmp: Path, pairs: list[tuple[str, str]], what: str) -> None:
        final, digest = self.prep.cache.path(KIND, self.key(pairs))
        partial = final.parent / f".partial-{digest}.tsv"
        done = _read_partial(partial)
        if partial.exists():  # rewrite what was finished, dropping a line cut by the interruption
            with open(partial, "w", encoding="utf-8") as fh:
                fh.writelines(f"{q}\t{d}\t{v!r}\n" for (q, d), v in done.items())
        # document-major chunks: a bi-encoder teacher encodes each distinct document of a chunk once, so
        # grouping a document's pairs into one chunk encodes it about once instead of once per chunk that
        # holds one of its queries (SciFact, BM25's top 50 of 243 claims: 4,250 document encodings
        # instead of 9,050). A cross-encoder teacher scores pairs one by one: the order does not matter.
        todo = sorted((p for p in pairs if p not in done), key=lambda p: (p[1], p[0]))
        if self.file_run is not None:
            with open(partial, "a", encoding="utf-8") as fh:
                for q, d in todo:
                    fh.write(f"{q}\t{d}\t{float(self.file_run.get(q, {}).get(d, math.nan))!r}\n")
        elif todo:
            from rankexp.data.tokens import build_texts
            from rankexp.utils.progress import task

            texts = build_texts(self.prep.collection, self.ranker.encoder, self.prep.cache)
            with task(f"teacher scoring ({what})", len(pairs)) as advance:
                advance(len(pairs) - len(todo))
                for start in range(0, len(todo), CHUNK):
                    chunk = todo[start:start + CHUNK]
                    run = self.ranker.scorer.score_candidates(self.ranker.encoder, texts, chunk, self.batch_size,
                                                              self.prep.device, None, "teacher")
                    with open(partial, "a", encoding="utf-8") as fh:  # a finished chunk survives an interruption
                        fh.writelines(f"{q}\t{d}\t{float(run[q][d])!r}\n" for q, d in chunk)
                        fh.flush()
                    advance(len(chunk))
        scores = _read_partial(partial)
        with open(tmp / "scores.tsv", "w", encoding="utf-8") as fh:
            fh.writelines(f"{q}\t{d}\t{scores[(q, d)]!r}\n" for q, d in pairs)
        partial.unlink(missing_ok=True)


def first_stage_teacher(spec, prep) -> tuple[dict[str, dict[str, float]], dict[str, Any], str]:
    """``distill.teacher.first_stage``: a first stage as the teacher — a name of ``conf/first_stage``
    (``bm25``, ``dense``, ``hybrid``: BM25 and the dense retriever fused) or a config with ``_target_``.
    Its run over every query of the collection (cached like any first-stage run) gives the scores; a
    pair outside a query's retrieved top ``k`` gets that query's lowest retrieved score minus 1 (an
    unretrieved document ranks below every retrieved one; our choice), so every training pair has a
    score. Returns ``(run, identity, description)``."""
    from omegaconf import OmegaConf

    from rankexp.config.compose import CONF_DIR, build

    if isinstance(spec, str):
        path = CONF_DIR / "first_stage" / f"{spec}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in (CONF_DIR / "first_stage").glob("*.yaml"))
            raise ConfigError(f"distill.teacher.first_stage={spec!r}: not a first stage (expected one of {', '.join(names)} "
                              f"or a config with _target_)")
        node = OmegaConf.load(path)
    else:
        node = OmegaConf.create(OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else dict(spec))
    retriever = build(node, "distill.teacher.first_stage")
    run = retriever.retrieve(prep.collection, prep.cache)

    class Floored(dict):
        def get(self, q, default=None):
            docs = dict.get(self, q)
            if docs is None:
                return default
            return _FlooredDocs(docs)

    name = getattr(retriever, "name", str(spec))
    params = retriever.params() if hasattr(retriever, "params") else {}
    return Floored(run), {"first_stage": name, "params": params}, f"first stage {name}"


class _FlooredDocs(dict):
    """A query's retrieved scores; an unretrieved document gets the lowest retrieved score minus 1."""

    def __init__(self, docs):
        super().__init__(docs)
        self.floor = (min(docs.values()) - 1.0) if docs else 0.0

    def get(self, d, default=None):
        return dict.get(self, d, self.floor)


def _weights_identity(spec: str) -> str:
    """What the teacher's scores depend on: its checkpoint's or weight files' hash when local, else its name."""
    from rankexp.models.encoders import resolve_model_path
    from rankexp.pipeline.loading import is_run
    from rankexp.utils.hashing import file_digest, files_digest

    p = Path(spec).expanduser()
    if is_run(p):
        from rankexp.models.checkpoints import resolve_checkpoint

        return "ckpt:" + file_digest(resolve_checkpoint(p)[0])
    local = Path(resolve_model_path(spec))
    if local.is_dir():
        files = sorted(f for pat in ("*.safetensors", "*.bin") for f in local.glob(pat))
        if files:
            return "weights:" + files_digest(files)
    return "name:" + spec


def _read_partial(path: Path) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:  # a line cut by an interruption is scored again
                try:
                    out[(parts[0], parts[1])] = float(parts[2])
                except ValueError:
                    continue
    return out


def _read_scores(entry: Path) -> dict[str, dict[str, float]]:
    from rankexp.tracking.cache import read_file
    from rankexp.utils.io import read_pair_scores

    return read_file(entry / "scores.tsv", read_pair_scores)


# ---------------------------------------------------------------------------------- pipeline hooks
def prepare_teacher(prep, groups) -> None:
    """Stage ``fit``: the teacher scores the training groups' pairs (strict) and, for fidelity, the
    test split's candidates (pairs it cannot score are left out of fidelity)."""
    teacher = teacher_for(prep)
    if teacher is None:
        return
    teacher.info["train"] = teacher.fill([(g.qid, d) for g in groups for d in g.doc_ids], "training groups")
    depth = int(prep.cfg.eval.rerank_k)
    teacher.info["test"] = teacher.fill(prep.candidates(prep.split["test"], depth), "test candidates", strict=False)


def fidelity_metrics(prep, runs: dict[str, Any]) -> dict[str, Any] | None:
    """Stage ``write``: ``metrics.json``'s ``distill`` entry: the teacher, its scoring and cache use,
    and the fidelity of each ranking in ``runs`` (name -> run; None skipped) to the teacher's."""
    from rankexp.eval.fidelity import fidelity

    teacher = teacher_for(prep)
    if teacher is None:
        return None
    cfg = prep.cfg.distill
    out: dict[str, Any] = {"kind": str(cfg.kind), "weight": float(cfg.weight), "temperature": float(cfg.temperature),
                           **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in teacher.info.items()}}
    test = [q for q in prep.split["test"]]
    out["fidelity"] = {name: fidelity(run, teacher, test) for name, run in runs.items() if run is not None}
    return out
