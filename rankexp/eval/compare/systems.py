"""The systems of a comparison, built from stored runs: each seed group (test measures summarised
over seeds, per-query means over seeds, dev summary and dev curve), the untrained start of each
model setup, and the first stage (``bm25`` in ``perquery.tsv``) as a pseudo-system. Which measures
every run has, and the user's choice among them."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from omegaconf import OmegaConf

from rankexp.errors import ConfigError
from rankexp.eval import significance
from rankexp.eval.compare.grouping import canon, config_identity, short_target
from rankexp.eval.compare.model import System
from rankexp.tracking.store import StoredRun

__all__ = ["available_measures", "parse_measure_list", "group_perquery", "group_systems", "first_stage_system",
           "untrained_systems", "dev_summary", "dev_curve", "fidelity_summary", "FIDELITY_MEASURES"]

FIDELITY_MEASURES = ("kendall_tau", "tau_ap", "rbo", "top10_overlap")


def available_measures(runs: Sequence[StoredRun]) -> list[str]:
    """Measures present in every run's ``metrics.json`` (model) and ``perquery.tsv``, in the order
    of the first run's metrics."""
    first = list((runs[0].metrics.get("model") or {}).keys())
    return [m for m in first if all(m in (r.metrics.get("model") or {}) and m in r.perquery.get("model", {}) for r in runs)]


