"""Config values checked up front, right after composing, before any data is loaded.

A table maps each key to what it must hold (:class:`Spec`: a test and the words for what it
expects). Groups chosen by ``_target_`` (first stage, model encoder, loss, negatives, curriculum)
get the table of the selected class; a ``_target_`` the table does not know (a user's own class)
has its keys checked by that class when it is built. After the single values come the rules that
relate several keys (``data.split.dev + data.split.test < 1``, ``max_length`` vs
``max_query_length``, a rerank depth within the first stage's depth, ...).

A failure is one line naming the key, what it expects and what it got::

    config error: eval.rerank_k must be a positive integer, got -5

Keys that are absent or still ``???`` (mandatory, unset: ``data=irds`` before ``data.id=``) are
skipped here; whoever needs them reports them. ``null`` is accepted exactly where the shipped YAML
has ``null``. Keys the table does not name are left alone (Hydra already refuses an override of an
unknown key without ``+``/``++``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

from rankexp.errors import ConfigValueError

_ABSENT = object()


# ---------------------------------------------------------------- value tests
@dataclass(frozen=True)
class Spec:
    """What a key must hold: ``test(value)`` and the words for it ("a positive integer")."""

    what: str
    test: Callable[[Any], bool]

    def __or__(self, other: "Spec") -> "Spec":
        return Spec(f"{self.what} or {other.what}", lambda v: self.test(v) or other.test(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def integer(lo: int | None = None, hi: int | None = None, what: str | None = None) -> Spec:
    words = what or ("an integer" if lo is None and hi is None else
                     f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]")
    return Spec(words, lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi))


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           what: str | None = None) -> Spec:
    if what is None:
        if lo is not None and hi is not None:
            what = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        elif lo is not None:
            what = f"a number {'>' if lo_open else '>='} {lo:g}"
        else:
            what = "a number"

    def test(v: Any) -> bool:
        if not _is_num(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    return Spec(what, test)


def one_of(*values: Any) -> Spec:
    shown = ", ".join("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    # bool vs int: True == 1 in Python, so compare types too
    return Spec(f"one of {shown}", lambda v: any(v == x and type(v) is type(x) for x in values))


def _is_str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) and x.strip() for x in v)


POS_INT = integer(1, what="a positive integer")
NONNEG_INT = integer(0, what="an integer >= 0")
INT = integer()
POS_NUM = number(0, lo_open=True, what="a number > 0")
NONNEG_NUM = number(0, what="a number >= 0")
NUM = number()
FRACTION = number(0, 1)
BOOL = Spec("true or false", lambda v: isinstance(v, bool))
STR = Spec("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
NULL = Spec("null", lambda v: v is None)
DICT = Spec("a mapping", lambda v: isinstance(v, dict))
STR_LIST = Spec("a non-empty list of strings", lambda v: _is_str_list(v) and len(v) > 0)
STR_LIST_ANY = Spec("a list of strings", _is_str_list)


def opt(spec: Spec) -> Spec:
    """``spec`` or null."""
    return NULL | spec


# Lightning's accepted values (lightning_fabric.plugins.precision.precision._PRECISION_INPUT)
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16", 64, 32, 16)
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "hpu", "auto")
DEVICES = Spec("a positive integer, -1, 'auto', a list of device indices or a string like '0,1'",
               lambda v: (_is_int(v) and (v >= 1 or v == -1)) or v == "auto"
               or (isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) and x >= 0 for x in v))
               or (isinstance(v, str) and all(p.strip().isdigit() for p in v.strip().rstrip(",").split(","))))

SEED = integer(0, 2**32 - 1)  # Lightning's seed_everything range

# ---------------------------------------------------------------- the table
# Keys of the groups without a _target_ (and the model group's own keys).
COMMON: dict[str, Spec] = {
    "seed": SEED,
    "train.batch_size": POS_INT,
    "train.num_negatives": POS_INT,
    "train.length_buckets": POS_INT,
    "train.val_every_n_steps": POS_INT,
    "train.early_stopping.enabled": BOOL,
    "train.early_stopping.patience": NONNEG_INT,
    "train.keep_last_checkpoint": BOOL,
    "train.select_start": BOOL,
    "eval.measures": STR_LIST,
    "eval.mode": one_of("auto", "rerank", "retrieve"),
    "eval.untrained": BOOL,
    "eval.rerank_k": POS_INT,
    "eval.dev_rerank_k": POS_INT,
    "eval.dev_measure": STR,
    "eval.batch_size": POS_INT,
    "eval.retrieval_k": POS_INT,
    "eval.retrieval_measures": STR_LIST,
    "data.name": opt(STR),
    "data.id": opt(STR),
    "data.path": opt(STR),
    "data.fields": STR_LIST,
    "data.split.dev": FRACTION,
    "data.split.test": FRACTION,
    "data.split.seed": INT,
    **{f"data.splits.{part}.{k}": opt(STR) for part in ("train", "dev", "test") for k in ("id", "queries", "qrels")},
    "model.lr": POS_NUM,
    "model.head_lr": opt(POS_NUM),
    "model.weight_decay": NONNEG_NUM,
    "model.warmup_ratio": FRACTION,
    "trainer.accelerator": one_of(*ACCELERATORS),
    "trainer.devices": DEVICES,
    "trainer.strategy": STR,
    "trainer.max_steps": POS_INT,
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.gradient_clip_val": opt(NONNEG_NUM),
    "trainer.accumulate_grad_batches": POS_INT,
    "trainer.log_every_n_steps": POS_INT,
    "trainer.deterministic": BOOL | one_of("warn"),
    "logger.kind": one_of("wandb", "csv", "none"),
    "logger.project": STR,
    "logger.entity": opt(STR),
    "logger.group": opt(STR),
    "logger.job_type": opt(STR),
    "logger.tags": STR_LIST_ANY,
    "logger.mode": opt(one_of("online", "offline", "disabled", "shared")),
    "paths.output_dir": STR,
    "paths.runs_dir": STR,
    "paths.cache_dir": STR,
}

_BM25 = {
    "k1": NONNEG_NUM, "b": FRACTION, "k": POS_INT, "stemmer": opt(STR), "stopwords": opt(STR) | STR_LIST,
    "method": one_of("lucene", "robertson", "atire", "bm25l", "bm25+"), "chunk_size": POS_INT,
}
_DENSE_ARCH = {
    "pooling": one_of("mean", "cls"), "similarity": one_of("cos", "dot"), "max_length": POS_INT,
    "max_query_length": POS_INT, "shared": BOOL, "tiny": opt(DICT),
}
_DENSE = {
    "model": STR, "k": POS_INT, **_DENSE_ARCH, "batch_size": POS_INT,
    "use_faiss": one_of("auto", True, False, "true", "false"), "device": STR,
}
_FILTERS = {
    "depth": POS_INT, "skip_top": NONNEG_INT, "margin_abs": opt(NONNEG_NUM), "margin_rel": opt(NONNEG_NUM),
    "max_score": opt(NUM), "select": one_of("uniform", "top"),
}
_CROSS = {
    "name": STR, "max_length": POS_INT, "max_query_length": POS_INT, "pooling": one_of("cls", "mean"),
    "dropout": number(0, 1, hi_open=True), "tiny": opt(DICT),
}
_BI = {
    "name": STR, **_DENSE_ARCH, "temperature": POS_NUM, "in_batch": BOOL, "checkpoint": opt(STR), "gather_negatives": BOOL,
}

# Per selected class: the keys of its node (relative), keyed by the node's _target_.
TARGETS: dict[str, dict[str, Spec]] = {
    "rankexp.retrieval.bm25.BM25": _BM25,
    "rankexp.retrieval.dense.DenseRetriever": _DENSE,
    "rankexp.retrieval.dense.Hybrid": {"alpha": FRACTION, "fusion": one_of("norm", "rrf"), "k": POS_INT},
    "rankexp.models.encoders.CrossEncoder": _CROSS,
    "rankexp.models.biencoder.BiEncoder": _BI,
    "rankexp.losses.listwise.SoftmaxCELoss": {"temperature": POS_NUM},
    "rankexp.losses.pairwise.MarginLoss": {"margin": NONNEG_NUM},
    "rankexp.losses.pairwise.RankNetLoss": {},
    "rankexp.losses.pointwise.BCELoss": {"pos_weight": POS_NUM},
    "rankexp.data.negatives.bm25.BM25Negatives": _FILTERS,
    "rankexp.data.negatives.dense_static.DenseStaticNegatives": {**_FILTERS, "retriever": opt(DICT)},
    "rankexp.data.negatives.dense_dynamic.DenseDynamicNegatives": {
        **{k: v for k, v in _FILTERS.items() if k != "select"}, "lambda_weight": BOOL},
    "rankexp.data.negatives.mined.FileNegatives": {**_FILTERS, "path": STR},
    "rankexp.data.negatives.mixed.MixedNegatives": {"sources": DICT},
    "rankexp.data.negatives.random.RandomNegatives": {},
    "rankexp.techniques.curriculum.CurriculumWeighter": {
        "heuristic": one_of("reciprank", "normscore", "kdescore"), "m_fraction": opt(number(0, 1, lo_open=True)),
        "m_steps": opt(POS_INT), "anti": BOOL, "application": one_of("example", "batch"), "run_file": opt(STR)},
    "rankexp.techniques.base.UniformWeighter": {},
}

# The nodes instantiated through _target_ (group key -> where its class sits).
TARGET_NODES = ("first_stage", "first_stage.bm25", "first_stage.dense", "model.encoder", "loss", "negatives", "curriculum")


# ---------------------------------------------------------------- helpers
def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return repr(v)
    return str(v)


def _fail(key: str, what: str, value: Any) -> None:
    raise ConfigValueError(f"{key} must be {what}, got {_show(value)}")


def _get(cfg: DictConfig, key: str) -> Any:
    """The resolved plain value at ``key``; ``_ABSENT`` when missing, ``???`` or not resolvable
    (an unresolvable interpolation is reported by the code that needs it)."""
    try:
        node = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except Exception:
        return _ABSENT
    if node is _ABSENT:
        return _ABSENT
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
        except Exception:
            return _ABSENT
    return node


def _check(cfg: DictConfig, key: str, spec: Spec) -> None:
    value = _get(cfg, key)
    if value is _ABSENT or value == "???":
        return
    if not spec.test(value):
        _fail(key, spec.what, value)


def _target(cfg: DictConfig, key: str) -> str | None:
    t = _get(cfg, f"{key}._target_")
    return t if isinstance(t, str) else None


# ---------------------------------------------------------------- the checks
def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigValueError` (one line) at the first value that breaks the table."""
    for key, spec in COMMON.items():
        _check(cfg, key, spec)
    for node in TARGET_NODES:
        schema = TARGETS.get(_target(cfg, node) or "")
        for key, spec in (schema or {}).items():
            _check(cfg, f"{node}.{key}", spec)
    _check_mixed(cfg)
    _check_splits(cfg)
    _check_relations(cfg)


