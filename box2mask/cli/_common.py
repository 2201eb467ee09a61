"""What every subcommand shares: error handling, consoles, logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from box2mask.errors import Box2MaskError

T = TypeVar("T")

#: ``--root``, as convert, eval and viz take it
RootOption = Annotated[
    Path | None, typer.Option(help="Dataset root folder (default: $BOX2MASK_DATA/<dataset>).")
]
#: ``--opt KEY=VALUE`` (repeatable), the dataset adapter's options
DatasetOptOption = Annotated[
    list[str] | None,
    typer.Option("--opt", help="Dataset option KEY=VALUE (see `box2mask datasets`); repeatable."),
]


def _console(stderr: bool = False) -> Console:
    """A rich console; piped into a file or a CI log it is 160 columns wide (rich's
    80 would clip the eval and profile tables), and ``COLUMNS`` still wins."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, width=wide)


console = _console()
err_console = _console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    """Log lines through rich on a terminal, plain lines otherwise."""
    level = logging.INFO if verbose else logging.WARNING
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger("box2mask")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_safely(fn: Callable[[], T], debug: bool = False) -> T:
    """Run ``fn``; a :class:`Box2MaskError` becomes one red line and its exit code.

    Anything else is a bug: one line saying so (the traceback with ``--debug``), exit 1.
    ``KeyboardInterrupt`` exits 130.
    """
    try:
        return fn()
    except Box2MaskError as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (run again with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
