"""``box2mask train``: ROS-SAM from official SAM + HQ-SAM checkpoints; ``box2mask train export``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import (
    DatasetOptOption,
    RootOption,
    console,
    err_console,
    group_callback,
    print_every,
    progress_bar,
    run_safely,
)

train_app = typer.Typer(
    help="Train ROS-SAM (SAM + LoRA + HQ decoder) on a dataset with ground-truth masks.",
    no_args_is_help=True,
    invoke_without_command=True,
)
_DATA = "Data"
_OPT = "Optimisation"
_AUG = "Augmentation"
_RUN = "Running"


def _floats(text: str, option: str) -> tuple[float, float]:
    from box2mask.errors import UsageError

    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} takes MIN,MAX, got {text!r}") from None
    return a, b


@train_app.callback()
@group_callback
def train_command(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset adapter with ground-truth masks (rossam, satmtb --opt source=seg, coco).",
            rich_help_panel=_DATA,
        ),
    ] = None,
    root: RootOption = None,
    opt: DatasetOptOption = None,
    val_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--val-opt",
            help="Validation data: dataset options KEY=VALUE over --opt (e.g. split=val); repeatable.",
            rich_help_panel=_DATA,
        ),
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Hold out this share of the sequences for validation (instead of --val-opt).",
            rich_help_panel=_DATA,
        ),
    ] = 0.0,
    val_max_frames: Annotated[
        int, typer.Option(help="Validate on at most this many frames.", rich_help_panel=_DATA)
    ] = 200,
    sam: Annotated[
        Path | None, typer.Option(help="Official SAM checkpoint (sam_vit_{b,l,h}_*.pth).")
    ] = None,
    hq: Annotated[
        Path | None,
        typer.Option(help="Official HQ-SAM checkpoint of the same ViT (sam_hq_vit_*.pth)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder (checkpoints, metrics, model.safetensors); a run there is resumed.",
        ),
    ] = None,
    lora_rank: Annotated[
        int, typer.Option(help="LoRA rank on q and v (the authors' 512; clamped to the ViT width).")
    ] = 512,
    epochs: Annotated[int, typer.Option(help="Epochs.", rich_help_panel=_OPT)] = 24,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.", rich_help_panel=_OPT)] = 1e-3,
    weight_decay: Annotated[
        float, typer.Option(help="AdamW weight decay.", rich_help_panel=_OPT)
    ] = 0.0,
    schedule: Annotated[
        str, typer.Option(help="step | cosine | none.", rich_help_panel=_OPT)
    ] = "step",
    lr_drop_epochs: Annotated[
        int,
        typer.Option(
            help="step schedule: multiply the lr by --lr-gamma every this many epochs.",
            rich_help_panel=_OPT,
        ),
    ] = 10,
    lr_gamma: Annotated[
        float, typer.Option(help="step schedule factor.", rich_help_panel=_OPT)
    ] = 0.1,
    warmup_steps: Annotated[
        int, typer.Option(help="Linear warm-up optimizer steps.", rich_help_panel=_OPT)
    ] = 0,
    batch_size: Annotated[
        int, typer.Option(help="Images per micro-batch per process.", rich_help_panel=_OPT)
    ] = 1,
    grad_accum: Annotated[
        int, typer.Option(help="Micro-batches per optimizer step.", rich_help_panel=_OPT)
    ] = 1,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(help="Cap on optimizer steps per epoch (quick runs).", rich_help_panel=_OPT),
    ] = None,
    view: Annotated[
        str,
        typer.Option(
            help="frame (whole frame + LSJ, the paper) | crop (inference crops).",
            rich_help_panel=_DATA,
        ),
    ] = "frame",
    exclude_classes: Annotated[
        str,
        typer.Option(help="Comma-separated classes left out ('' for none).", rich_help_panel=_DATA),
    ] = "car",
    frame_fraction: Annotated[
        float,
        typer.Option(
            help="Fixed random share of each sequence's frames (the paper: 0.25).",
            rich_help_panel=_DATA,
        ),
    ] = 0.25,
    max_objects: Annotated[
        int, typer.Option(help="Prompts per image (frame view).", rich_help_panel=_DATA)
    ] = 16,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment/--no-augment", help="Rotation + large-scale jittering.", rich_help_panel=_AUG
        ),
    ] = True,
    lsj_scale: Annotated[
        str, typer.Option(help="LSJ scale range MIN,MAX.", rich_help_panel=_AUG)
    ] = "0.1,4.0",
    rotate_prob: Annotated[
        float, typer.Option(help="Probability of a random rotation.", rich_help_panel=_AUG)
    ] = 0.5,
    max_angle: Annotated[
        float, typer.Option(help="Rotation angle range ±degrees.", rich_help_panel=_AUG)
    ] = 180.0,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    device: Annotated[
        str,
        typer.Option(
            help="auto | cpu | cuda | cuda:N (torchrun: the local rank's GPU).",
            rich_help_panel=_RUN,
        ),
    ] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16.", rich_help_panel=_RUN
        ),
    ] = "auto",
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.", rich_help_panel=_RUN)
    ] = 2,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start afresh in a run folder that holds a run.",
            rich_help_panel=_RUN,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print parameter counts per part and write augmented samples to RUN/samples/; no training.",
            rich_help_panel=_RUN,
        ),
    ] = False,
    pictures: Annotated[
        int, typer.Option(help="--dry-run: how many samples to draw.", rich_help_panel=_RUN)
    ] = 4,
    debug: bool = False,
) -> None:
    """Train ROS-SAM; a run already in --out is resumed (same options) from its last epoch."""

    def build() -> Any:
        from box2mask.errors import UsageError
        from box2mask.options import parse_key_values
        from box2mask.train.loop import TrainOptions

        missing = [
            n
            for n, v in (("--dataset", dataset), ("--sam", sam), ("--hq", hq), ("--out", out))
            if not v
        ]
        if missing:
            raise UsageError(f"{', '.join(missing)} required")
        return TrainOptions(
            dataset=dataset, root=root, adapter_options=parse_key_values(opt or []),
            val_options=parse_key_values(val_opt, "--val-opt") if val_opt else None,
            val_fraction=val_fraction, val_max_frames=val_max_frames, sam=sam, hq=hq, out=out,
            lora_rank=lora_rank, epochs=epochs, lr=lr, weight_decay=weight_decay, schedule=schedule,
            lr_drop_epochs=lr_drop_epochs, lr_gamma=lr_gamma, warmup_steps=warmup_steps,
            batch_size=batch_size, grad_accum=grad_accum, steps_per_epoch=steps_per_epoch, view=view,
            exclude_classes=tuple(c.strip() for c in exclude_classes.split(",") if c.strip()),
            frame_fraction=frame_fraction, max_objects=max_objects, augment=augment,
            lsj_scale=_floats(lsj_scale, "--lsj-scale"), rotate_prob=rotate_prob, max_angle=max_angle,
            seed=seed, device=device, precision=precision, workers=workers, overwrite=overwrite,
        )  # type: ignore[arg-type]  # fmt: skip

    options = run_safely(build, debug)
    if dry_run:
        from box2mask.train.loop import dry_run as do_dry_run

        res = run_safely(lambda: do_dry_run(options, pictures), debug)
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
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Write the run's model with LoRA folded into the qkv weights, for inference."""
    from box2mask.train.export import export_folded

    path = run_safely(lambda: export_folded(run, out, which), debug)
    console.print(escape(f"wrote {path}"))


app.add_typer(train_app, name="train")
