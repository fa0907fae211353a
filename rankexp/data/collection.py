"""Collections: documents, queries and qrels, from an ir_datasets id or from local files.

Local layout (see ``../shared/data/*``)::

    DIR/corpus.jsonl   one JSON object a line: {"doc_id", "title", "text"}
    DIR/queries.tsv    qid<TAB>text, no header
    DIR/qrels.txt      TREC qrels: qid 0 doc_id rel

Relevance follows trec_eval: a judgment with rel >= 1 is relevant; 0 and negative grades
(cranfield's -1) are judged non-relevant.

Input anomalies are reported as one warning line each (logger ``rankexp.data.collection``; the CLI
prints them as ``warning: ...``) and kept in ``Collection.notes`` (``metrics.json``): duplicate
document or query ids (the first occurrence is kept), empty documents or queries, judged ids
missing from the corpus or the queries, a byte-order mark at the start of a file (ignored). A file
that is not UTF-8 is an error naming the file and line.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from rankexp.errors import DataError
from rankexp.utils.hashing import files_digest

log = logging.getLogger(__name__)

LOCAL_FILES = ("corpus.jsonl", "queries.tsv", "qrels.txt")
SHOW_IDS = 3  # ids named in a warning line


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _examples(items: Sequence[str]) -> str:
    """The first few of ``items``, then ``...``."""
    return ", ".join(items[:SHOW_IDS]) + (", ..." if len(items) > SHOW_IDS else "")


def _text_lines(path: Path, notes: list[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file. A byte-order mark at the start is dropped (and
    noted); bytes that are not UTF-8 are a :class:`DataError` naming the file, line and column."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n == 1:
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                    notes.append(f"{path}: starts with a UTF-8 byte-order mark (ignored)")
                elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise DataError(f"{path}:1: UTF-16 text (byte-order mark {raw[:2].hex(' ').upper()}); re-encode the file as UTF-8")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                "re-encode the file as UTF-8") from None
            yield n, text


def _note_duplicates(path: Path, what: str, dups: list[tuple[str, int, int]], notes: list[str]) -> None:
    """``dups``: (id, line, line of the kept first occurrence)."""
    if dups:
        shown = [f"{i!r} (line {n}, first at line {first})" for i, n, first in dups]
        notes.append(f"{path}: {_plural(len(dups), f'duplicate {what} id')}, the first occurrence of each kept: {_examples(shown)}")


def _note_empty(where: str, what: str, ids_lines: list[tuple[str, int | None]], notes: list[str], why: str = "") -> None:
    """``what``: singular noun (document, query)."""
    if ids_lines:
        shown = [f"{i!r}" + (f" (line {n})" if n else "") for i, n in ids_lines]
        plural = "empty queries" if what == "query" else f"empty {what}s"
        notes.append(f"{where}: {_plural(len(ids_lines), f'empty {what}', plural)}{why}: {_examples(shown)}")


def report(notes: Sequence[str]) -> None:
    """One warning line per anomaly (the CLI shows them as ``warning: ...``)."""
    for note in notes:
        log.warning("%s", note)


@dataclass
class Collection:
    name: str
    fingerprint: str
    docs: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def relevant(self, qid: str) -> set[str]:
        return {d for d, r in self.qrels.get(qid, {}).items() if r > 0}

    def queries_with_relevant(self) -> list[str]:
        """Query ids that have a text and at least one relevant judgment, in natural order."""
        return natural_sorted(q for q in self.queries if self.relevant(q))

    def stats(self) -> dict:
        grades = Counter(r for judged in self.qrels.values() for r in judged.values())
        n_rel = [len(self.relevant(q)) for q in self.queries_with_relevant()]
        return {
            "documents": len(self.docs),
            "queries": len(self.queries),
            "queries_judged": sum(1 for q in self.queries if q in self.qrels),
            "queries_with_relevant": len(n_rel),
            "qrels": sum(len(j) for j in self.qrels.values()),
            "grades": dict(sorted(grades.items())),
            "relevant_per_query_mean": round(sum(n_rel) / len(n_rel), 2) if n_rel else 0.0,
        }


def natural_key(s: str):
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def natural_sorted(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=natural_key)


def _join_fields(values: Sequence[str]) -> str:
    return " ".join(v.strip() for v in values if v and v.strip())


# ---------------------------------------------------------------- local files
def read_qrels(path: str | Path, lenient: bool | None = None) -> dict[str, dict[str, int]]:
    """Read a TREC qrels file (``qid iter doc_id rel``) as strictly as trec_eval: one clear error per
    malformed line, integer grades, a duplicate (query, document) pair refused with both lines unless
    ``lenient`` (see :func:`rankexp.eval.trec_io.read_qrels`)."""
    from rankexp.eval.trec_io import read_qrels as read_trec_qrels

    return read_trec_qrels(path, lenient=lenient)


def read_queries_tsv(path: Path, notes: list[str] | None = None) -> dict[str, str]:
    """``qid<TAB>text`` lines; a repeated qid keeps its first text (noted in ``notes``)."""
    if not path.is_file():
        raise DataError(f"queries file not found: {path}")
    notes = [] if notes is None else notes
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    dups: list[tuple[str, int, int]] = []
    for n, line in _text_lines(path, notes):
        if not line.strip():
            continue
        qid, sep, text = line.rstrip("\r\n").partition("\t")
        if not sep or not qid.strip():
            raise DataError(f"{path}:{n}: expected 'qid<TAB>text', got {line.strip()[:80]!r}")
        qid = qid.strip()
        if qid in queries:
            dups.append((qid, n, lines[qid]))
            continue
        queries[qid] = text.strip()
        lines[qid] = n
    if not queries:
        raise DataError(f"queries file is empty: {path}")
    _note_duplicates(path, "query", dups, notes)
    _note_empty(str(path), "query", [(q, lines[q]) for q, t in queries.items() if not t], notes)
    return queries


def read_corpus_jsonl(path: Path, fields: Sequence[str], notes: list[str] | None = None) -> dict[str, str]:
    """One JSON object a line; a repeated ``doc_id`` keeps its first document (noted in ``notes``)."""
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    notes = [] if notes is None else notes
    docs: dict[str, str] = {}
    lines: dict[str, int] = {}
    dups: list[tuple[str, int, int]] = []
    for n, line in _text_lines(path, notes):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "doc_id" not in obj:
            raise DataError(f"{path}:{n}: expected an object with 'doc_id', 'title', 'text'")
        did = str(obj["doc_id"])
        if did in docs:
            dups.append((did, n, lines[did]))
            continue
        docs[did] = _join_fields([str(obj.get(f) or "") for f in fields])
        lines[did] = n
    if not docs:
        raise DataError(f"corpus file is empty: {path}")
    _note_duplicates(path, "document", dups, notes)
    _note_empty(str(path), "document", [(d, lines[d]) for d, t in docs.items() if not t], notes, f" (no text in {'/'.join(fields)})")
    return docs


def load_local(path: str | Path, fields: Sequence[str] = ("title", "text"), name: str | None = None) -> Collection:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path is not a directory: {root} (expected {', '.join(LOCAL_FILES)} inside)")
    missing = [f for f in LOCAL_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)} (a local collection needs {', '.join(LOCAL_FILES)})")
    notes: list[str] = []
    docs = read_corpus_jsonl(root / "corpus.jsonl", fields, notes)
    queries = read_queries_tsv(root / "queries.tsv", notes)
    qrels_bom = _check_text(root / "qrels.txt", notes)  # encoding and byte-order mark; read_qrels parses
    qrels = read_qrels(root / "qrels.txt")
    if qrels_bom:  # a reader that kept the mark glued it to the first query id: merge it back
        merged: dict[str, dict[str, int]] = {}
        for q, judged in qrels.items():
            target = merged.setdefault(q.lstrip("\ufeff"), {})
            for d, r in judged.items():
                target.setdefault(d, r)
        qrels = merged
    fp = "local:" + files_digest([root / f for f in LOCAL_FILES]) + ":" + ",".join(fields)
    coll = Collection(name or root.name, fp, docs, queries, qrels, source=str(root.resolve()), notes=notes)
    check_consistency(coll, where=str(root / "qrels.txt"))
    report(coll.notes)
    return coll


def _check_text(path: Path, notes: list[str]) -> bool:
    """Scan a file for non-UTF-8 bytes (a one-line error); True when it starts with a byte-order mark."""
    before = len(notes)
    for _ in _text_lines(path, notes):
        pass
    return len(notes) > before


# ---------------------------------------------------------------- ir_datasets
def load_irds(dataset_id: str, fields: Sequence[str] = ("title", "text"), name: str | None = None) -> Collection:
    import ir_datasets

    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(
            f"unknown ir_datasets id {dataset_id!r} (see https://ir-datasets.com; shortcuts: `rankexp data list`)"
        ) from None
    missing = [what for what, has in (("docs", ds.has_docs()), ("queries", ds.has_queries()), ("qrels", ds.has_qrels())) if not has]
    if missing:
        raise DataError(f"ir_datasets id {dataset_id!r} has no {', '.join(missing)}; pick a subset that has docs, queries and qrels")
    notes: list[str] = []
    dup_docs: list[str] = []
    try:
        docs = {}
        for d in ds.docs_iter():
            if d.doc_id in docs:  # the first occurrence is kept, as for local files
                dup_docs.append(d.doc_id)
                continue
            values = [getattr(d, f) for f in fields if hasattr(d, f)]
            if not values:
                values = [d.default_text()]
            docs[d.doc_id] = _join_fields(values)
    except Exception as e:  # network or archive problems surface from deep inside ir_datasets
        raise _irds_unavailable(dataset_id, e) from e
    queries, qrels, dup_queries = _irds_queries_qrels(ds, dataset_id)
    where = f"ir_datasets {dataset_id}"
    for what, dups in (("document", dup_docs), ("query", dup_queries)):
        if dups:
            notes.append(f"{where}: {_plural(len(dups), f'duplicate {what} id')}, the first occurrence of each kept: "
                         f"{_examples([repr(i) for i in dups])}")
    _note_empty(where, "document", [(d, None) for d, t in docs.items() if not t], notes, f" (no text in {'/'.join(fields)})")
    _note_empty(where, "query", [(q, None) for q, t in queries.items() if not t], notes)
    coll = Collection(name or dataset_id, f"irds:{dataset_id}:" + ",".join(fields), docs, queries, qrels,
                      source=f"ir_datasets:{dataset_id}", notes=notes)
    check_consistency(coll, where=f"{where} qrels")
    report(coll.notes)
    return coll


def _irds_unavailable(dataset_id: str, e: Exception) -> DataError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return DataError(f"ir_datasets could not provide {dataset_id!r}: {type(e).__name__}: {first}"
                     " (offline? point IR_DATASETS_HOME at a seeded cache, or use data=local data.path=DIR)")


def _irds_queries_qrels(ds, dataset_id: str) -> tuple[dict[str, str], dict[str, dict[str, int]], list[str]]:
    """Queries (first occurrence kept), qrels and the duplicate query ids of an ir_datasets dataset."""
    queries: dict[str, str] = {}
    dups: list[str] = []
    qrels: dict[str, dict[str, int]] = {}
    try:
        for q in ds.queries_iter():
            if q.query_id in queries:
                dups.append(q.query_id)
                continue
            queries[q.query_id] = _query_text(q)
        for qr in ds.qrels_iter():
            qrels.setdefault(qr.query_id, {})[qr.doc_id] = int(qr.relevance)
    except Exception as e:
        raise _irds_unavailable(dataset_id, e) from e
    return queries, qrels, dups


def _query_text(q) -> str:
    text = getattr(q, "text", None)
    if text is None:
        text = q.default_text()
    return " ".join(str(text).split())


# ---------------------------------------------------------------- checks
def check_consistency(coll: Collection, where: str | None = None) -> None:
    """Fail on ids that do not match; note partial mismatches (``where``: the qrels' source)."""
    where = where or f"{coll.name} qrels"
    judged_q = set(coll.qrels)
    known_q = judged_q & set(coll.queries)
    if not known_q:
        raise DataError(
            f"{coll.name}: no qrels query id matches a query id (qrels e.g. {sorted(judged_q)[:3]}, queries e.g. {natural_sorted(coll.queries)[:3]})"
        )
    judged_docs = {d for j in coll.qrels.values() for d in j}
    known_docs = judged_docs & coll.docs.keys()
    if not known_docs:
        raise DataError(f"{coll.name}: no qrels doc id matches a corpus doc id (qrels e.g. {sorted(judged_docs)[:3]})")
    if not coll.queries_with_relevant():
        raise DataError(f"{coll.name}: no query has a relevant judgment (rel >= 1); nothing to train or evaluate on")
    if len(known_docs) < len(judged_docs):
        missing = natural_sorted(judged_docs - known_docs)
        coll.notes.append(f"{where}: {_plural(len(missing), 'judged doc id')} not in the corpus: {_examples([repr(d) for d in missing])}")
    if len(known_q) < len(judged_q):
        missing = natural_sorted(judged_q - known_q)
        coll.notes.append(f"{where}: {_plural(len(missing), 'judged query id')} without query text: {_examples([repr(q) for q in missing])}")


# ---------------------------------------------------------------- query sets (official splits)
@dataclass
class QuerySet:
    """Queries and their judgments over a collection's corpus: one official split
    (``data.splits.{train,dev,test}``), from an ir_datasets id or a local queries + qrels pair."""

    source: str
    fingerprint: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    docs_namespace: str | None = None  # ir_datasets' corpus name (e.g. beir/scifact), to match the corpus
    notes: list[str] = field(default_factory=list)


def docs_namespace(dataset_id: str) -> str | None:
    """The corpus an ir_datasets id's documents belong to (``beir/scifact/test`` -> ``beir/scifact``)."""
    import ir_datasets

    try:
        return ir_datasets.docs_parent_id(dataset_id)
    except Exception:  # unknown ids are reported by whoever loads them
        return None


def load_query_set(dataset_id: str | None = None, queries: str | Path | None = None, qrels: str | Path | None = None) -> QuerySet:
    """An ir_datasets id with queries and qrels, or a local ``queries`` (qid<TAB>text) + ``qrels`` (TREC) pair."""
    notes: list[str] = []
    if dataset_id:
        import ir_datasets

        try:
            ds = ir_datasets.load(dataset_id)
        except KeyError:
            raise DataError(f"unknown ir_datasets id {dataset_id!r} (see https://ir-datasets.com)") from None
        missing = [w for w, has in (("queries", ds.has_queries()), ("qrels", ds.has_qrels())) if not has]
        if missing:
            raise DataError(f"ir_datasets id {dataset_id!r} has no {', '.join(missing)}; a split needs queries and qrels")
        qs, qr, dups = _irds_queries_qrels(ds, dataset_id)
        if dups:
            notes.append(f"ir_datasets {dataset_id}: {_plural(len(dups), 'duplicate query id')}, the first occurrence of each kept: "
                         f"{_examples([repr(i) for i in dups])}")
        return QuerySet(f"ir_datasets:{dataset_id}", f"irds:{dataset_id}", qs, qr, docs_namespace(dataset_id), notes)
    if not queries or not qrels:
        raise DataError("a local split needs both queries (qid<TAB>text) and qrels (TREC) files")
    qpath, rpath = Path(queries).expanduser(), Path(qrels).expanduser()
    if not rpath.is_file():
        raise DataError(f"qrels file not found: {rpath}")
    qs = read_queries_tsv(qpath, notes)
    _check_text(rpath, notes)
    qr = read_qrels(rpath)
    fp = "local:" + files_digest([qpath, rpath])
    return QuerySet(f"{qpath.resolve()} + {rpath.resolve()}", fp, qs, qr, None, notes)


def add_query_set(coll: Collection, qs: QuerySet) -> None:
    """Merge a split's queries and judgments into ``coll`` (the split's own win for its query ids) and
    extend the fingerprint, so caches keyed by it (tokens, first-stage runs) see the added queries."""
    coll.queries.update(qs.queries)
    for q in qs.queries:
        if q in qs.qrels:
            coll.qrels[q] = dict(qs.qrels[q])
    coll.fingerprint += "+" + qs.fingerprint
    coll.notes.extend(qs.notes)


def load_collection(cfg) -> Collection:
    """Build a :class:`Collection` from the ``data`` config group."""
    fields = list(cfg.get("fields") or ("title", "text"))
    name = cfg.get("name")
    if cfg.get("path"):
        return load_local(cfg.path, fields, name=name)
    if not cfg.get("id"):
        raise DataError("data: set data.id (an ir_datasets id) or data.path (a directory with corpus.jsonl, queries.tsv, qrels.txt)")
    return load_irds(str(cfg.id), fields, name=name)
