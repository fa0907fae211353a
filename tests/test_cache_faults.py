"""Caches that cannot lie: damaged entries are reported, removed and rebuilt; every key holds every
option that changes the content; stale temp folders and locks are swept; truncated queries are
counted. Tiny slices of vaswani and a tiny random bi-encoder, so the whole file runs in seconds."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from filelock import FileLock

from conftest import DATA, REPO, make_slice
from rankexp.data.collection import Collection, load_local
from rankexp.data.negatives.base import MiningContext
from rankexp.data.negatives.bm25 import BM25Negatives
from rankexp.data.negatives.dense_static import DenseStaticNegatives
from rankexp.data.negatives.mined import FileNegatives, MinedNegatives, write_negatives
from rankexp.data.tokens import PairEncoder, TextEncoder, build_token_tables, token_key
from rankexp.models.biencoder import BiEncoder
from rankexp.models.encoders import load_tokenizer
from rankexp.retrieval.bm25 import BM25
from rankexp.retrieval.dense import DenseRetriever, build_index, index_key
from rankexp.tracking.cache import CONTENT_NEUTRAL, MANIFEST, Cache, CacheError, read_file, write_manifest

TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
CONF = REPO / "rankexp" / "conf"


@pytest.fixture(scope="module")
def coll(tmp_path_factory) -> Collection:
    path = make_slice(DATA / "vaswani", tmp_path_factory.mktemp("faults") / "v8", n_queries=8, n_other_docs=80)
    return load_local(path, ["title", "text"])


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory) -> Path:
    """The MiniLM tokenizer with one added token: the same vocab_size, different token ids."""
    tok = load_tokenizer("all-MiniLM-L6-v2")
    tok.add_tokens(["rankexpzzz"])
    path = tmp_path_factory.mktemp("tok") / "minilm-plus"
    tok.save_pretrained(str(path))
    return path


@pytest.fixture(autouse=True)
def shared_tokenizers(monkeypatch):
    """One tokenizer object per name (read-only here): building many tiny encoders stays fast."""
    import functools

    import rankexp.models.biencoder as biencoder

    monkeypatch.setattr(biencoder, "load_tokenizer", functools.lru_cache(maxsize=None)(load_tokenizer))


def tiny_bi(**kw) -> BiEncoder:
    torch.manual_seed(0)
    return BiEncoder(**{"max_length": 32, "max_query_length": 12, "tiny": TINY, **kw})


def dense(**kw) -> DenseRetriever:
    r = DenseRetriever(**{"model": "all-MiniLM-L6-v2", "k": 20, "max_length": 32, "max_query_length": 12, "tiny": TINY,
                          "use_faiss": False, "device": "cpu", "batch_size": 16, **kw})
    torch.manual_seed(0)
    r.encoder()
    return r


# ------------------------------------------------------------------ consumers of each cache kind
def consume_bm25(coll, cache):
    return BM25(k=30).retrieve(coll, cache)


def consume_tokens(coll, cache):
    docs, queries = build_token_tables(coll, load_tokenizer("all-MiniLM-L6-v2"), 64, 12, cache)
    return [(t.ids, t.flat.tolist(), t.offsets.tolist()) for t in (docs, queries)] + [queries.full_lengths.tolist()]


def consume_dense_index(coll, cache):
    index = build_index(tiny_bi(), coll, cache)
    return index.doc_ids, np.round(index.emb.numpy(), 6).tolist()


def consume_dense_run(coll, cache):
    run = dense().retrieve(coll, cache)
    return {q: {d: round(s, 6) for d, s in r.items()} for q, r in run.items()}


def consume_negatives(coll, cache):
    s = DenseStaticNegatives(depth=15)
    s.setup(coll, {}, MiningContext(cache, tiny_bi(), sorted(coll.queries)))
    return ({q: [(d, round(v, 6)) for d, v in r] for q, r in s.ranked.items()},
            {q: {d: round(v, 6) for d, v in r.items()} for q, r in s.pos_scores.items()})


def consume_bm25_negatives(coll, cache):
    s = BM25Negatives(depth=20)
    s.setup(coll, consume_bm25(coll, cache), MiningContext(cache, None, sorted(coll.queries)))
    return s.ranked


CONSUMERS = {"bm25_index": consume_bm25, "bm25_run": consume_bm25, "tokens": consume_tokens,
             "dense_index": consume_dense_index, "dense_run": consume_dense_run, "negatives": consume_negatives}


def entry_of(root: Path, kind: str) -> Path:
    (entry,) = [p for p in (root / kind).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return entry


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":  # cut short, as a killed writer or a full disk leaves it
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":  # same size, some bytes changed in the middle
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes((b ^ 0x5A) for b in data[mid : mid + 8]) + data[mid + 8 :])
    elif how == "delete":
        path.unlink()
    else:  # pragma: no cover
        raise ValueError(how)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "cache " in r.getMessage()]


CASES = [("bm25_index", "doc_ids.json"), ("bm25_index", "index/params.index.json"), ("bm25_index", "index/data.csc.index.npy"),
         ("bm25_run", "run.trec"), ("tokens", "docs.npz"), ("tokens", "queries.npz"),
         ("dense_index", "embeddings.npy"), ("dense_index", "doc_ids.json"), ("dense_run", "run.trec"),
         ("negatives", "negatives.tsv"), ("negatives", "positives.tsv")]


@pytest.mark.parametrize("how", ["truncate", "corrupt", "delete"])
@pytest.mark.parametrize("kind,name", CASES)
def test_a_damaged_file_is_reported_removed_and_rebuilt(coll, tmp_path, caplog, kind, name, how):
    consume = CONSUMERS[kind]
    clean = consume(coll, Cache(tmp_path))
    entry = entry_of(tmp_path, kind)
    target = entry / name
    assert target.is_file() and target.stat().st_size > 16, target
    damage(target, how)
    caplog.set_level(logging.WARNING)
    again = consume(coll, Cache(tmp_path))  # a new process: nothing memoised
    assert again == clean
    (msg,) = warnings_of(caplog)
    assert msg.startswith(f"cache {kind}/{entry.name}: {name} ") and msg.endswith("removed, rebuilding"), msg
    assert Cache(tmp_path).check(entry) is None  # the rebuilt entry verifies
    assert not warnings_of(caplog)[1:]


@pytest.mark.parametrize("kind,name", [("bm25_index", "index/params.index.json"), ("bm25_run", "run.trec"),
                                       ("tokens", "docs.npz"), ("dense_index", "embeddings.npy"),
                                       ("negatives", "negatives.tsv"), ("negatives", "positives.tsv")])
def test_a_file_that_verifies_but_cannot_be_read_is_named_and_rebuilt(coll, tmp_path, caplog, kind, name):
    """Damage after verification (here: the manifest rewritten to match a cut file): the reader's
    error (BadZipFile, JSONDecodeError, a malformed line) names the file and triggers a rebuild."""
    consume = CONSUMERS[kind]
    clean = consume(coll, Cache(tmp_path))
    entry = entry_of(tmp_path, kind)
    target = entry / name
    if target.suffix in (".json", ".tsv", ".trec"):  # a line no reader accepts (a cut line may still parse)
        target.write_text(target.read_text() + "a damaged line of five\n")
    else:
        damage(target, "truncate")
    write_manifest(entry)
    if kind == "bm25_index":  # the index is read only to build a run
        shutil.rmtree(entry_of(tmp_path, "bm25_run"))
    caplog.set_level(logging.WARNING)
    assert consume(coll, Cache(tmp_path)) == clean
    (msg,) = warnings_of(caplog)
    named = "index" if kind == "bm25_index" else name  # bm25s reads its index folder as a whole
    assert msg.startswith(f"cache {kind}/{entry.name}: cannot read {named}: "), msg


def test_a_cut_bm25_run_at_a_line_boundary_would_lose_queries_silently_without_the_manifest(coll, tmp_path, caplog):
    clean = consume_bm25(coll, Cache(tmp_path))
    run_file = entry_of(tmp_path, "bm25_run") / "run.trec"
    lines = run_file.read_text().splitlines(keepends=True)
    run_file.write_text("".join(lines[: len(lines) // 3]))  # a well-formed, shorter run
    caplog.set_level(logging.WARNING)
    again = consume_bm25(coll, Cache(tmp_path))
    assert again == clean and len(again) == len(clean) == len(coll.queries)
    (msg,) = warnings_of(caplog)
    assert "run.trec has" in msg and "bytes, the manifest says" in msg


def test_a_cut_negatives_file_from_bm25_mining_is_rebuilt(coll, tmp_path, caplog):
    clean = consume_bm25_negatives(coll, Cache(tmp_path))
    neg = entry_of(tmp_path, "negatives") / "negatives.tsv"
    lines = neg.read_text().splitlines(keepends=True)
    neg.write_text("".join(lines[: len(lines) // 2]))
    caplog.set_level(logging.WARNING)
    assert consume_bm25_negatives(coll, Cache(tmp_path)) == clean
    assert any("negatives.tsv has" in m for m in warnings_of(caplog))


def test_an_entry_without_a_manifest_is_rebuilt_with_a_warning(coll, tmp_path, caplog):
    clean = consume_tokens(coll, Cache(tmp_path))
    entry = entry_of(tmp_path, "tokens")
    (entry / MANIFEST).unlink()  # as an older rankexp wrote it
    caplog.set_level(logging.WARNING)
    cache = Cache(tmp_path)
    assert consume_tokens(coll, cache) == clean
    (msg,) = warnings_of(caplog)
    assert msg.startswith(f"cache tokens/{entry.name}: {MANIFEST} missing")
    assert (entry / MANIFEST).is_file() and [e.repaired for e in cache.events] == [msg.split(": ", 1)[1].rsplit("; removed", 1)[0]]
    (entry / MANIFEST).write_text("{not json")
    caplog.clear()
    assert consume_tokens(coll, Cache(tmp_path)) == clean
    (msg,) = warnings_of(caplog)
    assert f"{MANIFEST} unreadable (JSONDecodeError)" in msg


def test_an_entry_that_stays_unreadable_is_one_error_naming_the_file(tmp_path):
    cache = Cache(tmp_path)

    def build(tmp: Path) -> None:
        (tmp / "table.json").write_text("{cut")  # a builder that writes a broken file every time

    with pytest.raises(CacheError, match=r"cache demo/[0-9a-f]{16}: cannot read table\.json: JSONDecodeError.*even after rebuilding"):
        cache.load("demo", {"x": 1}, build, lambda e: read_file(e / "table.json", lambda p: json.loads(p.read_text())))
    assert [e.hit for e in cache.events] == [False, False]


def test_a_hit_verifies_checksums_once_per_process_and_again_after_a_change(coll, tmp_path, caplog):
    cache = Cache(tmp_path)
    consume_tokens(coll, cache)
    consume_tokens(coll, cache)
    assert [e.hit for e in cache.events] == [False, True]
    entry = entry_of(tmp_path, "tokens")
    damage(entry / "queries.npz", "corrupt")  # same size; the new mtime makes the same process re-hash
    caplog.set_level(logging.WARNING)
    consume_tokens(coll, cache)
    assert any("queries.npz checksum mismatch" in m for m in warnings_of(caplog))


def test_size_only_verification_still_catches_a_cut_file(coll, tmp_path, caplog, monkeypatch):
    clean = consume_tokens(coll, Cache(tmp_path))
    monkeypatch.setenv("RANKEXP_CACHE_VERIFY", "size")
    entry = entry_of(tmp_path, "tokens")
    damage(entry / "docs.npz", "truncate")
    caplog.set_level(logging.WARNING)
    assert consume_tokens(coll, Cache(tmp_path)) == clean
    assert any("docs.npz has" in m for m in warnings_of(caplog))


# ------------------------------------------------------------------ stale temp folders and locks
def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_stale_temp_folders_and_locks_are_swept(tmp_path):
    kind = tmp_path / "bm25_run"
    kind.mkdir()
    orphan = kind / ".aaaaaaaaaaaaaaaa.x1y2z3"  # left by a killed builder
    young = kind / ".bbbbbbbbbbbbbbbb.q9w8e7"  # possibly a builder that just started
    locked = kind / ".cccccccccccccccc.k2k2k2"  # a live builder (holds its lock)
    orphan_lock = kind / ".eeeeeeeeeeeeeeee.r5t6y7"  # killed builder whose lock file remains (unheld)
    (kind / "eeeeeeeeeeeeeeee.lock").touch()
    for d in (orphan, young, locked, orphan_lock):
        d.mkdir()
        (d / "run.trec").write_text("partial")
    _age(orphan, 3600)
    _age(orphan_lock, 3600)
    _age(locked, 3600)
    stale_lock = kind / "dddddddddddddddd.lock"  # a finished entry's lock nobody holds
    stale_lock.touch()
    (kind / "dddddddddddddddd").mkdir()
    (kind / "dddddddddddddddd" / ".complete").touch()
    _age(stale_lock, 3600)
    live = FileLock(str(kind / "cccccccccccccccc") + ".lock")
    with live:
        _age(kind / "cccccccccccccccc.lock", 3600)
        cache = Cache(tmp_path, stale_after_s=600)
        cache.get_or_build("bm25_run", {"q": 1}, lambda tmp: (tmp / "run.trec").write_text(""))
    assert not orphan.exists() and not orphan_lock.exists() and not stale_lock.exists()
    assert young.exists() and locked.exists() and (kind / "cccccccccccccccc.lock").exists()
    assert (kind / "dddddddddddddddd" / ".complete").exists()  # entries are never swept
    assert not (kind / "aaaaaaaaaaaaaaaa.lock").exists()  # sweeping leaves no lock file of its own


# ------------------------------------------------------------------ truncated queries are counted
def test_truncated_queries_are_counted_warned_once_and_noted(coll, tmp_path, caplog):
    tok = load_tokenizer("all-MiniLM-L6-v2")
    full = {q: len(tok(t, add_special_tokens=False)["input_ids"]) for q, t in coll.queries.items()}
    limit = sorted(full.values())[len(full) // 2]  # about half the queries are longer
    expected = sum(n > limit for n in full.values())
    assert 0 < expected < len(full)
    coll = Collection(coll.name, coll.fingerprint, coll.docs, coll.queries, coll.qrels)  # fresh notes
    caplog.set_level(logging.WARNING)
    docs, queries = build_token_tables(coll, tok, 64, limit, Cache(tmp_path))
    assert queries.full_lengths.tolist() == [full[q] for q in queries.ids]
    PairEncoder(tok, docs, queries, 64, limit)
    PairEncoder(tok, docs, queries, 64, limit)
    msg = f"{expected} of {len(full)} queries of {coll.name} are longer than max_query_length={limit} tokens and were truncated"
    got = [r.getMessage() for r in caplog.records if "were truncated" in r.getMessage()]
    assert len(got) == 1 and got[0].startswith(msg) and "model.encoder.max_query_length" in got[0]
    assert coll.notes == got
    # a bi-encoder's query length counts [CLS] and [SEP]: it keeps limit - 2 query tokens
    _, queries = build_token_tables(coll, tok, 64, limit, Cache(tmp_path))
    TextEncoder(tok, queries, limit)
    bi_expected = sum(n > limit - 2 for n in full.values())
    assert coll.notes[1].startswith(f"{bi_expected} of {len(full)} queries of {coll.name} are longer than "
                                    f"max_query_length={limit} tokens (with [CLS]/[SEP]) and were truncated")
    caplog.clear()
    TextEncoder(tok, docs, 64)  # a document table: not counted
    assert len(coll.notes) == 2 and not caplog.records


def test_the_dense_run_depends_on_max_query_length(coll, tmp_path):
    """The mislabelled result of issue 11: another max_query_length returned the old cached run."""
    cache = Cache(tmp_path)
    long_q = dense(max_query_length=64).retrieve(coll, cache)
    short_q = dense(max_query_length=5).retrieve(coll, cache)
    assert [e.hit for e in cache.events if e.kind == "dense_run"] == [False, False]
    assert long_q != short_q
    assert dense(max_query_length=5).retrieve(coll, cache) == short_q


# ------------------------------------------------------------------ every option that changes the content is in the key
def yaml_options(name: str) -> set[str]:
    return {k for k in yaml.safe_load((CONF / name).read_text()) if not k.startswith("_")}


def init_options(*classes) -> set[str]:
    out: set[str] = set()
    for cls in classes:
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                out.add(p.name)
    return out


def check_options(kind: str, options: set[str], alternatives: dict, key_of) -> None:
    """Every option either changes ``kind``'s key or is documented in CONTENT_NEUTRAL[kind]."""
    missing = sorted(options - set(alternatives))
    assert not missing, f"{kind}: new option(s) {missing}: give them an alternative value here and key them (or document them in CONTENT_NEUTRAL)"
    base = key_of(None, None)
    assert key_of(None, None) == base, f"{kind}: the key is not deterministic"
    neutral = CONTENT_NEUTRAL[kind]
    for opt in sorted(options):
        changed = key_of(opt, alternatives[opt]) != base
        if opt in neutral:
            assert not changed, f"{kind}: {opt} changes the key but is documented as not changing the content"
        else:
            assert changed, f"{kind}: changing {opt} does not change the key (stale cache entries would be reused)"
    stale = sorted(o for o in neutral if o not in options)
    assert not stale, f"{kind}: CONTENT_NEUTRAL lists options that no longer exist: {stale}"


