"""What a report says beside the comparison: its title and the config keys that differ between runs
(shared by the HTML page and the W&B Report)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from rankexp.eval import compare as cmp
from rankexp.tracking.store import Selection, StoredRun

__all__ = ["config_diff", "value_text", "title"]


def config_diff(runs: Sequence[StoredRun]) -> tuple[list[str], list[dict[str, Any]]]:
    """The flattened config keys that differ between ``runs`` (seed included; output paths and
    logging excluded) and one row per run: ``{"run_id", key: value...}``."""
    flats = []
    for r in runs:
        f = cmp.config_identity(r)
        f["seed"] = r.seed
        flats.append(f)
    keys = cmp.differing_keys(flats)
    keys = [k for k in keys if k != "seed"] + (["seed"] if "seed" in keys else [])
    return keys, [{"run_id": r.run_id, **{k: f.get(k, "–") for k in keys}} for r, f in zip(runs, flats)]


def value_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def title(selection: Selection) -> str:
    if len(selection.sweeps) == 1:
        return f"rankexp report: sweep {selection.sweeps[0].name}"
    return f"rankexp report: {len(selection.runs)} runs"
