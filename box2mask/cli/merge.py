"""``box2mask merge``: join shard or job outputs into one COCO JSON, or into a folder of formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from box2mask.cli import app
from box2mask.cli._common import console, err_console, run_safely, setup_logging
from box2mask.cli._flags import DebugOption


@app.command("merge")
def merge_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Job folders (the --out of `box2mask convert`, e.g. one per shard) or COCO JSON files.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The merged COCO JSON file (a .json path), or a folder that receives every "
            "--format.",
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Formats to write into the --out folder, comma-separated (default: a .json "
            "--out gets COCO; a folder gets the formats the jobs were converted with).",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the outputs already at --out (without it, a merge refuses to write "
            "over them).",
        ),
    ] = False,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="val=F[,test=F]: split the merged sequences (or tracks) afresh, one file "
            "(or list) per split in every format (default: the split the jobs were converted "
            "with, if any; docs/formats.md, 'Splits').",
            metavar="val=F[,test=F]",
            rich_help_panel="Train / val / test split",
        ),
    ] = None,
    split_by: Annotated[
        str,
        typer.Option(
            "--split-by",
            help="sequence | track: what --split deals out.",
            rich_help_panel="Train / val / test split",
        ),
    ] = "sequence",
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Seed of --split's order.", rich_help_panel="Train / val / test split"
        ),
    ] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Merge anyway when the inputs do not make one whole: jobs whose options differ "
            "(beyond --shard/--sequences), unfinished jobs, shards K/N with some K missing.",
        ),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Merge the outputs of several shards or jobs into one output with unique ids.

    Images come in the full dataset's sequence order, so merging shards 1/N..N/N
    gives the files an unsharded run writes, in every format. Categories are
    unified by name. A frame present in two inputs is an error. Everything is
    checked before anything is written.
    """
    setup_logging(False)
    from box2mask.cli._common import Progress
    from box2mask.merge import merge
    from box2mask.options import split_list

    formats = split_list(format) or None

    def run():  # noqa: ANN202
        with Progress("merge") as bar:
            return merge(inputs, out, force=force, formats=formats, overwrite=overwrite,
                         split=split, split_by=split_by, seed=seed,
                         progress=lambda done, total, objects: bar.update(done, total, objects))  # fmt: skip

    summary = run_safely(run, debug)
    for w in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False, soft_wrap=True)
    console.print(
        escape(
            f"merged {len(summary.inputs)} inputs: {summary.images} images, "
            f"{summary.annotations} annotations → {summary.dest}"
        ),
        highlight=False,
        soft_wrap=True,
    )
