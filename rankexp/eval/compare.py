"""Comparing runs: seed groups, mean ± std and 95% CI, paired tests against a baseline, and rank
correlation between system orderings. Pure functions of loaded runs (:mod:`rankexp.tracking.store`);
no I/O except :func:`correlate_run_files`, which reads two TREC run files.

Statistics (see docs/compare.md):

* Runs whose resolved configs differ only in ``seed`` (and in output paths / logging, the keys
  the run id ignores) form one **group** (one system). Per measure, the group's test-set values
  over seeds (``metrics.json``) are summarised as mean, sample std and a Student-t 95% CI
  (:func:`rankexp.eval.significance.summarize`).
* The first stage (``bm25`` in ``perquery.tsv``) is always available as a pseudo-system.
* Paired tests against the baseline use, for each group, the **per-query mean over its seeds**:
  one value per query and system, paired on query ids. The seed-to-seed variance is shown in the
  std/CI columns; the test answers whether the system, averaged over its seeds, beats the
  baseline across queries. Every (system, measure) comparison is one hypothesis; the p-values
  of all of them are corrected together (Holm by default).
* System orderings: Kendall's tau-b, tau_ap (Yilmaz et al. 2008) and RBO (Webber et al. 2010)
  between the orderings of the systems by two measures, and between the dev ordering
  (``metrics.dev.best``) and the test ordering by the dev measure.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import OmegaConf

from rankexp.config.compose import RUN_ID_IGNORE
from rankexp.errors import ConfigError
from rankexp.eval import significance
from rankexp.eval.correlation import kendall_tau, rbo, run_correlation, tau_ap
from rankexp.tracking.store import StoredRun

__all__ = [
    "System", "Comparison", "OrderingCorrelation", "CompareResult", "RunPairCorrelation",
    "group_runs", "config_identity", "differing_keys", "compare", "correlate_run_files",
    "parse_measure_list", "to_csv", "to_json", "to_markdown", "to_latex", "FORMATS",
    "UP", "DOWN", "dev_curve_rows",
]

UP, DOWN = "▲", "▼"
FORMATS = ("table", "csv", "json", "latex", "markdown")
RANDOMIZATION_SAMPLES = 10_000
RANDOMIZATION_SEED = 0
_MISSING = "<missing>"


# --------------------------------------------------------------------------------------------
# The output model
# --------------------------------------------------------------------------------------------


@dataclass
class System:
    """A group of runs that differ only in seed, or the first-stage pseudo-system."""

    label: str
    kind: str  # "group", "first_stage" or "untrained"
    run_ids: list[str]
    seeds: list[Any]
    summaries: dict[str, dict]  # measure -> significance.summarize(...) over seeds
    perquery: dict[str, dict[str, float]]  # measure -> qid -> mean over seeds
    dev: dict | None = None  # {"measure", **summarize(dev.best over seeds)}
    dev_curve: dict | None = None  # {"measure", "points": [{"step", **summarize(value over seeds)}]}
    config: dict[str, Any] = field(default_factory=dict)  # the differing config keys -> value
    runs: list[StoredRun] = field(default_factory=list, repr=False)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def n_queries(self) -> int:
        return max((len(v) for v in self.perquery.values()), default=0)

    def mean(self, measure: str) -> float:
        return self.summaries[measure]["mean"]


@dataclass
class Comparison:
    """One paired test: ``system`` against ``baseline`` on ``measure`` (per-query means over seeds)."""

    system: str
    baseline: str
    measure: str
    test: str
    mean_diff: float  # mean over queries of (system - baseline); > 0: the system is better
    n_queries: int
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    note: str | None = None

    @property
    def marker(self) -> str:
        if not self.significant:
            return ""
        return UP if self.mean_diff > 0 else DOWN


@dataclass
class OrderingCorrelation:
    """Agreement between two orderings of the same systems (best first)."""

    reference: str  # e.g. "nDCG@10" (tau_ap's reference ordering)
    estimate: str  # e.g. "AP"
    systems: list[str]
    kendall_tau: float
    tau_ap: float
    rbo: float
    reference_order: list[str] = field(default_factory=list)
    estimate_order: list[str] = field(default_factory=list)


@dataclass
class CompareResult:
    systems: list[System]
    measures: list[str]
    baseline: str
    test: str
    correction: str
    alpha: float
    comparisons: list[Comparison]
    correlations: list[OrderingCorrelation]
    differing_keys: list[str]
    n_queries: int
    notes: list[str] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)

    def system(self, label: str) -> System:
        for s in self.systems:
            if s.label == label:
                return s
        raise KeyError(label)

    def comparison(self, system: str, measure: str) -> Comparison | None:
        for c in self.comparisons:
            if c.system == system and c.measure == measure:
                return c
        return None

    def best(self, measure: str) -> set[str]:
        """The labels of the systems with the highest mean on ``measure`` (all of them on a tie)."""
        scored = [(s.mean(measure), s.label) for s in self.systems if measure in s.summaries]
        if not scored:
            return set()
        top = max(v for v, _ in scored)
        return {label for v, label in scored if v >= top - 1e-12}

    def seeds_phrase(self) -> str:
        counts = sorted({s.n_seeds for s in self.systems if s.kind == "group"})
        if not counts:
            return "0 seeds"
        if len(counts) == 1:
            return f"{counts[0]} seed" + ("s" if counts[0] != 1 else "")
        return f"{counts[0]}–{counts[-1]} seeds"

    def tested(self) -> int:
        return sum(1 for c in self.comparisons if c.p_value is not None)

    def legend(self) -> str:
        corr = "no correction" if self.correction == "none" else f"{self.correction}-corrected over {self.tested()} comparisons"
        return (f"{UP}/{DOWN}: significantly better/worse than {self.baseline} "
                f"(paired {self.test}, {corr}, α = {self.alpha:g}); mean ± std over seeds, [95% CI]")

    def tests_line(self) -> str:
        return f"tests on per-query means over {self.seeds_phrase()} · {self.n_queries} queries"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({
            "baseline": self.baseline, "test": self.test, "correction": self.correction, "alpha": self.alpha,
            "measures": self.measures, "n_queries": self.n_queries,
            "tests_on": f"per-query means over seeds ({self.seeds_phrase()})",
            "differing_keys": self.differing_keys,
            "systems": [{"label": s.label, "kind": s.kind, "run_ids": s.run_ids, "seeds": s.seeds,
                         "n_seeds": s.n_seeds, "n_queries": s.n_queries, "config": s.config,
                         "measures": s.summaries, "dev": s.dev, "dev_curve": s.dev_curve} for s in self.systems],
            "comparisons": [{**asdict(c), "marker": c.marker} for c in self.comparisons],
            "correlations": [asdict(c) for c in self.correlations],
            "notes": self.notes,
            "excluded": [{"run": r, "status": st} for r, st in self.excluded],
        })


# --------------------------------------------------------------------------------------------
# Grouping and labels
# --------------------------------------------------------------------------------------------


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = obj
    return out


def _ignored(key: str) -> bool:
    top = key.split(".", 1)[0]
    return key == "seed" or top in RUN_ID_IGNORE


def config_identity(run: StoredRun) -> dict[str, Any]:
    """The run's resolved config, flattened to dotted keys, minus ``seed``, the keys the run id
    ignores (``RUN_ID_IGNORE``: output paths, logging) and null values: an option set to null is the
    same system as one without the option, so runs from before and after a rankexp version that added
    an option with a null default (e.g. ``curriculum.run_file``) group together."""
    data = OmegaConf.to_container(run.config, resolve=True)
    return {k: v for k, v in _flatten(data).items() if not _ignored(k) and v is not None}


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def group_runs(runs: Sequence[StoredRun]) -> list[list[StoredRun]]:
    """Runs whose configs are equal except for the seed, in order of first appearance; within a
    group, by seed."""
    groups: dict[str, list[StoredRun]] = {}
    for r in runs:
        groups.setdefault(_canon(config_identity(r)), []).append(r)
    return [sorted(g, key=lambda r: (str(type(r.seed)), r.seed if r.seed is not None else 0)) for g in groups.values()]


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Flattened keys whose values are not the same in every config (a missing key counts)."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({_canon(c.get(k, _MISSING)) for c in configs}) > 1]


def _parse_override(o: str) -> tuple[str, str] | None:
    o = o.strip()
    if not o or o.startswith("~") or "=" not in o:
        return None
    key, value = o.split("=", 1)
    key = key.lstrip("+").split("@", 1)[0]
    return (None if _ignored(key) else (key, value))  # type: ignore[return-value]


def _short(value: Any) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    if "/" in s and len(s) > 24:
        s = s.rstrip("/").rsplit("/", 1)[-1] or s
    return s


def _short_target(value: Any) -> str:
    return str(value).rsplit(".", 1)[-1] if value is not None else "-"


def _covers(key: str, d: str) -> bool:
    return d == key or d.startswith(key + ".")


def group_labels(groups: Sequence[Sequence[StoredRun]]) -> tuple[list[str], list[str]]:
    """A short readable label per group (the config keys that differ between groups) and the
    differing flattened keys.

    A dimension the groups' ``overrides.txt`` spell out with different values (``loss=pairwise``
    vs ``loss=listwise``) is labelled with the overrides; the rest of the config diff is labelled
    ``key=value``, and a config group whose ``_target_`` differs as ``group=ClassName``.
    """
    flats = [config_identity(g[0]) for g in groups]
    diff = differing_keys(flats)
    if len(groups) == 1:
        return ["model"], []
    parsed = [dict(p for p in map(_parse_override, g[0].overrides) if p) for g in groups]
    parts: list[list[str]] = [[] for _ in groups]
    covered: set[str] = set()
    order: list[str] = []
    for ov in parsed:
        order += [k for k in ov if k not in order]
    for key in order:
        ds = [d for d in diff if _covers(key, d)]
        if not ds or not all(key in ov for ov in parsed) or len({ov[key] for ov in parsed}) < 2:
            continue
        for i, ov in enumerate(parsed):
            parts[i].append(f"{key}={_short(ov[key])}")
        covered.update(ds)
    remaining = [d for d in diff if d not in covered]
    target_nodes = [d[: -len("._target_")] for d in remaining if d.endswith("._target_")]
    for node in target_nodes:
        for i, f in enumerate(flats):
            parts[i].append(f"{node}={_short_target(f.get(node + '._target_'))}")
    for d in remaining:
        if d.endswith("._target_"):
            continue
        owners = [n for n in target_nodes if _covers(n, d)]
        if owners:  # a parameter of a swapped component: show it only if it varies within a class
            node = max(owners, key=len)
            by_class: dict[str, set[str]] = {}
            for f in flats:
                by_class.setdefault(_canon(f.get(node + "._target_")), set()).add(_canon(f.get(d, _MISSING)))
            if all(len(v) < 2 for v in by_class.values()):
                continue
        for i, f in enumerate(flats):
            parts[i].append(f"{d}={_short(f.get(d))}")  # absent = null (config_identity drops nulls)
    labels = [" ".join(p) or "model" for p in parts]
    if len(set(labels)) < len(labels):  # shortened values collided: number them
        seen: dict[str, int] = {}
        for i, lab in enumerate(labels):
            seen[lab] = seen.get(lab, 0) + 1
            if labels.count(lab) > 1:
                labels[i] = f"{lab} #{seen[lab]}"
    return labels, diff


# --------------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------


def _group_perquery(runs: Sequence[StoredRun], system: str, measure: str) -> dict[str, float]:
    tables = [r.perquery.get(system, {}).get(measure, {}) for r in runs]
    qids = set(tables[0])
    for t in tables[1:]:
        qids &= set(t)
    return {q: float(np.mean([t[q] for t in tables])) for q in qids}


def _first_stage_system(runs: Sequence[StoredRun], measures: Sequence[str], notes: list[str]) -> System | None:
    name = runs[0].baseline_name
    setups: dict[str, StoredRun] = {}
    for r in runs:
        cfg = OmegaConf.to_container(r.config, resolve=True)
        key = _canon([cfg.get("data"), cfg.get("first_stage"), (cfg.get("eval") or {}).get("rerank_k"), r.baseline_name])
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
                  summaries=summaries, perquery={m: _group_perquery(reps, name, m) for m in measures}, runs=list(reps))


def _untrained_systems(runs: Sequence[StoredRun], groups: Sequence[Sequence[StoredRun]], measures: Sequence[str],
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
        key = _canon([cfg.get("data"), cfg.get("first_stage"), ev.get("rerank_k"), ev.get("mode"), ev.get("retrieval_k"),
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
        label = "untrained" if len(setups) == 1 else f"untrained #{i + 1} ({_short_encoder(reps[0])})"
        summaries = {m: significance.summarize([float(r.metrics.get("untrained", {}).get(m, np.mean(list(r.perquery["untrained"][m].values()))))
                                                for r in reps]) for m in measures}
        out.append(System(label=label, kind="untrained", run_ids=[r.run_id for r in reps], seeds=[r.seed for r in reps],
                          summaries=summaries, perquery={m: _group_perquery(reps, "untrained", m) for m in measures},
                          runs=list(reps)))
    return out


def learned_notes(groups: Sequence[System], untrained: Sequence[System], measure: str, alpha: float = 0.05) -> list[str]:
    """One line saying which trained systems beat their own untrained start on ``measure`` (paired
    t-test on per-query means over seeds, uncorrected): a study must say whether its models learned
    before it says anything about a technique."""
    if not untrained:
        return []
    verdicts = []
    for g in groups:
        start = next((u for u in untrained if set(u.run_ids) & set(g.run_ids) or
                      any(_canon(OmegaConf.select(r.config, "model.encoder", default=None)) ==
                          _canon(OmegaConf.select(u.runs[0].config, "model.encoder", default=None)) for r in g.runs)), None)
        if start is None or measure not in g.perquery:
            continue
        a, b = g.perquery[measure], start.perquery[measure]
        qids = sorted(set(a) & set(b))
        if len(qids) < 2:
            continue
        t = significance.paired_ttest([a[q] for q in qids], [b[q] for q in qids])
        word = "learned" if t.p_value < alpha and t.mean_diff > 0 else ("worse than its start" if t.p_value < alpha else "not learned")
        verdicts.append(f"{g.label}: {word} ({measure} {t.mean_diff:+.4f} vs {start.label}, p = {t.p_value:.3g})")
    if not verdicts:
        return []
    n_yes = sum(1 for v in verdicts if ": learned" in v)
    return [f"learned at all? {n_yes} of {len(verdicts)} trained systems beat their untrained start "
            f"(paired t-test, α = {alpha}, uncorrected): " + "; ".join(verdicts)]


def _short_encoder(run: StoredRun) -> str:
    enc = OmegaConf.select(run.config, "model.encoder", default=None)
    if enc is None:
        return "?"
    return f"{_short_target(enc.get('_target_', '?'))} {enc.get('name', '')}".strip()


def _dev_summary(runs: Sequence[StoredRun]) -> dict | None:
    devs = [r.metrics.get("dev") or {} for r in runs]
    measures = {d.get("measure") for d in devs}
    if len(measures) != 1 or any(d.get("best") is None for d in devs):
        return None
    return {"measure": measures.pop(), **significance.summarize([float(d["best"]) for d in devs])}


def _dev_curve(runs: Sequence[StoredRun]) -> dict | None:
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


def _resolve_baseline(spec: str | None, systems: Sequence[System]) -> System:
    groups = [s for s in systems if s.kind == "group"]
    fs = [s for s in systems if s.kind == "first_stage"]
    names = ", ".join(s.label for s in systems)
    if spec is None or spec == "":
        if fs:
            return fs[0]
        if len(groups) == 1:
            return groups[0]
        raise ConfigError(f"no first-stage values to use as the baseline; pass --baseline (one of: {names})")
    for s in systems:
        if s.label == spec:
            return s
    if spec.lower() in ("bm25", "first_stage", "first-stage"):
        if fs:
            return fs[0]
        raise ConfigError(f"--baseline {spec}: the runs have no first-stage per-query values")
    hits = [g for g in groups if any(rid == spec for rid in g.run_ids)] or \
           [g for g in groups if any(rid.startswith(spec) for rid in g.run_ids)]
    if not hits and "=" in spec:
        key, value = spec.split("=", 1)
        key = key.lstrip("+")
        hits = []
        for g in groups:
            run = g.runs[0]
            node = OmegaConf.select(run.config, key, default=None)
            if OmegaConf.is_config(node):
                target = OmegaConf.select(run.config, key + "._target_", default=None)
                match = target is not None and value in (str(target), _short_target(target))
            else:
                match = node is not None and (str(node) == value or _canon(node) == value
                                              or (key.endswith("_target_") and _short_target(node) == value))
            if match or spec in g.label.split() or any(o.strip().lstrip("+") == spec for o in run.overrides):
                hits.append(g)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"--baseline {spec}: matches {len(hits)} systems ({', '.join(h.label for h in hits)}); be more specific")
    raise ConfigError(f"--baseline {spec}: no system, run id or KEY=VALUE match (systems: {names})")


def _order(systems: Sequence[str], scores: Sequence[float]) -> list[str]:
    return [s for _, s in sorted(zip(scores, systems), key=lambda t: (-t[0], t[1]))]


def _ordering_correlation(ref_name: str, est_name: str, systems: Sequence[str],
                          ref: Sequence[float], est: Sequence[float]) -> OrderingCorrelation:
    ro, eo = _order(systems, ref), _order(systems, est)
    return OrderingCorrelation(reference=ref_name, estimate=est_name, systems=list(systems),
                               kendall_tau=kendall_tau(ref, est), tau_ap=tau_ap(ref, est), rbo=rbo(ro, eo),
                               reference_order=ro, estimate_order=eo)


def ordering_correlations(systems: Sequence[System], measures: Sequence[str], notes: list[str] | None = None) -> list[OrderingCorrelation]:
    """Kendall tau-b, tau_ap and RBO between the system orderings by each pair of measures (the
    first of a pair is tau_ap's reference), and between dev and test orderings when every group
    has a dev value (reference: test)."""
    out: list[OrderingCorrelation] = []
    if len(systems) < 2:
        return out
    labels = [s.label for s in systems]
    tied = [m for m in measures if len({s.mean(m) for s in systems}) == 1]
    if tied and notes is not None:
        notes.append(f"every system has the same mean {'/'.join(tied)}: no ordering to correlate")
    for i, a in enumerate(measures):
        for b in measures[i + 1:]:
            if a not in tied and b not in tied:
                out.append(_ordering_correlation(a, b, labels, [s.mean(a) for s in systems], [s.mean(b) for s in systems]))
    groups = [s for s in systems if s.kind == "group"]
    if len(groups) >= 2:
        if all(g.dev is not None for g in groups) and len({g.dev["measure"] for g in groups}) == 1:
            dm = groups[0].dev["measure"]
            if all(dm in (r.metrics.get("model") or {}) for g in groups for r in g.runs):
                test = [float(np.mean([r.metrics["model"][dm] for r in g.runs])) for g in groups]
                dev = [g.dev["mean"] for g in groups]
                if len(set(test)) > 1 and len(set(dev)) > 1:
                    out.append(_ordering_correlation(f"test {dm}", f"dev {dm}", [g.label for g in groups], test, dev))
                elif notes is not None:
                    notes.append(f"no dev vs test ordering: the groups tie on {'dev' if len(set(dev)) == 1 else 'test'} {dm}")
        elif notes is not None:
            notes.append("no dev vs test ordering: not every group has a dev measure (metrics.dev.best)")
    return out


def compare(
    runs: Sequence[StoredRun],
    measures: str | Sequence[str] | None = None,
    baseline: str | None = None,
    test: str = "ttest",
    correction: str = "holm",
    alpha: float = 0.05,
    excluded: Sequence[tuple[str, str]] = (),
    n_samples: int = RANDOMIZATION_SAMPLES,
    seed: int = RANDOMIZATION_SEED,
) -> CompareResult:
    """Group ``runs`` by seed, summarise, test every system against ``baseline`` and correlate
    the system orderings. ``baseline``: a system label, a run id (or prefix), ``KEY=VALUE``
    matching one group, or ``bm25`` (the default)."""
    if not runs:
        raise ConfigError("nothing to compare: no complete runs")
    if test not in significance.TESTS:
        raise ConfigError(f"--test must be one of {', '.join(significance.TESTS)}, got {test!r}")
    if correction not in significance.CORRECTIONS:
        raise ConfigError(f"--correction must be one of {', '.join(significance.CORRECTIONS)}, got {correction!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must lie strictly between 0 and 1, got {alpha}")
    notes: list[str] = []
    measure_list = parse_measure_list(measures, available_measures(runs))
    groups = group_runs(runs)
    labels, diff = group_labels(groups)
    systems: list[System] = []
    for label, g in zip(labels, groups):
        flat = config_identity(g[0])
        systems.append(System(
            label=label, kind="group", run_ids=[r.run_id for r in g], seeds=[r.seed for r in g],
            summaries={m: significance.summarize([float(r.metrics["model"][m]) for r in g]) for m in measure_list},
            perquery={m: _group_perquery(g, "model", m) for m in measure_list},
            dev=_dev_summary(g), dev_curve=_dev_curve(g), config={k: flat.get(k) for k in diff}, runs=list(g)))
    untrained = _untrained_systems(runs, groups, measure_list, notes)
    systems.extend(untrained)
    notes.extend(learned_notes([s for s in systems if s.kind == "group"], untrained, measure_list[0], alpha))
    fs = _first_stage_system(runs, measure_list, notes)
    if fs is not None:
        if any(s.label == fs.label for s in systems):
            fs.label = f"{fs.label} (first stage)"
        systems.append(fs)
    base = _resolve_baseline(baseline, systems)

    comparisons: list[Comparison] = []
    query_sets = []
    for s in systems:
        # the untrained start is a reference row: tested only when it is the baseline (its own test
        # against each trained system is the "learned at all?" note), so it does not enlarge the family
        if s is base or (s.kind == "untrained" and base.kind != "untrained"):
            continue
        for m in measure_list:
            a, b = s.perquery[m], base.perquery[m]
            qids = sorted(set(a) & set(b))
            query_sets.append(len(qids))
            x, y = [a[q] for q in qids], [b[q] for q in qids]
            c = Comparison(system=s.label, baseline=base.label, measure=m, test=test,
                           mean_diff=float(np.mean(np.subtract(x, y))) if qids else float("nan"), n_queries=len(qids))
            if len(qids) < 2:
                c.note = f"only {len(qids)} shared queries: not tested"
            else:
                kwargs = {"n_samples": n_samples, "seed": seed} if test == "randomization" else {}
                try:
                    r = significance.TESTS[test](x, y, **kwargs)
                    c.statistic, c.p_value = r.statistic, r.p_value
                except ValueError as e:
                    c.note = f"not tested: {e}"
            comparisons.append(c)
    tested = [c for c in comparisons if c.p_value is not None]
    for c, p in zip(tested, significance.correct([c.p_value for c in tested], correction)):
        c.p_adjusted = float(p)
        c.significant = bool(p <= alpha)
    if len(set(query_sets)) > 1:
        notes.append("systems were evaluated on different query sets; each test uses the queries both systems share")
    qsets = [set(s.perquery[measure_list[0]]) for s in systems]
    n_queries = len(set.intersection(*qsets)) if qsets else 0
    for c in comparisons:
        if c.note:
            notes.append(f"{c.system} vs {c.baseline} on {c.measure}: {c.note}")
    correlations = ordering_correlations(systems, measure_list, notes)
    return CompareResult(systems=systems, measures=measure_list, baseline=base.label, test=test, correction=correction,
                         alpha=alpha, comparisons=comparisons, correlations=correlations, differing_keys=diff,
                         n_queries=n_queries, notes=notes, excluded=list(excluded))


# --------------------------------------------------------------------------------------------
# Two run files: per-query correlation
# --------------------------------------------------------------------------------------------


@dataclass
class RunPairCorrelation:
    run_a: str
    run_b: str
    per_query: dict[str, dict[str, float]]  # qid -> {kendall_tau, tau_ap, rbo, n_common, n_docs}
    means: dict[str, float]
    only_in_a: list[str]
    only_in_b: list[str]
    depth: int | None
    p: float
    queries: dict[str, int] = field(default_factory=dict)  # measure -> queries its mean is over
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> {reason: queries left out}

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def correlate_run_files(a: str | Path, b: str | Path, depth: int | None = None, p: float = 0.9) -> RunPairCorrelation:
    """Per-query Kendall tau-b, tau_ap (``a`` is the reference) and RBO between two TREC runs (or
    run directories, using their ``run.trec``), with their means over queries (NaN skipped)."""
    from rankexp.eval.trec_io import read_run

    def path(x: str | Path) -> Path:
        x = Path(x)
        return x / "run.trec" if x.is_dir() else x

    if depth is not None and depth < 1:
        raise ConfigError(f"--depth must be a positive integer, got {depth}")
    if not 0 < p < 1:
        raise ConfigError(f"--rbo-p must lie strictly between 0 and 1, got {p}")
    ra, rb = read_run(path(a)), read_run(path(b))
    pq = run_correlation(ra, rb, depth=depth, p=p)
    from rankexp.data.collection import natural_sorted

    per_query = {q: dict(pq[q]) for q in natural_sorted(pq)}
    summary = pq.summary()  # each mean over the queries where it is defined, with the reasons for the others
    means = {k: v["mean"] for k, v in summary.items()}
    for k in ("n_common", "n_docs"):
        means[k] = float(np.mean([v[k] for v in per_query.values()])) if per_query else float("nan")
    return RunPairCorrelation(run_a=str(a), run_b=str(b), per_query=per_query, means=means,
                              only_in_a=list(pq.only_in_a), only_in_b=list(pq.only_in_b), depth=depth, p=p,
                              queries={k: v["queries"] for k, v in summary.items()},
                              dropped={k: v["dropped"] for k, v in summary.items()})


# --------------------------------------------------------------------------------------------
# Text formats (the rich table is drawn by the CLI, the HTML one by the report)
# --------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def seeds_cell(s: System) -> str:
    return str(s.n_seeds) if s.kind in ("group", "untrained") and s.n_seeds else "–"


def result_rows(result: CompareResult) -> list[dict[str, Any]]:
    """One row per system and measure: the long form behind CSV."""
    rows = []
    for s in result.systems:
        for m in result.measures:
            sm = s.summaries[m]
            c = result.comparison(s.label, m)
            rows.append({
                "system": s.label, "kind": s.kind, "is_baseline": s.label == result.baseline,
                "n_seeds": s.n_seeds, "seeds": " ".join(map(str, s.seeds)), "run_ids": " ".join(s.run_ids),
                "n_queries": len(s.perquery[m]), "measure": m, "mean": sm["mean"], "std": sm["std"],
                "ci95_low": sm["ci95_low"], "ci95_high": sm["ci95_high"],
                "baseline": result.baseline, "mean_diff": c.mean_diff if c else None, "test": result.test if c else None,
                "statistic": c.statistic if c else None, "p_value": c.p_value if c else None,
                "p_adjusted": c.p_adjusted if c else None, "correction": result.correction if c else None,
                "significant": c.significant if c else None, "marker": c.marker if c else "",
            })
    return rows


def to_csv(result: CompareResult) -> str:
    rows = result_rows(result)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["system"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(result: CompareResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False)


def _cell_parts(result: CompareResult, s: System, m: str) -> tuple[str, str, str, str]:
    sm = s.summaries[m]
    c = result.comparison(s.label, m)
    spread = f" ± {fmt(sm['std'])}" if s.kind in ("group", "untrained") and sm["n"] > 1 else ""
    ci = f"[{fmt(sm['ci95_low'], 3)}, {fmt(sm['ci95_high'], 3)}]" if s.kind in ("group", "untrained") and sm["n"] > 1 else ""
    return fmt(sm["mean"]), spread, (c.marker if c else ""), ci


def _name(result: CompareResult, s: System) -> str:
    return s.label + (" (baseline)" if s.label == result.baseline else "")


def to_markdown(result: CompareResult) -> str:
    head = ["system", "seeds", "queries"] + result.measures
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for s in result.systems:
        cells = [_name(result, s).replace("|", "\\|"), seeds_cell(s), str(s.n_queries)]
        for m in result.measures:
            mean, spread, marker, ci = _cell_parts(result, s, m)
            if s.label in result.best(m):
                mean = f"**{mean}**"
            cells.append(f"{mean}{spread} {marker}".rstrip() + (f" {ci}" if ci else ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", result.legend() + ".", "", result.tests_line() + ".", ""]
    lines.append(_markdown_comparisons(result))
    if result.correlations:
        lines += ["", "System orderings:", "", "| reference | estimate | systems | Kendall τ | τ_ap | RBO |", "|---|---|---:|---:|---:|---:|"]
        for c in result.correlations:
            lines.append(f"| {c.reference} | {c.estimate} | {len(c.systems)} | {fmt(c.kendall_tau, 3)} | {fmt(c.tau_ap, 3)} | {fmt(c.rbo, 3)} |")
    curve = dev_curve_rows(result)
    if curve:
        steps, rows = curve
        lines += ["", f"Dev {rows[0][1]} over training (mean ± std over seeds, steps evaluated by every seed):", "",
                  "| system | " + " | ".join(f"step {st}" for st in steps) + " |",
                  "|---|" + "---:|" * len(steps)]
        for label, _, cells in rows:
            lines.append("| " + " | ".join([label.replace("|", "\\|"), *cells]) + " |")
    for n in result.notes:
        lines += ["", f"Note: {n}"]
    return "\n".join(lines) + "\n"


def dev_curve_rows(result: CompareResult) -> tuple[list[int], list[tuple[str, str, list[str]]]] | None:
    """The dev curves of the groups as one table: the union of their steps, and per group
    (label, dev measure, cells "mean ± std" or "" where the group has no value at a step).
    ``None`` unless some group has at least two evaluated steps (one point is no curve)."""
    groups = [s for s in result.systems if s.dev_curve and len(s.dev_curve["points"]) >= 2]
    if not groups:
        return None
    steps = sorted({p["step"] for s in groups for p in s.dev_curve["points"]})
    rows = []
    for s in groups:
        at = {p["step"]: p for p in s.dev_curve["points"]}
        rows.append((s.label, s.dev_curve["measure"],
                     [(fmt(at[st]["mean"]) + (f" ± {fmt(at[st]['std'])}" if at[st]["n"] > 1 else "")) if st in at else ""
                      for st in steps]))
    return steps, rows


def _markdown_comparisons(result: CompareResult) -> str:
    adj = "p" if result.correction == "none" else f"p ({result.correction})"
    lines = [f"| system | measure | Δ vs {result.baseline} | p | {adj} | |", "|---|---|---:|---:|---:|---|"]
    for c in result.comparisons:
        lines.append(f"| {c.system} | {c.measure} | {c.mean_diff:+.4f} | {fmt_p(c.p_value)} | {fmt_p(c.p_adjusted)} | {c.marker} |")
    return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class Cell:
    """One system × measure cell, formatted once for every renderer (rich, HTML, LaTeX, ...)."""

    mean: str
    best: bool
    std: str | None  # only for a group with more than one seed
    marker: str | None  # UP / DOWN when significant against the baseline
    ci: tuple[str, str] | None
    p_adjusted: float | None


def cell(result: "CompareResult", system, measure: str) -> Cell:
    sm = system.summaries[measure]
    c = result.comparison(system.label, measure)
    spread = system.kind in ("group", "untrained") and sm["n"] > 1
    return Cell(fmt(sm["mean"]), system.label in result.best(measure), fmt(sm["std"]) if spread else None,
                c.marker if c and c.marker else None,
                (fmt(sm["ci95_low"], 3), fmt(sm["ci95_high"], 3)) if spread else None, c.p_adjusted if c else None)


def latex_escape(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in s)


def to_latex(result: CompareResult) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs,amssymb}``)."""
    cols = "l" + "r" * (1 + len(result.measures))
    lines = ["% rankexp compare: needs \\usepackage{booktabs,amssymb}", "\\begin{table}[t]", "\\centering",
             f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
             " & ".join(["System", "Seeds"] + [latex_escape(m) for m in result.measures]) + " \\\\", "\\midrule"]
    for s in result.systems:
        cells = [latex_escape(_name(result, s)), seeds_cell(s).replace("–", "--")]
        for m in result.measures:
            c = cell(result, s, m)
            text = (f"\\textbf{{{c.mean}}}" if c.best else c.mean) + (f" $\\pm$ {c.std}" if c.std else "")
            if c.marker:
                text += "$^{\\blacktriangle}$" if c.marker == UP else "$^{\\blacktriangledown}$"
            cells.append(text)
        lines.append(" & ".join(cells) + " \\\\")
    corr = "no correction" if result.correction == "none" else f"{result.correction} correction over {result.tested()} comparisons"
    caption = (f"Mean $\\pm$ std over seeds. $^\\blacktriangle$/$^\\blacktriangledown$: significantly better/worse than "
               f"{latex_escape(result.baseline)} (paired {result.test}, {corr}, $\\alpha={result.alpha:g}$); "
               f"tests on per-query means over {result.seeds_phrase()}, {result.n_queries} queries.")
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def run_pair_rows(rc: RunPairCorrelation) -> list[dict[str, Any]]:
    rows = [{"query_id": q, **v} for q, v in rc.per_query.items()]
    rows.append({"query_id": "mean", **rc.means})
    return rows


def run_pair_query_note(rc: RunPairCorrelation) -> str:
    """One line: over how many queries each mean is taken, and why the others were left out."""
    names = {"kendall_tau": "Kendall τ", "tau_ap": "τ_ap", "rbo": "RBO"}
    parts = []
    for k, name in names.items():
        dropped = rc.dropped.get(k, {})
        why = "; ".join(f"{n} left out: {reason}" for reason, n in dropped.items())
        parts.append(f"{name} over {rc.queries.get(k, 0)} queries" + (f" ({why})" if why else ""))
    only = []
    if rc.only_in_a:
        only.append(f"{len(rc.only_in_a)} queries only in A")
    if rc.only_in_b:
        only.append(f"{len(rc.only_in_b)} queries only in B")
    return "means: " + ", ".join(parts) + (f"; not compared: {', '.join(only)}" if only else "")


def run_pair_text(rc: RunPairCorrelation, fmt_name: str) -> str:
    """csv / json / markdown / latex for ``--runs`` mode."""
    if fmt_name == "json":
        return json.dumps(rc.to_dict(), indent=2)
    rows = run_pair_rows(rc)
    keys = ["query_id", "kendall_tau", "tau_ap", "rbo", "n_common", "n_docs"]
    if fmt_name == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in keys})
        w.writerow({"query_id": "queries", **{k: rc.queries.get(k, "") for k in keys[1:4]}})  # what each mean is over
        return buf.getvalue()

    def cells(r: Mapping[str, Any]) -> list[str]:
        return [str(r["query_id"])] + [fmt(r[k], 3) for k in keys[1:4]] + [fmt(r["n_common"], 1) if r["query_id"] == "mean" else str(int(r["n_common"]))]

    if fmt_name == "markdown":
        lines = ["| query | Kendall τ | τ_ap | RBO | shared docs |", "|---|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
        return "\n".join(lines) + "\n\n" + run_pair_query_note(rc) + "\n"
    if fmt_name == "latex":
        lines = ["\\begin{tabular}{lrrrr}", "\\toprule", "Query & Kendall $\\tau$ & $\\tau_{AP}$ & RBO & Shared \\\\", "\\midrule"]
        body = [" & ".join(latex_escape(c).replace("–", "--") for c in cells(r)) + " \\\\" for r in rows]
        lines += body[:-1] + ["\\midrule", body[-1], "\\bottomrule", "\\end{tabular}", "% " + run_pair_query_note(rc)]
        return "\n".join(lines) + "\n"
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt_name!r}")

