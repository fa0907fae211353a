"""Stable run ids: an option added with a default (registered in conf/_id_neutral.yaml) does not
change the id of any existing config, so re-launched sweeps find their finished members."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf

from rankexp.api import compose
from rankexp.config.compose import drop_id_neutral, groups, id_neutral, run_id

# Run ids of the shipped configs, computed at f9adba7 (before issue 13 added options). A change here
# re-runs every finished run of that config: register the new option instead (conf/_id_neutral.yaml).
PINNED = {
    "": "978fc59a13",
    "curriculum=anti": "bbf5e62ba9", "curriculum=kdescore": "611befb3dd", "curriculum=normscore": "2a6755c653",
    "curriculum=reciprank": "af3f899301", "data=cranfield": "106dba45b7", "data=scifact": "2b78689a34",
    "experiment=curriculum": "b2e5e53570", "experiment=hard_negatives": "24655d6d57", "experiment=losses": "b2e5e53570",
    "first_stage=dense": "e3e0afb602", "first_stage=hybrid": "b4c10f3e63", "loss=margin": "0b68a52e3b",
    "loss=pairwise": "eb60e16207", "loss=pointwise": "97cfbdd14e", "model=bi_encoder": "f11b4f69db",
    "model=cross_encoder": "b2e5e53570", "model=tiny": "a70fffadb5", "model=tiny_bi": "dd0086b708",
    "negatives=dense_dynamic": "5f26ebe0a8", "negatives=dense_static": "6fc7e7e7b3", "negatives=mixed": "81b994a8b8",
    "negatives=random": "624f287062", "trainer=ddp": "87df61f46d", "trainer=gpu": "5ea29f68a4",
}


@pytest.mark.parametrize("override", list(PINNED))
def test_shipped_configs_keep_their_ids(override):
    assert run_id(compose([override] if override else [])) == PINNED[override]


def _without(cfg, dotted: str):
    """``cfg`` as it was before the option ``dotted`` existed."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(cfg, False)
    *parents, leaf = dotted.split(".")
    node = OmegaConf.select(cfg, ".".join(parents)) if parents else cfg
    node.pop(leaf)
    return cfg


def test_an_option_at_its_registered_value_keeps_the_id():
    cfg = compose([])
    assert "splits" in cfg.data
    before = _without(cfg, "data.splits")  # the config before issue 13 added data.splits
    assert run_id(before) == run_id(cfg) == PINNED[""]
    # a registered option set to null also keeps it
    assert run_id(compose(["data.splits.test.qrels=null"])) == PINNED[""]


def test_a_changed_value_changes_the_id(tmp_path):
    (tmp_path / "q.tsv").write_text("1\tq\n")
    (tmp_path / "r.txt").write_text("1 0 d 1\n")
    base = run_id(compose([]))
    given = compose(["data=local", f"data.path={tmp_path}", f"data.splits.test.queries={tmp_path / 'q.tsv'}",
                     f"data.splits.test.qrels={tmp_path / 'r.txt'}"], validate=False)
    assert run_id(given) != run_id(_without(given, "data.splits.test.queries"))
    assert run_id(compose(["++data.new_option=1"], validate=False)) != base  # unregistered: changes the id
    assert run_id(compose(["data.split.seed=1"])) != base


def test_drop_id_neutral_rules():
    neutral = {"a.b.c": 3, "a.b.d": None, "x.y": {"any_of": ["p", "q"]}}
    assert drop_id_neutral({"a": {"b": {"c": 3, "d": None}}, "k": None}, neutral) == {"k": None}  # emptied parents go
    assert drop_id_neutral({"a": {"b": {"c": 4, "d": None}}}, neutral) == {"a": {"b": {"c": 4}}}
    assert drop_id_neutral({"x": {"y": "q", "z": 1}}, neutral) == {"x": {"z": 1}}
    assert drop_id_neutral({"x": {"y": "r"}}, neutral) == {"x": {"y": "r"}}
    assert drop_id_neutral({"a": 1}, neutral) == {"a": 1}  # a registered path through a non-mapping


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        yield f"{prefix}{k}", v


def test_every_registered_key_exists_with_its_registered_value():
    """The registry cannot rot: each key is in some shipped config, holding its registered value there."""
    seen: dict[str, list] = {}
    for group, options in groups().items():
        if group in ("hydra", "logger"):
            continue
        for option in options:
            try:
                cfg = OmegaConf.to_container(compose([f"{group}={option}"], validate=False), resolve=False)
            except Exception:  # options with mandatory values (data=local needs data.path)
                continue
            for key, value in _leaves(cfg):
                seen.setdefault(key, []).append(value)
    neutral = id_neutral()
    assert neutral, "conf/_id_neutral.yaml is empty"
    for key, added_with in neutral.items():
        assert key in seen, f"{key} (conf/_id_neutral.yaml) is in no shipped config"
        allowed = added_with["any_of"] if isinstance(added_with, dict) and "any_of" in added_with else [added_with]
        assert any(v in allowed for v in seen[key]), f"{key}: no shipped config holds its registered value {added_with!r}"
