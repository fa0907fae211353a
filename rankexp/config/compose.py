"""Hydra composition, config-group listing and the run id.

The run id is a short hash of the resolved config minus output paths, logging and runtime flags:
the same config is the same run, so a re-launched run or sweep finds its finished work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from rankexp.errors import ConfigError, one_line
from rankexp.utils.hashing import stable_hash

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
RUN_ID_IGNORE = ("paths", "logger", "run", "hydra")
ID_NEUTRAL = CONF_DIR / "_id_neutral.yaml"
SWEEP_CHARS = re.compile(r"^[^=]+=.*(,|^glob\(|^range\(|^choice\()")


def groups() -> dict[str, list[str]]:
    """Config groups and their options: the folders of ``conf/`` and their YAML stems."""
    out = {}
    for d in sorted(p for p in CONF_DIR.iterdir() if p.is_dir()):
        out[d.name] = sorted(f.stem for f in d.glob("*.yaml"))
    return out


def compose(overrides: Sequence[str] = (), validate: bool = True) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (full override grammar, no sweeps), then
    check every value against :mod:`rankexp.config.validate` (before any data is loaded)."""
    cfg = _compose(overrides)
    if validate:
        from rankexp.config.validate import validate as check_values

        check_values(cfg)
    return cfg


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    overrides = list(overrides)
    for o in overrides:
        value = o.split("=", 1)[1] if "=" in o else ""
        if "=" in o and (re.match(r"^(glob|range|choice|interval|tag)\(", value) or _has_top_level_comma(value)):
            raise ConfigError(f"override {o!r} is a sweep; `rankexp train` runs one config (use `rankexp sweep {o}`)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="rankexp"):
            return hydra_compose(config_name="config", overrides=overrides)
    except MissingConfigException as e:
        raise ConfigError(_missing_message(e, overrides)) from None
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse override: {one_line(e)}") from None
    except HydraException as e:
        cause = f" ({one_line(e.__cause__)})" if e.__cause__ else ""
        msg = one_line(e)
        if "Could not override" in msg or "Could not append" in msg:
            msg += " Key not in config; prefix with ++ to add a new key."
        raise ConfigError(msg + cause) from None
    finally:
        GlobalHydra.instance().clear()


def split_top_level(value: str) -> list[str]:
    """Split an override value at commas outside brackets and quotes (``a,[b,c]`` -> ``a``, ``[b,c]``)."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in value:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return parts + [cur]


def _has_top_level_comma(value: str) -> bool:
    return len(split_top_level(value)) > 1


def _missing_message(e: Exception, overrides: Sequence[str]) -> str:
    text = str(e)
    m = re.search(r"Could not find '([^']+)/([^']+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        options = groups().get(group.split("/")[-1], [])
        return f"unknown option {group}={option} (available: {', '.join(options) or 'none'})"
    return one_line(e)


def to_container(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except Exception as e:
        raise ConfigError(f"config does not resolve: {one_line(e)}") from None


def id_neutral() -> dict[str, object]:
    """``conf/_id_neutral.yaml``: options added after run ids were first handed out, each with the
    value it was added with (dotted key -> value)."""
    return dict(OmegaConf.to_container(OmegaConf.load(ID_NEUTRAL)) or {})  # type: ignore[arg-type]


def drop_id_neutral(data: dict, neutral: dict[str, object]) -> dict:
    """``data`` without the registered options that hold their added-with value (or one of
    ``{any_of: [...]}``, for an option added with a different value per config option) or null; a mapping
    left empty by that is dropped too. Every other key is kept, nulls included (the ids of runs made
    before the registry stay what they were)."""
    for key, added_with in neutral.items():
        *parents, leaf = key.split(".")
        chain, node = [], data
        for p in parents:
            if not isinstance(node, dict) or not isinstance(node.get(p), dict):
                node = None
                break
            chain.append((node, p))
            node = node[p]
        allowed = added_with["any_of"] if isinstance(added_with, dict) and "any_of" in added_with else [added_with]
        if not isinstance(node, dict) or leaf not in node or node[leaf] not in (None, *allowed):
            continue
        del node[leaf]
        for parent, name in reversed(chain):  # prune what this emptied
            if parent[name]:
                break
            del parent[name]
    return data


def run_id(cfg: DictConfig) -> str:
    """Hash of the resolved config minus output paths, logging, runtime flags and the id-neutral
    options that hold their added-with value (``conf/_id_neutral.yaml``)."""
    data = to_container(cfg)
    for key in RUN_ID_IGNORE:
        data.pop(key, None)
    if isinstance(data.get("data"), dict) and data["data"].get("path"):
        data["data"]["path"] = str(Path(data["data"]["path"]).expanduser().resolve())
    return stable_hash(drop_id_neutral(data, id_neutral()), 10)


def build(node, what: str, **kwargs):
    """``hydra.utils.instantiate`` with the cause of a failure reported as one line naming the group."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from rankexp.errors import RankexpError

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, RankexpError):
            raise cause from None
        if cause is not None:
            raise ConfigError(f"{what}: {one_line(cause)}") from cause
        raise ConfigError(f"{what}: {one_line(e)}") from e
