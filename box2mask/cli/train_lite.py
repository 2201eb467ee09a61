"""``box2mask train lite``: train or fine-tune the light model (``--model lite``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from box2mask.cli._common import console, err_console, print_every, progress_bar, run_safely
from box2mask.cli._flags import LOG_FLAGS, RUN_PANEL, Flag, with_flags
from box2mask.cli.train import train_app

_DATA = "Data"
_OPT = "Optimisation"
_MODEL = "Model"

#: train lite's options; the defaults are the recipe of the shipped weights (docs/models.md)
LITE_FLAGS = {
    "dataset": Flag(
        str | None,
        "Training data: a dataset adapter whose frames carry masks (yolo, coco, rossam, satmtb ...).",
        panel=_DATA,
        short="-d",
    ),
    "root": Flag(Path | None, "The dataset's root folder.", panel=_DATA),
    "opt": Flag(list[str] | None, "Dataset option KEY=VALUE; repeatable.", panel=_DATA),
    "data": Flag(
        list[Path] | None,
        "More training data: a box2mask job folder (its reviewed and corrected objects first) "
        "or a COCO JSON file with masks; repeatable.",
        panel=_DATA,
    ),
    "val_dataset": Flag(
        str | None,
        "Development data, measured every --val-every steps, never trained on.",
        panel=_DATA,
    ),
    "val_root": Flag(Path | None, "The development dataset's root folder.", panel=_DATA),
    "val_opt": Flag(
        list[str] | None, "Development dataset option KEY=VALUE; repeatable.", panel=_DATA
    ),
    "source": Flag(
        str,
        "Where the training data comes from (repository@commit, URL), recorded in the checkpoint.",
        "",
        panel=_DATA,
    ),
    "licence": Flag(
        str, "The terms of the training data, recorded in the checkpoint.", "", panel=_DATA
    ),
    "out": Flag(
        Path | None,
        "Run folder (cache, state, model.safetensors); a run there is resumed.",
        short="-o",
    ),
    "init": Flag(
        str | None,
        "Start from a lite checkpoint: a file, or 'lite' for the shipped weights (fine-tuning).",
        panel=_MODEL,
    ),
    "widths": Flag(
        str, "Encoder stage widths (random start only).", "16,24,40,64,96", panel=_MODEL
    ),
    "full": Flag(int, "Width of the full-resolution branch (random start only).", 12, panel=_MODEL),
    "context": Flag(float, "Window side / box long side (random start only).", 1.5, panel=_MODEL),
    "min_side": Flag(int, "Smallest window side, px (random start only).", 16, panel=_MODEL),
    "input_scale": Flag(
        float | None,
        "Input side / window side, before rounding up to 32..128 "
        "(default: the --init file's, else 1.5).",
        panel=_MODEL,
    ),
    "steps": Flag(int, "Optimizer steps.", 15000, panel=_OPT),
    "batch_pixels": Flag(
        int,
        "Input pixels per step (128x48x48: 512 small or 32 large objects).",
        128 * 48 * 48,
        panel=_OPT,
    ),  # fmt: skip
    "lr": Flag(float, "AdamW peak learning rate.", 3e-3, panel=_OPT),
    "weight_decay": Flag(float, "AdamW weight decay.", 1e-4, panel=_OPT),
    "warmup": Flag(int, "Linear warm-up steps.", 300, panel=_OPT),
    "class_balance": Flag(
        float, "Draw a class of n objects with weight n^-this (0: as in the data).", 0.5, panel=_OPT
    ),
    "reviewed_weight": Flag(
        float,
        "Objects a person reviewed or corrected are drawn this many times more often.",
        4.0,
        panel=_OPT,
    ),  # fmt: skip
    "ema": Flag(float, "Weight averaging per step.", 0.999, panel=_OPT),
    "box_jitter": Flag(
        float,
        "Each box edge is moved by a normal step of this share of the box's side "
        "(raise it when your boxes are looser than your masks).",
        0.015,
        panel=_OPT,
    ),
    "seed": Flag(int, "Seeds the weights and every batch.", 0, panel=_OPT),
    "val_every": Flag(
        int, "Measure the development data every this many steps.", 2000, panel=RUN_PANEL
    ),
    "save_every": Flag(int, "Save the resume state every this many steps.", 200, panel=RUN_PANEL),
    "threads": Flag(int, "CPU threads (0: torch's default).", 0, panel=RUN_PANEL),
    "device": Flag(str, "cpu | cuda | cuda:N.", "cpu", panel=RUN_PANEL),
    "overwrite": Flag(
        bool, "Start afresh in a run folder that holds a run.", False, panel=RUN_PANEL
    ),
    **LOG_FLAGS,
}


@train_app.command("lite")
@with_flags(LITE_FLAGS)
def train_lite_command(given: dict[str, Any]) -> None:
    """Train (or fine-tune with --init lite) box2mask's light model; the same command resumes a run."""
    debug = bool(given["debug"])
    options = run_safely(lambda: _options(given), debug)
    result = run_safely(lambda: _run(options, bool(given["overwrite"])), debug)
    console.print(escape(f"model: {result.model}"))
    if result.best is not None:
        console.print(escape(f"best development score: {result.best}"))
    if result.dev:
        table = Table(title=f"development data, step {result.dev.get('step', result.steps)}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key in (
            "objects",
            "per_object_iou",
            "per_object_biou",
            "per_frame_iou",
            "per_frame_biou",
        ):
            table.add_row(key.replace("_", " "), str(result.dev[key]))
        console.print(table)


