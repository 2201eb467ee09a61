"""``box2mask import``: a reviewer's file from CVAT or Label Studio, matched against the job.

The tool's file is read and its objects sorted against the job
(:func:`box2mask.exchange.diff.diff`: changed, added, removed, unchanged,
unmatched with reasons). Where the result goes:

- :func:`import_review` (the default): into the job itself, through the job's
  changes operation (:func:`box2mask.job.apply_changes`): a changed object's
  mask or category replaced, an added object added, a removed one removed, each
  marked ``review: manual`` with the tool and the time, kept in the job's
  corrections layer (a resumed or rerun ``convert`` and ``merge`` keep them), and
  every format of the job re-derived through the writer registry. The job is
  read through its parts (:func:`~box2mask.exchange.source.read_job_frames`),
  the frames the file covers only. With ``dry_run`` nothing is written;
- :func:`write_corrected` (``--out FILE.json``): a corrected COCO file, the
  job's COCO (:func:`read_review`) with the changes applied, and the report
  beside it; the job is left as it is. The one way for a folder that is not a
  ``convert`` job (``merge``'s output folder: a COCO file, no parts to correct).

Importing the same file twice changes nothing: the second time every object of
the file is found unchanged, and no byte of the job is written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from box2mask.errors import UsageError
from box2mask.exchange import cvat, labelstudio
from box2mask.exchange.diff import ImportResult, apply, diff
from box2mask.exchange.model import TOOLS, FrameKey, ToolFile
from box2mask.exchange.plan import MANIFEST, identity_sha, read_manifest
from box2mask.exchange.source import JobData, is_job, read_job, read_job_frames
from box2mask.io import atomic_open
from box2mask.safe_paths import check_out_path

if TYPE_CHECKING:
    from box2mask.job import ChangeSummary, ObjectChange

__all__ = [
    "JobImport",
    "apply",
    "check_report_path",
    "import_review",
    "read_review",
    "to_changes",
    "write_corrected",
    "write_report",
]


def read_review(
    tool: str,
    file: Path | str,
    job_dir: Path | str,
    *,
    manifest: Path | str | None = None,
    now: dt.datetime | None = None,
) -> tuple[JobData, ImportResult]:
    """Read ``file`` (a tool's export) and sort its objects against the job at ``job_dir``.

    Args:
        tool: ``cvat`` or ``labelstudio``.
        file: CVAT: its export of a task or job (XML or zip); Label Studio: its JSON export
            of the project.
        job_dir: the job the objects were exported from.
        manifest: CVAT: the export's ``box2mask-export.json`` (default: beside ``file`` or
            in a folder above it). Label Studio's tasks carry what it holds.
        now: the import's time (default: now, UTC).

    Raises:
        UsageError: an unreadable file, a missing manifest, a file from another job.
    """
    file = _check_args(tool, file)
    job = read_job(job_dir)
    tf = _tool_file(tool, file, job_dir, manifest, lambda frames: job)
    return job, diff(job, tf, _when(now))


@dataclass
class JobImport:
    """What :func:`import_review` did.

    Attributes:
        result: what the file changes (:class:`~box2mask.exchange.diff.ImportResult`).
        changes: the job's changes operation's summary (:class:`box2mask.job.ChangeSummary`),
            ``None`` when nothing was applied (a dry run, or nothing to change).
        notes: lines for the user (an unfinished job, an interrupted change finished).
    """

    result: ImportResult
    changes: ChangeSummary | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """The job's files written (corrections, per-frame files, assembled formats)."""
        return [] if self.changes is None else list(self.changes.files)