def changed_collection(coll: Collection) -> Collection:
    docs = dict(coll.docs)
    first = next(iter(docs))
    docs[first] += " changed"
    from rankexp.utils.hashing import stable_hash

    return Collection(coll.name, stable_hash(sorted(docs.items()), 16), docs, coll.queries, coll.qrels)


BM25_ALT = {"k1": 1.2, "b": 0.75, "k": 100, "stemmer": "porter", "stopwords": None, "method": "robertson", "chunk_size": 7}


@pytest.mark.parametrize("kind", ["bm25_index", "bm25_run"])
def test_bm25_keys_hold_every_option(coll, kind):
    options = yaml_options("first_stage/bm25.yaml") | init_options(BM25)

    def key_of(opt, value):
        b = BM25(**({opt: value} if opt else {}))
        return b.index_key(coll) if kind == "bm25_index" else b.run_key(coll, coll.queries)

    check_options(kind, options, BM25_ALT, key_of)
    base = BM25()
    assert base.index_key(changed_collection(coll)) != base.index_key(coll)
    assert base.run_key(coll, dict(list(coll.queries.items())[:3])) != base.run_key(coll, coll.queries)


def dense_alternatives(other_tokenizer: Path) -> dict:
    return {"model": str(other_tokenizer), "k": 10, "pooling": "cls", "similarity": "dot", "max_length": 24,
            "max_query_length": 8, "shared": False, "tiny": {**TINY, "hidden_size": 32}, "batch_size": 3,
            "use_faiss": "auto", "device": "cuda"}