def _options(given: dict[str, Any]) -> Any:
    from box2mask.errors import UsageError
    from box2mask.models.lite.net import LiteArch
    from box2mask.train.lite.loop import LiteTrainOptions
    from box2mask.train.lite.sources import adapter_source, data_source

    if not given["out"]:
        raise UsageError("--out required (the run folder)")
    sources = []
    if given["dataset"]:
        sources.append(adapter_source(given["dataset"], given["root"], given["opt"] or [],
                                      given["source"], given["licence"]))  # fmt: skip
    elif given["root"] or given["opt"]:
        raise UsageError("--root and --opt describe a --dataset; give --dataset too")
    sources.extend(data_source(p) for p in given["data"] or [])
    if not sources:
        raise UsageError("no training data: give --dataset (with --root) and/or --data")
    val = None
    if given["val_dataset"]:
        val = adapter_source(
            given["val_dataset"], given["val_root"], given["val_opt"] or [], "", ""
        )
    init = None
    if given["init"]:
        from box2mask.runtime import crop_checkpoint

        init = crop_checkpoint(None if given["init"] == "lite" else given["init"])
    try:
        widths = tuple(int(w) for w in given["widths"].split(","))
    except ValueError:
        raise UsageError(
            f"--widths takes comma-separated integers, got {given['widths']!r}"
        ) from None
    if len(widths) < 2 or min(widths) <= 0:
        raise UsageError(f"--widths needs at least two positive widths, got {given['widths']!r}")
    if given["full"] <= 0:
        raise UsageError("--full must be > 0")
    if given["context"] < 1.0 or given["min_side"] < 4:
        raise UsageError("--context must be >= 1 and --min-side >= 4")
    if not 0 <= given["box_jitter"] <= 0.5:
        raise UsageError(f"--box-jitter must be within 0..0.5, got {given['box_jitter']}")
    if given["input_scale"] is not None and not 0.25 <= given["input_scale"] <= 8:
        raise UsageError(f"--input-scale must be within 0.25..8, got {given['input_scale']}")
    keys = ("steps", "batch_pixels", "lr", "weight_decay", "warmup", "seed", "context", "min_side",
            "input_scale", "class_balance", "reviewed_weight", "ema", "val_every", "save_every", "threads", "device")  # fmt: skip
    command = "box2mask " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    describe = {"command": command}
    if given["licence"]:
        describe["licence"] = given["licence"]
    from box2mask.train.lite.samples import AugmentConfig

    return LiteTrainOptions(
        out=Path(given["out"]),
        sources=sources,
        val=val,
        init=init,
        arch=LiteArch(widths=widths, full=int(given["full"])),
        aug=AugmentConfig(box_jitter=float(given["box_jitter"])),
        describe=describe,
        **{k: given[k] for k in keys},
    )


def _run(options: Any, overwrite: bool) -> Any:
    from box2mask.train.lite.loop import train_lite

    total = options.steps
    if not err_console.is_terminal:
        say = print_every(30)

        def plain(rec: dict[str, Any]) -> None:
            kind = rec.get("kind")
            if kind == "cache":
                say(f"cutting objects: {rec['frames']} frames, {rec['objects']} objects")
            elif kind == "step":
                say(f"step {rec['step']}/{total} loss {rec['loss']:.4f} lr {rec['lr']:.2e} "
                    f"{rec['objects_per_s']:.0f} objects/s", force=rec["step"] == total)  # fmt: skip
            elif kind == "dev":
                say(f"step {rec['step']}: development IoU per object {rec['per_object_iou']:.2f}, "
                    f"per frame {rec['per_frame_iou']:.2f}", force=True)  # fmt: skip

        return train_lite(options, overwrite=overwrite, progress=plain)
    with progress_bar("{task.fields[info]}", eta=True) as bar:
        task = bar.add_task("train lite", total=total, info="")

        def update(rec: dict[str, Any]) -> None:
            kind = rec.get("kind")
            if kind == "cache":
                bar.update(task, description="cutting objects",
                           info=f"{rec['frames']} frames, {rec['objects']} objects")  # fmt: skip
            elif kind == "step":
                bar.update(task, completed=rec["step"], description="train lite",
                           info=f"loss {rec['loss']:.4f} {rec['objects_per_s']:.0f} obj/s")  # fmt: skip
            elif kind == "dev":
                bar.console.print(
                    f"step {rec['step']}: development IoU per object {rec['per_object_iou']:.2f}, "
                    f"per frame {rec['per_frame_iou']:.2f}"
                )

        return train_lite(options, overwrite=overwrite, progress=update)
