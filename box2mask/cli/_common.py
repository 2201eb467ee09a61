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


#: help panels shared by convert and eval
GEOM_PANEL = "Crop geometry"
SMALL_PANEL = "Small objects"
RUN_PANEL = "Running"

# Options that convert and eval take with one meaning: declared once here.
CheckpointOption = Annotated[
    str | None,
    typer.Option(help="Checkpoint path or registry name (see `box2mask weights list`)."),
]

SequencesOption = Annotated[
    list[str] | None, typer.Option(help="Only these sequences (repeat or comma-separate).")
]

ClassesOption = Annotated[list[str] | None, typer.Option(help="Only objects of these categories.")]

BatchSizeOption = Annotated[
    int | None,
    typer.Option(help="Crops per encoder batch (default: 4).", rich_help_panel=RUN_PANEL),
]

CropSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Minimum crop side in frame pixels (default: 512).", rich_help_panel=GEOM_PANEL
    ),
]

ContextOption = Annotated[
    float | None,
    typer.Option(
        help="Crop side >= context × box long side (default: 1.25).", rich_help_panel=GEOM_PANEL
    ),
]

WindowOption = Annotated[
    str | None,
    typer.Option(
        help="centred (box2mask) | clamped (the authors' code) (default: centred).",
        rich_help_panel=GEOM_PANEL,
    ),
]

InterpolationOption = Annotated[
    str | None,
    typer.Option(
        help="bicubic | bilinear crop upsampling (default: bicubic).", rich_help_panel=GEOM_PANEL
    ),
]

ThresholdOption = Annotated[
    float | None,
    typer.Option(help="Mask logit threshold (default: 0).", rich_help_panel=GEOM_PANEL),
]

HqTokenOnlyOption = Annotated[
    bool | None,
    typer.Option("--hq-token-only", help="hq-sam: the HQ mask alone instead of SAM + HQ summed."),
]

BoxFillAreaOption = Annotated[
    float | None,
    typer.Option(
        help="Boxes smaller than this many px² get box masks (default: 0).",
        rich_help_panel=SMALL_PANEL,
    ),
]

ClipToObbOption = Annotated[
    bool | None,
    typer.Option("--clip-to-obb", help="Clip model masks to the oriented box (OOTB, SAT-MTB OBB)."),
]

WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Threads decoding frames and cutting crops (default: 2).", rich_help_panel=RUN_PANEL
    ),
]