def _check_splits(cfg: DictConfig) -> None:
    """``data.splits`` (:func:`rankexp.data.splits.check_config`: ids that exist, files that exist,
    no query set filling two parts)."""
    from rankexp.data.splits import check_config

    data = _get(cfg, "data")
    if isinstance(data, dict):
        check_config(data)


def _check_mixed(cfg: DictConfig) -> None:
    if _target(cfg, "negatives") != "rankexp.data.negatives.mixed.MixedNegatives":
        return
    sources = _get(cfg, "negatives.sources")
    if not isinstance(sources, dict) or not sources:
        _fail("negatives.sources", "a non-empty mapping NAME: {weight: W, sampler: {_target_: ...}}", None if sources is _ABSENT else sources)
    total = 0.0
    for name in sources:
        base = f"negatives.sources.{name}"
        _check(cfg, f"{base}.weight", NONNEG_NUM)
        w = _get(cfg, f"{base}.weight")
        total += float(w) if _is_num(w) else 1.0
        target = _target(cfg, f"{base}.sampler")
        if target is None:
            _fail(f"{base}.sampler", "a sampler config with a _target_", _get(cfg, f"{base}.sampler"))
        for key, spec in (TARGETS.get(target) or {}).items():
            _check(cfg, f"{base}.sampler.{key}", spec)
        _check_filters(cfg, f"{base}.sampler")
    if total <= 0:
        raise ConfigValueError("negatives.sources: the weights must not all be 0")


