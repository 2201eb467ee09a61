"""``box2mask train``: ROS-SAM from official SAM + HQ-SAM checkpoints; ``box2mask train export``."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import console, err_console, print_every, progress_bar, run_safely
from box2mask.cli._flags import (
    DATASET_OPT,
    LOG_FLAGS,
    ROOT,
    RUN_PANEL,
    DebugOption,
    Flag,
    group_callback,
    with_flags,
)

train_app = typer.Typer(
    help="Train ROS-SAM (SAM + LoRA + HQ decoder) on a dataset with ground-truth masks, or on a "
    "job's reviewed masks (--data JOB).",
    no_args_is_help=True,
    invoke_without_command=True,
)
_DATA = "Data"
_OPT = "Optimisation"
_AUG = "Augmentation"

#: train's options, by TrainOptions field name (``opt`` and ``val_opt`` are its
#: ``adapter_options`` and ``val_options``); the CLI defaults are the paper's recipe
TRAIN_FLAGS = {
    "dataset": Flag(
        str | None,
        "Dataset adapter with ground-truth masks (rossam, satmtb --opt source=seg, coco).",
        panel=_DATA,
        short="-d",
    ),
    "root": ROOT,
    "opt": DATASET_OPT,
    "data": Flag(
        list[Path] | None,
        "Training data from a box2mask job folder: the masks the job holds, the objects a person "
        "reviewed or corrected first (imported from CVAT or Label Studio, decided in qa "
        "apply); repeatable, with or without --dataset.",
        panel=_DATA,
        metavar="JOB",
    ),
    "reviewed_only": Flag(
        bool,
        "Of --data jobs, only the objects a person reviewed or corrected (not the model's own).",
        False,
        panel=_DATA,
    ),
    "val_opt": Flag(
        list[str] | None,
        "Validation data: dataset options KEY=VALUE over --opt (e.g. split=val); repeatable.",
        panel=_DATA,
        metavar="KEY=VALUE",
    ),
    "val_fraction": Flag(
        float,
        "Hold out this share of the sequences for validation (instead of --val-opt).",
        0.0,
        panel=_DATA,
    ),
    "val_max_frames": Flag(int, "Validate on at most this many frames.", 200, panel=_DATA),
    "sam": Flag(Path | None, "Official SAM checkpoint (sam_vit_{b,l,h}_*.pth)."),
    "hq": Flag(Path | None, "Official HQ-SAM checkpoint of the same ViT (sam_hq_vit_*.pth)."),
    "out": Flag(
        Path | None,
        "Run folder (checkpoints, metrics, model.safetensors); a run there is resumed.",
        short="-o",
    ),
    "lora_rank": Flag(
        int, "LoRA rank on q and v (the authors' 512; clamped to the ViT width).", 512
    ),
    "epochs": Flag(int, "Epochs.", 24, panel=_OPT),
    "lr": Flag(float, "AdamW learning rate.", 1e-3, panel=_OPT),
    "weight_decay": Flag(float, "AdamW weight decay.", 0.0, panel=_OPT),
    "schedule": Flag(str, "step | cosine | none.", "step", panel=_OPT),
    "lr_drop_epochs": Flag(
        int, "step schedule: multiply the lr by --lr-gamma every this many epochs.", 10, panel=_OPT
    ),
    "lr_gamma": Flag(float, "step schedule factor.", 0.1, panel=_OPT),
    "warmup_steps": Flag(int, "Linear warm-up optimizer steps.", 0, panel=_OPT),
    "batch_size": Flag(int, "Images per micro-batch per process.", 1, panel=_OPT),
    "grad_accum": Flag(int, "Micro-batches per optimizer step.", 1, panel=_OPT),
    "steps_per_epoch": Flag(
        int | None, "Cap on optimizer steps per epoch (quick runs).", panel=_OPT
    ),
    "view": Flag(
        str, "frame (whole frame + LSJ, the paper) | crop (inference crops).", "frame", panel=_DATA
    ),
    "exclude_classes": Flag(
        str, "Comma-separated classes left out ('' for none).", "car", panel=_DATA
    ),
    "frame_fraction": Flag(
        float, "Fixed random share of each sequence's frames (the paper: 0.25).", 0.25, panel=_DATA
    ),
    "max_objects": Flag(int, "Prompts per image (frame view).", 16, panel=_DATA),
    "augment": Flag(bool, "Rotation + large-scale jittering.", True, panel=_AUG),
    "lsj_scale": Flag(str, "LSJ scale range MIN,MAX.", "0.1,4.0", panel=_AUG),
    "rotate_prob": Flag(float, "Probability of a random rotation.", 0.5, panel=_AUG),
    "max_angle": Flag(float, "Rotation angle range ±degrees.", 180.0, panel=_AUG),
    "seed": Flag(int, "Seed of every random choice.", 0),
    "device": Flag(
        str, "auto | cpu | cuda | cuda:N (torchrun: the local rank's GPU).", "auto", panel=RUN_PANEL
    ),
    "precision": Flag(
        str, "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16.", "auto", panel=RUN_PANEL
    ),
    "workers": Flag(int, "DataLoader worker processes.", 2, panel=RUN_PANEL),
    "overwrite": Flag(
        bool, "Start afresh in a run folder that holds a run.", False, panel=RUN_PANEL
    ),
    "dry_run": Flag(
        bool,
        "Print parameter counts per part and write augmented samples to RUN/samples/; no training.",
        False,
        panel=RUN_PANEL,
    ),
    "pictures": Flag(int, "--dry-run: how many samples to draw.", 4, panel=RUN_PANEL),
    "log_every": Flag(
        int, "A line in RUN/metrics.jsonl every N optimizer steps.", 10, panel=RUN_PANEL
    ),
    **LOG_FLAGS,
}


def _floats(text: str, option: str) -> tuple[float, float]:
    from box2mask.errors import UsageError

    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} takes MIN,MAX, got {text!r}") from None
    return a, b


@train_app.callback()
@group_callback
@with_flags(TRAIN_FLAGS)
def train_command(given: dict[str, Any]) -> None:
    """Train ROS-SAM; a run already in --out is resumed (same options) from its last epoch."""
    debug = bool(given["debug"])

    def build() -> Any:
        from box2mask.errors import UsageError
        from box2mask.options import parse_key_values
        from box2mask.train.loop import TrainOptions

        missing = [f"--{n}" for n in ("sam", "hq", "out") if not given[n]]
        if not given["dataset"] and not given["data"]:
            missing.insert(0, "--dataset or --data")
        if missing:
            raise UsageError(f"{', '.join(missing)} required")
        fields = {f.name for f in dataclasses.fields(TrainOptions)}
        val_opt, exclude = given["val_opt"], given["exclude_classes"]
        kwargs = {
            **{k: v for k, v in given.items() if k in fields},
            "adapter_options": parse_key_values(given["opt"] or []),
            "val_options": parse_key_values(val_opt, "--val-opt") if val_opt else None,
            "exclude_classes": tuple(c.strip() for c in exclude.split(",") if c.strip()),
            "lsj_scale": _floats(given["lsj_scale"], "--lsj-scale"),
            "data": tuple(given["data"] or ()),
        }
        return TrainOptions(**kwargs)

    options = run_safely(build, debug)
    if given["dry_run"]:
        from box2mask.train.loop import dry_run

        res = run_safely(lambda: dry_run(options, given["pictures"]), debug)
        table = Table(title=f"ROS-SAM parameters (LoRA rank {res.lora_rank})")
        table.add_column("part")
        table.add_column("parameters", justify="right")
        table.add_column("trained", justify="center")
        for part, trained in (("lora", "hq steps"), ("last_block", "hq steps"), ("hq_decoder", "hq steps"),
                              ("sam_decoder", "sam steps"), ("frozen", "no")):  # fmt: skip
            table.add_row(part, f"{res.parameter_counts[part]:,}", trained)
        table.add_row("trainable", f"{res.parameter_counts['trainable']:,}", "")
        table.add_row("total", f"{res.parameter_counts['total']:,}", "")
        console.print(table)
        console.print(
            f"train frames {res.train_frames}, samples per epoch {res.train_samples}, "
            f"validation frames {res.val_frames}"
        )
        for p in res.pictures:
            console.print(escape(f"wrote {p}"))
        raise typer.Exit(0)
    result = run_safely(lambda: _run_with_progress(options), debug)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 writes the model, and reports
    if result.model_path is not None:
        console.print(escape(f"model: {result.model_path}"))
    else:
        console.print(f"stopped after epoch {result.epochs_done}; run the same command to resume")


def _run_with_progress(options: Any) -> Any:
    from box2mask.train.loop import train

    if int(os.environ.get("RANK", "0")) != 0 or not err_console.is_terminal:
        say = print_every(30)

        def plain(p: Any) -> None:
            if p.event == "epoch":
                m = p.metrics
                say(
                    f"epoch {m['epoch']}/{p.epochs} loss_hq {m['loss_hq']:.4f} loss_sam {m['loss_sam']:.4f} "
                    f"val_iou {m.get('val_iou', math.nan):.4f} val_biou {m.get('val_biou', math.nan):.4f}",
                    force=True,
                )
            elif p.event == "step":
                say(
                    f"epoch {p.epoch + 1} step {p.step_in_epoch}/{p.steps_per_epoch} {p.phase} loss {p.loss:.4f}"
                )

        return train(options, progress=plain)
    with progress_bar("{task.fields[info]}") as bar:
        task = bar.add_task("epoch", total=None, info="")

        def update(p: Any) -> None:
            if p.event == "start":
                bar.update(
                    task,
                    total=p.steps_per_epoch,
                    completed=0,
                    description=f"epoch {p.epoch + 1}/{p.epochs}",
                )
            elif p.event == "step":
                bar.update(task, completed=p.step_in_epoch, description=f"epoch {p.epoch + 1}/{p.epochs}",
                           info=f"{p.phase} loss {p.loss:.4f} lr {p.lr:.2e}")  # fmt: skip
            elif p.event == "validate":
                bar.update(task, info="validating")
            elif p.event == "epoch":
                m = p.metrics
                bar.console.print(
                    f"epoch {m['epoch']}: loss hq {m['loss_hq']:.4f} sam {m['loss_sam']:.4f}, "
                    f"val IoU {m.get('val_iou', math.nan):.4f} BIoU {m.get('val_biou', math.nan):.4f}"
                )
                bar.update(task, completed=0)

        return train(options, progress=update)


@train_app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="Run folder (or a ROS-SAM .safetensors file).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Destination .safetensors.")],
    which: Annotated[
        str, typer.Option(help="model (final) | best (best validation IoU).")
    ] = "model",
    debug: DebugOption = False,
) -> None:
    """Write the run's model with LoRA folded into the qkv weights, for inference."""
    from box2mask.train.export import export_folded

    path = run_safely(lambda: export_folded(run, out, which), debug)
    console.print(escape(f"wrote {path}"))


app.add_typer(train_app, name="train")
