"""Rich progress bars for long work (indexing, tokenizing, encoding, reranking).

Bars go to stderr and are disabled with ``RANKEXP_PROGRESS=0`` (tests set it). Labels print literally
(markup escaped, no emoji codes).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("RANKEXP_PROGRESS", "1") not in ("0", "false", "no")


def _literal(description: str) -> str:
    """The bar's label is rich markup (``[bold blue]{description}``): escape any ``[`` in it."""
    from rich.markup import escape

    return escape(description)


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, emoji=False),
        transient=False,
        disable=not enabled(),
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _progress() as prog:
        task = prog.add_task(_literal(description), total=total)
        for item in items:
            yield item
            prog.advance(task)


@contextmanager
def task(description: str, total: int | None):
    """A bar advanced by hand: ``with task("reranking", n) as advance: advance(k)``."""
    with _progress() as prog:
        tid = prog.add_task(_literal(description), total=total)
        yield lambda k=1: prog.advance(tid, k)
