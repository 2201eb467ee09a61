"""Command-line options as data: one :class:`Flag` per option, one table per command.

An option's type, default, help text and help panel are written once, in the
table of the command that takes it (``CONVERT_FLAGS`` in convert.py,
``TRAIN_FLAGS`` in train.py ...), or here when several commands take it with
one meaning (:data:`RUN_FLAGS` of convert and eval, ``--root``, ``--verbose``).
:func:`with_flags` turns the tables into the typer parameters of a command,
so ``--help`` lists them as if declared in its signature, in table order.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from box2mask.choices import Interpolation, Precision, Window
from box2mask.cli._common import err_console, setup_logging


@dataclass(frozen=True)
class Flag:
    """One command-line option: the type of its value, its default, help text and help panel.

    Its name on the command line is its key in a table with ``_`` as ``-``
    (``batch_size`` is ``--batch-size``), or ``name`` where that differs;
    ``short`` adds a one-letter name (``-o``). A ``bool`` option is a switch:
    ``--strict`` turns it on, and one that is on by default also gets
    ``--no-augment``. A default of ``None`` means "not given", so that
    ``--config`` can set the option.

    ``hidden``: left out of ``--help``: a former name kept for one release
    (qa's ``--report``, now ``--out``), which the command maps onto the current
    one with :func:`take_alias`; the naming rule is in docs/extending.md,
    "Command-line names".
    """

    type: Any
    help: str
    default: Any = None
    panel: str | None = field(default=None, kw_only=True)
    short: str | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    metavar: str | None = field(default=None, kw_only=True)
    hidden: bool = field(default=False, kw_only=True)

    def cli_name(self, key: str) -> str:
        """The option's name on the command line (``--batch-size``)."""
        return self.name or "--" + key.replace("_", "-")

    def option(self, key: str) -> Any:
        """The ``typer.Option`` of this flag under ``key``, for ``Annotated[type, option]``."""
        name = self.cli_name(key)
        if self.type is bool and self.default is True:
            name += f"/--no-{name[2:]}"
        names = (name, self.short) if self.short else (name,)
        return typer.Option(
            *names,
            help=self.help,
            rich_help_panel=self.panel,
            metavar=self.metavar,
            hidden=self.hidden,
        )

    def parameter(self, key: str) -> inspect.Parameter:
        """The keyword parameter ``key`` that typer reads as this option."""
        return inspect.Parameter(
            key,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[self.type, self.option(key)],
        )


def given_value(value: Any) -> bool:
    """Whether an option's value says it was given (not ``None``, ``False`` or empty)."""
    return value is not None and value is not False and value != [] and value != ()


def take_alias(old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """The value of an option that may be given under its former, hidden name ``old``
    (now ``new``): that one says so on stderr; both names at once is a :class:`UsageError`."""
    from box2mask.errors import UsageError

    if not given_value(old_value):
        return new_value
    if given_value(new_value):
        raise UsageError(f"{old} is the former name of {new}: give {new} only")
    warn_renamed(old, new)
    return old_value


def warn_renamed(old: str, new: str) -> None:
    """Say on stderr that ``old`` is now ``new`` (the old name goes in the next release)."""
    err_console.print(
        f"[yellow]warning:[/] {escape(old)} is now {escape(new)}; the old name still works "
        "in this release only",
        highlight=False,
        soft_wrap=True,
    )


def with_flags(
    *tables: dict[str, Flag],
) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[..., Any]]:
    """Give a typer command the options of ``tables``, in their order.

    The command takes one parameter, ``given``: the value of every option by its
    key in the tables (the flag's default where not given, lists as given).
    When ``verbose`` is among them, logging is set up first (``--verbose``).
    """
    flags: dict[str, Flag] = {}
    for table in tables:
        twice = flags.keys() & table.keys()
        if twice:
            raise ValueError(f"options declared twice: {sorted(twice)}")
        flags.update(table)
    params = [flag.parameter(key) for key, flag in flags.items()]

    def decorate(command: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(**given: Any) -> Any:
            if "verbose" in given:
                setup_logging(bool(given["verbose"]))
            return command(given)

        # typer reads the options from the signature and its annotations
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


def group_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """The callback of a command group that also runs as a command (``box2mask train``,
    ``box2mask qa``): skipped when a subcommand (``train export``, ``qa apply``) is
    invoked instead. The wrapper takes the group's ``ctx``; ``callback`` does not."""
    sig = inspect.signature(callback)
    ctx_param = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    @functools.wraps(callback)
    def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
        if ctx.invoked_subcommand is not None:
            return None
        return callback(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=[ctx_param, *sig.parameters.values()])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {"ctx": typer.Context, **callback.__annotations__}
    return wrapper


#: help panels shared by convert, eval and train
GEOM_PANEL = "Crop geometry"
SMALL_PANEL = "Small objects"
RUN_PANEL = "Running"

ROOT = Flag(Path | None, "Dataset root folder (default: $BOX2MASK_DATA/<dataset>).")
DATASET_OPT = Flag(
    list[str] | None,
    "Dataset option KEY=VALUE (see `box2mask datasets`); repeatable.",
    metavar="KEY=VALUE",
)

#: ``--verbose`` and ``--debug``, the last options of every command that runs something
LOG_FLAGS = {
    "verbose": Flag(bool, "Log more.", False, short="-v"),
    "debug": Flag(bool, "Show tracebacks.", False),
}

#: the same options, for a command that declares its options in its signature (viz, merge ...)
RootOption = Annotated[Path | None, ROOT.option("root")]
DatasetOptOption = Annotated[list[str] | None, DATASET_OPT.option("opt")]
VerboseOption = Annotated[bool, LOG_FLAGS["verbose"].option("verbose")]
DebugOption = Annotated[bool, LOG_FLAGS["debug"].option("debug")]

#: the options that convert and eval take with one meaning, by ConvertOptions field name
#: (``opt`` is the adapter's ``--opt KEY=VALUE``, ``config`` a YAML file of options)
RUN_FLAGS: dict[str, Flag] = {
    "root": ROOT,
    "opt": DATASET_OPT,
    "model": Flag(
        str | None,
        "A model (see `box2mask weights list`: ros-sam, hq-sam, sam, sam2, lite, classical, "
        "grabcut, box, ellipse, obb) or auto: the SAM-family model whose weights are present, "
        "else lite (its weights ship with box2mask) (default: auto).",
    ),
    "checkpoint": Flag(
        str | None, "Checkpoint path or registry name (see `box2mask weights list`)."
    ),
    "config": Flag(
        Path | None,
        "YAML file of convert options, names as here (batch_size or batch-size; opt: a mapping "
        "for --opt); command-line options win.",
    ),
    "sequences": Flag(
        list[str] | None, "Only these sequences (repeat or comma-separate).", metavar="NAMES"
    ),
    "classes": Flag(list[str] | None, "Only objects of these categories.", metavar="NAMES"),
    "batch_size": Flag(int | None, "Crops per encoder batch (default: 4).", panel=RUN_PANEL),
    "crop_size": Flag(
        int | None, "Minimum crop side in frame pixels (default: 512).", panel=GEOM_PANEL
    ),
    "context": Flag(
        float | None, "Crop side >= context × box long side (default: 1.25).", panel=GEOM_PANEL
    ),
    "window": Flag(
        str | None,
        f"{' | '.join(Window.values())}: centred on the box (box2mask) or kept inside the frame "
        "(the authors' code) (default: centred).",
        panel=GEOM_PANEL,
    ),
    "interpolation": Flag(
        str | None,
        f"{' | '.join(Interpolation.values())} crop upsampling (default: bicubic).",
        panel=GEOM_PANEL,
    ),
    "threshold": Flag(float | None, "Mask logit threshold (default: 0).", panel=GEOM_PANEL),
    "hq_token_only": Flag(bool | None, "hq-sam: the HQ mask alone instead of SAM + HQ summed."),
    "box_fill_classes": Flag(
        str | None,
        "Comma-separated classes given box masks without the model, and scored as boxes by eval "
        "(default: the model's: car for the SAM family and the weight-free models, none for "
        "lite); '' for none.",
        panel=SMALL_PANEL,
    ),
    "box_fill_area": Flag(
        float | None,
        "Boxes smaller than this many px² get box masks (default: 0).",
        panel=SMALL_PANEL,
    ),
    "clip_to_obb": Flag(bool | None, "Clip model masks to the oriented box (OOTB, SAT-MTB OBB)."),
    "precision": Flag(
        str | None,
        f"{' | '.join(Precision.values())}: auto is bf16 on CUDA, fp32 on CPU. On 2-core CPUs "
        "with ViT-B, against the authors' procedure (model-mask IoU): bf16 (needs AMX or "
        "AVX512_BF16) 4.3-4.6x, IoU 0.99 (Xeon), 3.5x (AMD EPYC Zen 4); int8 (int8 encoder "
        "matrix products) 3.9x, IoU 0.987 (Zen 4, VNNI), 1.8-3.0x, IoU 0.986 (Xeon), 2.6x, "
        "IoU 0.981 (EPYC Zen 3, no VNNI); fp32 2.3-2.5x (Xeon), 2.0x (Zen 3), IoU 1.0; see "
        "README and docs/engine.md, Speed (default: auto).",
        panel=RUN_PANEL,
    ),
    "workers": Flag(
        int | None,
        "Threads decoding frames and cutting crops; eval --predictions: processes scoring "
        "sequences (default: 2).",
        panel=RUN_PANEL,
    ),
    "temporal": Flag(
        str | None,
        "off | propagate: sam2 only, each track's crops as a short video for SAM 2's memory, in "
        "windows of 16 frames (default: off; docs/models.md).",
        panel=RUN_PANEL,
    ),
    "prompt_every": Flag(
        int | None,
        "With --temporal propagate: a track's box is the prompt on every K-th of its frames in a "
        "window, the others are propagated (default: 1).",
        panel=RUN_PANEL,
        metavar="K",
    ),
    **LOG_FLAGS,
}


def gather_options(given: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ConvertOptions keyword arguments of a command line: ``--config`` first, then the
    options given that are ConvertOptions fields (``None``/empty: not given), then ``--opt``
    over the config's adapter options.

    ``drop``: config keys the command does not use (eval drops ``out``, ``formats`` ...).
    """
    from box2mask.options import ConvertOptions, load_config, parse_key_values

    merged = load_config(given["config"]) if given.get("config") else {}
    for key in drop:
        merged.pop(key, None)
    fields = set(ConvertOptions.field_names())
    merged.update({k: v for k, v in given.items() if k in fields and v is not None and v != []})
    if given.get("opt"):
        merged["adapter_options"] = {
            **merged.get("adapter_options", {}),
            **parse_key_values(given["opt"]),
        }
    return merged
