"""``rankexp data list|info``."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from rankexp.cli._common import Debug, console, handled, quiet_libraries

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_cmd(debug: Debug = False) -> None:
    """Collections with a config (data=NAME); any ir_datasets id works with data=irds data.id=ID."""
    with handled(debug):
        from omegaconf import OmegaConf

        from rankexp.config.compose import CONF_DIR

        table = Table(title="collections (data=NAME)")
        for col in ("name", "source", "fields", "split dev/test (seed)", "about"):
            table.add_column(col)
        for f in sorted((CONF_DIR / "data").glob("*.yaml")):
            cfg = OmegaConf.load(f)
            about = " ".join(l.lstrip("# ").strip() for l in f.read_text().splitlines() if l.startswith("#"))
            source = f"local: {cfg.path}" if cfg.get("path") else f"ir_datasets: {cfg.get('id') if cfg.get('id') not in (None, '???') else '<data.id>'}"
            if f.stem == "local":
                source = "local: <data.path>"
            split = cfg.get("split", {})
            table.add_row(f.stem, source, ",".join(cfg.get("fields") or []), f"{split.get('dev')}/{split.get('test')} ({split.get('seed')})", about)
        console.print(table)


@app.command()
def info(
    name: str = typer.Argument("vaswani", help="A data config name (vaswani), or 'irds'/'local' with overrides."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Extra overrides, e.g. data.path=../shared/data/scifact"),
    debug: Debug = False,
) -> None:
    """Document/query/qrels counts, relevance grades and the train/dev/test split sizes."""
    with handled(debug):
        quiet_libraries()
        from rankexp import api
        from rankexp.data.collection import load_collection
        from rankexp.data.splits import resolve_splits

        ovr = list(overrides or [])
        if "=" in name:  # `rankexp data info data.path=DIR`
            ovr, name = [name, *ovr], "local"
        cfg = api.compose([f"data={name}", *ovr])
        coll = load_collection(cfg.data)
        stats = coll.stats()  # the collection's own queries, before any official split set is merged in
        split, record = resolve_splits(cfg.data, coll)
        table = Table(title=f"{coll.name}  ({coll.source})", show_header=False)
        table.add_column("key")
        table.add_column("value", justify="right")
        for k, v in stats.items():
            table.add_row(k.replace("_", " "), str(v))
        table.add_row("split train/dev/test", f"{len(split['train'])}/{len(split['dev'])}/{len(split['test'])} (seed {cfg.data.split.seed})")
        for part, rule in record["rules"].items():
            if not rule.startswith("random"):
                table.add_row(f"split {part}", rule)
        lengths = sorted(len(t.split()) for t in coll.docs.values())
        table.add_row("doc length (words) median / p90", f"{lengths[len(lengths) // 2]} / {lengths[int(len(lengths) * 0.9)]}")
        for note in coll.notes:
            table.add_row("note", note)
        console.print(table)
