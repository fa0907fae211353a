"""Train/dev/test query splits: official ones where a collection has them, a seeded random one otherwise.

``data.splits.{train,dev,test}`` may each name a query set over the collection's corpus: an
ir_datasets id (``{id: beir/scifact/test}``) or a local pair (``{queries: PATH, qrels: PATH}``).
:func:`resolve_splits` applies these rules, and ``split.json`` records the one used for each part:

- **Nothing given** (the default): the random rule. Take the collection's queries that have at least
  one relevant judgment, in natural id order; shuffle them with ``random.Random(data.split.seed)``;
  the first ``round(test·n)`` are test, the next ``round(dev·n)`` dev, the rest train.
  ``data.split.seed`` is separate from the training ``seed`` so runs with different seeds are
  evaluated on the same test queries (paired tests need that).
- **A given part** is that set's queries with a relevant judgment. A part not given that the random
  rule does not cover comes from the collection's own queries (``data.id`` / ``data.path``): train
  when only test is given, test when only train is given.
- **Dev**, when not given and train or test is, is carved from train: ``round(data.split.dev·n)``
  of the train queries, shuffled with ``random.Random(data.split.seed)``. When dev alone is given,
  the random rule splits the collection's queries into test and train (no dev fraction).

Refused (one line, exit 2): a query id in two parts, a given set with a query that has no judgment
at all, a given set without any relevant judgment, a set whose judged documents are not in the
corpus (another corpus), an ir_datasets id whose documents are another corpus.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from rankexp.errors import DataError

PARTS = ("train", "dev", "test")
RANDOM_RULE = "shuffle(queries with rel>=1, Random(split.seed)); test, dev, rest=train"


def split_queries(qids: Sequence[str], dev: float = 0.1, test: float = 0.3, seed: int = 0) -> dict[str, list[str]]:
    if not (0 <= dev < 1 and 0 < test < 1 and dev + test < 1):
        raise DataError(f"data.split: need 0 <= dev, 0 < test and dev + test < 1, got dev={dev}, test={test}")
    order = list(qids)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = max(1, round(test * n))
    n_dev = round(dev * n)
    split = {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "train": order[n_test + n_dev :]}
    if not split["train"]:
        raise DataError(f"empty train split: {n} queries with relevant judgments, dev={dev}, test={test} leave none for training")
    return split


def carve_dev(train: Sequence[str], dev: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, dev): ``round(dev·n)`` of the train queries, chosen with ``random.Random(seed)``;
    both keep the train order."""
    order = list(train)
    random.Random(seed).shuffle(order)
    chosen = set(order[: round(dev * len(order))])
    rest = [q for q in train if q not in chosen]
    if not rest:
        raise DataError(f"empty train split: data.split.dev={dev} leaves none of {len(train)} train queries for training")
    return rest, [q for q in train if q in chosen]


