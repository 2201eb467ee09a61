"""``box2mask eval``: IoU and Boundary IoU against ground-truth masks, and the ablation sweep."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from box2mask.cli import app
from box2mask.cli._common import console, run_safely
from box2mask.cli._flags import RUN_FLAGS, RUN_PANEL, Flag, gather_options, with_flags

_OUT = "Reports"
_SWEEP = "Sweep (ablations)"

#: eval's own options; then come the RUN_FLAGS it shares with convert
EVAL_FLAGS = {
    "dataset": Flag(str | None, "Dataset adapter name (see `box2mask datasets`).", short="-d"),
    "predictions": Flag(
        Path | None,
        "Score this COCO JSON (e.g. a `box2mask convert` output) instead of running a model.",
    ),
    "device": Flag(str | None, "auto | cpu | cuda | cuda:N (default: auto).", panel=RUN_PANEL),
    "executor": Flag(
        str | None,
        "With --predictions: local | processes | ray, where the sequences are scored (default: "
        "processes for several --workers; the numbers are the same).",
        panel=RUN_PANEL,
    ),
    "biou_ratio": Flag(
        float, "Boundary IoU width as a share of the frame diagonal.", 0.02, panel=_OUT
    ),
    "report": Flag(Path | None, "Write the full report as JSON here.", panel=_OUT),
    "csv_path": Flag(
        Path | None,
        "Write the table as CSV here (one row per category, or per setting).",
        panel=_OUT,
        name="--csv",
    ),
    "plots": Flag(
        Path | None,
        "Draw PNG plots into this folder: IoU histogram per class, IoU against box size, "
        "per-frame union IoU along each sequence (needs pip install 'box2mask[plots]').",
        panel=_OUT,
        metavar="DIR",
    ),
    "sweep": Flag(
        bool,
        "Ablations: rerun with one setting changed at a time (the paper's Table 2 protocol).",
        False,
        panel=_SWEEP,
    ),
    "sweep_axes": Flag(
        str | None,
        "Axes to sweep, comma-separated (implies --sweep): model, crop_size, interpolation, window, "
        "hq_token_only, box_fill_area, box_fill_classes, temporal, prompt_every (default: all "
        "that apply).",
        panel=_SWEEP,
    ),
    "sweep_values": Flag(
        list[str] | None,
        "AXIS=V1,V2 values of one axis (implies --sweep), e.g. model=classical, crop_size=256,512 "
        "or box_fill_classes=car,none; repeatable.",
        panel=_SWEEP,
        metavar="AXIS=V1,V2",
    ),
}


@app.command("eval")
@with_flags(EVAL_FLAGS, RUN_FLAGS)
def eval_command(given: dict[str, Any]) -> None:
    """Score masks against the dataset's ground-truth masks: mean IoU and Boundary IoU, per
    object and per frame (the ROS-SAM authors' convention), per category and overall."""
    debug = bool(given["debug"])
    predictions, biou_ratio = given["predictions"], given["biou_ratio"]
    sweep_axes, sweep_values = given["sweep_axes"], given["sweep_values"]
    do_sweep = given["sweep"] or sweep_axes is not None or bool(sweep_values)
    plots_dir = given["plots"]

    def build():  # noqa: ANN202
        from box2mask.errors import UsageError
        from box2mask.evaluate import eval_options, parse_sweep

        merged = gather_options(given, drop=("out", "formats", "shard", "overwrite"))
        if not merged.get("dataset"):
            raise UsageError("--dataset is required (on the command line or in --config)")
        if predictions is not None:
            if do_sweep:
                raise UsageError("--sweep runs a model per setting; it cannot score --predictions")
            if given["model"] is not None or given["checkpoint"] is not None:
                raise UsageError("--predictions scores a file: drop --model/--checkpoint")
        axes = parse_sweep(sweep_axes, sweep_values or ()) if do_sweep else None
        if plots_dir is not None:
            from box2mask.options import check_folder_option
            from box2mask.plots import require_matplotlib

            if do_sweep:
                raise UsageError("--plots draws one evaluation; drop --sweep")
            require_matplotlib()  # the missing extra: exit 2 before scoring anything
            check_folder_option(plots_dir, "--plots")
        return eval_options(**merged), axes

    options, axes = run_safely(build, debug)
    if axes is not None:
        from box2mask.evaluate import sweep as run_sweep

        result = run_safely(
            lambda: _with_progress(
                lambda cb: run_sweep(options, axes, biou_ratio=biou_ratio, progress=cb)
            ),
            debug,
        )
        _print_sweep(result)
        rows = [_sweep_csv_row(r) for r in result.rows]
    else:
        from box2mask.evaluate import evaluate
        from box2mask.plots import EvalPlots

        plots = EvalPlots() if plots_dir is not None else None
        result = run_safely(
            lambda: _with_progress(
                lambda cb: evaluate(
                    options,
                    biou_ratio=biou_ratio,
                    predictions=predictions,
                    progress=cb,
                    on_object=plots.add_object if plots else None,
                    on_frame=plots.add_frame if plots else None,
                )
            ),
            debug,
        )
        _print_report(result)
        rows = result.rows()
        if plots is not None:
            title = f"{result.settings['model']} on {options.dataset}: "
            for path in run_safely(lambda: plots.write(plots_dir, title), debug):
                console.print(escape(f"plot: {path}"), highlight=False)
    run_safely(
        lambda: _write_reports(result.to_dict(), rows, given["report"], given["csv_path"]), debug
    )


def _with_progress(fn):  # noqa: ANN001, ANN202
    """Run ``fn(callback)`` under a progress bar with rate and ETA (plain lines off a terminal)."""
    from box2mask.cli._common import Progress

    with Progress("eval") as bar:

        def update(p) -> None:  # noqa: ANN001
            bar.update(p.frames_done, p.frames_total, p.objects_done,
                       description=f"eval {p.setting}" if p.setting else None)  # fmt: skip

        return fn(update)


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def _policy(settings: dict[str, Any]) -> str:
    classes = ",".join(settings["box_fill_classes"]) or "none"
    area = settings["box_fill_area"]
    return (
        f"box-filled and scored as boxes: classes {classes}"
        + (f", boxes < {area:g} px²" if area else "")
        + " (--box-fill-classes/--box-fill-area)"
    )


def _print_report(rep) -> None:  # noqa: ANN001
    s = rep.settings
    info = Table(title="box2mask eval", show_header=False, title_justify="left")
    info.add_column(style="bold")
    info.add_column()
    info.add_row("masks", f"{s['model']}" + (f" ({rep.model_note})" if rep.model_note else ""))
    if s.get("crop_size") is not None:
        geo = f"crop {s['crop_size']}, context {s['context']}, window {s['window']}"
        if s.get("upsample"):
            geo += f", x{s['upsample']:g} {s['interpolation']} upsample to 1024"
        if s.get("hq_token_only") is not None:
            geo += ", HQ token only" if s["hq_token_only"] else ", SAM + HQ summed"
        info.add_row("geometry", geo)
    if "box_fill_classes" in s:  # a model made the masks (not a predictions file)
        info.add_row("small objects", _policy(s))
    src = ", ".join(f"{k} {v}" for k, v in sorted(rep.objects_by_source.items()))
    info.add_row(
        "objects",
        f"{rep.objects} scored ({src}); {rep.objects_without_gt} without a GT mask skipped",
    )
    info.add_row(
        "frames", f"{rep.frames} scored; {rep.frames_without_gt} without ground truth skipped"
    )
    if rep.missing_predictions:
        info.add_row(
            "missing",
            f"{rep.missing_predictions} GT objects have no predicted mask (scored as empty)",
        )
    info.add_row("boundary", f"Boundary IoU width {s['biou_ratio']:g} × frame diagonal")
    skipped = rep.problems.counts
    if skipped:
        info.add_row(
            "skipped inputs", escape(", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
        )
    info.add_row("time", f"{rep.seconds:.1f} s")
    console.print(info)

    table = Table(
        title="Mask quality, %: per object (IoU, BIoU, share with IoU ≥ .5 / .75) and per frame "
        "(fIoU, fBIoU: the union of a frame's masks, the ROS-SAM authors' way)",
        title_justify="left",
    )
    for col in ("category", "objects", "IoU", "BIoU", "≥.5", "≥.75", "frames", "fIoU", "fBIoU"):
        table.add_column(col, justify="left" if col == "category" else "right", no_wrap=True)
    rows = rep.rows()
    for row in rows:
        last = row["category"] == "overall"
        table.add_row(
            f"[bold]{row['category']}[/]" if last else row["category"],
            str(row["objects"]),
            _pct(row["iou"]),
            _pct(row["biou"]),
            _pct(row["iou@0.5"]),
            _pct(row["iou@0.75"]),
            str(row["frames"]),
            _pct(row["frame_iou"]),
            _pct(row["frame_biou"]),
            end_section=len(rows) > 1 and row is rows[-2],
        )
    console.print(table)
    tc = rep.summary.get("temporal_consistency") or {}
    if tc.get("pairs"):
        console.print(
            f"Temporal consistency (IoU of consecutive masks along a track, aligned by the box "
            f"motion): [bold]{_pct(tc['mean'])}%[/] over {tc['pairs']} pairs of {tc['tracks']} "
            f"tracks, {_pct(tc['below_0.5'])}% below 50; the true masks: {_pct(tc['gt_mean'])}%",
            highlight=False,
        )
    by_src = rep.summary.get("per_object_by_source", {})
    if len(by_src) > 1:
        t = Table(title="Per object, by mask source", title_justify="left")
        for col in ("source", "objects", "IoU", "BIoU"):
            t.add_column(col, justify="left" if col == "source" else "right")
        for name, v in by_src.items():
            t.add_row(name, str(v["count"]), _pct(v["iou"]), _pct(v["biou"]))
        console.print(t)


def _print_sweep(result) -> None:  # noqa: ANN001
    base = result.base
    console.print(
        f"[bold]box2mask eval --sweep[/]: {base['model']} on {base['dataset']}; base: crop "
        f"{base.get('crop_size')}, window {base.get('window')}, interpolation "
        f"{base.get('interpolation') or 'n/a'}; {_policy(base)}. Upsample = 1024 / crop size "
        "for objects up to crop/context px (larger objects get a larger window).",
        highlight=False,
    )
    table = Table(title="Ablations (%, one setting changed at a time)", title_justify="left")
    for col in ("setting", "objects", "IoU", "BIoU", "fIoU", "fBIoU", "cons", "s"):
        table.add_column(col, justify="left" if col == "setting" else "right", no_wrap=True)
    for r in result.rows:
        s = r.report.summary
        po, pf = s["per_object"]["overall"], s["per_frame"]
        table.add_row(
            f"[bold]{r.label}[/]" if r.axis == "base" else r.label,
            str(po["count"]),
            _pct(po["iou"]),
            _pct(po["biou"]),
            _pct(pf["iou"]),
            _pct(pf["biou"]),
            _pct(s.get("temporal_consistency", {}).get("mean", math.nan)),
            f"{r.report.seconds:.1f}",
        )
    console.print(table)
    for note in result.notes:
        console.print(f"  [dim]{escape(str(note))}[/]", highlight=False)


def _sweep_csv_row(r) -> dict[str, Any]:  # noqa: ANN001
    from box2mask.evaluate import score_columns

    s = r.report.summary
    po, pf = s["per_object"]["overall"], s["per_frame"]
    return {
        "setting": r.label,
        "axis": r.axis,
        "value": "" if r.value is None else r.value,
        **score_columns(po, pf),
        "consistency": s.get("temporal_consistency", {}).get("mean", math.nan),
        "seconds": round(r.report.seconds, 3),
    }


def _write_reports(
    data: dict[str, Any], rows: list[dict[str, Any]], report: Path | None, csv_path: Path | None
) -> None:
    from box2mask.io import atomic_write_bytes

    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(report, (json.dumps(data, indent=2) + "\n").encode())
        console.print(escape(f"report: {report}"), highlight=False)
    if csv_path is not None and rows:
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            )
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(csv_path, buf.getvalue().encode())
        console.print(escape(f"csv: {csv_path}"), highlight=False)
