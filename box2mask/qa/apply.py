"""``box2mask qa apply decisions.json --job JOB``: a reviewer's decisions written into a job.

A decision names one object (``sequence``, ``frame_index``, ``track_id``;
the annotation ``id`` when there is no track id) and an action:

- ``accept``: the object is marked as reviewed (``"review": "accepted"``), its
  mask unchanged;
- ``reject``: the object is removed;
- ``box`` / ``ellipse``: its mask is replaced by the prompt box filled, or
  the ellipse inscribed in it, drawn exactly as ``--model box`` /
  ``--model ellipse`` draw them (score 1.0, ``mask_source`` ``box`` /
  ``ellipse``, ``"review"`` set to the action).

Every decision records ``review_tool`` ``"box2mask qa"`` and ``review_time``.
The decisions go into the job's corrections layer through
:func:`box2mask.job.apply_changes`, the operation an annotation tool's import
uses too: atomically, under the job's lock, and with every format of the job
re-derived through the writer registry, the per-frame ones (png, or a plugin's)
for the frames it touches and the assembled ones (coco, ytvis, davis, mots,
yolo) whole, exactly as a fresh ``convert`` would write them with those
objects so. The parts stay the model's; a resumed or rerun ``convert`` and
``box2mask merge`` keep the decisions; ``--overwrite`` drops them and says so.

A folder without a job (a COCO file from another tool as ``annotations.json``,
or a job whose ``.box2mask/parts`` is gone) gets its ``annotations.json``
rewritten directly (ids renumbered 1..; an accepted object marked there, as the
layer marks it), and nothing else; ``qa apply`` says so.

Applying the same decisions again changes nothing: a removed object is not
found again (counted as already applied), a replaced one already has the
new mask, an accepted one its mark.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.coco_checks import check_coco, id_key
from box2mask.errors import UsageError
from box2mask.ids import whole_id
from box2mask.io import atomic_open
from box2mask.job import JobFileError, JobFolder, ObjectChange, apply_changes, read_job_file
from box2mask.layout import COCO_NAME
from box2mask.masks import encode_window_mask
from box2mask.types import CropWindow

ACTIONS = ("accept", "reject", "box", "ellipse")
FORMAT_KEY = "box2mask_qa_decisions"
#: the ``review_tool`` of the decisions ``qa apply`` writes
REVIEW_TOOL = "box2mask qa"


@dataclass
class Decision:
    action: str
    sequence: str
    frame_index: int
    track_id: int | None
    id: int | None
    where: str


@dataclass
class ApplySummary:
    out: Path
    removed: int = 0
    replaced: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    unchanged: int = 0
    already_removed: int = 0
    #: decisions that repeat an earlier one for the same object (applied once)
    duplicates: int = 0
    frames: int = 0
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        rep = ", ".join(f"{v} by {k}" for k, v in sorted(self.replaced.items())) or "none"
        out = [
            f"removed {self.removed}, replaced {rep}, accepted {self.accepted}",
            f"already applied: {self.already_removed} removed before, {self.unchanged} unchanged",
            f"frames rewritten: {self.frames}; files written: {len(self.files)}",
        ]
        if self.duplicates:
            out.insert(1, f"duplicates: {self.duplicates} decision(s) repeat an earlier one "
                          "for the same object; applied once")  # fmt: skip
        return out + [f"  {p}" for p in self.files] + self.notes


def read_decisions(path: Path) -> list[Decision]:
    """Parse a decisions file (the review page's export); bad entries name their index."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such decisions file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get(FORMAT_KEY) != 1:
        raise UsageError(f'{path}: not a box2mask qa decisions file (no "{FORMAT_KEY}": 1)')
    items = data.get("decisions")
    if not isinstance(items, list):
        raise UsageError(f'{path}: "decisions" must be a list')
    out: list[Decision] = []
    for k, d in enumerate(items):
        where = f"{path}: decisions[{k}]"
        if not isinstance(d, dict):
            raise UsageError(f"{where}: not an object")
        action = d.get("action")
        if action not in ACTIONS:
            raise UsageError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if not isinstance(d.get("sequence"), str):
            raise UsageError(f"{where}: needs sequence (a string), got {d.get('sequence')!r}")
        if "frame_index" not in d:
            raise UsageError(f"{where}: needs sequence, frame_index and track_id")
        tid, aid = d.get("track_id"), d.get("id")
        out.append(Decision(
            action, d["sequence"], _whole(d["frame_index"], "frame_index", where),
            None if tid is None else _whole(tid, "track_id", where),
            None if aid is None else _whole(aid, "id", where), where,
        ))  # fmt: skip
    return out


def _whole(value: Any, key: str, where: str) -> int:
    """A decision's ``frame_index``, ``track_id`` or ``id``: a whole number, exactly. ``1.5``
    is refused rather than read as frame 1 (another frame); so are inf, NaN, bools and text."""
    number = whole_id(value)
    if number is None:
        raise UsageError(f"{where}: {key} must be a whole number (within 2**53 - 1), got {value!r}")
    return number


def check_duplicates(decisions: list[Decision]) -> tuple[list[Decision], int]:
    """The decisions with repeats of one (object, action) dropped, and how many were dropped.

    Two different actions for one object cannot both be applied: refused, naming both.
    """
    first: dict[tuple, Decision] = {}
    kept: list[Decision] = []
    for d in decisions:
        key = _key(d.sequence, d.frame_index, d.track_id, d.id)
        seen = first.get(key)
        if seen is None:
            first[key] = d
            kept.append(d)
        elif seen.action != d.action:
            raise UsageError(
                f"{d.where} ({d.action}) and {seen.where.rsplit(': ', 1)[-1]} ({seen.action}) "
                f"decide differently for the same object (sequence {d.sequence!r} frame "
                f"{d.frame_index} track {d.track_id}); keep one of them"
            )
    return kept, len(decisions) - len(kept)


def fill_annotation(ann: Mapping[str, Any], shape: str, image_hw: tuple[int, int]) -> dict:
    """``ann`` with its mask replaced by the prompt box (``shape='box'``) or its ellipse."""
    from box2mask.models.classical import box_mask, ellipse_mask

    x, y, w, h = (float(v) for v in (ann.get("prompt_box") or ann["bbox"]))
    x0, y0 = math.floor(x) - 1, math.floor(y) - 1
    size = max(math.ceil(x + w) - x0, math.ceil(y + h) - y0) + 2
    win = CropWindow(x0, y0, size)
    box = win.box_to_crop(np.array([x, y, x + w, y + h]))
    mask = (box_mask if shape == "box" else ellipse_mask)(box, size)
    enc = encode_window_mask(mask, win, image_hw)
    new = dict(ann)
    new.update(segmentation=enc.rle, area=enc.area, bbox=enc.bbox, score=1.0,
               mask_source=shape, review=shape)  # fmt: skip
    return new


def _key(seq: str, fi: int, tid: int | None, aid: int | None) -> tuple:
    return (seq, fi, "t", tid) if tid is not None else (seq, fi, "id", aid)


def apply_decisions(decisions_path: Path, out: Path) -> ApplySummary:
    """Apply a decisions file to the job folder ``out`` (see the module docstring)."""
    out = Path(out)
    coco_path = out / COCO_NAME
    if not coco_path.is_file():
        raise UsageError(f"--job {out}: no {COCO_NAME} (a `box2mask convert --format coco` job)")
    decisions, repeated = check_duplicates(read_decisions(decisions_path))
    try:
        job = JobFolder(out) if read_job_file(out, missing_ok=True) else None
    except JobFileError as exc:
        raise UsageError(f"--job {exc.path}: {exc.reason}") from None
    if job is not None and job.sequences:
        return _apply_to_job(job, decisions, repeated)
    return _apply_to_coco(coco_path, decisions, repeated)


def _apply_to_job(job: JobFolder, decisions: list[Decision], repeated: int) -> ApplySummary:
    """The decisions as changes of the job (:func:`box2mask.job.apply_changes`)."""
    summary = ApplySummary(job.out, duplicates=repeated)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = _track_ids(job, {d.id for d in decisions if d.track_id is None and d.id is not None})
    changes: list[ObjectChange] = []
    decided: dict[int, Decision] = {}
    for d in decisions:
        tid = d.track_id if d.track_id is not None else ids.get((d.sequence, d.frame_index, d.id))
        if tid is None or not job.part_path(d.sequence, d.frame_index).is_file():
            if d.action in ("box", "ellipse"):
                raise UsageError(_no_object(d, job.out / COCO_NAME))
            if d.action == "reject":
                summary.already_removed += 1
            else:
                summary.accepted += 1
            continue
        base = dict(sequence=d.sequence, frame_index=d.frame_index, track_id=tid,
                    review_tool=REVIEW_TOOL, review_time=when, where=d.where)  # fmt: skip
        if d.action == "accept":
            ch = ObjectChange("review", review="accepted", **base)
        elif d.action == "reject":
            ch = ObjectChange("remove", review="manual", **base)
        else:
            part = job.read_part(d.sequence, d.frame_index)
            held = [a for a in part["annotations"] if int(a["track_id"]) == tid]
            if not held:
                raise UsageError(_no_object(d, job.out / COCO_NAME))
            hw = (int(part["image"]["height"]), int(part["image"]["width"]))
            seg = fill_annotation(held[0], d.action, hw)["segmentation"]
            ann = {"segmentation": seg, "score": 1.0, "mask_source": d.action}
            ch = ObjectChange("replace", annotation=ann, review=d.action, **base)
        decided[id(ch)] = d
        changes.append(ch)
    done = apply_changes(job.out, changes, doing="apply the decisions")
    for o in done.outcomes:
        action = decided[id(o.change)].action
        if action == "accept":
            summary.accepted += 1
        elif o.result == "absent":
            summary.already_removed += 1
        elif o.result == "unchanged":
            summary.unchanged += 1
        elif action == "reject":
            summary.removed += 1
        else:
            summary.replaced[action] = summary.replaced.get(action, 0) + 1
    summary.frames = done.frames
    summary.files = done.files
    if done.frames and not done.assembled:
        summary.notes.append(
            "note: the job's convert has not finished: its formats assembled from the parts "
            "(coco, ytvis, ...) are written, with the decisions, when it does"
        )
    if done.recovered:
        summary.notes.append(
            f"note: finished first an earlier change of {done.recovered} frame(s) that was "
            "interrupted"
        )
    return summary


def _no_object(d: Decision, coco_path: Path) -> str:
    return (
        f"{d.where}: {coco_path} has no object sequence {d.sequence!r} frame "
        f"{d.frame_index} track {d.track_id} (decisions for another job?)"
    )


def _track_ids(job: JobFolder, wanted: set[int]) -> dict[tuple[str, int, int], int]:
    """``{(sequence, frame, annotation id): track id}`` for the annotation ids of decisions
    that carry no track id: the job's COCO ids are 1.. in the order of its frames (one
    pass over the parts, one frame in memory)."""
    found: dict[tuple[str, int, int], int] = {}
    if not wanted:
        return found
    n = 0
    for part in job.iter_parts():
        seq, fi = str(part["image"]["sequence"]), int(part["image"]["frame_index"])
        for ann in part["annotations"]:
            n += 1
            if n in wanted:
                found[(seq, fi, n)] = int(ann["track_id"])
    return found


def _fill_size(
    d: Decision, im: dict[str, Any], ann: dict[str, Any], k: int, coco_path: Path
) -> tuple[int, int]:
    """The frame size a box or ellipse is drawn in, once the annotation's box is known to
    be there: what another tool's COCO file may lack, said before anything is written."""
    hw = (whole_id(im.get("height")), whole_id(im.get("width")))
    if hw[0] is None or hw[1] is None or min(hw) < 1:  # type: ignore[type-var]
        raise UsageError(
            f"{d.where}: {coco_path}: the image of annotations[{k}] has no width and height "
            f"(whole numbers), which a {d.action} is drawn in"
        )
    box = ann.get("prompt_box") or ann.get("bbox")
    ok = isinstance(box, list) and len(box) == 4
    if not ok or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):  # type: ignore[union-attr]
        raise UsageError(
            f"{d.where}: {coco_path}: annotations[{k}] has no box (bbox [x, y, w, h]) to draw "
            f"a {d.action} from"
        )
    return hw  # type: ignore[return-value]