@pytest.mark.parametrize("kind", ["dense_index", "dense_run"])
def test_dense_keys_hold_every_option(coll, other_tokenizer, kind):
    options = yaml_options("first_stage/dense.yaml") | init_options(DenseRetriever)
    qids = sorted(coll.queries)

    def key_of(opt, value):
        r = dense(**({opt: value} if opt else {}))
        return index_key(r.encoder(), coll) if kind == "dense_index" else r.run_key(coll, qids)

    check_options(kind, options, dense_alternatives(other_tokenizer), key_of)
    r = dense()
    if kind == "dense_index":
        assert index_key(r.encoder(), changed_collection(coll)) != index_key(r.encoder(), coll)
    else:
        assert r.run_key(coll, qids[:3]) != r.run_key(coll, qids)
        trained = dense()
        with torch.no_grad():  # other query weights (a trained query side) -> another run
            next(trained.encoder().side("query").parameters()).add_(0.01)
        assert trained.run_key(coll, qids) != r.run_key(coll, qids)


def test_token_keys_hold_every_input_of_the_builder(coll, other_tokenizer):
    params = [p for p in inspect.signature(build_token_tables).parameters if p != "cache"]
    assert params == list(inspect.signature(token_key).parameters), "build_token_tables and token_key must take the same inputs"
    tok = load_tokenizer("all-MiniLM-L6-v2")
    base = {"collection": coll, "tokenizer": tok, "max_length": 64, "max_query_length": 12}
    alternatives = {"collection": changed_collection(coll), "tokenizer": load_tokenizer(str(other_tokenizer)),
                    "max_length": 48, "max_query_length": 8}
    check_options("tokens", set(params), alternatives, lambda opt, value: token_key(**{**base, **({opt: value} if opt else {})}))
    # the tokenizer's name does not matter, its content does
    assert token_key(**{**base, "tokenizer": load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")}) == token_key(**base)


FILTER_ALT = {"depth": 7, "skip_top": 2, "margin_abs": 0.5, "margin_rel": 0.1, "max_score": 3.0, "select": "top"}


def test_negatives_keys_hold_every_option(coll, tmp_path, other_tokenizer):
    qids = sorted(coll.queries)
    run = {q: {d: float(i) for i, d in enumerate(sorted(coll.docs)[:30])} for q in qids}
    neutral = CONTENT_NEUTRAL["negatives"]
    dense_alt = dense_alternatives(other_tokenizer)

    # bm25: the sampler's options, the first-stage run, the training queries, the collection
    options = yaml_options("negatives/bm25.yaml") | init_options(BM25Negatives, MinedNegatives)
    for o in sorted(options):
        base = BM25Negatives().cache_key(coll, run, None, qids)
        assert o in FILTER_ALT, f"negatives=bm25: new option {o}: give it an alternative value here"
        changed = BM25Negatives(**{o: FILTER_ALT[o]}).cache_key(coll, run, None, qids) != base
        assert changed == (o not in neutral), f"negatives=bm25: {o}"
    b = BM25Negatives()
    other_run = {**run, qids[0]: {d: -v for d, v in run[qids[0]].items()}}
    assert b.cache_key(coll, other_run, None, qids) != b.cache_key(coll, run, None, qids)
    assert b.cache_key(coll, run, None, qids[:3]) != b.cache_key(coll, run, None, qids)
    assert b.cache_key(changed_collection(coll), run, None, qids) != b.cache_key(coll, run, None, qids)

    # file: its options, and the file's content
    f1, f2 = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write_negatives(f1, {qids[0]: [(d, 1.0) for d in sorted(coll.docs)[:5]]})
    write_negatives(f2, {qids[0]: [(d, 1.0) for d in sorted(coll.docs)[1:6]]})
    options = yaml_options("negatives/file.yaml") | init_options(FileNegatives, MinedNegatives)
    for o in sorted(options):
        alt = {**FILTER_ALT, "path": str(f2)}
        assert o in alt, f"negatives=file: new option {o}: give it an alternative value here"
        base = FileNegatives(path=str(f1)).cache_key(coll, run, None, qids)
        changed = FileNegatives(**{"path": str(f1), o: alt[o]}).cache_key(coll, run, None, qids) != base
        assert changed == (o not in neutral), f"negatives=file: {o}"

    # dense_static: its options, its retriever's options, and (retriever null) the run's encoder's options
    def ds_key(sampler_kw: dict, encoder_kw: dict | None = None):
        s = DenseStaticNegatives(**sampler_kw)
        enc = tiny_bi(**(encoder_kw or {}))
        torch.manual_seed(0)  # a tiny retriever's random weights: the same for every key
        return s.cache_key(coll, {}, MiningContext(None, enc, qids), qids)

    options = yaml_options("negatives/dense_static.yaml") | init_options(DenseStaticNegatives, MinedNegatives)
    retr = {"model": "all-MiniLM-L6-v2", "tiny": TINY, "max_length": 32, "max_query_length": 12}
    alt = {**FILTER_ALT, "retriever": {**retr, "tiny": {**TINY, "hidden_size": 32}}}  # another model than the run's
    base = ds_key({})
    for o in sorted(options):
        assert o in alt, f"negatives=dense_static: new option {o}: give it an alternative value here"
        changed = ds_key({o: alt[o]}) != base
        assert changed == (o not in neutral), f"negatives=dense_static: {o}"
    r_options = yaml_options("first_stage/dense.yaml") | init_options(DenseRetriever)
    base_r = ds_key({"retriever": retr})
    for o in sorted(r_options):
        changed = ds_key({"retriever": {**retr, o: dense_alt[o]}}) != base_r
        assert changed == (f"retriever.{o}" not in neutral), f"negatives=dense_static: retriever.{o}"
    e_options = {k for k in yaml.safe_load((CONF / "model/bi_encoder.yaml").read_text())["encoder"] if not k.startswith("_")}
    e_options |= init_options(BiEncoder)
    e_alt = {**{k: v for k, v in dense_alt.items() if k in ("pooling", "similarity", "max_length", "max_query_length", "tiny", "shared")},
             "name": str(other_tokenizer), "temperature": 0.1, "in_batch": False, "gather_negatives": False,
             "num_layers": 1}
    ckpt = tmp_path / "moved.ckpt"
    enc = tiny_bi()
    torch.save({"state_dict": {f"encoder.{k}": v + 0.01 if v.is_floating_point() else v for k, v in enc.state_dict().items()}}, ckpt)
    e_alt["checkpoint"] = str(ckpt)
    for o in sorted(e_options):
        assert o in e_alt, f"negatives=dense_static: new encoder option {o}: give it an alternative value here"
        changed = ds_key({}, {o: e_alt[o]}) != base
        assert changed == (f"encoder.{o}" not in neutral), f"negatives=dense_static: model.encoder.{o}"
    known = set(FILTER_ALT) | {f"retriever.{o}" for o in r_options} | {f"encoder.{o}" for o in e_options}
    stale = sorted(o for o in neutral if o not in known)
    assert not stale, f"CONTENT_NEUTRAL['negatives'] lists options that no longer exist: {stale}"


def test_the_docs_list_every_content_neutral_option():
    text = (REPO / "docs" / "cache.md").read_text()
    for kind, options in CONTENT_NEUTRAL.items():
        for opt in options:
            assert f"`{opt}`" in text, f"docs/cache.md: {kind} option {opt} not documented"