def import_review(
    tool: str,
    file: Path | str,
    job_dir: Path | str,
    *,
    manifest: Path | str | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> JobImport:
    """Read ``file`` (a tool's export) and write what it changes into the job at ``job_dir``.

    Changed objects are replaced (their mask and category; a new mask gets score 1.0
    and mask source ``manual``), added ones added, removed ones removed, through
    :func:`box2mask.job.apply_changes` (atomic, under the job's lock; every format of
    the job re-derived), each marked ``review: manual``, ``review_tool`` ``tool`` and
    ``review_time`` ``now``. Unchanged and unmatched objects are left as they are.

    Args:
        tool, file, manifest, now: as for :func:`read_review`.
        job_dir: the ``box2mask convert`` job the objects were exported from.
        dry_run: only sort the file's objects; write nothing.

    Raises:
        UsageError: as :func:`read_review`; ``job_dir`` is not a job with its frames'
            parts; the job is running, or a change cannot be made (nothing written).
    """
    file = _check_args(tool, file)
    if not is_job(job_dir):
        raise UsageError(
            f"--job {job_dir}: not a `box2mask convert` job with its frames' parts "
            "(.box2mask/job.json and .box2mask/parts): import writes the corrections into a "
            "job; for a folder holding only a COCO file (merge's output), give --out FILE.json "
            "to write a corrected COCO instead"
        )
    held: dict[str, JobData] = {}

    def frames_of(keys: list[FrameKey]) -> JobData:
        held["job"] = read_job_frames(job_dir, keys)
        return held["job"]

    tf = _tool_file(tool, file, job_dir, manifest, frames_of)
    job = held.get("job") or frames_of(_frames_of(tf))
    res = diff(job, tf, _when(now))
    out = JobImport(res)
    changes = to_changes(res)
    if dry_run or not changes:
        return out
    from box2mask.job import apply_changes

    out.changes = apply_changes(job_dir, changes, doing=f"import the {tool} review")
    if out.changes.frames and not out.changes.assembled:
        out.notes.append(
            "note: the job's convert has not finished: its formats assembled from the parts "
            "(coco, ytvis, ...) are written, with the corrections, when it does"
        )
    if out.changes.recovered:
        out.notes.append(
            f"note: finished first an earlier change of {out.changes.recovered} frame(s) that "
            "was interrupted"
        )
    return out


def to_changes(res: ImportResult) -> list[ObjectChange]:
    """The job changes (:class:`box2mask.job.ObjectChange`) of an import's result: changed
    -> ``replace`` (mask and category), added -> ``add``, removed -> ``remove``; each
    ``review: manual`` with the tool and the time."""
    from box2mask.job import ObjectChange

    out: list[ObjectChange] = []
    actions = {"changed": "replace", "added": "add", "removed": "remove"}
    for c in res.changes:
        if c.kind not in actions:
            continue
        ann = None
        if c.record is not None:
            ann = {"segmentation": c.record["segmentation"], "category_id": c.record["category_id"]}
        where = c.where or (
            f"sequence {c.key.sequence!r} frame {c.key.frame_index} track {c.key.track_id} "
            f"(deleted in {res.tool})"
        )
        out.append(ObjectChange(
            actions[c.kind], c.key.sequence, c.key.frame_index, c.key.track_id, annotation=ann,
            review="manual", review_tool=res.tool, review_time=res.when, where=where,
        ))  # fmt: skip
    return out


def _check_args(tool: str, file: Path | str) -> Path:
    if tool not in TOOLS:
        raise UsageError(f"--from must be one of {', '.join(TOOLS)}, got {tool!r}")
    file = Path(file)
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    return file


def _when(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tool_file(
    tool: str,
    file: Path,
    job_dir: Path | str,
    manifest: Path | str | None,
    frames_of: Callable[[list[FrameKey]], JobData],
) -> ToolFile:
    """What the tool's file says. ``frames_of(keys)`` gives the job's data of the frames
    ``keys`` (CVAT needs their sizes to read its masks)."""
    sha = identity_sha(job_dir)
    if tool == "labelstudio":
        return labelstudio.read_export(file, sha)
    mpath = Path(manifest) if manifest is not None else _find_manifest(file)
    man = read_manifest(mpath)
    if man.tool != "cvat":
        raise UsageError(f"--manifest {mpath}: the manifest of a {man.tool} export, not cvat")
    if man.identity_sha256 != sha:
        raise UsageError(
            f"--manifest {mpath}: exported from another job (its identity differs from "
            f"--job {job_dir}'s); import a file into the job it was exported from"
        )
    keys = [FrameKey(t.sequence, f[0]) for t in man.tasks for f in t.frames]
    job = frames_of(keys)
    hw = {k: (int(img["height"]), int(img["width"])) for k, img in job.frames.items()}
    return cvat.read_export(file, man, hw)


def _frames_of(tf: ToolFile) -> list[FrameKey]:
    """The frames an import must read of the job: those the file covers (the others'
    objects are unmatched before the job is looked at)."""
    return list(dict.fromkeys([*tf.covered, *tf.empty]))


def _find_manifest(file: Path) -> Path:
    for folder in file.resolve().parents:
        if (folder / MANIFEST).is_file():
            return folder / MANIFEST
    raise UsageError(
        f"{file}: no {MANIFEST} in its folder or any above it; pass --manifest, the file "
        "`box2mask export --to cvat` wrote into its --out"
    )


def write_corrected(job: JobData, res: ImportResult, out: Path | str) -> list[Path]:
    """The job's COCO with ``res`` applied, at ``out`` (a ``.json`` file), and the report at
    ``out`` with ``.import.json`` for ``.json``. Returns both paths.

    Raises:
        UsageError: ``out`` is the job's own ``annotations.json``, a folder, or not a .json.
    """
    out = Path(out)
    check_out_path(out)
    if out.suffix.lower() != ".json" or out.is_dir():
        raise UsageError(f"--out {out}: give a .json file for the corrected COCO")
    if out.exists() and out.resolve() == (job.job_dir / "annotations.json").resolve():
        raise UsageError(
            f"--out {out}: that is the job's own COCO; the job's files are rewritten through "
            "its corrections layer, not here"
        )
    report = out.with_name(out.stem + ".import.json")
    coco = apply(job.coco, res)
    with atomic_open(out) as fh:
        json.dump(coco, fh)
    write_report(res.to_dict(), report)
    return [out, report]


def check_report_path(path: Path | str, job_dir: Path | str) -> Path:
    """``--report``: a ``.json`` file, not a folder, not one of the job's own files.

    Raises:
        UsageError: naming the option.
    """
    path = Path(path)
    check_out_path(path, "--report")
    if path.suffix.lower() != ".json" or path.is_dir():
        raise UsageError(f"--report {path}: give a .json file for the import's report")
    job = Path(job_dir).resolve()
    if path.resolve() == job or job in path.resolve().parents:
        raise UsageError(
            f"--report {path}: inside the job folder {job_dir}; the job's files are written by "
            "box2mask only (put the report beside the job)"
        )
    return path


def write_report(report: dict[str, Any], path: Path) -> Path:
    """The import's report (JSON, :meth:`ImportResult.to_dict` and what was written)."""
    with atomic_open(path) as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    return path
