"""What every subcommand shares: error handling, consoles, logging."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from box2mask.choices import Interpolation, Precision, Window
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
        help=f"{' | '.join(Window.values())}: centred on the box (box2mask) or kept inside "
        "the frame (the authors' code) (default: centred).",
        rich_help_panel=GEOM_PANEL,
    ),
]

InterpolationOption = Annotated[
    str | None,
    typer.Option(
        help=f"{' | '.join(Interpolation.values())} crop upsampling (default: bicubic).",
        rich_help_panel=GEOM_PANEL,
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

ModelOption = Annotated[
    str | None,
    typer.Option(
        help="A model (see `box2mask weights list`: ros-sam, hq-sam, sam, sam2, classical, "
        "grabcut, box, ellipse, obb) or auto: the best model whose weights are present, else "
        "the weight-free default (default: auto)."
    ),
]

ConfigOption = Annotated[
    Path | None,
    typer.Option(help="YAML file of convert options (names as here); command-line options win."),
]

TemporalOption = Annotated[
    str | None,
    typer.Option(
        help="off | propagate: sam2 only, each track's crops as a short video for SAM 2's "
        "memory, in windows of 16 frames (default: off; docs/models.md).",
        rich_help_panel=RUN_PANEL,
    ),
]

PromptEveryOption = Annotated[
    int | None,
    typer.Option(
        metavar="K",
        help="With --temporal propagate: a track's box is the prompt on every K-th of its "
        "frames in a window, the others are propagated (default: 1).",
        rich_help_panel=RUN_PANEL,
    ),
]

VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]

BoxFillClassesOption = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated classes given box masks without the model, and scored as boxes by "
        "eval (default: car); '' for none.",
        rich_help_panel=SMALL_PANEL,
    ),
]

PrecisionOption = Annotated[
    str | None,
    typer.Option(
        help=f"{' | '.join(Precision.values())}: auto is bf16 on CUDA, fp32 on CPU. On CPU with "
        "ViT-B, measured against the authors' procedure on a 2-core Xeon: int8 (int8 encoder "
        "matrix products) 2.8x, masks IoU 0.986; bf16 on CPUs with AMX/AVX512_BF16 4.3-4.6x, "
        "IoU 0.99 (fp32: 2.3-2.5x); see docs/engine.md, section Speed (default: auto).",
        rich_help_panel=RUN_PANEL,
    ),
]

#: the options ``convert`` and ``eval`` take with one meaning, by ConvertOptions field
#: name (``opt`` is the adapter's ``--opt KEY=VALUE``); added by :func:`with_run_options`
RUN_OPTIONS: dict[str, Any] = {
    "root": RootOption,
    "opt": DatasetOptOption,
    "model": ModelOption,
    "checkpoint": CheckpointOption,
    "config": ConfigOption,
    "sequences": SequencesOption,
    "classes": ClassesOption,
    "batch_size": BatchSizeOption,
    "crop_size": CropSizeOption,
    "context": ContextOption,
    "window": WindowOption,
    "interpolation": InterpolationOption,
    "threshold": ThresholdOption,
    "hq_token_only": HqTokenOnlyOption,
    "box_fill_classes": BoxFillClassesOption,
    "box_fill_area": BoxFillAreaOption,
    "clip_to_obb": ClipToObbOption,
    "precision": PrecisionOption,
    "workers": WorkersOption,
    "temporal": TemporalOption,
    "prompt_every": PromptEveryOption,
    "verbose": VerboseOption,
    "debug": DebugOption,
}


def with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command the :data:`RUN_OPTIONS`, declared once for convert and eval.

    The command declares its own options and a parameter ``run: dict``; it is
    called with ``run`` holding the shared options' values (``None`` where
    not given, lists as given), keyed by ConvertOptions field name, and with
    logging set up (``--verbose``; ``run["debug"]`` is ``--debug``). typer
    reads the command's signature, so the shared options appear in
    ``--help`` as if declared there.
    """
    sig = inspect.signature(command, eval_str=True)  # the Annotated objects, not strings
    own = [p for p in sig.parameters.values() if p.name != "run"]
    shared = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if name in ("verbose", "debug") else None,
            annotation=kind,
        )
        for name, kind in RUN_OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        run = {name: kwargs.pop(name) for name in RUN_OPTIONS}
        setup_logging(bool(run["verbose"]))
        return command(**kwargs, run=run)

    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **RUN_OPTIONS}
    first = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    wrapper.__signature__ = sig.replace(parameters=[*first, *shared])  # type: ignore[attr-defined]
    return wrapper


def gather_options(
    run: dict[str, Any], own: dict[str, Any], drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The ConvertOptions keyword arguments of a command line: ``--config`` first, then the
    options given (``None``/empty: not given), then ``--opt`` over the config's adapter options.

    ``drop``: config keys the command does not use (eval drops ``out``, ``formats`` ...).
    """
    from box2mask.options import load_config, parse_key_values

    merged = load_config(run["config"]) if run.get("config") else {}
    for key in drop:
        merged.pop(key, None)
    given = {
        **{k: v for k, v in run.items() if k not in ("config", "opt", "verbose", "debug")},
        **own,
    }
    merged.update({k: v for k, v in given.items() if v is not None and v != []})
    if run.get("opt"):
        merged["adapter_options"] = {
            **merged.get("adapter_options", {}),
            **parse_key_values(run["opt"]),
        }
    return merged


def print_every(seconds: float) -> Callable[..., None]:
    """A progress printer for logs and CI (no terminal): ``say(text, force=False)``
    prints ``text`` to stderr when ``force`` or when ``seconds`` have passed since
    the last line, so a week-long job writes a line every few seconds, not one per frame."""
    import time

    last = [-float("inf")]

    def say(text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - last[0] < seconds:
            return
        if not force:  # a forced line (an epoch's, the last frame's) keeps the rhythm
            last[0] = now
        print(text, file=sys.stderr, flush=True)

    return say


def progress_bar(field: str, eta: bool = False, transient: bool = False) -> Any:
    """The rich progress bar of a long command, on stderr: description, bar, done/total,
    the task's ``field`` (a rate, a count), elapsed time and, with ``eta``, the time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(field),
        TimeElapsedColumn(),
    ]
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=err_console, transient=transient)


def group_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """The callback of a command group (``box2mask train``, ``box2mask qa``) that also runs
    as a command.

    It gets ``--verbose`` (logging is set up) and ``--debug`` (passed on as ``debug``;
    the callback declares ``debug: bool = False``), and it is skipped when a
    subcommand (``train export``, ``qa apply``) is invoked instead.
    """
    sig = inspect.signature(callback, eval_str=True)
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in sig.parameters.values()
        if p.name != "debug"
    ]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=kind)
        for name, kind in (("verbose", VerboseOption), ("debug", DebugOption))
    ]

    @functools.wraps(callback)
    def wrapper(**kwargs: Any) -> Any:
        verbose = kwargs.pop("verbose")
        if kwargs["ctx"].invoked_subcommand is not None:
            return None
        setup_logging(bool(verbose))
        return callback(**kwargs)

    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
    wrapper.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    return wrapper
