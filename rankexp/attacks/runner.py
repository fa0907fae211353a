"""``rankexp attack VICTIM attack=NAME``: targets, the attack per target, re-scoring, measures.

**Config split.** ``cfg.attack`` is the attack's own YAML (``conf/attack/NAME.yaml``: ``_target_``
plus its constructor's keyword arguments) merged with the runner's keys
(``conf/attack/runner/default.yaml``, which ``api.attack`` adds): :data:`RUNNER_KEYS` below are read
here and never passed to the constructor; every other key is.

**Run directory** ``<output_dir>/attacks/<id>/`` (id: a hash of the victim's identity — BM25
parameters or the model's weights —, the data, the candidates, ``eval.rerank_k``, the whole
``cfg.attack`` and the attacked queries): ``config.yaml`` (the composed config plus ``victim: {spec, name, kind}``), ``overrides.txt`` (``victim=SPEC``
first), ``status`` (running /
complete / failed: reason, as a training run's), ``results.jsonl`` (one line per target,
:mod:`rankexp.attacks.store`; a re-run continues), and at the end ``metrics.json`` and
``perquery.tsv`` (per-target values of each measure; the "queries" are target keys), both atomic.
A complete run is not redone (``force`` starts it over).

**Per target**: ``perturb`` → the perturbed text re-scored by the victim for every query of the
target (not counted as the attack's queries) → new rank among the other, unchanged candidates
(:meth:`Victim.rank_with`) → Kendall's τ of the candidates' scores before/after → semantic
similarity. ``victim_queries`` of a target: the pairs the victim counted during ``perturb`` (or the
attack's own ``Perturbation.victim_queries`` when larger, for an attack that scores through a copy).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.attacks.base import Attack, AttackContext, Perturbation, Target
from rankexp.errors import ConfigError, RankexpError, one_line

log = logging.getLogger("rankexp")

RUNNER_KEYS = ("seed", "queries", "max_queries", "white_box", "targets", "topic")
DEFAULTS = {"seed": 0, "queries": "test", "max_queries": None, "white_box": False,
            "targets": {"per_query": 1, "ranks": [51, 100]}, "topic": {"group_size": 5, "groups": None}}


@dataclass
class AttackResult:
    run_id: str
    path: Path
    metrics: dict[str, Any]
    skipped: bool = False  # complete already: nothing was run
    resumed: int = 0  # targets read back from results.jsonl
    records: list[dict] = field(default_factory=list, repr=False)


def check_budget(value: Any, key: str, *, percent: bool = True, upper: float = 100.0) -> float:
    """A budget value or one line: ``percent`` -> a number in (0, ``upper``] (% of the words);
    else a positive integer (tokens, swaps)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if percent:
        if not (0 < v <= upper):
            raise ConfigError(f"{key} must be a percentage of the words in (0, {upper:g}], got {value!r}")
        return v
    if not (v >= 1 and v == int(v)):
        raise ConfigError(f"{key} must be a positive whole number, got {value!r}")
    return int(v)


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The runner's keys of ``cfg.attack`` over :data:`DEFAULTS`."""
    node = OmegaConf.to_container(cfg.attack, resolve=True) if cfg.get("attack") is not None else {}
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k in RUNNER_KEYS:
        if k in node and node[k] is not None:
            out[k] = {**out[k], **node[k]} if isinstance(out[k], dict) and isinstance(node[k], dict) else node[k]
    if not isinstance(out["seed"], int):
        raise ConfigError(f"attack.seed must be an integer, got {out['seed']!r}")
    return out


def build_attack(cfg: DictConfig) -> Attack:
    """``cfg.attack``'s ``_target_`` built with its keys other than the runner's."""
    from rankexp.config.compose import build, groups

    node = cfg.get("attack")
    if node is None or node.get("_target_") is None:
        names = ", ".join(groups().get("attack", [])) or "none yet"
        raise ConfigError(f"name an attack: attack=NAME (available: {names})")
    kwargs = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in RUNNER_KEYS}
    attack = build(OmegaConf.create(kwargs), "attack")
    if not isinstance(attack, Attack):
        raise ConfigError(f"attack._target_ {node._target_}: not a rankexp.attacks.base.Attack")
    return attack


def attack_id(victim, cfg: DictConfig, qids: Sequence[str]) -> str:
    from rankexp.config.compose import to_container
    from rankexp.utils.hashing import stable_hash

    cont = to_container(cfg)
    data = dict(cont["data"])
    if data.get("path"):
        data["path"] = str(Path(data["path"]).expanduser().resolve())
    return stable_hash({"victim": victim.identity(), "data": data, "candidates": victim.info.get("candidates"),
                        "k": victim.k, "attack": cont["attack"], "queries": list(qids)}, 10)


