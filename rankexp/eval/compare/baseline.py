"""Choosing the baseline every system is tested against: a system label, a run id (or prefix),
``KEY=VALUE`` matching one group, or ``bm25`` / ``first_stage`` (the default when the runs have
first-stage values)."""

from __future__ import annotations

from typing import Sequence

from omegaconf import OmegaConf

from rankexp.errors import ConfigError
from rankexp.eval.compare.grouping import canon, short_target
from rankexp.eval.compare.model import System

__all__ = ["resolve_baseline"]


def resolve_baseline(spec: str | None, systems: Sequence[System]) -> System:
    groups = [s for s in systems if s.kind == "group"]
    fs = [s for s in systems if s.kind == "first_stage"]
    names = ", ".join(s.label for s in systems)
    if spec is None or spec == "":
        if fs:
            return fs[0]
        if len(groups) == 1 or (groups and all(g.runs[0].is_attack for g in groups)):
            return groups[0]  # attack runs have no first stage: the first system
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
                match = target is not None and value in (str(target), short_target(target))
            else:
                match = node is not None and (str(node) == value or canon(node) == value
                                              or (key.endswith("_target_") and short_target(node) == value))
            if match or spec in g.label.split() or any(o.strip().lstrip("+") == spec for o in run.overrides):
                hits.append(g)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"--baseline {spec}: matches {len(hits)} systems ({', '.join(h.label for h in hits)}); be more specific")
    raise ConfigError(f"--baseline {spec}: no system, run id or KEY=VALUE match (systems: {names})")
