"""The comparison as data: CSV (one row per system and measure, the long form) and JSON (everything,
``CompareResult.to_dict``)."""

from __future__ import annotations

import csv
import io
import json

from rankexp.eval.compare.model import CompareResult
from rankexp.eval.compare.table import result_rows

__all__ = ["to_csv", "to_json"]


def to_csv(result: CompareResult) -> str:
    rows = result_rows(result)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["system"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(result: CompareResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