def select_targets(victim, attack: Attack, st: dict, qids: Sequence[str], embed) -> tuple[list[Target], list[str], Any]:
    from rankexp.attacks import targets as T

    if getattr(attack, "groups_queries", False):
        topic = st["topic"]
        if topic.get("groups"):
            groups, rule = T.read_groups(topic["groups"], qids), f"file {topic['groups']}"
        else:
            groups = T.cluster_queries(list(qids), [victim.query_text(q) for q in qids], int(topic["group_size"]), embed)
            rule = f"greedy embedding clusters of {int(topic['group_size'])}"
        tg, skipped = T.group_targets(victim, groups, st["targets"]["ranks"], st["seed"])
        return tg, skipped, {"groups": len(groups), "rule": rule}
    tg, skipped = T.sample_targets(victim, qids, st["targets"]["ranks"], int(st["targets"]["per_query"]), st["seed"])
    return tg, skipped, None


def evaluate_target(victim, target: Target, pert: Perturbation, used: int, embed) -> dict[str, Any]:
    """The record of one attacked target (a ``results.jsonl`` line)."""
    from rankexp.attacks.measures import changed_snippet, ranking_tau, similarities

    if not isinstance(pert, Perturbation) or not isinstance(pert.text, str):
        raise RankexpError(f"the attack returned {type(pert).__name__} for target {target.key}, not a Perturbation with text")
    original = victim.doc_text(target.doc_id)
    pairs = []
    for q in target.qids:
        cands = victim.candidates(q)
        old = cands[target.doc_id] if target.doc_id in cands else victim.score_texts(q, [original], count=False)[0]
        new = victim.score_texts(q, [pert.text], count=False)[0]
        tau = ranking_tau({**cands, target.doc_id: old}, target.doc_id, new)
        pairs.append({"qid": q, "old_rank": int(target.ranks[q]), "new_rank": victim.rank_with(q, target.doc_id, new),
                      "old_score": float(old), "new_score": float(new), "kendall_tau": None if tau != tau else float(tau)})
    sim = similarities([original], [pert.text], embed)[0] if embed is not None else None
    return {"key": target.key, "doc_id": target.doc_id, "qids": list(target.qids), "pairs": pairs,
            "changed": int(pert.changed), "total_words": int(pert.total_words), "percent": float(pert.percent),
            "victim_queries": max(int(used), int(pert.victim_queries or 0)),
            "similarity": None if sim is None or sim != sim else float(sim), "details": pert.details,
            "snippet": changed_snippet(original, pert.text), "perturbed_text": pert.text}


def run_attack(cfg: DictConfig, victim_spec: str, overrides: Sequence[str] = (), *, force: bool = False,
               embed: Callable | None = None, attack: Attack | None = None) -> AttackResult:
    """One attack run (see the module doc). ``embed``: ``texts -> [n, dim]`` for the semantic
    similarity and the topic groups (default all-MiniLM-L6-v2); ``attack``: an Attack object instead
    of ``cfg.attack._target_`` (tests)."""
    from rankexp.attacks.measures import SentenceEmbedder
    from rankexp.attacks.store import ResultsFile
    from rankexp.attacks.targets import cap_queries
    from rankexp.attacks.victims import load_victim, quiet_bars
    from rankexp.pipeline.prepare import run_device
    from rankexp.tracking import lifecycle as lc
    from rankexp.tracking.cache import Cache
    from rankexp.tracking.rundir import RunDir
    from rankexp.utils.io import write_text
    from rankexp.utils.progress import task

    t0 = time.perf_counter()
    st = settings(cfg)
    attack = attack if attack is not None else build_attack(cfg)  # bad attack keys fail before any data is loaded
    victim, ranker, cfg = load_victim(victim_spec, cfg, overrides, queries=st["queries"])
    qids = cap_queries(victim.qids, st["max_queries"], st["seed"])
    rid = attack_id(victim, cfg, qids)
    rd = RunDir(Path(cfg.paths.output_dir) / "attacks" / rid)
    if rd.is_complete() and not force:
        return AttackResult(rid, rd.path, rd.metrics(), skipped=True)
    embed = embed if embed is not None else SentenceEmbedder(device=run_device(cfg))
    lock = lc.RunLock(rd.path).acquire()
    store = ResultsFile(rd.path / "results.jsonl")
    try:
        with lc.SignalGuard(), lc.Heartbeat(rd):
            rd.path.mkdir(parents=True, exist_ok=True)
            rd.set_status("running")
            for name in ("metrics.json", "perquery.tsv") + (("results.jsonl",) if force else ()):
                (rd.path / name).unlink(missing_ok=True)
            written = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
            written.victim = {"spec": str(victim_spec), "name": victim.name, "kind": victim.kind}  # compare tells victims apart
            write_text(rd.path / "config.yaml", OmegaConf.to_yaml(written))
            write_text(rd.path / "overrides.txt", "".join(f"{o}\n" for o in [f"victim={victim_spec}", *overrides]))
            targets, skipped, grouping = select_targets(victim, attack, st, qids, embed)
            ctx = AttackContext(cfg=cfg, victim=victim, ranker=ranker if st["white_box"] else None, white_box=bool(st["white_box"]),
                                seed=st["seed"], queries=list(qids), device=run_device(cfg),
                                cache=Cache(Path(cfg.paths.cache_dir)), state_dir=rd.path)
            facts = attack.setup(ctx) or {}
            done = store.load()
            todo = [t for t in targets if t.key not in done]
            resumed = len(targets) - len(todo)
            new: dict[str, dict] = {}
            with task(f"attack {attack.name} on {victim.name}", len(todo)) as advance, quiet_bars():
                for t in todo:
                    before = victim.queries_used
                    pert = attack.perturb(t, ctx)
                    rec = evaluate_target(victim, t, pert, victim.queries_used - before, embed)
                    store.append(rec)
                    new[t.key] = rec
                    advance(1)
            records = [done.get(t.key) or new[t.key] for t in targets]
            metrics = attack_metrics(attack, cfg, victim, st, qids, targets, skipped, grouping, facts, records,
                                     time.perf_counter() - t0, rid, resumed)
            write_outputs(rd, metrics, records)
            rd.set_status("complete")
    except lc.Interrupted as e:
        rd.set_status("failed", f"interrupted ({e.signame})")
        raise
    except KeyboardInterrupt:
        rd.set_status("failed", "interrupted (SIGINT)")
        raise
    except BaseException as e:
        rd.set_status("failed", one_line(e) if isinstance(e, RankexpError) else f"{type(e).__name__}: {one_line(e)}")
        raise
    finally:
        lock.release()
    log_metrics(cfg, rid, rd.path, {**metrics, "_records": records})
    return AttackResult(rid, rd.path, metrics, resumed=resumed, records=records)


