"""``box2mask viz``: overlays of masks on frames, contact sheets, MP4s."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import console, run_safely, setup_logging
from box2mask.cli._flags import DatasetOptOption, DebugOption, RootOption, VerboseOption
from box2mask.options import parse_key_values, split_list

_PIC = "Pictures"


@app.command("viz")
def viz_command(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset adapter name (see `box2mask datasets`).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the pictures.", show_default=False),
    ] = None,
    root: RootOption = None,
    opt: DatasetOptOption = None,
    job: Annotated[
        Path | None,
        typer.Option(
            "--job", "-j", help="The `box2mask convert` job folder to draw (its annotations.json)."
        ),
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="COCO JSON of masks (e.g. a `box2mask convert` output).")
    ] = None,
    # the former spelling: viz --out JOB --viz-out PICTURES (resolved in _job_and_out)
    viz_out: Annotated[Path | None, typer.Option("--viz-out", hidden=True)] = None,
    sequences: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these sequences, repeat or comma-separate (default: all in the predictions).",
            metavar="NAMES",
        ),
    ] = None,
    gt: Annotated[
        bool,
        typer.Option(
            "--gt",
            help="Prediction, ground truth and errors side by side (errors: green both, red "
            "prediction only, blue ground truth only).",
        ),
    ] = False,
    mp4: Annotated[
        bool, typer.Option("--mp4", help="Also write one MP4 per sequence (OpenCV mp4v).")
    ] = False,
    fps: Annotated[float, typer.Option(help="MP4 frame rate.", rich_help_panel=_PIC)] = 10.0,
    every: Annotated[int, typer.Option(help="Draw every N-th frame.", rich_help_panel=_PIC)] = 1,
    max_frames: Annotated[
        int | None, typer.Option(help="At most N frames per sequence.", rich_help_panel=_PIC)
    ] = None,
    sheet_frames: Annotated[
        int, typer.Option(help="Thumbnails on a contact sheet.", rich_help_panel=_PIC)
    ] = 24,
    thumb_width: Annotated[
        int,
        typer.Option(help="Contact-sheet width of one panel (px).", rich_help_panel=_PIC),
    ] = 320,
    columns: Annotated[
        int,
        typer.Option(
            help="Contact-sheet columns, in panels (a --gt frame takes three).",
            rich_help_panel=_PIC,
        ),
    ] = 6,
    alpha: Annotated[float, typer.Option(help="Mask fill opacity.", rich_help_panel=_PIC)] = 0.45,
    no_boxes: Annotated[
        bool,
        typer.Option("--no-boxes", help="Masks only: no boxes or labels.", rich_help_panel=_PIC),
    ] = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Draw masks over the frames: a PNG per frame and a contact sheet per sequence (colours
    follow the track id, so a track keeps its colour)."""
    setup_logging(verbose)

    def check() -> tuple[Path, Path]:
        from box2mask.errors import UsageError

        folder, pictures = _job_and_out(job, out, viz_out)
        if pictures is None:
            raise UsageError("--out is required: the folder for the pictures")
        if (predictions is None) == (folder is None):
            raise UsageError("give exactly one of --predictions FILE or --job JOB_DIR")
        if folder is not None and not folder.is_dir():
            raise UsageError(f"--job {folder}: no such folder (a `box2mask convert` job folder)")
        return (predictions if predictions is not None else folder), pictures  # type: ignore[return-value]

    source, viz_out = run_safely(check, debug)
    adapter_options = run_safely(lambda: parse_key_values(opt or []), debug)

    def run():  # noqa: ANN202
        from box2mask.cli._common import Progress
        from box2mask.viz import visualize

        with Progress("viz", counted="frames") as bar:
            return visualize(
                dataset, root, source, viz_out,
                adapter_options=adapter_options, sequences=tuple(split_list(sequences)), gt=gt,
                mp4=mp4, fps=fps, every=every, max_frames=max_frames, sheet_frames=sheet_frames,
                columns=columns, thumb_width=thumb_width, alpha=alpha, boxes=not no_boxes,
                progress=lambda seq, n, total: bar.update(n, total, n, description=f"viz {seq}"),
            )  # fmt: skip

    summary = run_safely(run, debug)
    table = Table(title="box2mask viz", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("frames", f"{summary.frames} drawn in {len(summary.sequences)} sequence(s)")
    table.add_row("pictures", f"{summary.out}/<sequence>/<frame>.png")
    for sheet in summary.sheets[:10]:
        table.add_row("contact sheet", str(sheet))
    if len(summary.sheets) > 10:
        table.add_row("", f"... and {len(summary.sheets) - 10} more")
    for video in summary.videos[:10]:
        table.add_row("video", str(video))
    for note in summary.notes:
        table.add_row("note", note)
    console.print(table)
    raise typer.Exit(0 if summary.frames else 1)


def _job_and_out(
    job: Path | None, out: Path | None, viz_out: Path | None
) -> tuple[Path | None, Path | None]:
    """``(job, pictures folder)`` from ``--job``/``--out``, or from the former spelling
    ``viz --out JOB --viz-out PICTURES`` (``--viz-out`` given: ``--out`` is the job)."""
    from box2mask.cli._flags import warn_renamed
    from box2mask.errors import UsageError

    if viz_out is None:
        return job, out
    warn_renamed("--viz-out", "--out")
    if out is not None:
        if job is not None:
            raise UsageError(
                "--out JOB with --viz-out is the former spelling of --job JOB: give --job only"
            )
        warn_renamed("--out JOB", "--job JOB")
        job = out
    return job, viz_out
