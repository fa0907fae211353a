"""PAT's imitation model: a cross-encoder trained to reproduce a black-box victim's rankings.

Liu et al., "Order-Disorder: Imitation Adversarial Attacks for Black-box Neural Ranking Models"
(arXiv 2209.06506, CIKM 2022). The attacker cannot read the victim's gradients, so it queries the
victim with queries of its own, reads the ranked lists it returns, and trains a surrogate ranker
(the imitation model) on those lists; the trigger search (:mod:`rankexp.attacks.trigger`) then
runs on the surrogate.

What this module does (the paper's full text was not available to us beyond its abstract and the
topic-oriented follow-up's summary of it; the choices below are ours where marked):

* **Queries.** ``n_queries`` queries drawn (seeded) from the *train* split, never the attacked
  queries (the paper uses queries other than the attacked ones); ``heldout`` further train queries
  measure fidelity. For each, the victim's top-``depth`` list of the query's first-stage
  candidates (``eval.rerank_k`` of the configured first stage) is requested and paid for:
  ``depth`` (query, document) pairs are counted on the victim per list (the black-box cost of one
  ranked list of that depth; the engine's ranking of its candidates is not the attacker's cost).
* **Pairs** (our reading of "pairwise imitation"): a document ranked in the victim's top
  ``pos_depth`` against one ranked ``pos_depth+1 .. depth`` of the same list,
  ``P_q = {(d_i, d_j): rank(d_i) <= pos_depth < rank(d_j) <= depth}``.
* **Loss** (pairwise hinge, the form used by PAT's ranking objectives):

      L_im = 1/|B| * sum_{(q, d_i, d_j) in B} max(0, margin - f(q, d_i) + f(q, d_j))        (im-1)

  over mini-batches ``B`` of ``batch_pairs`` pairs, ``steps`` AdamW steps at ``lr``.
* **Model.** :class:`rankexp.models.encoders.CrossEncoder` (default ``all-MiniLM-L6-v2`` with a
  fresh head; ``model.tiny`` for tests), returned as a :class:`~rankexp.pipeline.loading.Ranker`.
* **Fidelity** on the held-out queries' lists (:mod:`rankexp.eval.fidelity`): top-10 overlap, RBO
  (p = 0.9) and Kendall's τ between imitation and victim scores, for the trained model and for the
  same model before training (so a reader sees what training bought).
* **Caching.** Within a process the result is kept on ``ctx`` (a second call, e.g. from the
  word-substitution attack with ``surrogate=imitation``, returns the same model); the trained
  weights and facts go to ``ctx.state_dir/imitation/<key>/`` (a resumed attack run does not
  retrain) and to the cache entry ``imitation/<hash>`` (another attack run on the same victim, data
  and settings does not retrain either), see :func:`train_imitation`.

Settings come from keyword arguments, else ``cfg.attack.imitation`` (if the attack's config has
that node), else :data:`DEFAULTS`.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from rankexp.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "n_queries": 20,  # training queries (train split)
    "heldout": 5,  # further train queries for the fidelity report
    "depth": 30,  # the victim's top-depth list per query
    "pos_depth": 5,  # pairs: a document in the top pos_depth vs one ranked below it (to depth)
    "steps": 200,
    "batch_pairs": 8,
    "lr": 2e-5,
    "margin": 1.0,
    "model": {"name": "all-MiniLM-L6-v2", "max_length": 256, "max_query_length": 32, "dropout": 0.1},
    "train_queries": None,  # explicit query ids (else the victim's / the config's train split)
    "seed": 0,  # the imitation model's own seed (queries, init, batches); null = attack.seed. Fixed by default, so
                # the target-sampling seeds of a study (attack.seed) attack the same imitation model
}


# ---------------------------------------------------------------------------------------------
# Pair encoding and scoring of raw text (the same layout as rankexp.data.tokens.PairEncoder)
# ---------------------------------------------------------------------------------------------

def tokenize(encoder, text: str) -> list[int]:
    return list(encoder.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def encode_ids(encoder, q_rows: Sequence[Sequence[int]], d_rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """``[CLS] q [SEP] d [SEP]`` rows from token ids, truncated as :class:`PairEncoder` truncates
    (query to ``max_query_length``, document to what is left of ``max_length``), right-padded."""
    import numpy as np

    from rankexp.data.tokens import pad_rows, special_ids

    cls, sep, pad = special_ids(encoder.tokenizer)
    rows, types = [], []
    for q, d in zip(q_rows, d_rows):
        q = list(q)[: encoder.max_query_length]
        d = list(d)[: encoder.max_length - len(q) - 3]
        rows.append(np.asarray([cls, *q, sep, *d, sep], dtype=np.int64))
        types.append(len(q) + 2)
    out = pad_rows(rows, pad)
    token_types = torch.zeros_like(out["input_ids"])
    for i, (r, t) in enumerate(zip(rows, types)):
        token_types[i, t : len(r)] = 1
    return {**out, "token_type_ids": token_types}


def encode_pairs(encoder, queries: Sequence[str], docs: Sequence[str]) -> dict[str, torch.Tensor]:
    return encode_ids(encoder, [tokenize(encoder, q) for q in queries], [tokenize(encoder, d) for d in docs])


def device_of(encoder) -> torch.device:
    try:
        return next(encoder.parameters()).device
    except StopIteration:  # pragma: no cover - a parameter-free test model
        return torch.device("cpu")


def forward(encoder, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    dev = device_of(encoder)
    return encoder(**{k: v.to(dev) for k, v in batch.items()})


def forward_embeds(encoder, embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
    """A cross-encoder's scores from input embeddings (for gradients w.r.t. the input): a rankexp
    :class:`CrossEncoder` (transformer + pooling + head) or a Hugging Face sequence classifier."""
    if hasattr(encoder, "forward_embeds"):  # a model that knows how (tests, other encoders)
        return encoder.forward_embeds(embeds, attention_mask, token_type_ids)
    if hasattr(encoder, "head") and hasattr(encoder, "pooling"):
        from rankexp.models.encoders import pool

        out = encoder.model(inputs_embeds=embeds, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return encoder.head(encoder.dropout(pool(out, attention_mask, encoder.pooling))).squeeze(-1)
    if getattr(encoder, "kind", None) == "cross" and hasattr(encoder, "model"):
        extra = {"token_type_ids": token_type_ids} if getattr(encoder, "token_types", False) else {}
        logits = encoder.model(inputs_embeds=embeds, attention_mask=attention_mask, **extra).logits
        return logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]
    raise ConfigError(f"{type(encoder).__name__}: gradients w.r.t. the input need a cross-encoder "
                      f"(a bi-encoder or BM25 victim is attacked through the imitation model: white_box=false)")


def input_embeddings(encoder) -> torch.nn.Embedding:
    if hasattr(encoder, "input_embeddings"):
        return encoder.input_embeddings()
    return encoder.model.get_input_embeddings()


@torch.no_grad()
def score_texts(encoder, queries: Sequence[str], docs: Sequence[str], batch_size: int = 32) -> list[float]:
    """The encoder's scores of (query, document) text pairs, in eval mode, no gradient."""
    was = encoder.training
    encoder.eval()
    out: list[float] = []
    for i in range(0, len(docs), batch_size):
        out.extend(forward(encoder, encode_pairs(encoder, queries[i : i + batch_size], docs[i : i + batch_size])).float().tolist())
    encoder.train(was)
    return out