def _apply_to_coco(coco_path: Path, decisions: list[Decision], repeated: int) -> ApplySummary:
    """No job (a COCO file of another tool, a job whose parts are gone): ``annotations.json``
    rewritten directly, ids renumbered 1..; nothing else."""
    try:
        coco = json.loads(coco_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--job {coco_path}: not readable JSON ({exc})") from None
    # a file of another tool: ids it does not hold, fields of the wrong kind, before anything
    check_coco(coco, f"--job {coco_path}", categories=False)
    images = {id_key(im["id"]): im for im in coco["images"]}
    by_key: dict[tuple, list[int]] = {}
    for k, a in enumerate(coco["annotations"]):
        im = images[id_key(a["image_id"])]
        # without box2mask's fields, a frame is its image id (the page shows it so)
        seq = str(im.get("sequence", ""))
        fi = whole_id(im["frame_index"]) if "frame_index" in im else whole_id(im["id"])
        by_key.setdefault(_key(seq, fi, a.get("track_id"), a.get("id")), []).append(k)
    summary = ApplySummary(coco_path.parent, duplicates=repeated)
    remove: set[int] = set()
    anns = coco["annotations"]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    marked = 0
    for d in decisions:
        cands = by_key.get(_key(d.sequence, d.frame_index, d.track_id, d.id), [])
        if len(cands) > 1 and d.id is not None:
            cands = [k for k in cands if anns[k].get("id") == d.id] or cands
        if not cands:
            if d.action in ("box", "ellipse"):
                raise UsageError(_no_object(d, coco_path))
            if d.action == "reject":
                summary.already_removed += 1
            else:
                summary.accepted += 1
            continue
        k = cands[0]
        a = anns[k]
        if d.action == "accept":
            summary.accepted += 1
            # the mark a job's corrections layer gives (qa ranks the object out next time);
            # one already accepted keeps its time, so applying again changes nothing
            if a.get("review") != "accepted" or a.get("review_tool") != REVIEW_TOOL:
                anns[k] = {**a, "review": "accepted", "review_tool": REVIEW_TOOL,
                           "review_time": when}  # fmt: skip
                marked += 1
                summary.frames += 1
        elif d.action == "reject":
            remove.add(k)
            summary.removed += 1
            summary.frames += 1
        else:
            im = images[id_key(a["image_id"])]
            new = fill_annotation(a, d.action, _fill_size(d, im, a, k, coco_path))
            if new == a:
                summary.unchanged += 1
                continue
            anns[k] = new
            summary.frames += 1
            summary.replaced[d.action] = summary.replaced.get(d.action, 0) + 1
    if not remove and not summary.replaced and not marked:
        return summary
    kept = [a for k, a in enumerate(anns) if k not in remove]
    for i, a in enumerate(kept, start=1):
        a["id"] = i
    coco["annotations"] = kept
    with atomic_open(coco_path) as fh:
        json.dump(coco, fh)
        fh.write("\n")
    summary.files.append(coco_path)
    summary.notes.append(
        f"note: {coco_path.parent} is not a box2mask job with parts (no .box2mask/job.json or "
        f"no .box2mask/parts): only {COCO_NAME} was rewritten"
    )
    return summary
