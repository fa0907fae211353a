"""Shared CLI pieces: option aliases, error handling, quiet library logging, the console."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Annotated, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape  # noqa: F401  (re-exported for the command modules)
from rich.text import Text

from rankexp.utils.quiet import quiet_libraries as quiet_libraries  # (sweep members quiet the same libraries)

# emoji=False: user text such as ``corpus.jsonl:100: bad`` must not turn ``:100:`` into an emoji.
# Text that comes from the user (messages, paths, ids) goes through ``escape`` (or a rich ``Text``)
# so ``[bold]`` in a path prints literally.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")]
Overrides = Annotated[Optional[List[str]], typer.Argument(help="Hydra overrides, e.g. data=cranfield trainer.max_steps=200 seed=2", show_default=False)]
OVERRIDE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}

_state = {"debug": False}


def set_debug(flag: bool, reset: bool = False) -> None:
    _state["debug"] = flag if reset else (_state["debug"] or flag)


def debugging() -> bool:
    return _state["debug"] or os.environ.get("RANKEXP_DEBUG", "") not in ("", "0", "false")


def print_error(message: str, label: str = "error", hint: str = "") -> None:
    """``<label>: <message>`` on stderr, one line; the message is printed literally (no markup, no emoji)."""
    line = Text.assemble((f"{label}:", "bold red"), " ", message)
    if hint:
        line.append(" " + hint, style="dim")
    err_console.print(line, highlight=False, soft_wrap=True)


class ConsoleWarnings(logging.Handler):
    """rankexp's own warnings (input anomalies, fallbacks) as ``warning: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = Text.assemble(("warning:", "yellow"), " ", " ".join(record.getMessage().splitlines()))
            err_console.print(line, highlight=False, soft_wrap=True)
        except Exception:  # pragma: no cover - never let a warning break a run
            self.handleError(record)


def show_warnings() -> None:
    """Route ``rankexp.*`` log warnings to the console (once per process)."""
    root = logging.getLogger("rankexp")
    if not any(isinstance(h, ConsoleWarnings) for h in root.handlers):
        root.addHandler(ConsoleWarnings(logging.WARNING))


@contextmanager
def handled(debug: bool = False) -> Iterator[None]:
    """Map errors to one red line and a non-zero exit; tracebacks only with --debug."""
    from rankexp.errors import RankexpError, one_line

    set_debug(debug)
    show_warnings()
    try:
        yield
    except typer.Exit:
        raise
    except RankexpError as e:
        if debugging():
            raise
        print_error(one_line(e), getattr(e, "label", "error"))
        raise typer.Exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise typer.Exit(130)
    except Exception as e:
        if debugging():
            raise
        print_error(f"{type(e).__name__}: {one_line(e)}", hint="(--debug for the traceback)")
        raise typer.Exit(1)
    except BaseException as e:  # rankexp.tracking.lifecycle.Interrupted: SIGTERM/SIGINT -> 143/130, one line
        if type(e).__name__ != "Interrupted" or debugging():
            raise
        detail = f" ({e.detail})" if getattr(e, "detail", "") else ""
        print_error(f"{e.signame}{detail}; the run is marked failed: interrupted; run the same command again to resume",
                    label="interrupted")
        raise typer.Exit(e.exit_code)


def all_overrides(overrides: Optional[List[str]], ctx: typer.Context) -> list[str]:
    return list(overrides or []) + list(ctx.args or [])
