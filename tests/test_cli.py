"""CLI surface: help on every command, config show, data list/info, eval."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rankexp.cli import app

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["train"], ["eval"], ["config"], ["config", "show"], ["config", "groups"], ["data"], ["data", "list"], ["data", "info"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_show_applies_overrides():
    result = runner.invoke(app, ["config", "show", "data=cranfield", "trainer.max_steps=200", "seed=2", "model.lr=3e-5"])
    assert result.exit_code == 0, result.output
    assert "name: cranfield" in result.output and "max_steps: 200" in result.output and "seed: 2" in result.output
    assert "lr: 3.0e-05" in result.output and "run id:" in result.output
    pkg = runner.invoke(app, ["config", "show", "data=cranfield", "-p", "data.fields"])
    assert pkg.exit_code == 0 and "text" in pkg.output and "title" not in pkg.output


def test_run_id_stable_and_sensitive():
    from rankexp import api
    from rankexp.config.compose import run_id

    a = run_id(api.compose(["seed=3"]))
    assert a == run_id(api.compose(["seed=3", "logger=csv", "paths.output_dir=/elsewhere"]))  # paths and logging do not count
    assert a != run_id(api.compose(["seed=4"]))
    assert a != run_id(api.compose(["seed=3", "loss=pairwise"]))


def test_config_groups_lists_every_folder():
    result = runner.invoke(app, ["config", "groups"])
    assert result.exit_code == 0
    for group in ("data", "model", "loss", "negatives", "trainer", "logger", "first_stage"):
        assert group in result.output


def test_every_option_of_every_group_composes_and_instantiates():
    from hydra.utils import instantiate

    from omegaconf import OmegaConf

    from rankexp import api
    from rankexp.config.compose import CONF_DIR, groups

    in_defaults = {next(iter(d)).split("@")[0].split("/")[0] for d in OmegaConf.load(CONF_DIR / "config.yaml").defaults
                   if not isinstance(d, str)}
    for group, options in groups().items():
        for option in options:
            if group in ("experiment",):
                continue
            extra = {"data/irds": ["data.id=vaswani"], "data/local": ["data.path=/tmp"],
                     "negatives/file": ["negatives.path=/tmp/negatives.tsv"]}.get(f"{group}/{option}", [])
            # a group absent from config.yaml's defaults list (cet_arm: `# @package _global_` study arms) is added with +
            plus = "" if group.split("/")[0] in in_defaults else "+"
            cfg = api.compose([f"{plus}{group}={option}", *extra])
            if group not in cfg:  # a _global_ package (cet_arm) writes other groups' keys, not its own node
                continue
            node = cfg[group]
            if node.get("_target_") is not None and group not in ("model",):  # `_target_: null`: the "none" option of a group
                instantiate(node)


def test_data_list_and_info(vaswani_slice):
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0 and "vaswani" in result.output and "cranfield" in result.output
    info = runner.invoke(app, ["data", "info", "vaswani"])
    assert info.exit_code == 0, info.output
    assert "11429" in info.output and "93" in info.output  # ir_datasets vaswani (offline seed): documents, queries
    local = runner.invoke(app, ["data", "info", "local", f"data.path={vaswani_slice}"])
    assert local.exit_code == 0, local.output
    assert "split train/dev/test" in local.output and "12/2/6" in local.output


def test_eval_hand_checked(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 a 1\nq1 0 b 0\nq2 0 c 1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 b 1 2.0 t\nq1 Q0 a 2 1.0 t\nq2 Q0 c 1 5.0 t\n")
    result = runner.invoke(app, ["eval", str(run), "--qrels", str(qrels), "--measures", "RR,AP", "--format", "tsv"])
    assert result.exit_code == 0, result.output
    rows = dict((l.split("\t")[1], float(l.split("\t")[3])) for l in result.output.splitlines())
    assert rows == {"RR": 0.75, "AP": 0.75}  # q1: 1/2, q2: 1


def test_experiments_come_in_pairs_and_compose():
    """conf/experiment/X.yaml and experiments/X/README.md exist in pairs; each composes.

    A study that is not a training sweep (robustness: attack runs) has a README and the run.sh it was run with."""
    from rankexp import api
    from rankexp.config.compose import CONF_DIR
    from tests.conftest import REPO

    configs = {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")}
    readmes = {p.parent.name for p in (REPO / "experiments").glob("*/README.md")}
    assert configs and configs <= readmes, f"experiment configs without a README: {sorted(configs - readmes)}"
    scripted = readmes - configs
    assert all((REPO / "experiments" / n / "run.sh").exists() for n in scripted), f"READMEs without a config or run.sh: {sorted(scripted)}"
    for name in configs:
        api.compose([f"experiment={name}"])


def test_experiment_list_and_show():
    result = runner.invoke(app, ["experiment", "list"])
    assert result.exit_code == 0 and "losses" in result.output and "loss=pointwise,pairwise,listwise" in result.output
    show = runner.invoke(app, ["experiment", "show", "losses"])
    assert show.exit_code == 0 and "Question" in show.output
    bad = runner.invoke(app, ["experiment", "run", "nosuch"])
    assert bad.exit_code != 0 and "unknown experiment 'nosuch'" in bad.output
