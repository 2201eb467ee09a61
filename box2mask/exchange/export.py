"""``box2mask export``: a job's chosen objects as a CVAT task package or Label Studio tasks.

Written into ``out`` (a new or empty folder, nothing outside it):

``cvat``::

    out/box2mask-export.json            the manifest (what went where; `import` needs it)
    out/cvat-labels.json                labels for CVAT's "Raw" label editor
    out/tasks/<sequence>/annotations.xml   one CVAT task per sequence ("CVAT 1.1" XML)
    out/tasks/<sequence>/images/NNNN-KKKKKK.jpg   its frames (hard links where possible)

``labelstudio``::

    out/box2mask-export.json            the manifest
    out/tasks.json                      Label Studio's import file, one task per frame
    out/label_config.xml                the project's labeling config

A CVAT task holds the frames of its sequence that hold a chosen object, in
frame order; a Label Studio task is one such frame. Either way the objects sent
to a frame are the chosen ones, and the manifest lists them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from box2mask.errors import UsageError
from box2mask.exchange import _codec, cvat, labelstudio
from box2mask.exchange.model import SHAPES, TOOLS, FrameKey, tool_labels
from box2mask.exchange.plan import MANIFEST, Plan, PlanFrame, PlanObject, PlanTask, identity_sha
from box2mask.exchange.select import Selection, select
from box2mask.exchange.source import read_job
from box2mask.io import atomic_write_json
from box2mask.layout import sequence_dirs
from box2mask.safe_paths import check_out_path


@dataclass
class ExportSummary:
    """What an export wrote."""

    tool: str
    out: Path
    tasks: int
    frames: int
    objects: int
    empty: int = 0
    stale: int = 0
    ambiguous: int = 0
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        unit = (
            "CVAT tasks (one per sequence)"
            if self.tool == "cvat"
            else "Label Studio tasks (one per frame)"
        )
        out = [
            f"exported {self.objects} objects on {self.frames} frames as {self.tasks} {unit} -> {self.out}"
        ]
        if self.empty:
            out.append(
                f"{self.empty} empty mask(s) went out without a shape (neither tool has an "
                "empty mask): a shape drawn with the track id is their fix"
            )
        if self.ambiguous:
            out.append(
                f"{self.ambiguous} key(s) the job holds twice were left out (they cannot be matched back)"
            )
        if self.stale:
            out.append(
                f"{self.stale} qa row(s) name objects the job no longer holds (qa.json is older than the job)"
            )
        return out


def export(
    job_dir: Path | str,
    tool: str,
    out: Path | str,
    selection: Selection | None = None,
    *,
    shape: str = "mask",
    image_root: Path | None = None,
    document_root: Path | None = None,
    now: dt.datetime | None = None,
) -> ExportSummary:
    """Export the objects ``selection`` picks from the job at ``job_dir`` for ``tool``.

    Args:
        job_dir: a ``box2mask convert`` job folder.
        tool: ``cvat`` or ``labelstudio``.
        out: a folder that does not exist or is empty.
        selection: which objects (default: all).
        shape: ``mask`` (the tool's mask RLE, exact) or ``polygon`` (approximate).
        image_root: the folder the images' ``file_name`` is relative to (default: the
            job's dataset root).
        document_root: Label Studio's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (default:
            the folder above ``image_root``: Label Studio serves a file only from a local
            storage inside the document root and not the root itself, so the storage is
            the dataset root).
        now: the export's time (default: now, UTC).

    Raises:
        UsageError: bad options or input; nothing is written then.
    """
    selection = selection or Selection()
    if tool not in TOOLS:
        raise UsageError(f"--to must be one of {', '.join(TOOLS)}, got {tool!r}")
    if shape not in SHAPES:
        raise UsageError(f"--shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    out = Path(out)
    check_out_path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out}: not an empty folder; export into a new one")
    job = read_job(job_dir)
    root = Path(image_root) if image_root is not None else job.root
    if root is None:
        raise UsageError(f"--job {job_dir}: the job records no dataset root; pass --image-root")
    chosen = select(job, selection)
    if not chosen.keys:
        raise UsageError("nothing to export: the selection holds no object")
    when = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = _plan(job, chosen, root, tool, shape, selection, when)
    doc_root = (
        Path(document_root) if document_root is not None else Path(os.path.abspath(root)).parent
    )
    if tool == "labelstudio":  # every URL checked before anything is written
        for t in plan.tasks:
            for f in t.frames:
                labelstudio.image_url(f, doc_root)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        summary = _write(plan, out, doc_root)
    except BaseException:
        _undo(out, created)
        raise
    summary.stale, summary.ambiguous = chosen.stale, len(chosen.ambiguous)
    return summary


def _plan(job, chosen, root: Path, tool: str, shape: str, selection: Selection, when: str) -> Plan:  # noqa: ANN001
    labels = tool_labels(list(job.categories.values()))
    label_of = {cid: label for label, cid in labels.items()}
    by_frame: dict[FrameKey, list[PlanObject]] = {}
    for key in chosen.keys:
        ann = job.objects[key][0]
        img = job.images[int(ann["image_id"])]
        hw = (int(img["height"]), int(img["width"]))
        empty = _codec.area_bbox(ann["segmentation"], hw)[0] == 0
        label = label_of[int(ann["category_id"])]
        by_frame.setdefault(key.frame, []).append(
            PlanObject(key, ann, label, chosen.suspicion.get(key), empty)
        )
    order = {s: n for n, s in enumerate(dict.fromkeys(k.sequence for k in job.frames))}
    tasks: dict[str, PlanTask] = {}
    missing: list[Path] = []
    for fkey in sorted(by_frame, key=lambda f: (order[f.sequence], f.frame_index)):
        img = job.frames[fkey]
        t = tasks.setdefault(fkey.sequence, PlanTask(len(tasks) + 1, fkey.sequence))
        source = root / str(img.get("file_name", ""))
        if not source.is_file():
            missing.append(source)
        frame = PlanFrame(fkey, img, (int(img["height"]), int(img["width"])), source,
                          objects=by_frame[fkey])  # fmt: skip
        frame.name = cvat.image_name(t.number, len(t.frames), source) if tool == "cvat" else ""
        t.frames.append(frame)
    if missing:
        raise UsageError(
            f"{len(missing)} frame image(s) are not there, first {missing[0]} (is the dataset "
            "at the job's root? pass --image-root)"
        )
    export_id = uuid.uuid4().hex[:12]
    return Plan(tool, shape, export_id, when, job, selection, labels, list(tasks.values()))


def _write(plan: Plan, out: Path, doc_root: Path) -> ExportSummary:
    frames = sum(len(t.frames) for t in plan.tasks)
    objects = sum(len(f.objects) for t in plan.tasks for f in t.frames)
    tasks = len(plan.tasks) if plan.tool == "cvat" else frames
    empty = sum(o.empty for t in plan.tasks for f in t.frames for o in f.objects)
    summary = ExportSummary(plan.tool, out, tasks, frames, objects, empty=empty)
    if plan.tool == "cvat":
        folders = sequence_dirs([t.sequence for t in plan.tasks])
        for t in plan.tasks:
            folder = out / "tasks" / folders[t.sequence]
            cvat.write_task(plan, t, folder)
            summary.files.append(folder / "annotations.xml")
        atomic_write_json(out / cvat.LABELS_JSON, cvat.labels_json(plan), indent=1)
        summary.files.append(out / cvat.LABELS_JSON)
    else:
        labelstudio.write(plan, out, doc_root, identity_sha(plan.job))
        summary.files += [out / labelstudio.TASKS_JSON, out / labelstudio.LABEL_CONFIG]
    atomic_write_json(out / MANIFEST, plan.manifest(), indent=1)
    summary.files.insert(0, out / MANIFEST)
    return summary


def _undo(out: Path, created: bool) -> None:
    """Remove what a failed export wrote: everything in ``out`` (it was empty), and ``out``
    itself if the export made it."""
    if not out.is_dir():
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if created:
        os.rmdir(out)