def parse_measure_list(spec: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """``"nDCG@10 AP"`` (space or comma separated) → names as the runs spell them; None → all."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if not available:
            raise ConfigError("the runs share no measure (metrics.json 'model' keys)")
        return list(available)
    names = spec.replace(",", " ").split() if isinstance(spec, str) else [str(s) for s in spec]
    by_lower = {m.lower(): m for m in available}
    out = []
    for n in names:
        m = n if n in available else by_lower.get(n.lower())
        if m is None:
            raise ConfigError(f"measure {n!r} is not in every run's results (available: {', '.join(available) or 'none'})")
        if m not in out:
            out.append(m)
    return out


def group_perquery(runs: Sequence[StoredRun], system: str, measure: str) -> dict[str, float]:
    tables = [r.perquery.get(system, {}).get(measure, {}) for r in runs]
    qids = set(tables[0])
    if all(r.is_attack for r in runs):  # attack runs: per-target values; each seed draws other targets
        qids = set().union(*tables)
        return {q: float(np.mean([t[q] for t in tables if q in t])) for q in qids}
    for t in tables[1:]:
        qids &= set(t)
    return {q: float(np.mean([t[q] for t in tables])) for q in qids}


def group_systems(groups: Sequence[Sequence[StoredRun]], labels: Sequence[str], diff: Sequence[str],
                  measures: Sequence[str]) -> list[System]:
    """One :class:`System` per seed group: the test measures over its seeds, per-query means over
    its seeds, its dev summary and dev curve, and its values of the differing config keys."""
    systems: list[System] = []
    for label, g in zip(labels, groups):
        flat = config_identity(g[0])
        systems.append(System(
            label=label, kind="group", run_ids=[r.run_id for r in g], seeds=[r.seed for r in g],
            summaries={m: significance.summarize([float(r.metrics["model"][m]) for r in g]) for m in measures},
            perquery={m: group_perquery(g, "model", m) for m in measures},
            dev=dev_summary(g), dev_curve=dev_curve(g), config={k: flat.get(k) for k in diff}, runs=list(g),
            fidelity=fidelity_summary(g, "model")))
    return systems


def first_stage_system(runs: Sequence[StoredRun], measures: Sequence[str], notes: list[str]) -> System | None:
    name = runs[0].baseline_name
    setups: dict[str, StoredRun] = {}
    for r in runs:
        cfg = OmegaConf.to_container(r.config, resolve=True)
        key = canon([scored_data(cfg), cfg.get("first_stage"), (cfg.get("eval") or {}).get("rerank_k"), r.baseline_name])
        setups.setdefault(key, r)
    reps = list(setups.values())
    if not all(name in r.perquery and all(m in r.perquery[name] for m in measures) for r in reps):
        notes.append(f"the first stage ({name}) has no per-query values in every run; it is left out")
        return None
    if len(reps) > 1:
        notes.append(f"the runs use {len(reps)} different first-stage setups (data, first stage or rerank depth); "
                     f"{name} is their mean per query")
    summaries = {}
    for m in measures:
        vals = [float((r.metrics.get("baseline") or {}).get(m, np.mean(list(r.perquery[name][m].values())))) for r in reps]
        summaries[m] = significance.summarize(vals)
    return System(label=name, kind="first_stage", run_ids=[r.run_id for r in reps], seeds=[],
                  summaries=summaries, perquery={m: group_perquery(reps, name, m) for m in measures}, runs=list(reps))


def scored_data(cfg: dict) -> dict:
    """The ``data`` config as the test split sees it: ``data.pooling`` (the pooling-bias simulator) hides
    training positives only, so runs that differ in it share their first-stage and untrained rows."""
    return {k: v for k, v in (cfg.get("data") or {}).items() if k != "pooling"}


def untrained_systems(runs: Sequence[StoredRun], groups: Sequence[Sequence[StoredRun]], measures: Sequence[str],
                       notes: list[str]) -> list[System]:
    """The untrained start of each model setup (``untrained`` in ``perquery.tsv``): the network every
    trained system began from, scored on the same test queries. Runs share an untrained row when their
    data, first stage, evaluation mode/depth, encoder and seed agree; a start that depends on the seed (a
    fresh scoring head) is summarised over seeds like a group. Older runs without the row are left out."""
    setups: dict[str, list[StoredRun]] = {}
    for r in runs:
        if "untrained" not in r.perquery or not all(m in r.perquery["untrained"] for m in measures):
            continue
        cfg = OmegaConf.to_container(r.config, resolve=True)
        ev = cfg.get("eval") or {}
        key = canon([scored_data(cfg), cfg.get("first_stage"), ev.get("rerank_k"), ev.get("mode"), ev.get("retrieval_k"),
                      (cfg.get("model") or {}).get("encoder")])
        by_seed = {str(x.seed): x for x in setups.get(key, [])}
        by_seed.setdefault(str(r.seed), r)
        setups[key] = list(by_seed.values())
    if not setups:
        if any("untrained" not in r.perquery for r in runs):
            notes.append("some runs have no untrained row (made before rankexp evaluated the untrained start); "
                         "it is left out for them")
        return []
    out = []
    for i, reps in enumerate(setups.values()):
        label = "untrained" if len(setups) == 1 else f"untrained #{i + 1} ({short_encoder(reps[0])})"
        summaries = {m: significance.summarize([float(r.metrics.get("untrained", {}).get(m, np.mean(list(r.perquery["untrained"][m].values()))))
                                                for r in reps]) for m in measures}
        out.append(System(label=label, kind="untrained", run_ids=[r.run_id for r in reps], seeds=[r.seed for r in reps],
                          summaries=summaries, perquery={m: group_perquery(reps, "untrained", m) for m in measures},
                          runs=list(reps), fidelity=fidelity_summary(reps, "untrained")))
    return out


def short_encoder(run: StoredRun) -> str:
    enc = OmegaConf.select(run.config, "model.encoder", default=None)
    if enc is None:
        return "?"
    return f"{short_target(enc.get('_target_', '?'))} {enc.get('name', '')}".strip()


def dev_summary(runs: Sequence[StoredRun]) -> dict | None:
    devs = [r.metrics.get("dev") or {} for r in runs]
    measures = {d.get("measure") for d in devs}
    if len(measures) != 1 or any(d.get("best") is None for d in devs):
        return None
    return {"measure": measures.pop(), **significance.summarize([float(d["best"]) for d in devs])}


def dev_curve(runs: Sequence[StoredRun]) -> dict | None:
    """The dev measure at each evaluated step, summarised over seeds (mean ± std, 95% CI).

    Only steps that every run of the group evaluated are kept, so each point averages the same
    seeds; the last record of a step wins (a resumed run may log a step twice). ``None`` when the
    runs disagree on the dev measure or share no evaluated step."""
    devs = [r.metrics.get("dev") or {} for r in runs]
    measures = {d.get("measure") for d in devs}
    if len(measures) != 1 or None in measures:
        return None
    key = f"val/{measures.pop()}"
    per_run: list[dict[int, float]] = []
    for r in runs:
        points = {int(rec["step"]): float(rec[key]) for rec in r.history
                  if rec.get(key) is not None and rec.get("step") is not None}
        per_run.append(points)
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    if not steps:
        return None
    return {"measure": key[4:], "points": [{"step": st, **significance.summarize([p[st] for p in per_run])}
                                           for st in steps]}


def fidelity_summary(runs: Sequence[StoredRun], system: str) -> dict | None:
    """Distillation runs (``metrics.json`` → ``distill``): the ranking's fidelity to the teacher's
    ranking of the same test candidates (mean over queries of Kendall τ, τ_ap, RBO, top-10 overlap;
    :mod:`rankexp.eval.fidelity`), summarised over seeds, with the teacher, its scoring time and the
    teacher-score cache use (builds / hits) summed over the runs. ``None`` when a run has none."""
    entries = [((r.metrics.get("distill") or {}), ((r.metrics.get("distill") or {}).get("fidelity") or {}).get(system)) for r in runs]
    if not entries or any(f is None or not f.get("mean") for _, f in entries):
        return None
    out: dict = {"teacher": sorted({str(d.get("teacher", "?")) for d, _ in entries})}
    for m in FIDELITY_MEASURES:
        vals = [f["mean"].get(m) for _, f in entries]
        if all(isinstance(v, (int, float)) for v in vals):
            out[m] = significance.summarize([float(v) for v in vals])
    out["scoring_s"] = float(sum(float(d.get("scoring_s") or 0.0) for d, _ in entries))
    out["cache_builds"] = int(sum(int(d.get("cache_builds") or 0) for d, _ in entries))
    out["cache_hits"] = int(sum(int(d.get("cache_hits") or 0) for d, _ in entries))
    return out