# ---------------------------------------------------------------------------------------------
# Settings, queries and the victim's lists
# ---------------------------------------------------------------------------------------------

def settings(ctx, overrides: Mapping[str, Any]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    s = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    node = None
    try:
        node = ctx.cfg.attack.get("imitation") if ctx.cfg is not None and "attack" in ctx.cfg else None
    except Exception:  # a plain dict cfg or none
        node = None
    if node is not None:
        node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
        s.update({k: v for k, v in node.items() if k != "model"})
        s["model"].update(node.get("model") or {})
    for k, v in overrides.items():
        if k == "model" and v is not None:
            s["model"].update(dict(v))
        elif v is not None:
            s[k] = v
    for key in ("n_queries", "depth", "pos_depth", "steps", "batch_pairs"):
        if int(s[key]) < 1:
            raise ConfigError(f"attack.imitation.{key} must be >= 1, got {s[key]!r}")
    if int(s["heldout"]) < 0:
        raise ConfigError(f"attack.imitation.heldout must be >= 0, got {s['heldout']!r}")
    if int(s["pos_depth"]) >= int(s["depth"]):
        raise ConfigError(f"attack.imitation.pos_depth ({s['pos_depth']}) must be below depth ({s['depth']})")
    return s


def _collection(ctx):
    collection = getattr(ctx.victim, "collection", None)
    if collection is None:
        from rankexp.data.collection import load_collection

        collection = load_collection(ctx.cfg.data)
    return collection


def training_queries(ctx, s: Mapping[str, Any]) -> list[str]:
    """Candidate training query ids: ``train_queries``, else the victim's ``train_queries``, else
    the config's train split (the train command's split rule); attacked queries (``ctx.queries``)
    are always removed."""
    qids = s.get("train_queries")
    if qids is None:
        qids = getattr(ctx.victim, "train_queries", None)
        if callable(qids):
            qids = qids()
    if qids is None:
        from rankexp.pipeline.rerank import select_queries

        if ctx.cfg is None:
            raise ConfigError("imitation model: no training queries (give attack.imitation.train_queries)")
        qids, _ = select_queries(_collection(ctx), ctx.cfg.data, "train")
    attacked = set(ctx.queries or ())
    qids = [str(q) for q in qids if str(q) not in attacked]
    if not qids:
        raise ConfigError("imitation model: no training queries (the train split is empty or all of it is attacked)")
    return qids


def first_stage_candidates(ctx, qids: Sequence[str]) -> dict[str, list[str]]:
    """The configured first stage's top ``eval.rerank_k`` for queries the victim was not built for
    (the training queries): the documents the black-box search engine would rank."""
    from rankexp.config.compose import build
    from rankexp.pipeline.rerank import candidates_from
    from rankexp.tracking.cache import Cache

    if ctx.cfg is None:
        raise ConfigError(f"imitation model: the victim has no candidates for training query {qids[0]!r} and there is no "
                          f"config to retrieve them")
    cache = ctx.cache if ctx.cache is not None else Cache(Path(ctx.cfg.paths.cache_dir))
    top, _, _ = candidates_from(None, build(ctx.cfg.first_stage, "first_stage"), _collection(ctx), cache, list(qids),
                                int(ctx.cfg.eval.rerank_k), {}, {})
    return {q: list(top.get(q, {})) for q in qids}


def victim_list(victim, qid: str, depth: int, pool: Sequence[str] | None = None) -> dict[str, float]:
    """The victim's top-``depth`` ranked list for ``qid`` (doc id -> victim score). The ranking of
    the candidates (``victim.candidates``, or ``pool`` scored without counting: the engine's own
    work) is free; the list returned is paid for: its ``depth`` pairs are scored through
    :meth:`Victim.score_texts` with counting on."""
    from rankexp.eval.trec_io import sort_ranking

    if pool is None:
        scores = victim.candidates(qid)
    else:
        scores = dict(zip(pool, victim.score_texts(qid, [victim.doc_text(d) for d in pool], count=False)))
    ranked = [d for d, _ in sort_ranking({d: float(x) for d, x in scores.items()})][:depth]
    if not ranked:
        return {}
    paid = victim.score_texts(qid, [victim.doc_text(d) for d in ranked], count=True)
    return {d: float(x) for d, x in zip(ranked, paid)}


def ranking_pairs(ranked: Mapping[str, float], pos_depth: int) -> list[tuple[str, str]]:
    """(higher, lower) pairs of one list: a top-``pos_depth`` document vs one ranked below it."""
    from rankexp.eval.trec_io import sort_ranking

    order = [d for d, _ in sort_ranking(dict(ranked))]
    return [(hi, lo) for hi in order[:pos_depth] for lo in order[pos_depth:]]


def fidelity_of(encoder, victim, lists: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    from rankexp.eval.fidelity import fidelity

    student = {}
    for q, ranked in lists.items():
        ids = list(ranked)
        scores = score_texts(encoder, [victim.query_text(q)] * len(ids), [victim.doc_text(d) for d in ids])
        student[q] = dict(zip(ids, scores))
    f = fidelity(student, lists, list(lists), k=10)
    return {"queries": f["queries"], **{m: None if f["mean"].get(m) is None else float(f["mean"][m])
                                        for m in ("top10_overlap", "rbo", "kendall_tau")}}


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def _build(model_cfg: Mapping[str, Any], seed: int):
    from rankexp.models.encoders import CrossEncoder

    torch.manual_seed(seed)
    return CrossEncoder(**dict(model_cfg))


def _save(directory: Path, encoder, facts: dict[str, Any]) -> None:
    from rankexp.utils.io import write_json

    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".model.pt.{os.getpid()}.tmp"
    torch.save(encoder.state_dict(), tmp)
    os.replace(tmp, directory / "model.pt")
    write_json(directory / "facts.json", facts)


def _victim_identity(victim) -> Any:
    """What makes the victim this victim (its weights' hash, BM25 parameters + collection), or
    None when it cannot say (then the cross-run cache is not used)."""
    ident = getattr(victim, "identity", None)
    if not callable(ident):
        return None
    try:
        value = ident()
    except NotImplementedError:
        return None
    collection = getattr(victim, "collection", None)
    return {"victim": value, "collection": getattr(collection, "fingerprint", None)}


def _train(ctx, s: Mapping[str, Any], encoder, train_q: list[str], heldout: list[str], rng: random.Random, key: str) -> dict[str, Any]:
    """Query the victim, train ``encoder`` in place with (im-1), report fidelity; returns the facts."""
    from rankexp.utils.progress import track

    used0 = int(getattr(ctx.victim, "queries_used", 0))
    asked = train_q + heldout
    missing = [q for q in asked if not ctx.victim.candidates(q)]
    pools = first_stage_candidates(ctx, missing) if missing else {}
    lists = {q: victim_list(ctx.victim, q, int(s["depth"]), pools.get(q)) for q in track(asked, "imitation: victim rankings")}
    held_lists = {q: lists[q] for q in heldout if len(lists[q]) >= 2}
    before = fidelity_of(encoder, ctx.victim, held_lists) if held_lists else None
    pairs = [(q, hi, lo) for q in train_q for hi, lo in ranking_pairs(lists[q], int(s["pos_depth"]))]
    if not pairs:
        raise ConfigError(f"imitation model: the victim's lists of the {len(train_q)} training queries give no "
                          f"pairs (fewer than pos_depth+1={int(s['pos_depth']) + 1} candidates each?)")
    encoder.to(ctx.device)
    encoder.train()
    opt = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=float(s["lr"]))
    margin, bs = float(s["margin"]), int(s["batch_pairs"])
    qtext = {q: ctx.victim.query_text(q) for q in train_q}
    last = float("nan")
    for _ in track(range(int(s["steps"])), "imitation: training"):
        batch = rng.sample(pairs, min(bs, len(pairs)))
        qs = [qtext[q] for q, _, _ in batch]
        hi = forward(encoder, encode_pairs(encoder, qs, [ctx.victim.doc_text(d) for _, d, _ in batch]))
        lo = forward(encoder, encode_pairs(encoder, qs, [ctx.victim.doc_text(d) for _, _, d in batch]))
        loss = torch.relu(margin - hi + lo).mean()  # (im-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.detach())
    encoder.eval()
    after = fidelity_of(encoder, ctx.victim, held_lists) if held_lists else None
    return {"train_queries": len(train_q), "heldout_queries": len(held_lists), "pairs": len(pairs),
            "steps": int(s["steps"]), "final_loss": last, "victim_queries": int(getattr(ctx.victim, "queries_used", 0)) - used0,
            "fidelity": after, "fidelity_untrained": before, "model": s["model"], "key": key, "reused": False}


def train_imitation(ctx, **overrides: Any):
    """The imitation model of ``ctx.victim`` (a :class:`~rankexp.pipeline.loading.Ranker` whose
    ``facts`` attribute holds the fidelity report and the victim queries its training spent; with
    ``reused: true`` they were spent by an earlier run); see the module docstring.

    Reuse, first found wins: the model already built in this run (kept on ``ctx``); the attack run's
    ``state_dir/imitation/<key>/`` (a resumed run); the cache entry ``imitation/<hash>`` of
    ``ctx.cache`` keyed by the victim's identity (weights hash or BM25 parameters, collection
    fingerprint), the query ids, the seed and every setting. Otherwise it is trained and saved to
    both."""
    from rankexp.pipeline.loading import Ranker
    from rankexp.pipeline.scorers import CrossScorer
    from rankexp.tracking.cache import read_file
    from rankexp.utils.hashing import stable_hash
    from rankexp.utils.io import read_json

    s = settings(ctx, overrides)
    pool = training_queries(ctx, s)
    iseed = int(ctx.seed if s.get("seed") is None else s["seed"])
    rng = random.Random(f"imitation:{iseed}")
    chosen = rng.sample(pool, min(len(pool), int(s["n_queries"]) + int(s["heldout"])))
    heldout = chosen[int(s["n_queries"]):] if len(chosen) > int(s["n_queries"]) else []
    train_q = chosen[: int(s["n_queries"])]
    settings_key = {"train": train_q, "heldout": heldout, **{k: v for k, v in s.items() if k != "train_queries"}, "seed": iseed}
    key = stable_hash({"victim": [getattr(ctx.victim, "name", "?"), getattr(ctx.victim, "kind", "?")], **settings_key}, 16)
    kept = getattr(ctx, "_imitation", None)
    if kept is not None and kept[0] == key:
        return kept[1]

    directory = Path(ctx.state_dir) / "imitation" / key if ctx.state_dir is not None else None
    identity = _victim_identity(ctx.victim) if ctx.cache is not None else None
    encoder = _build(s["model"], iseed)
    if directory is not None and (directory / "model.pt").exists() and (directory / "facts.json").exists():
        encoder.load_state_dict(torch.load(directory / "model.pt", map_location="cpu"))
        facts = dict(read_json(directory / "facts.json"), reused=True)
        log.info("imitation model reused from %s", directory)
    elif identity is not None:
        built: list[bool] = []

        def build(tmp: Path) -> None:
            _save(tmp, encoder, _train(ctx, s, encoder, train_q, heldout, rng, key))
            built.append(True)

        def reader(entry: Path):
            return (read_file(entry / "model.pt", lambda f: torch.load(f, map_location="cpu")),
                    read_file(entry / "facts.json", read_json))

        state, facts = ctx.cache.load("imitation", {"identity": identity, **settings_key}, build, reader)
        if not built:
            encoder.load_state_dict(state)
            facts = dict(facts, reused=True)
        if directory is not None:
            _save(directory, encoder, facts)
    else:
        facts = _train(ctx, s, encoder, train_q, heldout, rng, key)
        if directory is not None:
            _save(directory, encoder, facts)
    encoder.to(ctx.device)
    encoder.eval()
    ranker = Ranker(encoder, CrossScorer(), f"imitation model of {getattr(ctx.victim, 'name', 'victim')} ({key})")
    ranker.facts = facts  # type: ignore[attr-defined]
    ctx._imitation = (key, ranker)
    return ranker
