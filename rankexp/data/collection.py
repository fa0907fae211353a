"""Collections: documents, queries and qrels, from an ir_datasets id or from local files.

Local layout (see ``../shared/data/*``)::

    DIR/corpus.jsonl   one JSON object a line: {"doc_id", "title", "text"}
    DIR/queries.tsv    qid<TAB>text, no header
    DIR/qrels.txt      TREC qrels: qid 0 doc_id rel

Relevance follows trec_eval: a judgment with rel >= 1 is relevant; 0 and negative grades
(cranfield's -1) are judged non-relevant.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from rankexp.errors import DataError
from rankexp.utils.hashing import files_digest

log = logging.getLogger(__name__)

LOCAL_FILES = ("corpus.jsonl", "queries.tsv", "qrels.txt")


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


def read_queries_tsv(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"queries file not found: {path}")
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            qid, sep, text = line.rstrip("\n").partition("\t")
            if not sep or not qid.strip():
                raise DataError(f"{path}:{n}: expected 'qid<TAB>text', got {line.strip()[:80]!r}")
            queries[qid.strip()] = text.strip()
    if not queries:
        raise DataError(f"queries file is empty: {path}")
    return queries


def read_corpus_jsonl(path: Path, fields: Sequence[str]) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    docs: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or "doc_id" not in obj:
                raise DataError(f"{path}:{n}: expected an object with 'doc_id', 'title', 'text'")
            docs[str(obj["doc_id"])] = _join_fields([str(obj.get(f) or "") for f in fields])
    if not docs:
        raise DataError(f"corpus file is empty: {path}")
    return docs


def load_local(path: str | Path, fields: Sequence[str] = ("title", "text"), name: str | None = None) -> Collection:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path is not a directory: {root} (expected {', '.join(LOCAL_FILES)} inside)")
    missing = [f for f in LOCAL_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)} (a local collection needs {', '.join(LOCAL_FILES)})")
    docs = read_corpus_jsonl(root / "corpus.jsonl", fields)
    queries = read_queries_tsv(root / "queries.tsv")
    qrels = read_qrels(root / "qrels.txt")
    fp = "local:" + files_digest([root / f for f in LOCAL_FILES]) + ":" + ",".join(fields)
    coll = Collection(name or root.name, fp, docs, queries, qrels, source=str(root.resolve()))
    check_consistency(coll)
    return coll


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
    try:
        docs = {}
        for d in ds.docs_iter():
            values = [getattr(d, f) for f in fields if hasattr(d, f)]
            if not values:
                values = [d.default_text()]
            docs[d.doc_id] = _join_fields(values)
        queries = {q.query_id: _query_text(q) for q in ds.queries_iter()}
        qrels: dict[str, dict[str, int]] = {}
        for qr in ds.qrels_iter():
            qrels.setdefault(qr.query_id, {})[qr.doc_id] = int(qr.relevance)
    except DataError:
        raise
    except Exception as e:  # network or archive problems surface from deep inside ir_datasets
        raise DataError(
            f"ir_datasets could not provide {dataset_id!r}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            " (offline? point IR_DATASETS_HOME at a seeded cache, or use data=local data.path=DIR)"
        ) from e
    coll = Collection(name or dataset_id, f"irds:{dataset_id}:" + ",".join(fields), docs, queries, qrels, source=f"ir_datasets:{dataset_id}")
    check_consistency(coll)
    return coll


def _query_text(q) -> str:
    text = getattr(q, "text", None)
    if text is None:
        text = q.default_text()
    return " ".join(str(text).split())


# ---------------------------------------------------------------- checks
def check_consistency(coll: Collection) -> None:
    """Fail on ids that do not match; note partial mismatches."""
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
        coll.notes.append(f"{len(judged_docs) - len(known_docs)} judged doc ids are not in the corpus")
    if len(known_q) < len(judged_q):
        coll.notes.append(f"{len(judged_q) - len(known_q)} judged query ids have no query text")


def load_collection(cfg) -> Collection:
    """Build a :class:`Collection` from the ``data`` config group."""
    fields = list(cfg.get("fields") or ("title", "text"))
    name = cfg.get("name")
    if cfg.get("path"):
        return load_local(cfg.path, fields, name=name)
    if not cfg.get("id"):
        raise DataError("data: set data.id (an ir_datasets id) or data.path (a directory with corpus.jsonl, queries.tsv, qrels.txt)")
    return load_irds(str(cfg.id), fields, name=name)
