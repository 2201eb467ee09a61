"""``box2mask qa``: rank a conversion's objects by how suspicious their masks are; ``qa apply``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from box2mask.cli._common import console, run_safely
from box2mask.cli._flags import LOG_FLAGS, DebugOption, Flag, group_callback, with_flags
from box2mask.options import parse_key_values

qa_app = typer.Typer(
    name="qa",
    help="Quality flags: rank the masks of a conversion, most suspicious first (docs/qa.md).",
    invoke_without_command=True,
    no_args_is_help=True,
)

_GT = "Scoring the flags against ground truth"

QA_FLAGS = {
    "job": Flag(
        Path | None, "The `box2mask convert` job folder to rank, or a COCO JSON file.", short="-j"
    ),
    "out": Flag(
        Path | None,
        "Folder for qa.json and qa.csv (default: <job>/qa, or qa/ beside the file).",
        short="-o",
    ),
    # the former spelling (qa --out JOB --report DIR), resolved in qa_command
    "report": Flag(Path | None, "Former name of --out.", hidden=True),
    "html": Flag(
        Path | None,
        "Also write the review page into this folder (index.html, its pictures; decisions kept "
        "in the browser across reloads, exported and loaded back as decisions.json).",
    ),
    "html_top": Flag(
        int,
        "Pictures on the review page (thumbnail, full frame, the track's neighbouring frames) "
        "for the N most suspicious objects (the page lists every ranked object, in pages).",
        1000,
    ),
    "plots": Flag(
        Path | None,
        "Draw PNG plots into this folder: the suspicion score's distribution and the flags by "
        "class (needs pip install 'box2mask[plots]'; the review page shows them too).",
        metavar="DIR",
    ),
    "image_root": Flag(
        Path | None, "Folder the images' file_name is relative to (default: the job's root)."
    ),
    "no_images": Flag(bool, "Do not read the images (no image signal, no page).", False),
    "include_reviewed": Flag(
        bool,
        "Rank the objects a person already reviewed too (review accepted or manual: kept by "
        "qa apply, corrected in an annotation tool); by default they are listed in qa.json's "
        "reviewed and at the end of qa.csv, not ranked.",
        False,
    ),
    "top": Flag(int, "Print the N most suspicious objects.", 10),
    "workers": Flag(
        int,
        "Processes scoring sequences at once (one per core pays; the ranking is the same).",
        2,
    ),
    "executor": Flag(
        str,
        "auto | local | processes | ray: where the sequences are scored (auto: processes for "
        "several --workers; ray: $RAY_ADDRESS or a private local Ray).",
        "auto",
    ),
    "gt_dataset": Flag(
        str | None,
        "Dataset adapter with ground-truth masks: print the recall of "
        "IoU<0.5 objects among the top 5/10/20% flagged.",
        panel=_GT,
    ),
    "gt_root": Flag(Path | None, "Root of the ground-truth dataset.", panel=_GT),
    "gt_opt": Flag(
        list[str] | None, "Ground-truth dataset option KEY=VALUE.", panel=_GT, metavar="KEY=VALUE"
    ),
    **LOG_FLAGS,
}


@qa_app.callback()
@group_callback
@with_flags(QA_FLAGS)
def qa_command(given: dict[str, Any]) -> None:
    """Signals per object, one suspicion score, a ranked list (qa.json, qa.csv), a review page."""
    html, html_top, plots_dir = given["html"], given["html_top"], given["plots"]
    gt_dataset, no_images = given["gt_dataset"], given["no_images"]

    def run():  # noqa: ANN202
        from box2mask.cli._common import Progress
        from box2mask.errors import UsageError
        from box2mask.executors.tasks import resolve_executor
        from box2mask.options import check_folder_option
        from box2mask.qa.report import open_output, run_qa

        job, dest = _job_and_out(given["job"], given["out"], given["report"])
        if job is None:
            raise UsageError("--job: give a `box2mask convert` job folder or a COCO JSON file")
        if html_top < 1:
            raise UsageError(f"--html-top must be at least 1, got {html_top}")
        if html is not None and no_images:
            raise UsageError("--html needs the images: drop --no-images")
        resolve_executor(given["executor"], given["workers"])
        output = open_output(job)
        if dest is None:
            dest = (output.job_dir or output.coco_path.parent) / "qa"
        # both folders checked before anything is written (a file there was an internal error)
        check_folder_option(dest, "--out")
        if html is not None:
            check_folder_option(html, "--html")
            root = given["image_root"] or output.identity.get("root")
            if root is None:
                raise UsageError("--html: the images' root is unknown; pass --image-root")
        if plots_dir is not None:
            from box2mask.plots import require_matplotlib

            require_matplotlib()  # the missing extra: exit 2 before anything is written
            check_folder_option(plots_dir, "--plots")
        page_plots = _page_plot_names(html)
        with Progress("qa") as bar:
            rep = run_qa(
                output, dest, image_root=given["image_root"], images=not no_images,
                workers=given["workers"], executor=given["executor"], top=given["top"],
                html=html, html_top=html_top, html_plots=page_plots,
                exact=gt_dataset is not None, include_reviewed=given["include_reviewed"],
                progress=lambda done, total, objects: bar.update(done, total, objects),
            )  # fmt: skip
        paths, page = list(rep.paths), rep.page
        if plots_dir is not None or page_plots:
            plots = _qa_plots(rep, dest)
            if plots_dir is not None:
                paths += plots.write(plots_dir)
            if page_plots:
                plots.write(Path(html) / "plots")
        scored = None
        if gt_dataset is not None:
            from box2mask.cocofile import CocoFile
            from box2mask.qa.flagscore import score_flags
            from box2mask.qa.groundtruth import gt_ious

            gt_opt = parse_key_values(given["gt_opt"] or [])
            with CocoFile(output.coco_path, "--job", dest) as coco:
                ious = gt_ious(coco, gt_dataset, given["gt_root"], gt_opt)
            objs = [s for s, _ in rep.exact]
            scored = score_flags(objs, [z for _, z in rep.exact], ious)
            gp = dest / "qa_gt.json"
            gp.write_text(json.dumps(scored, indent=1) + "\n", encoding="utf-8")
            paths.append(gp)
        return rep, paths, page, scored

    rep, paths, page, scored = run_safely(run, given["debug"])
    table = Table(title=f"box2mask qa: {rep.objects} objects, most suspicious first",
                  title_justify="left")  # fmt: skip
    for col in ("rank", "id", "sequence", "frame", "track", "category", "source", "suspicion",
                "flags"):  # fmt: skip
        table.add_column(col)
    for o in rep.top[: given["top"]]:
        table.add_row(str(o["rank"]), str(o["id"]), escape(str(o["sequence"])),
                      str(o["frame_index"]), str(o["track_id"]), escape(str(o["category"])),
                      escape(str(o["mask_source"])), f"{o['suspicion']:.3f}",
                      escape(" ".join(o["flags"])))  # fmt: skip
    console.print(table)
    counts = {k: v for k, v in rep.flag_counts.items() if v}
    console.print("flags: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))
    if rep.reviewed:
        console.print(f"{rep.reviewed} reviewed objects not ranked (review accepted or manual; "
                      "--include-reviewed ranks them)")  # fmt: skip
    if rep.image_root is None:
        console.print("no image signal (no image root: pass --image-root)")
    elif rep.unread_images:
        console.print(f"[yellow]{rep.unread_images} image(s) could not be read[/]: no image "
                      "signal for their objects")  # fmt: skip
    if scored is not None:
        _print_scored(scored)
    for p in paths:
        console.print(f"wrote {escape(str(p))}")
    if page is not None:
        console.print(f"review page {escape(str(page))}")


def _qa_plots(rep, dest: Path):  # noqa: ANN001, ANN202
    """The qa plots of a finished report, fed one ranked record at a time from its qa.json
    (a million objects are never held)."""
    from box2mask.plots import QAPlots
    from box2mask.qa.report import QA_JSON, iter_ranked

    plots = QAPlots(rep.flag_counts)
    for o in iter_ranked(Path(dest) / QA_JSON):
        plots.add(o["category"], o["suspicion"], o["flags"])
    return plots


def _page_plot_names(html: Path | None) -> list[str]:
    """The plots the review page shows (``plots/<name>``, relative to ``html``): none without
    a page, or, with a note, when matplotlib (the ``plots`` extra) is not installed."""
    from box2mask.errors import UsageError
    from box2mask.plots import QA_FILES, require_matplotlib

    if html is None:
        return []
    try:
        require_matplotlib()
    except UsageError as exc:
        console.print(f"[yellow]note:[/] review page without plots: {escape(str(exc))}")
        return []
    return [f"plots/{name}" for name in QA_FILES]


def _job_and_out(
    job: Path | None, out: Path | None, report: Path | None
) -> tuple[Path | None, Path | None]:
    """``(job, report folder)`` from ``--job``/``--out``, or from the former spelling
    ``qa --out JOB [--report DIR]`` (no ``--job``: ``--out`` is then the job)."""
    from box2mask.cli._flags import take_alias, warn_renamed

    if job is None and out is not None:
        warn_renamed("--out JOB", "--job JOB")
        job, out = out, None
    return job, take_alias("--report", "--out", report, out)


def _print_scored(scored: dict) -> None:
    shares = scored["shares"]
    t = Table(title=f"recall of the {scored['bad']} objects with IoU < {scored['bad_iou']} "
              f"(of {scored['objects']}) among the top k% flagged",
              title_justify="left")  # fmt: skip
    t.add_column("ranking")
    for sh in shares:
        t.add_column(f"top {100 * sh:g}%", justify="right")

    def pct(v: float) -> str:
        return "-" if v != v else f"{100 * v:.1f}%"

    t.add_row("suspicion", *(pct(v) for v in scored["suspicion"]))
    t.add_row("random", *(pct(v) for v in scored["random"]))
    for name, vals in scored["single"].items():
        t.add_row(escape(name), *(pct(v) for v in vals))
    console.print(t)


@qa_app.command("apply")
def apply_command(
    decisions: Annotated[
        Path, typer.Argument(help="decisions.json exported from the review page.")
    ],
    job: Annotated[
        Path | None,
        typer.Option(
            "--job", "-j", help="The `box2mask convert` job folder to rewrite.", show_default=False
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", hidden=True)] = None,
    debug: DebugOption = False,
) -> None:
    """Apply review decisions: rejected objects removed or filled with a box / ellipse."""

    def run():  # noqa: ANN202
        from box2mask.cli._flags import take_alias
        from box2mask.errors import UsageError
        from box2mask.qa.apply import apply_decisions

        folder = take_alias("--out", "--job", out, job)
        if folder is None:
            raise UsageError("--job is required: the `box2mask convert` job folder to rewrite")
        return apply_decisions(decisions, folder)

    summary = run_safely(run, debug)
    for line in summary.lines():
        console.print(escape(line))
