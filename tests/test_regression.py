"""Behaviour is kept: metrics.json values of fixed tiny configs, pinned before the issue-13 refactor.

Every case runs ``api.train`` on the 20-query vaswani slice with a tiny random model for 3 steps,
with every option that a later change of defaults might move pinned explicitly. The expected numbers
(the model's test measures, the first stage's and the untrained start's rows, the dev measure) are
literals recorded by running this file once (``RANKEXP_RECORD=FILE``) at commit f9adba7, before the
issue-13 refactor (pipeline stages, Batch, official splits). A change of behaviour changes them;
a change of defaults does not.
"""

from __future__ import annotations

import json
import os

import pytest

from rankexp import api
from tests.conftest import DATA, make_slice

TOL = 1e-6
MEASURES = ["nDCG@10", "RR@10", "AP", "R@100"]

# every option a default change could move, pinned (values are today's defaults or test values)
BASE = {
    "data": "local", "data.split.dev": 0.2, "data.split.test": 0.3, "data.split.seed": 0,
    "first_stage": "bm25", "first_stage.k1": 0.9, "first_stage.b": 0.4, "first_stage.k": 1000,
    "first_stage.stemmer": "english", "first_stage.stopwords": "en", "first_stage.method": "lucene",
    "loss": "listwise", "loss.temperature": 1.0,
    "logger": "none", "trainer": "cpu", "trainer.max_steps": 3, "trainer.precision": "32-true",
    "trainer.gradient_clip_val": 1.0, "trainer.accumulate_grad_batches": 1, "trainer.devices": 1,
    "model.lr": 1e-3, "model.head_lr": "null", "model.weight_decay": 0.0, "model.warmup_ratio": 0.0,
    "model.encoder.max_length": 64, "model.encoder.max_query_length": 16,
    "model.encoder.tiny.hidden_size": 32, "model.encoder.tiny.num_hidden_layers": 2,
    "model.encoder.tiny.num_attention_heads": 2, "model.encoder.tiny.intermediate_size": 64,
    "model.encoder.tiny.hidden_dropout_prob": 0.0, "model.encoder.tiny.attention_probs_dropout_prob": 0.0,
    "train.batch_size": 4, "train.num_negatives": 2, "train.val_every_n_steps": 2, "train.length_buckets": 4,
    "train.early_stopping.enabled": False, "train.select_start": False, "train.keep_last_checkpoint": False,
    "eval.mode": "rerank", "eval.measures": "[" + ",".join(MEASURES) + "]", "eval.untrained": True,
    "eval.rerank_k": 20, "eval.dev_rerank_k": 10, "eval.dev_measure": "nDCG@10", "eval.batch_size": 32,
    "eval.fast": "null", "seed": 42,
}
CROSS = {"model": "tiny", "model.encoder.pooling": "cls", "model.encoder.dropout": 0.0}
BI = {"model": "tiny_bi", "model.encoder.pooling": "mean", "model.encoder.similarity": "cos",
      "model.encoder.shared": True, "model.encoder.temperature": 0.05, "model.encoder.in_batch": True}
FILTERS = {"skip_top": 0, "margin_abs": "null", "margin_rel": "null", "max_score": "null"}
RETRIEVER = "{max_length:32,max_query_length:12,tiny:{hidden_size:16,num_hidden_layers:1,num_attention_heads:2,intermediate_size:32}}"


def neg(name: str, **kv) -> dict:
    return {"negatives": name, **{f"negatives.{k}": v for k, v in kv.items()}}


SAMPLERS = {
    "bm25": neg("bm25", depth=100, select="uniform", **FILTERS),
    "random": neg("random"),
    "dense_static": neg("dense_static", depth=50, select="uniform", retriever=RETRIEVER, **FILTERS),
    "mixed": {**neg("mixed"), "negatives.sources.bm25.weight": 0.5, "negatives.sources.random.weight": 0.5,
              "negatives.sources.bm25.sampler.depth": 100},
    "file": neg("file", depth=200, select="uniform", **FILTERS),  # path added per run
}


def cur(heuristic: str, anti: bool = False) -> dict:
    return {"curriculum": "anti" if anti else heuristic, "curriculum.heuristic": heuristic, "curriculum.m_fraction": 0.5,
            "curriculum.m_steps": "null", "curriculum.anti": anti, "curriculum.application": "example",
            "curriculum.run_file": "null"}