def given_parts(data_cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts of ``data.splits`` that name a query set: ``{part: {"id"} or {"queries", "qrels"}}``.
    A bare string is an ir_datasets id."""
    splits = data_cfg.get("splits") or {}
    out: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        spec = splits.get(part)
        if spec is None:
            continue
        if isinstance(spec, str):
            spec = {"id": spec}
        spec = {k: v for k, v in dict(spec).items() if v is not None}
        if spec:
            out[part] = spec
    return out



def check_config(data_cfg: Mapping[str, Any]) -> None:
    """``data.splits`` checked before any data loads (:class:`ConfigValueError`, one line): each part
    an ir_datasets id that exists or a local queries + qrels pair whose files exist; no query set
    filling two parts (the collection's own queries fill train when only test is given, test when
    only train is given)."""
    from pathlib import Path

    from rankexp.errors import ConfigValueError

    splits = data_cfg.get("splits") or {}
    for part in PARTS:
        if splits.get(part) is not None and not isinstance(splits[part], (str, Mapping)):
            raise ConfigValueError(f"data.splits.{part} must be null, an ir_datasets id or a mapping {{id}} / {{queries, qrels}}, "
                                   f"got {splits[part]!r}")
    idents: dict[str, str] = {}  # part -> which query set
    for part, spec in given_parts(data_cfg).items():
        key = f"data.splits.{part}"
        if spec.get("id") and (spec.get("queries") or spec.get("qrels")):
            raise ConfigValueError(f"{key}: give either id (an ir_datasets id) or queries + qrels (local files), not both")
        if spec.get("id"):
            import ir_datasets

            if spec["id"] not in ir_datasets.registry:
                raise ConfigValueError(f"{key}.id must be a known ir_datasets id (https://ir-datasets.com), got {spec['id']!r}")
            idents[part] = f"ir_datasets {spec['id']}"
            continue
        for k, other in (("queries", "qrels"), ("qrels", "queries")):
            if not spec.get(k):
                raise ConfigValueError(f"{key}.{k} must be a file (a local split needs {key}.{other} and {key}.{k}), got null")
            if not Path(str(spec[k])).expanduser().is_file():
                raise ConfigValueError(f"{key}.{k} must be an existing file, got {str(spec[k])!r}")
        idents[part] = " + ".join(str(Path(str(spec[k])).expanduser().resolve()) for k in ("queries", "qrels"))
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        if a in idents and idents.get(b) == idents[a]:
            raise ConfigValueError(f"data.splits.{a} and data.splits.{b} name the same queries ({idents[a]}); "
                                   "train, dev and test must not overlap")
    own = data_cfg.get("id") if not data_cfg.get("path") else None
    own_parts = [p for p in ("train", "test") if p not in idents]  # filled by the collection's own queries
    for part, source in idents.items():
        if isinstance(own, str) and source == f"ir_datasets {own}" and own_parts:
            raise ConfigValueError(f"data.splits.{part} names the collection's own queries (data.id={own}), which also fill "
                                   f"{' and '.join(own_parts)}; train, dev and test must not overlap")

def describe(spec: Mapping[str, Any]) -> str:
    return f"ir_datasets {spec['id']}" if spec.get("id") else f"{spec.get('queries')} + {spec.get('qrels')}"


def resolve_splits(data_cfg: Mapping[str, Any], collection, load=None) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The train/dev/test query ids and the ``split.json`` record (ids plus the rule of each part).

    Query sets named in ``data.splits`` are loaded (``load(spec) -> QuerySet``; default
    :func:`rankexp.data.collection.load_query_set`) and merged into ``collection`` (its queries,
    qrels and fingerprint), so everything downstream finds their texts and judgments by query id."""
    from rankexp.data.collection import add_query_set, docs_namespace, load_query_set, natural_sorted

    split_cfg = data_cfg.get("split") or {}
    dev_frac, test_frac, seed = float(split_cfg.get("dev", 0.1)), float(split_cfg.get("test", 0.3)), int(split_cfg.get("seed", 0))
    given = given_parts(data_cfg)
    load = load or (lambda spec: load_query_set(spec.get("id"), spec.get("queries"), spec.get("qrels")))
    base_ns = docs_namespace(str(data_cfg["id"])) if given and data_cfg.get("id") and not data_cfg.get("path") else None
    base = collection.queries_with_relevant()  # before any set is merged in
    parts: dict[str, list[str]] = {}
    rules: dict[str, str] = {}
    for part, spec in given.items():
        qs = load(spec)
        where = f"data.splits.{part} ({describe(spec)})"
        _check_set(qs, where, collection, base_ns)
        parts[part] = natural_sorted(q for q in qs.queries if any(r > 0 for r in qs.qrels.get(q, {}).values()))
        rules[part] = f"given: {qs.source}"
        add_query_set(collection, qs)
    own = f"the collection's queries with rel>=1 ({collection.source or collection.name})"
    if "train" not in given and "test" not in given:
        rand = split_queries(base, 0.0 if "dev" in given else dev_frac, test_frac, seed)
        for part in PARTS:
            if part not in parts:
                parts[part], rules[part] = rand[part], f"random: {RANDOM_RULE} (seed {seed})"
    else:
        for part in ("train", "test"):
            if part not in parts:
                parts[part], rules[part] = list(base), own
        if "dev" not in parts:
            _check_disjoint({**parts, "dev": []}, given)  # before carving, so an overlap is named as train's
            parts["train"], parts["dev"] = carve_dev(parts["train"], dev_frac, seed)
            rules["dev"] = f"carved from train: Random(split.seed).shuffle, round({dev_frac:g}·n) (seed {seed})"
            rules["train"] += "; minus dev"
    _check_disjoint(parts, given)
    parts = {p: parts[p] for p in ("test", "dev", "train")}  # split.json's order since the first release
    record = {"rule": "official: data.splits (see rules)" if given else RANDOM_RULE, "seed": seed,
              "rules": {p: rules[p] for p in PARTS}, **parts}
    return parts, record


def _check_set(qs, where: str, collection, base_ns: str | None) -> None:
    if base_ns and qs.docs_namespace and qs.docs_namespace != base_ns:
        raise DataError(f"{where}: its documents are {qs.docs_namespace!r}, the collection's are {base_ns!r}; a split must be over the same corpus")
    unjudged = [q for q in qs.queries if q not in qs.qrels]
    if unjudged:
        from rankexp.data.collection import natural_sorted

        shown = natural_sorted(unjudged)[:3]
        raise DataError(f"{where}: {len(unjudged)} of {len(qs.queries)} queries have no judgment (e.g. {', '.join(map(repr, shown))}); "
                        "use a judged subset or remove them")
    if not any(r > 0 for j in qs.qrels.values() for r in j.values()):
        raise DataError(f"{where}: no query has a relevant judgment (rel >= 1)")
    judged_docs = {d for q in qs.queries for d in qs.qrels.get(q, {})}
    if judged_docs and not judged_docs & collection.docs.keys():
        raise DataError(f"{where}: none of its {len(judged_docs)} judged documents is in the corpus ({collection.name}); "
                        "a split must be over the same corpus")


def _check_disjoint(parts: Mapping[str, Sequence[str]], given: Mapping[str, Any]) -> None:
    for a, b in (("train", "test"), ("train", "dev"), ("dev", "test")):
        both = set(parts[a]) & set(parts[b])
        if both:
            from rankexp.data.collection import natural_sorted

            shown = ", ".join(repr(q) for q in natural_sorted(both)[:3])
            src = " and ".join(f"data.splits.{p}" for p in (a, b) if p in given) or "the collection's queries"
            raise DataError(f"{b} queries overlap {a}: {len(both)} query id(s) in both ({shown}) via {src}; "
                            "the train, dev and test queries must be disjoint")
