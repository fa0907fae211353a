"""Grouping runs into systems: runs whose resolved configs differ only in ``seed`` (and in the keys
the run id ignores) are one system, labelled by the config keys that differ between systems."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from omegaconf import OmegaConf

from rankexp.config.compose import RUN_ID_IGNORE
from rankexp.tracking.store import StoredRun

__all__ = ["config_identity", "group_runs", "differing_keys", "group_labels", "canon", "short_target"]

MISSING = "<missing>"


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = obj
    return out


def ignored(key: str) -> bool:
    top = key.split(".", 1)[0]
    return key in ("seed", "attack.seed") or top in RUN_ID_IGNORE  # attack.seed: an attack run's target-sampling seed


def config_identity(run: StoredRun) -> dict[str, Any]:
    """The run's resolved config, flattened to dotted keys, minus ``seed``, the keys the run id
    ignores (``RUN_ID_IGNORE``: output paths, logging) and null values: an option set to null is the
    same system as one without the option, so runs from before and after a rankexp version that added
    an option with a null default (e.g. ``curriculum.run_file``) group together."""
    data = OmegaConf.to_container(run.config, resolve=True)
    return {k: v for k, v in flatten(data).items() if not ignored(k) and v is not None}


def canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def group_runs(runs: Sequence[StoredRun]) -> list[list[StoredRun]]:
    """Runs whose configs are equal except for the seed, in order of first appearance; within a
    group, by seed."""
    groups: dict[str, list[StoredRun]] = {}
    for r in runs:
        groups.setdefault(canon(config_identity(r)), []).append(r)
    return [sorted(g, key=lambda r: (str(type(r.seed)), r.seed if r.seed is not None else 0)) for g in groups.values()]


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Flattened keys whose values are not the same in every config (a missing key counts)."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({canon(c.get(k, MISSING)) for c in configs}) > 1]


def _parse_override(o: str) -> tuple[str, str] | None:
    o = o.strip()
    if not o or o.startswith("~") or "=" not in o:
        return None
    key, value = o.split("=", 1)
    key = key.lstrip("+").split("@", 1)[0]
    return (None if ignored(key) else (key, value))  # type: ignore[return-value]


def short_value(value: Any) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    if "/" in s and len(s) > 24:
        s = s.rstrip("/").rsplit("/", 1)[-1] or s
    return s


def short_target(value: Any) -> str:
    return str(value).rsplit(".", 1)[-1] if value is not None else "-"


def _covers(key: str, d: str) -> bool:
    return d == key or d.startswith(key + ".")


def _decided_by(values: Sequence[str], flats: Sequence[Mapping[str, Any]], d: str) -> bool:
    """Whether key ``d``'s value is the same in every group that has the same override value."""
    seen: dict[str, str] = {}
    for v, f in zip(values, flats):
        c = canon(f.get(d, MISSING))
        if seen.setdefault(v, c) != c:
            return False
    return True


def group_labels(groups: Sequence[Sequence[StoredRun]]) -> tuple[list[str], list[str]]:
    """A short readable label per group (the config keys that differ between groups) and the
    differing flattened keys.

    A dimension the groups' ``overrides.txt`` spell out with different values (``loss=pairwise``
    vs ``loss=listwise``) is labelled with the overrides (a ``_global_`` group such as ``+cet_arm=cet``,
    which sets other groups' keys, labels the differences its value alone decides); the rest of the config diff is labelled
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
        if not all(key in ov for ov in parsed) or len({ov[key] for ov in parsed}) < 2:
            continue
        ds = [d for d in diff if _covers(key, d)]
        if not ds:  # a `# @package _global_` group (+cet_arm=..., experiment=...) writes other groups' keys: it
            # labels the groups and covers the differences its value alone decides
            ds = [d for d in diff if d not in covered and _decided_by([ov[key] for ov in parsed], flats, d)]
            if not ds:
                continue
        for i, ov in enumerate(parsed):
            parts[i].append(f"{key}={short_value(ov[key])}")
        covered.update(ds)
    remaining = [d for d in diff if d not in covered]
    target_nodes = [d[: -len("._target_")] for d in remaining if d.endswith("._target_")]
    for node in target_nodes:
        for i, f in enumerate(flats):
            parts[i].append(f"{node}={short_target(f.get(node + '._target_'))}")
    for d in remaining:
        if d.endswith("._target_"):
            continue
        owners = [n for n in target_nodes if _covers(n, d)]
        if owners:  # a parameter of a swapped component: show it only if it varies within a class
            node = max(owners, key=len)
            by_class: dict[str, set[str]] = {}
            for f in flats:
                by_class.setdefault(canon(f.get(node + "._target_")), set()).add(canon(f.get(d, MISSING)))
            if all(len(v) < 2 for v in by_class.values()):
                continue
        for i, f in enumerate(flats):
            parts[i].append(f"{d}={short_value(f.get(d))}")  # absent = null (config_identity drops nulls)
    labels = [" ".join(p) or "model" for p in parts]
    if len(set(labels)) < len(labels):  # shortened values collided: number them
        seen: dict[str, int] = {}
        for i, lab in enumerate(labels):
            seen[lab] = seen.get(lab, 0) + 1
            if labels.count(lab) > 1:
                labels[i] = f"{lab} #{seen[lab]}"
    return labels, diff