def attack_metrics(attack, cfg, victim, st, qids, targets, skipped, grouping, facts, records, wall_s, rid, resumed) -> dict[str, Any]:
    from rankexp.attacks.measures import MEASURES, summarize

    measures = summarize(records)
    params = {k: v for k, v in OmegaConf.to_container(cfg.attack, resolve=True).items() if k not in RUNNER_KEYS}
    out = {"id": rid, "name": attack.name, "params": params, "victim": victim.name, "victim_kind": victim.kind,
           "dataset": victim.info.get("dataset"), "queries_label": victim.info.get("queries_label"), "queries": len(qids),
           "queries_without_targets": len(skipped), "targets": len(targets), "seed": st["seed"], "white_box": bool(st["white_box"]),
           "ranks": list(st["targets"]["ranks"]), "per_query": int(st["targets"]["per_query"]), "rerank_k": victim.k,
           "grouping": grouping, "setup": facts, **measures, "wall_s": round(wall_s, 2), "resumed_targets": resumed,
           "examples": [{"key": r["key"], **r["snippet"], "changed": r["changed"], "percent": round(r["percent"], 2),
                         "ranks": [[p["qid"], p["old_rank"], p["new_rank"]] for p in r["pairs"]]} for r in records[:3]]}
    # "model": the measures as `rankexp compare` reads a run's results (one system per attack run)
    return {"attack": out, "dataset": out["dataset"], "split": out["queries_label"], "model": {m: measures[m] for m in MEASURES if measures[m] is not None}}


def write_outputs(rd, metrics: dict, records: Sequence[dict]) -> None:
    from rankexp.attacks.measures import per_target_values

    rd.write_perquery({"model": per_target_values(records)})
    rd.write_json("metrics.json", metrics)


def log_metrics(cfg, rid: str, path: Path, metrics: dict) -> None:
    """The measures and per-target values to the configured logger (``logger=wandb``: a W&B run
    ``attack-<id>``, offline unless logged in, tag ``attack``); a failure is a warning, never a lost result."""
    from rankexp.attacks.measures import per_target_values
    from rankexp.config.compose import to_container
    from rankexp.tracking.loggers import build_logger, finish, log_final

    logger = None
    try:
        logger = build_logger(cfg.get("logger"), f"attack-{rid}", path, Path(cfg.paths.output_dir), to_container(cfg), ["attack"])
        log_final(logger, {"attack": metrics["model"]}, {"attack": per_target_values(metrics.get("_records", []))})
    except Exception as e:
        log.warning("logging the attack measures failed (%s); the results are in %s", one_line(e), path)
    finally:
        if logger:
            finish(logger)
