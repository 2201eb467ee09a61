"""``box2mask convert``: a dataset's boxes → instance masks, in the formats of ``--format``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import console, err_console, print_every, progress_bar, run_safely
from box2mask.cli._flags import RUN_FLAGS, RUN_PANEL, Flag, gather_options, with_flags
from box2mask.executors import EXECUTORS
from box2mask.options import ConvertOptions
from box2mask.writers import WRITERS

_SPLIT_PANEL = "Train / val / test split"

#: convert's own options, by ConvertOptions field name; then come the RUN_FLAGS it shares with eval
CONVERT_FLAGS = {
    "dataset": Flag(
        str | None,
        "Dataset adapter name (see `box2mask datasets`). Required (here or in --config).",
        short="-d",
    ),
    "out": Flag(
        Path | None,
        "Output folder (COCO JSON at the top, per-frame PNGs per sequence, job state in "
        ".box2mask/). Required (here or in --config).",
        short="-o",
    ),
    "device": Flag(
        str | None,
        "auto | cpu | cuda | cuda:N, or a comma list such as cuda:0,cuda:1 "
        "(one worker process per device) (default: auto).",
        panel=RUN_PANEL,
    ),
    "executor": Flag(
        str | None,
        f"auto | {' | '.join(EXECUTORS.names())}: who converts the frames (auto: local "
        "for one device, processes for several; see docs/extending.md) (default: auto).",
        panel=RUN_PANEL,
    ),
    "ray_address": Flag(
        str | None,
        "--executor ray: auto (the `ray start` cluster here), HOST:6379 or "
        "ray://HOST:10001 (default: $RAY_ADDRESS, else a private Ray on this machine; "
        "see docs/ray.md).",
        panel=RUN_PANEL,
    ),
    "ray_actors": Flag(
        int | None,
        "--executor ray: number of actors (default: 0 = one per GPU of the cluster, "
        "else one per 2 CPUs).",
        panel=RUN_PANEL,
    ),
    "formats": Flag(
        str | None,
        f"{' | '.join(WRITERS.names())}, or a comma list such as coco,png "
        "(see docs/formats.md) (default: coco).",
        name="--format",
    ),
    "shard": Flag(
        str | None, "K/N: convert a deterministic share of the sequences.", panel=RUN_PANEL
    ),
    "split": Flag(
        str | None,
        "val=F[,test=F]: hold out sequences (or tracks) for validation and test, train the "
        "rest; every format writes its own per-split files (docs/formats.md, 'Splits').",
        panel=_SPLIT_PANEL,
        metavar="val=F[,test=F]",
    ),
    "split_by": Flag(
        str | None,
        "sequence | track: what --split deals out; never frames (default: sequence).",
        panel=_SPLIT_PANEL,
    ),
    "seed": Flag(int | None, "Seed of --split's order (default: 0).", panel=_SPLIT_PANEL),
    "overwrite": Flag(bool | None, "Delete an existing job in --out and start afresh."),
    "strict": Flag(
        bool | None, "Fail (exit 2) on the first bad annotation or frame, before writing anything."
    ),
    "share_crops": Flag(
        float | None,
        "Objects of a frame whose crop windows overlap with IoU >= IOU (same size) share "
        "one encoder pass; changes masks slightly (default: 0 = off).",
        panel=RUN_PANEL,
        metavar="IOU",
    ),
    "compile": Flag(
        bool | None,
        "torch.compile the image encoder (slow first batch; pays off on long GPU jobs).",
        panel=RUN_PANEL,
    ),
    "profile": Flag(bool | None, "Print where the time went.", panel=RUN_PANEL),
    "dry_run": Flag(
        bool,
        "Print the plan and write nothing: sequences, frames, boxes per class, how many are "
        "box-filled, the model and why, the time on this machine (from a short measured "
        "sample) and the disk needed; with --summary-json, the plan as JSON there.",
        False,
    ),
    "summary_json": Flag(
        Path | None,
        "Also write the run's summary as JSON here (counts by source and class, skips and "
        "why, the model and why, timings, outputs; the same record as .box2mask/finished.json; "
        "schema: box2mask/schemas/convert-summary.schema.json, docs/jobs.md).",
        metavar="FILE",
    ),
}


@app.command("convert")
@with_flags(CONVERT_FLAGS, RUN_FLAGS)
def convert_command(given: dict[str, Any]) -> None:
    """Convert a dataset's boxes into instance masks, resuming a job already in --out."""
    debug = bool(given["debug"])

    def build() -> ConvertOptions:
        merged = gather_options(given)
        for required in ("dataset", "out"):
            if not merged.get(required):
                from box2mask.errors import UsageError

                raise UsageError(f"--{required} is required (on the command line or in --config)")
        return ConvertOptions(**merged)

    options = run_safely(build, debug)
    if given["dry_run"]:
        _dry_run(options, debug)
    summary = run_safely(lambda: _run_with_progress(options), debug)
    _print_summary(summary, options)
    if summary.frames_done + summary.frames_resumed == 0 and summary.frames_total > 0:
        # nothing converted: one message, exit 2 when every frame was bad input
        counts = summary.problems.counts
        bad_frames = counts.get("frame", 0) + counts.get("image", 0)
        code = 2 if bad_frames >= summary.frames_total else 1
        why = (
            "every frame was skipped as bad input"
            if code == 2
            else "see the skipped inputs above (--debug for details)"
        )
        first = summary.problems.reports[0] if summary.problems.reports else None
        err_console.print(
            f"[bold red]error:[/] {escape(f'no frame converted of {summary.frames_total}: {why}')}"
            + (f"; the first: {escape(str(first))}" if first is not None else ""),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code)
    raise typer.Exit(0)