def _num(cfg: DictConfig, key: str) -> Any:
    v = _get(cfg, key)
    return v if _is_num(v) else None


def _check_filters(cfg: DictConfig, node: str) -> None:
    depth, skip = _num(cfg, f"{node}.depth"), _num(cfg, f"{node}.skip_top")
    if depth is not None and skip is not None and skip >= depth:
        raise ConfigValueError(f"{node}.skip_top must be smaller than {node}.depth ({depth}), got {skip}")


def _check_relations(cfg: DictConfig) -> None:
    dev, test = _num(cfg, "data.split.dev"), _num(cfg, "data.split.test")
    if dev is not None and test is not None and dev + test >= 1:
        raise ConfigValueError(f"data.split.dev + data.split.test must be < 1 (the rest is the train split), got {dev} + {test}")

    enc = _target(cfg, "model.encoder")
    ml, mq = _num(cfg, "model.encoder.max_length"), _num(cfg, "model.encoder.max_query_length")
    if enc == "rankexp.models.encoders.CrossEncoder" and ml is not None and mq is not None and ml <= mq + 8:
        raise ConfigValueError(f"model.encoder.max_length must exceed model.encoder.max_query_length + 8 "
                               f"(query + document + special tokens), got {ml} with max_query_length {mq}")
    for node, target in (("model.encoder", enc), ("first_stage", _target(cfg, "first_stage")),
                         ("first_stage.dense", _target(cfg, "first_stage.dense"))):
        if target in ("rankexp.models.biencoder.BiEncoder", "rankexp.retrieval.dense.DenseRetriever"):
            ml, mq = _num(cfg, f"{node}.max_length"), _num(cfg, f"{node}.max_query_length")
            if ml is not None and ml < 8:
                raise ConfigValueError(f"{node}.max_length must be >= 8, got {ml}")
            if mq is not None and mq < 4:
                raise ConfigValueError(f"{node}.max_query_length must be >= 4, got {mq}")

    neg = _target(cfg, "negatives")
    if neg in TARGETS and "depth" in TARGETS[neg]:
        _check_filters(cfg, "negatives")

    cur = _target(cfg, "curriculum")
    if cur == "rankexp.techniques.curriculum.CurriculumWeighter":
        if _get(cfg, "curriculum.m_steps") in (None, _ABSENT) and _get(cfg, "curriculum.m_fraction") in (None, _ABSENT):
            raise ConfigValueError("curriculum.m_fraction must be a number in (0, 1] when curriculum.m_steps is null, got null")

    # depths that read the first stage's run: never deeper than what the first stage retrieves
    fs_k = _num(cfg, "first_stage.k")
    if fs_k is None:
        return
    mode = _get(cfg, "eval.mode")
    reranks = mode == "rerank" or (mode in ("auto", None, _ABSENT) and enc != "rankexp.models.biencoder.BiEncoder")
    if reranks:  # the model reranks the first stage's top rerank_k
        rk = _num(cfg, "eval.rerank_k")
        if rk is not None and rk > fs_k:
            raise ConfigValueError(f"eval.rerank_k must be <= first_stage.k ({fs_k}, the candidates retrieved), got {rk}")
    dk = _num(cfg, "eval.dev_rerank_k")
    if dk is not None and dk > fs_k:
        raise ConfigValueError(f"eval.dev_rerank_k must be <= first_stage.k ({fs_k}, the candidates retrieved), got {dk}")
    # (BM25 negatives deeper than the first stage's k simply take all it has: fewer negatives are
    # reported as an input anomaly when the groups are built, not refused here)


def check(cfg: Mapping | DictConfig) -> None:
    """:func:`validate` for a plain mapping too (tests, the Python API)."""
    validate(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg)))