CASES: dict[str, dict] = {}
for _name, _neg in SAMPLERS.items():
    CASES[f"cross-{_name}"] = {**CROSS, **_neg, "curriculum": "none"}
    CASES[f"bi-{_name}"] = {**BI, **_neg, "curriculum": "none"}
CASES["bi-dense_dynamic"] = {**BI, **neg("dense_dynamic", depth=50, lambda_weight=True, **FILTERS), "curriculum": "none"}
for _h in ("reciprank", "normscore", "kdescore"):
    CASES[f"cross-curriculum-{_h}"] = {**CROSS, **SAMPLERS["bm25"], **cur(_h)}
CASES["cross-curriculum-anti"] = {**CROSS, **SAMPLERS["bm25"], **cur("reciprank", anti=True)}
CASES["bi-curriculum-normscore"] = {**BI, **SAMPLERS["bm25"], **cur("normscore")}
CASES["cross-select_start"] = {**CROSS, **SAMPLERS["bm25"], "curriculum": "none", "train.select_start": True}
CASES["bi-dense_dynamic-select_start"] = {**CASES["bi-dense_dynamic"], "train.select_start": True}  # keeps the start
CASES["bi-retrieve"] = {**BI, **SAMPLERS["bm25"], "curriculum": "none", "eval.mode": "retrieve", "eval.retrieval_k": 200,
                        "eval.retrieval_measures": "[nDCG@10,RR@10,AP,R@100]"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("regression")
    data = make_slice(DATA / "vaswani", root / "vaswani20")
    # a fixed negatives file for negatives=file: for each query, every corpus document (filtered per run)
    docs = [json.loads(l)["doc_id"] for l in (data / "corpus.jsonl").read_text().splitlines()]
    qids = [l.split("\t", 1)[0] for l in (data / "queries.tsv").read_text().splitlines()]
    negfile = root / "negatives.tsv"
    negfile.write_text("".join(f"{q} {d} {r + 1}\n" for q in qids for r, d in enumerate(docs[(sum(map(ord, q)) * 7) % 50:][:40])))
    return {"data": data, "out": root / "out", "negfile": negfile}


def summary(metrics: dict) -> dict:
    """The pinned part of metrics.json."""
    rows = {"model": metrics["model"], "untrained": metrics["untrained"],
            "baseline": {m: v for m, v in metrics["baseline"].items() if m not in ("name", "params")}}
    dev = metrics["dev"]
    return {**rows, "dev": {"best": dev["best"], "untrained": dev["untrained"], "best_step": dev["best_step"]},
            "queries": {k: metrics["queries"][k] for k in ("test", "dev", "train")}}


def run_case(name: str, env: dict) -> dict:
    ovr = {**BASE, "data.path": str(env["data"]), "paths.output_dir": str(env["out"]), **CASES[name]}
    if ovr.get("negatives") == "file":
        ovr["negatives.path"] = str(env["negfile"])
    result = api.train(api.compose([f"{k}={v}" for k, v in ovr.items()]))
    return summary(result.metrics)


def close(got, want, path=""):
    """Recursive comparison with abs tolerance; returns the first difference or None."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return f"{path}: keys {sorted(got) if isinstance(got, dict) else got} != {sorted(want)}"
        for k in want:
            d = close(got[k], want[k], f"{path}.{k}")
            if d:
                return d
        return None
    if want is None or got is None or isinstance(want, (str, bool)):
        return None if got == want else f"{path}: {got!r} != {want!r}"
    return None if abs(float(got) - float(want)) <= TOL else f"{path}: {got!r} != {want!r}"


# recorded at commit f9adba7 (before the issue-13 refactor) with RANKEXP_RECORD=FILE
EXPECTED: dict[str, dict] = {
    'cross-bm25': {
        'model': {'nDCG@10': 0.5575719004031334, 'RR@10': 0.6666666666666666, 'AP': 0.3750875112863306, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6981568932533264, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-bm25': {
        'model': {'nDCG@10': 0.5771848202061914, 'RR@10': 0.7361111111111112, 'AP': 0.37347035920638594, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7175033092498779, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-random': {
        'model': {'nDCG@10': 0.5836820319471936, 'RR@10': 0.6944444444444443, 'AP': 0.3783508255088898, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6453728675842285, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-random': {
        'model': {'nDCG@10': 0.539732815010127, 'RR@10': 0.7638888888888888, 'AP': 0.3677852775311354, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7376602292060852, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-dense_static': {
        'model': {'nDCG@10': 0.6451027098463281, 'RR@10': 0.5972222222222222, 'AP': 0.4008035047031471, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.573717474937439, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-dense_static': {
        'model': {'nDCG@10': 0.5728631371086388, 'RR@10': 0.7430555555555555, 'AP': 0.3597155869037319, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7177090644836426, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-mixed': {
        'model': {'nDCG@10': 0.5432304020675673, 'RR@10': 0.6305555555555556, 'AP': 0.3741020903509122, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7225871682167053, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-mixed': {
        'model': {'nDCG@10': 0.5682454109071239, 'RR@10': 0.75, 'AP': 0.36245598085908587, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7290183305740356, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-file': {
        'model': {'nDCG@10': 0.5608695108336178, 'RR@10': 0.46296296296296297, 'AP': 0.38767009333908103, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.5905861854553223, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-file': {
        'model': {'nDCG@10': 0.5244356512832217, 'RR@10': 0.6666666666666666, 'AP': 0.35955985299649273, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.722320020198822, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-dense_dynamic': {
        'model': {'nDCG@10': 0.5273692839588561, 'RR@10': 0.5694444444444445, 'AP': 0.35681158727657447, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7056869268417358, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-curriculum-reciprank': {
        'model': {'nDCG@10': 0.545347188762053, 'RR@10': 0.638888888888889, 'AP': 0.3672786488604707, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6998667120933533, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-curriculum-normscore': {
        'model': {'nDCG@10': 0.5101804900405164, 'RR@10': 0.6444444444444445, 'AP': 0.35896688196136867, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6894137859344482, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-curriculum-kdescore': {
        'model': {'nDCG@10': 0.5257147735360129, 'RR@10': 0.6305555555555556, 'AP': 0.3579939719218468, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.691100001335144, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-curriculum-anti': {
        'model': {'nDCG@10': 0.5633486344305713, 'RR@10': 0.7277777777777779, 'AP': 0.37658359649138484, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6891682744026184, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-curriculum-normscore': {
        'model': {'nDCG@10': 0.5106328704984852, 'RR@10': 0.6666666666666666, 'AP': 0.356691292853542, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7147642970085144, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'cross-select_start': {
        'model': {'nDCG@10': 0.5575719004031334, 'RR@10': 0.6666666666666666, 'AP': 0.3750875112863306, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.6098810562446009, 'RR@10': 0.6555555555555556, 'AP': 0.3925442055706496, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.6981568932533264, 'untrained': 0.5569196195568117, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-dense_dynamic-select_start': {
        'model': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'untrained': {'nDCG@10': 0.5715752337524403, 'RR@10': 0.7738095238095237, 'AP': 0.37113123095683337, 'R@100': 0.6599071099571671},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.5016036924386751, 'R@100': 0.6599071099571671},
        'dev': {'best': 0.7113251257317811, 'untrained': 0.7113251257317811, 'best_step': 0},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
    'bi-retrieve': {
        'model': {'nDCG@10': 0.023143740645592423, 'RR@10': 0.08333333333333333, 'AP': 0.014974802994878411, 'R@100': 0.13814261475874748},
        'untrained': {'nDCG@10': 0.023143740645592423, 'RR@10': 0.08333333333333333, 'AP': 0.02049471903836551, 'R@100': 0.18561414510356158},
        'baseline': {'nDCG@10': 0.8316819275554884, 'RR@10': 0.8888888888888888, 'AP': 0.6399037852793149, 'R@100': 0.9547697368421053},
        'dev': {'best': 0.7175033092498779, 'untrained': 0.7113251257317811, 'best_step': 2},
        'queries': {'test': 6, 'dev': 4, 'train': 10},
    },
}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_are_pinned(name, env):
    got = run_case(name, env)
    record = os.environ.get("RANKEXP_RECORD")
    if record:
        with open(record, "a") as fh:
            fh.write(json.dumps({name: got}) + "\n")
        return
    assert name in EXPECTED, f"no recorded values for {name}"
    diff = close(got, EXPECTED[name], name)
    assert diff is None, diff


def test_the_comparison_can_fail():
    want = {"model": {"nDCG@10": 0.5}, "dev": {"best_step": 2}}
    assert close({"model": {"nDCG@10": 0.5 + 5e-7}, "dev": {"best_step": 2}}, want) is None
    assert close({"model": {"nDCG@10": 0.5 + 2e-6}, "dev": {"best_step": 2}}, want) is not None
    assert close({"model": {"nDCG@10": 0.5}, "dev": {"best_step": 3}}, want) is not None
    assert close({"model": {}, "dev": {"best_step": 2}}, want) is not None
