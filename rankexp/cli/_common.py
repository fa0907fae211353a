"""Shared CLI pieces: option aliases, error handling, quiet library logging, the console."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from typing import Annotated, Iterator, List, Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

Debug = Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")]
Overrides = Annotated[Optional[List[str]], typer.Argument(help="Hydra overrides, e.g. data=cranfield trainer.max_steps=200 seed=2", show_default=False)]
OVERRIDE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}

_state = {"debug": False}


def set_debug(flag: bool, reset: bool = False) -> None:
    _state["debug"] = flag if reset else (_state["debug"] or flag)


def debugging() -> bool:
    return _state["debug"] or os.environ.get("RANKEXP_DEBUG", "") not in ("", "0", "false")


def quiet_libraries(lightning: bool = False) -> None:
    """Keep the terminal for rankexp's own output: library chatter to error level.

    ``lightning=True`` imports Lightning first, since it resets its own log level on import.
    """
    if lightning:
        import pytorch_lightning  # noqa: F401
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers", "ir_datasets",
                 "bm25s", "wandb", "urllib3", "filelock", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (".*does not have many workers.*", ".*num_workers.*", ".*LeafSpec.*", ".*is deprecated.*",
                    ".*The number of training batches.*", ".*Checkpoint directory.*exists.*", ".*tensorboardX.*",
                    ".*predict_dataloader.*", ".*Trying to infer the `batch_size`.*", ".*sync_dist=True.*"):
        warnings.filterwarnings("ignore", pattern)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass


@contextmanager
def handled(debug: bool = False) -> Iterator[None]:
    """Map errors to one red line and a non-zero exit; tracebacks only with --debug."""
    from rankexp.errors import RankexpError, one_line

    set_debug(debug)
    try:
        yield
    except typer.Exit:
        raise
    except RankexpError as e:
        if debugging():
            raise
        err_console.print(f"[bold red]error:[/] {one_line(e)}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        raise typer.Exit(130)
    except Exception as e:
        if debugging():
            raise
        err_console.print(f"[bold red]error:[/] {type(e).__name__}: {one_line(e)} [dim](--debug for the traceback)[/]",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def all_overrides(overrides: Optional[List[str]], ctx: typer.Context) -> list[str]:
    return list(overrides or []) + list(ctx.args or [])