def _run_with_progress(options: ConvertOptions):  # noqa: ANN202
    from box2mask.pipeline import convert

    if not err_console.is_terminal:
        say = print_every(10)

        def plain(p) -> None:  # noqa: ANN001
            text = f"frames {p.frames_done}/{p.frames_total} objects {p.objects_done}"
            say(text, force=p.frames_done == p.frames_total)

        return convert(options, progress=plain)

    with progress_bar("{task.fields[rate]}", eta=True) as bar:
        task = bar.add_task("frames", total=None, rate="")
        t0 = time.monotonic()

        def update(p) -> None:  # noqa: ANN001
            elapsed = max(time.monotonic() - t0, 1e-6)
            rate = (
                f"{p.objects_done / elapsed:.1f} obj/s" if p.frames_done > p.frames_resumed else ""
            )
            bar.update(
                task,
                total=p.frames_total,
                completed=p.frames_done,
                rate=rate,
                description=p.sequence or "frames",
            )

        return convert(options, progress=update)


def _dry_run(options: ConvertOptions, debug: bool) -> None:
    """``--dry-run``: the plan, printed (and as JSON in ``--summary-json``); exit 2 when
    convert would refuse the job at --out, else 0."""
    from box2mask.plan import plan

    with err_console.status("reading the dataset and measuring a sample of frames"):
        p = run_safely(lambda: plan(options), debug)
    _print_plan(p)
    if options.summary_json is not None:
        from box2mask.summary import write_record

        run_safely(lambda: write_record(options.summary_json, p.to_dict()), debug)
        console.print(escape(f"plan: {options.summary_json}"), highlight=False)
    raise typer.Exit(2 if p.job == "refused" else 0)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _print_plan(p) -> None:  # noqa: ANN001
    d = p.to_dict()
    table = Table(title="box2mask convert --dry-run (nothing written)", show_header=False,
                  title_justify="left")  # fmt: skip
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dataset", escape(f"{p.dataset} at {p.root}"))
    table.add_row("job", escape(f"{p.job}: {p.job_note}" if p.job_note else p.job))
    table.add_row("sequences", str(len(p.sequences)))
    frames = d["frames"]
    table.add_row(
        "frames",
        f"{frames['to_convert']} to convert of {frames['total']} ({frames['already_done']} "
        f"already done, {frames['unreadable']} unreadable)",
    )
    per_class = ", ".join(f"{k} {v}" for k, v in d["boxes"]["by_class"].items()) or "none"
    table.add_row("boxes", escape(f"{p.boxes} ({per_class})"))
    filled = ", ".join(f"{k} {v}" for k, v in d["boxes"]["box_filled_by_class"].items())
    table.add_row(
        "box-filled",
        escape(
            f"{p.box_filled}"
            + (f" ({filled}: --box-fill-classes/--box-fill-area)" if filled else "")
        ),
    )
    model = p.model + (f" ({p.device}, {p.precision})" if p.model_kind == "prompt" else "")
    table.add_row("model", escape(model))
    table.add_row("why", escape(p.model_why))
    s = d["sample"]
    table.add_row(
        "sample",
        f"{s['frames']} frame(s), {s['objects']} object(s) ({s['model_objects']} by the model): "
        f"load {s['load_seconds']:.1f} s, convert {s['convert_seconds']:.2f} s, write "
        f"{s['write_seconds']:.2f} s, assemble {s['assemble_seconds']:.2f} s",
    )
    table.add_row("time", f"~{_duration(p.estimate_seconds)} on this machine (estimated)")
    table.add_row("disk", f"~{_size(p.disk_bytes)} under --out (estimated)")
    table.add_row("formats", escape(", ".join(p.formats)))
    skipped = ", ".join(f"{k} {v}" for k, v in d["skipped_inputs"].items()) or "none"
    table.add_row("skipped inputs", escape(skipped))
    for note in p.notes:
        table.add_row("note", escape(note))
    console.print(table)


