"""``box2mask export`` and ``box2mask import``: masks to CVAT or Label Studio and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import console, run_safely
from box2mask.cli._flags import LOG_FLAGS, DebugOption, Flag, with_flags

_SEL = "Which objects"
_TOOL = "cvat | labelstudio"

EXPORT_FLAGS = {
    "to": Flag(str | None, f"The annotation tool: {_TOOL}."),
    "job": Flag(Path | None, "The `box2mask convert` job folder to export from.", short="-j"),
    "out": Flag(Path | None, "A new (or empty) folder for the tool's files.", short="-o"),
    "shape": Flag(
        str,
        "mask: the tool's own mask RLE (exact); polygon: outlines, one per part of a mask "
        "(approximate: no holes).",
        "mask",
    ),
    "top": Flag(int | None, "Only the N most suspicious objects of `box2mask qa`.", panel=_SEL),
    "min_suspicion": Flag(
        float | None, "Only objects whose qa suspicion is at least this (0..1).", panel=_SEL
    ),
    "qa": Flag(
        Path | None,
        "The qa.json to rank by (default: <job>/qa/qa.json, as `box2mask qa` writes it).",
        panel=_SEL,
    ),
    "sequences": Flag(
        list[str] | None,
        "Only these sequences (repeat or comma-separate).",
        panel=_SEL,
        metavar="NAMES",
    ),
    "classes": Flag(
        list[str] | None, "Only objects of these categories.", panel=_SEL, metavar="NAMES"
    ),
    "image_root": Flag(
        Path | None, "Folder the images' file_name is relative to (default: the job's root)."
    ),
    "document_root": Flag(
        Path | None,
        "labelstudio: Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT; the image URLs are "
        "the frames' paths relative to it (default: the folder above the image root, so that "
        "the dataset root can be the project's local-files storage).",
    ),
    **LOG_FLAGS,
}


@app.command("export")
@with_flags(EXPORT_FLAGS)
def export_command(given: dict[str, Any]) -> None:
    """Export a job's masks to CVAT or Label Studio for correction (docs/annotation-tools.md)."""

    def run():  # noqa: ANN202
        from box2mask.errors import UsageError
        from box2mask.exchange import Selection, export
        from box2mask.options import split_list

        for opt in ("to", "job", "out"):
            if given[opt] is None:
                raise UsageError(f"--{opt} is required")
        sel = Selection(
            top=given["top"],
            min_suspicion=given["min_suspicion"],
            sequences=tuple(split_list(given["sequences"])),
            classes=tuple(split_list(given["classes"])),
            qa=given["qa"],
        )
        return export(
            given["job"], given["to"], given["out"], sel, shape=given["shape"],
            image_root=given["image_root"], document_root=given["document_root"],
        )  # fmt: skip

    summary = run_safely(run, given["debug"])
    for line in summary.lines():
        console.print(escape(line), highlight=False, soft_wrap=True)
    for p in summary.files:
        console.print(f"wrote {escape(str(p))}", highlight=False, soft_wrap=True)


@app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="The tool's export: CVAT's XML or zip of a task (CVAT for images or video 1.1), "
            "or Label Studio's JSON export of the project.",
            show_default=False,
        ),
    ],
    source: Annotated[str, typer.Option("--from", help=f"The annotation tool: {_TOOL}.")],
    job: Annotated[
        Path,
        typer.Option(
            "--job",
            "-j",
            help="The job the objects were exported from; the corrections are written into it "
            "(its corrections layer) and every format of it is derived again.",
        ),
    ],
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="cvat: the export's box2mask-export.json (default: found in FILE's folder or "
            "one above it)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what the file changes; write nothing.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Also write the full report (every change and unmatched object) to this .json "
            "file."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Instead of changing the job, write its COCO with the corrections applied to "
            "this .json file (and the report to <name>.import.json): for a folder that holds "
            "only a COCO file (merge's output), or to keep the job as it is.",
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Bring corrections back from CVAT or Label Studio into the job, matched by (sequence,
    frame, track id)."""

    def run():  # noqa: ANN202
        from box2mask.errors import UsageError
        from box2mask.exchange import import_review, read_review, write_corrected
        from box2mask.exchange.imports import check_report_path, write_report
        from box2mask.exchange.source import is_job

        if dry_run and out is not None:
            raise UsageError("--dry-run writes nothing; leave out --out (or --dry-run)")
        report_path = None if report is None else check_report_path(report, job)
        imp = None
        if out is not None or (dry_run and not is_job(job)):
            data, res = read_review(source, file, job, manifest=manifest)
            paths = [] if out is None else write_corrected(data, res, out)
        else:
            imp = import_review(source, file, job, manifest=manifest, dry_run=dry_run)
            res, paths = imp.result, []
        if report_path is not None:
            rep = res.to_dict()
            rep["dry_run"] = dry_run
            if imp is not None:
                rep["job_files_written"] = [str(p) for p in imp.files]
            paths.append(write_report(rep, report_path))
        return res, imp, paths

    res, imp, paths = run_safely(run, debug)
    counts = res.counts()
    table = Table(title=f"box2mask import from {res.tool}", title_justify="left")
    for k in counts:
        table.add_column(k, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    console.print(table)
    if res.not_reviewed:
        console.print(f"{res.not_reviewed} task(s) without a review: left as they are")
    for u in res.unmatched[:20]:
        console.print(
            f"unmatched: {escape(u.where)}: {escape(u.reason)}", highlight=False, soft_wrap=True
        )
    if len(res.unmatched) > 20:
        more = (
            "all in the report" if report is not None or out is not None else "--report lists all"
        )
        console.print(f"... and {len(res.unmatched) - 20} more unmatched ({more})")
    if dry_run:
        console.print("dry run: nothing written")
    elif imp is not None:
        if imp.changes is None:
            console.print(f"the job {escape(str(job))} already holds what the file says: "
                          "nothing written", highlight=False, soft_wrap=True)  # fmt: skip
        else:
            files = imp.files
            console.print(f"job {escape(str(job))}: {imp.changes.frames} frame(s) corrected, "
                          f"{len(files)} file(s) written", highlight=False, soft_wrap=True)  # fmt: skip
            for p in files[:20]:
                console.print(f"  {escape(str(p))}", highlight=False, soft_wrap=True)
            if len(files) > 20:
                console.print(f"  ... and {len(files) - 20} more")
        for note in imp.notes:
            console.print(escape(note), highlight=False, soft_wrap=True)
    for p in paths:
        console.print(f"wrote {escape(str(p))}", highlight=False, soft_wrap=True)
