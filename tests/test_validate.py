"""Config values are checked right after composing: one line naming the key, before any data loads."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from rankexp.config.compose import CONF_DIR, compose
from rankexp.config.validate import validate
from rankexp.errors import ConfigError, ConfigValueError


@functools.lru_cache(maxsize=None)
def _base(groups: tuple[str, ...]):
    return compose(list(groups), validate=False)


def compose_fast(overrides: list[str]):
    """``compose(overrides)``, quicker: the group choices are composed once (cached) and the values
    are set as Hydra parses them; then the same validation ``compose`` runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    groups = tuple(o for o in overrides if "." not in o.split("=", 1)[0])
    cfg = _base(groups).copy()
    parser = OverridesParser.create()
    with open_dict(cfg):
        for o in overrides:
            if o not in groups:
                parsed = parser.parse_override(o)
                OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)
    validate(cfg)
    return cfg

# (overrides, the message's start): one bad value per rule
BAD = [
    (["eval.rerank_k=-5"], "eval.rerank_k must be a positive integer, got -5"),
    (["eval.rerank_k=0"], "eval.rerank_k must be a positive integer, got 0"),
    (["eval.rerank_k=2.5"], "eval.rerank_k must be a positive integer, got 2.5"),
    (["eval.dev_rerank_k=0"], "eval.dev_rerank_k must be a positive integer, got 0"),
    (["eval.retrieval_k=-1"], "eval.retrieval_k must be a positive integer, got -1"),
    (["eval.batch_size=0"], "eval.batch_size must be a positive integer"),
    (["eval.measures=[]"], "eval.measures must be a non-empty list of strings, got []"),
    (["eval.dev_measure=''"], "eval.dev_measure must be a non-empty string"),
    (["eval.rerank_k=2000"], "eval.rerank_k must be <= first_stage.k (1000, the candidates retrieved), got 2000"),
    (["eval.dev_rerank_k=1001"], "eval.dev_rerank_k must be <= first_stage.k (1000"),
    (["first_stage.k=0"], "first_stage.k must be a positive integer, got 0"),
    (["first_stage.b=1.5"], "first_stage.b must be a number in [0, 1], got 1.5"),
    (["first_stage.k1=-1"], "first_stage.k1 must be a number >= 0, got -1"),
    (["first_stage.method=okapi"], "first_stage.method must be one of lucene, robertson, atire, bm25l, bm25+, got 'okapi'"),
    (["first_stage=hybrid", "first_stage.alpha=1.2"], "first_stage.alpha must be a number in [0, 1], got 1.2"),
    (["first_stage=hybrid", "first_stage.fusion=max"], "first_stage.fusion must be one of norm, rrf, got 'max'"),
    (["first_stage=hybrid", "first_stage.dense.k=-3"], "first_stage.dense.k must be a positive integer, got -3"),
    (["first_stage=dense", "first_stage.pooling=max"], "first_stage.pooling must be one of mean, cls, got 'max'"),
    (["first_stage=dense", "first_stage.use_faiss=maybe"], "first_stage.use_faiss must be one of auto, true, false"),
    (["negatives.depth=0"], "negatives.depth must be a positive integer, got 0"),
    (["negatives.skip_top=-1"], "negatives.skip_top must be an integer >= 0, got -1"),
    (["negatives.skip_top=100"], "negatives.skip_top must be smaller than negatives.depth (100), got 100"),
    (["negatives.margin_abs=-0.5"], "negatives.margin_abs must be null or a number >= 0, got -0.5"),
    (["negatives.select=best"], "negatives.select must be one of uniform, top, got 'best'"),
    (["negatives=dense_static", "negatives.depth=-2"], "negatives.depth must be a positive integer, got -2"),
    (["negatives=dense_dynamic", "negatives.lambda_weight=2"], "negatives.lambda_weight must be true or false, got 2"),
    (["negatives=mixed", "negatives.sources.bm25.weight=-1"], "negatives.sources.bm25.weight must be a number >= 0, got -1"),
    (["negatives=mixed", "negatives.sources.bm25.sampler.depth=0"], "negatives.sources.bm25.sampler.depth must be a positive integer"),
    (["negatives=mixed", "negatives.sources.bm25.weight=0", "negatives.sources.random.weight=0"], "negatives.sources: the weights must not all be 0"),
    (["train.num_negatives=0"], "train.num_negatives must be a positive integer, got 0"),
    (["train.batch_size=0"], "train.batch_size must be a positive integer, got 0"),
    (["train.batch_size=abc"], "train.batch_size must be a positive integer, got 'abc'"),
    (["train.val_every_n_steps=0"], "train.val_every_n_steps must be a positive integer, got 0"),
    (["train.length_buckets=0"], "train.length_buckets must be a positive integer"),
    (["train.early_stopping.enabled=maybe"], "train.early_stopping.enabled must be true or false, got 'maybe'"),
    (["train.early_stopping.patience=-1"], "train.early_stopping.patience must be an integer >= 0, got -1"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be a positive integer, got 'abc'"),
    (["trainer.max_steps=0"], "trainer.max_steps must be a positive integer, got 0"),
    (["trainer.max_steps=1e3"], "trainer.max_steps must be a positive integer, got 1000.0"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps must be a positive integer, got 0"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be a positive integer"),
    (["trainer.precision=8"], "trainer.precision must be one of transformer-engine"),
    (["trainer.accelerator=abacus"], "trainer.accelerator must be one of cpu, gpu"),
    (["trainer.devices=0"], "trainer.devices must be a positive integer, -1"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be null or a number >= 0, got -1"),
    (["trainer.deterministic=sometimes"], "trainer.deterministic must be true or false or one of warn, got 'sometimes'"),
    (["data.split.dev=1.5"], "data.split.dev must be a number in [0, 1], got 1.5"),
    (["data.split.test=-0.1"], "data.split.test must be a number in [0, 1], got -0.1"),
    (["data.split.dev=0.5", "data.split.test=0.5"], "data.split.dev + data.split.test must be < 1"),
    (["data.split.seed=x"], "data.split.seed must be an integer, got 'x'"),
    (["data.fields=[]"], "data.fields must be a non-empty list of strings, got []"),
    (["data.splits.test.id=nope/nothing"], "data.splits.test.id must be a known ir_datasets id (https://ir-datasets.com), got 'nope/nothing'"),
    (["data.splits.train.id=5"], "data.splits.train.id must be null or a non-empty string, got 5"),
    (["data.splits.test.queries=/etc/hostname"], "data.splits.test.qrels must be a file (a local split needs data.splits.test.queries and"),
    (["data.splits.dev.queries=/no/such.tsv", "data.splits.dev.qrels=/etc/hostname"], "data.splits.dev.queries must be an existing file, got '/no/such.tsv'"),
    (["data.splits.test.id=cranfield", "data.splits.test.qrels=/etc/hostname"], "data.splits.test: give either id (an ir_datasets id) or queries + qrels"),
    (["data.splits.test.id=vaswani"], "data.splits.test names the collection's own queries (data.id=vaswani), which also fill train"),
    (["data.splits.train.id=cranfield", "data.splits.dev.id=cranfield"], "data.splits.train and data.splits.dev name the same queries (ir_datasets cranfield)"),
    (["model=bi_encoder", "model.encoder.gather_negatives=sometimes"], "model.encoder.gather_negatives must be true or false, got 'sometimes'"),
    (["model.lr=0"], "model.lr must be a number > 0, got 0"),
    (["model.lr=-1e-4"], "model.lr must be a number > 0, got -0.0001"),
    (["model.head_lr=0"], "model.head_lr must be null or a number > 0, got 0"),
    (["model.weight_decay=-0.1"], "model.weight_decay must be a number >= 0, got -0.1"),
    (["model.warmup_ratio=1.5"], "model.warmup_ratio must be a number in [0, 1], got 1.5"),
    (["model=cross_encoder", "model.encoder.dropout=1.0"], "model.encoder.dropout must be a number in [0, 1), got 1.0"),
    (["model=cross_encoder", "model.encoder.pooling=max"], "model.encoder.pooling must be one of cls, mean, got 'max'"),
    (["model=cross_encoder", "model.encoder.max_length=30"], "model.encoder.max_length must exceed model.encoder.max_query_length + 8"),
    (["model.encoder.max_query_length=0"], "model.encoder.max_query_length must be a positive integer, got 0"),
    (["model=bi_encoder", "model.encoder.temperature=0"], "model.encoder.temperature must be a number > 0, got 0"),
    (["model=bi_encoder", "model.encoder.similarity=l2"], "model.encoder.similarity must be one of cos, dot, got 'l2'"),
    (["model=bi_encoder", "model.encoder.max_query_length=2"], "model.encoder.max_query_length must be >= 4, got 2"),
    (["loss.temperature=0"], "loss.temperature must be a number > 0, got 0"),
    (["loss=margin", "loss.margin=-1"], "loss.margin must be a number >= 0, got -1"),
    (["loss=pointwise", "loss.pos_weight=0"], "loss.pos_weight must be a number > 0, got 0"),
    (["curriculum=reciprank", "curriculum.m_fraction=1.5"], "curriculum.m_fraction must be null or a number in (0, 1], got 1.5"),
    (["curriculum=reciprank", "curriculum.m_fraction=0"], "curriculum.m_fraction must be null or a number in (0, 1], got 0"),
    (["curriculum=reciprank", "curriculum.m_fraction=null"], "curriculum.m_fraction must be a number in (0, 1] when curriculum.m_steps is null"),
    (["curriculum=normscore", "curriculum.m_steps=0"], "curriculum.m_steps must be null or a positive integer, got 0"),
    (["curriculum=kdescore", "curriculum.heuristic=easy"], "curriculum.heuristic must be one of reciprank, normscore, kdescore, got 'easy'"),
    (["curriculum=anti", "curriculum.application=group"], "curriculum.application must be one of example, batch, got 'group'"),
    (["curriculum=anti", "curriculum.anti=yes"], "curriculum.anti must be true or false, got 'yes'"),
    (["logger.kind=tensorboard"], "logger.kind must be one of wandb, csv, none, got 'tensorboard'"),
    (["logger.mode=sometimes"], "logger.mode must be null or one of online, offline, disabled, shared, got 'sometimes'"),
    (["seed=-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (["seed=abc"], "seed must be an integer in [0, 4294967295], got 'abc'"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigValueError) as info:
        compose_fast(overrides)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text
    key = message.split(" ")[0]
    assert text.startswith(key)


# Values that must still pass: the boundaries of each range, and null where the YAML has null.
GOOD = [
    [],
    ["eval.rerank_k=1", "eval.dev_rerank_k=1", "first_stage.k=1", "negatives.depth=1"],
    ["eval.rerank_k=1000"],
    ["data.split.dev=0", "data.split.test=0"],
    ["data.split.dev=0.0", "data.split.test=0.99"],
    ["model.warmup_ratio=1", "model.head_lr=null", "model.weight_decay=0"],
    ["trainer=gpu"], ["trainer=ddp"], ["trainer.precision=16"], ["trainer.precision=bf16-mixed"], ["trainer.devices=auto"],
    ["trainer.devices=[0,1]"], ["trainer.devices=-1"], ["trainer.gradient_clip_val=null"], ["trainer.deterministic=warn"],
    ["negatives.margin_abs=0.1", "negatives.margin_rel=0.5", "negatives.max_score=12.5", "negatives.skip_top=99"],
    ["curriculum=reciprank", "curriculum.m_steps=10", "curriculum.m_fraction=null"],
    ["curriculum=reciprank", "curriculum.m_fraction=1"],
    ["model=bi_encoder", "eval.mode=retrieve", "eval.rerank_k=5000"],  # a bi-encoder does not rerank: rerank_k is unused
    ["first_stage.stemmer=null", "first_stage.stopwords=null"],
    ["data=irds"],  # data.id is ??? (mandatory, unset): reported by whoever needs it, not here
    ["data=local"],
    ["negatives=file"],
    ["logger.mode=offline", "logger.entity=me"],
]


@pytest.mark.parametrize("overrides", GOOD, ids=[" ".join(o) or "defaults" for o in GOOD])
def test_good_values_pass(overrides):
    compose_fast(overrides)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_validates(experiment):
    compose([f"experiment={experiment}"])


@pytest.mark.parametrize("group", ["first_stage", "model", "loss", "negatives", "curriculum", "trainer", "logger", "data"])
def test_every_shipped_option_validates(group):
    for option in _options(group):
        extra = {"irds": ["data.id=vaswani"], "local": ["data.path=x"], "file": ["negatives.path=x"]}.get(option, [])
        compose([f"{group}={option}", *extra])


@pytest.mark.parametrize("overrides,message", [
    (["eval.rerank_k=-5"], "eval.rerank_k must be a positive integer, got -5"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be a positive integer, got 'abc'"),
    (["first_stage=hybrid", "first_stage.alpha=1.2"], "first_stage.alpha must be a number in [0, 1], got 1.2"),
    (["data.split.dev=0.5", "data.split.test=0.5"], "data.split.dev + data.split.test must be < 1"),
])
def test_compose_itself_validates(overrides, message):
    with pytest.raises(ConfigValueError, match="^" + re.escape(message)):
        compose(overrides)


def test_validation_can_be_skipped():
    cfg = compose(["eval.rerank_k=-5"], validate=False)
    assert cfg.eval.rerank_k == -5


# ---------------------------------------------------------------- through the CLI, before any data
def _cli(args):
    return CliRunner().invoke(app, args)


def _error_lines(output: str) -> list[str]:
    return [l for l in output.splitlines() if "error:" in l]


@pytest.mark.parametrize("command", [["config", "show"], ["train"], ["train", "--dry-run"], ["retrieve"]])
@pytest.mark.parametrize("bad,line", [
    ("eval.rerank_k=-5", "config error: eval.rerank_k must be a positive integer, got -5"),
    ("trainer.max_steps=abc", "config error: trainer.max_steps must be a positive integer, got 'abc'"),
])
def test_cli_one_line_exit_2_before_data(tmp_path, command, bad, line):
    # data.path points nowhere: a data error would name it; the config error comes first
    missing = tmp_path / "no-such-dir"
    result = _cli([*command, "data=local", f"data.path={missing}", "model=tiny", "logger=none",
                   f"paths.output_dir={tmp_path / 'out'}", bad])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert _error_lines(result.output) == [line], result.output
    assert str(missing) not in result.output
    assert not (tmp_path / "out").exists()  # no run directory, no cache: nothing ran


def test_same_overrides_without_the_bad_value_fail_on_the_data(tmp_path):
    # the control for the test above: without the bad value, the missing directory is what fails
    missing = tmp_path / "no-such-dir"
    result = _cli(["train", "data=local", f"data.path={missing}", "model=tiny", "logger=none",
                   f"paths.output_dir={tmp_path / 'out'}"])
    assert result.exit_code == 2
    assert _error_lines(result.output) == [f"error: data.path is not a directory: {missing} "
                                           "(expected corpus.jsonl, queries.tsv, qrels.txt inside)"]


def test_unknown_key_override_is_one_line(tmp_path):
    result = _cli(["config", "show", "trainer.nosuchkey=1"])
    assert result.exit_code == 2
    lines = _error_lines(result.output)
    assert len(lines) == 1 and "Could not override 'trainer.nosuchkey'" in lines[0] and "prefix with ++" in lines[0]


def test_api_compose_validates():
    from rankexp import api

    with pytest.raises(ConfigError, match=r"^train\.num_negatives must be a positive integer, got 0$"):
        api.compose(["train.num_negatives=0"])


def test_sweep_member_is_validated(tmp_path):
    # the first values pass; the second member's value is refused before anything runs
    result = _cli(["sweep", "train.num_negatives=2,0", "logger=none", f"paths.output_dir={tmp_path}", "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1 and "train.num_negatives must be a positive integer, got 0" in lines[0], result.output
    assert not list(Path(tmp_path).glob("runs/*"))
