"""Loggers are _target_ configs like every other group: each conf/logger option builds its
LoggerFactory through hydra's instantiate, a user's own factory plugs in the same way, and a config
whose kind contradicts its class is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rankexp import api
from rankexp.errors import ConfigError
from rankexp.tracking.loggers import (CSVLoggerFactory, LoggerFactory, NoLoggerFactory, WandbLoggerFactory, build_logger,
                                      logger_factory)

CONF = Path(__file__).resolve().parents[1] / "rankexp" / "conf" / "logger"


class RecordingFactory(LoggerFactory):
    """A user's own tracker: writes what the run told it to ``record`` and logs nowhere."""

    kind = "none"

    def __init__(self, record: str, kind: str | None = None):
        super().__init__(kind)
        self.record = record

    def __call__(self, run_id, rundir, output_dir, config, tags):
        Path(self.record).write_text(f"{run_id} {rundir} {','.join(tags)}")
        return False


def test_every_logger_option_is_a_target_config():
    options = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert options == ["csv", "none", "wandb"]
    for name in options:
        assert "_target_" in OmegaConf.load(CONF / f"{name}.yaml"), name
    built = {name: logger_factory(api.compose([f"logger={name}"]).logger) for name in options}
    assert type(built["none"]) is NoLoggerFactory and type(built["csv"]) is CSVLoggerFactory
    wandb = built["wandb"]
    assert type(wandb) is WandbLoggerFactory and {k: getattr(wandb, k) for k in ("project", "job_type", "mode")} == {
        "project": "rankexp", "job_type": "train", "mode": None}
    over = logger_factory(api.compose(["logger=wandb", "logger.project=p", "logger.tags=[a,b]", "logger.group=g"]).logger)
    assert (over.project, over.tags, over.group) == ("p", ["a", "b"], "g")


def test_csv_and_none_build_their_loggers(tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    csv = build_logger(api.compose(["logger=csv"]).logger, "r1", tmp_path / "run", tmp_path, {"a": 1}, ["t"])
    assert isinstance(csv, CSVLogger) and Path(csv.log_dir) == tmp_path / "run" / "csv"
    assert build_logger(api.compose(["logger=none"]).logger, "r1", tmp_path, tmp_path, {}, []) is False
    assert build_logger(None, "r1", tmp_path, tmp_path, {}, []) is False


def test_a_users_own_factory_plugs_in_by_target(tmp_path):
    record = tmp_path / "record.txt"
    cfg = api.compose(["logger=none", "logger._target_=tests.test_loggers.RecordingFactory", f"++logger.record={record}"])
    assert build_logger(cfg.logger, "r2", tmp_path, tmp_path, {}, ["data:x"]) is False
    assert record.read_text() == f"r2 {tmp_path} data:x"


def test_kind_must_match_the_class_and_the_target_must_be_a_factory():
    with pytest.raises(ConfigError) as err:
        logger_factory(api.compose(["logger=csv", "logger.kind=wandb"]).logger)
    assert str(err.value) == ("logger: logger.kind=wandb does not match logger._target_ CSVLoggerFactory (which builds a "
                              "csv logger); choose the logger with logger=NAME")
    with pytest.raises(ConfigError, match="must name a rankexp.tracking.loggers.LoggerFactory"):
        logger_factory({"_target_": "collections.OrderedDict"})


def test_a_config_written_before_targets_still_builds():
    """run directories' config.yaml from before loggers had _target_: the kind decides."""
    assert type(logger_factory({"kind": "csv"})) is CSVLoggerFactory
    old = logger_factory({"kind": "wandb", "project": "old", "entity": None, "group": None, "job_type": "train",
                          "tags": [], "mode": "offline"})
    assert type(old) is WandbLoggerFactory and (old.project, old.mode) == ("old", "offline")
    with pytest.raises(ConfigError, match="logger.kind must be wandb, csv or none, got 'tensorboard'"):
        logger_factory({"kind": "tensorboard"})


def test_final_summary_carries_fidelity_and_debias_numbers():
    """log_final mirrors the measures and metrics.json's distillation fidelity / debias numbers to the W&B summary
    (what a W&B report compares); non-numbers and booleans are left out."""
    from rankexp.tracking.loggers import log_final, summary_extras

    metrics = {"distill": {"kind": "kl", "scoring_s": 1.5, "cache_hits": 2, "teacher": "t",
                           "fidelity": {"model": {"mean": {"kendall_tau": 0.25, "rbo": 0.5}, "queries": 3},
                                        "untrained": {"mean": {"kendall_tau": -0.1}}}},
               "debias": {"hidden_share": 0.3, "cet": {"auc": 0.75, "ok": True, "name": "x"}}}
    extras = summary_extras(metrics)
    assert extras == {"distill/fidelity/model/kendall_tau": 0.25, "distill/fidelity/model/rbo": 0.5,
                      "distill/fidelity/untrained/kendall_tau": -0.1, "distill/scoring_s": 1.5, "distill/cache_hits": 2.0,
                      "debias/hidden_share": 0.3, "debias/cet/auc": 0.75}
    assert summary_extras({}) == {}

    class Experiment:
        def __init__(self):
            self.summary, self.logged = {}, []

        def log(self, d):
            self.logged.append(d)

    class WandbLogger:  # the class name is what log_final checks
        experiment = Experiment()

    logger = WandbLogger()
    log_final(logger, {"model": {"nDCG@10": 0.5}}, {"model": {"nDCG@10": {"q1": 0.5}}}, extras)
    assert logger.experiment.summary == {"test/model/nDCG@10": 0.5, **extras}


def test_the_offline_wandb_logger_prints_no_deprecation_warning(tmp_path, monkeypatch, capsys):
    """Lightning's WandbLogger passed anonymous=None, and W&B printed "The anonymous setting has no
    effect" into every command's table output; the factory drops the key."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "false")
    logger = build_logger(api.compose(["logger=wandb", "logger.mode=offline"]).logger, "r-wb", tmp_path / "run", tmp_path,
                          {"a": 1}, ["t"])
    try:
        assert "anonymous" not in logger._wandb_init and logger.experiment.id == "r-wb"
    finally:
        wandb.finish()
    out = capsys.readouterr()
    assert "anonymous" not in out.out + out.err