def describe_sources(summary, options: ConvertOptions) -> list[str]:  # noqa: ANN001
    """What was done to the objects, per mask source, and why (the policy that chose it)."""
    by = summary.objects_by_source
    lines: list[str] = []
    if by.get("box") and summary.model != "box":
        why = []
        options = summary.options or options
        if options.box_fill_classes:
            from box2mask.models.registry import MODELS

            default = tuple(options.box_fill_classes) == MODELS.get(summary.model).box_fill_classes
            why.append(
                f"class {', '.join(options.box_fill_classes)} "
                f"(--box-fill-classes {','.join(options.box_fill_classes)}"
                f"{', the default' if default else ''})"
            )
        if options.box_fill_area:
            why.append(f"boxes under {options.box_fill_area:g} px² (--box-fill-area)")
        lines.append(
            f"box {by['box']}: box masks, not segmented by {summary.model}: "
            + (" or ".join(why) or "the small-object policy")
            + "; "
            + " and ".join(
                (["--box-fill-classes ''"] if options.box_fill_classes else [])
                + (["--box-fill-area 0"] if options.box_fill_area else [])
            )
            + f" to segment them with {summary.model}"
        )
    segmented = {k: v for k, v in by.items() if not (k == "box" and summary.model != "box")}
    if segmented:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(segmented.items()))
        lines.append(f"{counts}: masks by {summary.model}")
    return lines


def _print_summary(summary, options: ConvertOptions) -> None:  # noqa: ANN001
    table = Table(title="box2mask convert", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    model = summary.model + (
        f" ({summary.device})"
        if summary.device != "cpu" or summary.model in ("sam", "hq-sam", "ros-sam")
        else ""
    )
    by = summary.objects_by_source
    if summary.objects and summary.model != "box" and by.get("box") == summary.objects:
        model += ": not used, every object got a box mask (see 'masks')"
    table.add_row("model", escape(model))
    if summary.model_note:
        table.add_row("note", escape(summary.model_note))
    table.add_row(
        "frames",
        f"{summary.frames_done} converted, {summary.frames_resumed} already done, {summary.frames_total} in all",
    )
    src = ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none"
    table.add_row("objects", escape(f"{summary.objects} ({src})"))
    for k, line in enumerate(describe_sources(summary, options)):
        table.add_row("masks" if k == 0 else "", escape(line))
    rate = summary.objects / summary.seconds if summary.seconds else 0.0
    table.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} objects/s)")
    skipped = summary.problems.counts
    table.add_row(
        "skipped inputs",
        escape(", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"),
    )
    for path in summary.outputs:
        table.add_row("output", escape(str(path)))
    console.print(table)
    for note in summary.notes:
        console.print(f"  [cyan]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for err in summary.problems.reports[:20]:
        console.print(f"  [yellow]skipped:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    if len(summary.problems) > 20:
        console.print(f"  ... and {len(summary.problems) - 20} more (see the log)")
    if options.profile and summary.profile:
        from box2mask.engine import MODEL_STAGES, STAGES

        prof = Table(
            title="profile (seconds; decode/crop/resize/shape run on worker threads and "
            "encode-rle/write on the writer thread, overlapping the model)",
            title_justify="left",
        )
        prof.add_column("stage")
        prof.add_column("seconds", justify="right")
        prof.add_column("share of wall time", justify="right")
        order = {s: k for k, s in enumerate(STAGES)}
        # "actor-K <figure>" entries (--executor ray) go to a table of their own
        actors: dict[str, dict[str, float]] = {}
        stages = {}
        for key, value in summary.profile.items():
            name, _, figure = key.partition(" ")
            if name.startswith("actor-") and figure:
                actors.setdefault(name, {})[figure] = value
            else:
                stages[key] = value
        for stage, secs in sorted(stages.items(), key=lambda kv: order.get(kv[0], 99)):
            prof.add_row(stage, f"{secs:.2f}", f"{100 * secs / summary.seconds:.0f}%")
        model_s = sum(summary.profile.get(s, 0.0) for s in MODEL_STAGES)
        if model_s:
            prof.add_row(
                "[bold]model (encoder + decoder)",
                f"{model_s:.2f}",
                f"{100 * model_s / summary.seconds:.0f}%",
            )
        console.print(prof)
        if actors:
            per = Table(title="Ray actors (rates while busy)", title_justify="left")
            figures = ("start", "busy", "frames/s", "objects/s", "peak RSS MiB")
            per.add_column("actor")
            for col in figures:
                per.add_column(f"{col} (s)" if col in ("start", "busy") else col, justify="right")
            for name in sorted(actors, key=lambda n: int(n.split("-")[1])):
                row = actors[name]
                per.add_row(name, *(f"{row[f]:.1f}" if f in row else "-" for f in figures))
            console.print(per)
