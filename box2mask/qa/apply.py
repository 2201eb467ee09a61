"""``box2mask qa apply decisions.json --job JOB``: a reviewer's decisions written into a job.

A decision names one object (``sequence``, ``frame_index``, ``track_id``;
the annotation ``id`` when there is no track id) and an action:

- ``accept``: nothing changes;
- ``reject``: the object is removed;
- ``box`` / ``ellipse``: its mask is replaced by the prompt box filled, or
  the ellipse inscribed in it, drawn exactly as ``--model box`` /
  ``--model ellipse`` draw them (score 1.0, ``mask_source`` ``box`` /
  ``ellipse``, ``"review"`` set to the action).

What is rewritten, each file atomically, nothing else touched:

- the job's per-frame COCO parts (``.box2mask/parts``) of the affected
  frames; then every format of the job that is assembled from the parts
  (``needs_parts`` in the writer registry: coco, ytvis, davis, mots, yolo)
  is re-derived by its own writer's ``finalize``, exactly as a resumed
  ``convert`` would (COCO ids 1.., ``area``/``bbox`` from the masks); a
  later resume or ``box2mask merge`` assembles the reviewed output too;
- the png format (per-frame), when the job has it: the affected frames'
  instance maps and sidecars, re-painted from the frame's remaining masks with
  :func:`box2mask.masks.paint`, as the png writer paints them (the smaller
  object on top, index = position in the frame);
- without parts (a job folder whose ``.box2mask/parts`` is gone), only
  ``annotations.json`` (rewritten directly, ids renumbered 1..) and the png
  format.

Applying the same decisions again changes nothing: a removed object is not
found again (counted as already applied), a replaced one already has the
new mask.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.errors import UsageError
from box2mask.ids import whole_id
from box2mask.io import atomic_open, atomic_write_bytes, atomic_write_json
from box2mask.layout import (
    COCO_NAME,
    JOB_FILE,
    LOCK_FILE,
    PARTS_DIR,
    part_path,
    sequence_dir,
    state_dir,
)
from box2mask.masks import decode, encode_window_mask, paint
from box2mask.types import CropWindow

ACTIONS = ("accept", "reject", "box", "ellipse")
FORMAT_KEY = "box2mask_qa_decisions"


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


@contextlib.contextmanager
def _job_locked(out: Path) -> Iterator[None]:
    """Hold the job's ``.box2mask/lock`` (the flock a running convert holds) while applying."""
    lock = state_dir(out) / LOCK_FILE
    if not lock.parent.is_dir():
        yield
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"--job {out}: a box2mask process is running this job; apply the decisions "
                "when it has ended"
            ) from None
        yield
    finally:
        os.close(fd)


def apply_decisions(decisions_path: Path, out: Path) -> ApplySummary:
    """Apply a decisions file to the job folder ``out`` (see the module docstring)."""
    with _job_locked(Path(out)):
        return _apply(decisions_path, Path(out))


def _apply(decisions_path: Path, out: Path) -> ApplySummary:
    coco_path = out / COCO_NAME
    if not coco_path.is_file():
        raise UsageError(f"--job {out}: no {COCO_NAME} (a `box2mask convert --format coco` job)")
    decisions, repeated = check_duplicates(read_decisions(decisions_path))
    try:
        coco = json.loads(coco_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--job {coco_path}: not readable JSON ({exc})") from None
    images = {im["id"]: im for im in coco["images"]}
    by_key: dict[tuple, list[int]] = {}
    for k, a in enumerate(coco["annotations"]):
        im = images[a["image_id"]]
        seq, fi = str(im.get("sequence", "")), int(im.get("frame_index", im["id"]))
        by_key.setdefault(_key(seq, fi, a.get("track_id"), a.get("id")), []).append(k)
    summary = ApplySummary(out, duplicates=repeated)
    remove: set[int] = set()
    changed_images: set[Any] = set()
    anns = coco["annotations"]
    for d in decisions:
        cands = by_key.get(_key(d.sequence, d.frame_index, d.track_id, d.id), [])
        if len(cands) > 1 and d.id is not None:
            cands = [k for k in cands if anns[k].get("id") == d.id] or cands
        if not cands:
            if d.action == "reject":
                summary.already_removed += 1
                continue
            if d.action == "accept":
                summary.accepted += 1
                continue
            raise UsageError(
                f"{d.where}: {coco_path} has no object sequence {d.sequence!r} frame "
                f"{d.frame_index} track {d.track_id} (decisions for another job?)"
            )
        k = cands[0]
        a = anns[k]
        if d.action == "accept":
            summary.accepted += 1
        elif d.action == "reject":
            remove.add(k)
            changed_images.add(a["image_id"])
            summary.removed += 1
        else:
            im = images[a["image_id"]]
            new = fill_annotation(a, d.action, (int(im["height"]), int(im["width"])))
            if new == a:
                summary.unchanged += 1
                continue
            anns[k] = new
            changed_images.add(a["image_id"])
            summary.replaced[d.action] = summary.replaced.get(d.action, 0) + 1
    if not changed_images:
        return summary
    kept = [a for k, a in enumerate(anns) if k not in remove]
    per_image: dict[Any, list[dict]] = {}
    for a in kept:
        per_image.setdefault(a["image_id"], []).append(a)
    cats = {c["id"]: c["name"] for c in coco.get("categories", [])}
    job = _job_file(out)
    keys = {iid: (str(images[iid].get("sequence", "")),
                  int(images[iid].get("frame_index", images[iid]["id"]))) for iid in images}  # fmt: skip
    parts = {iid: part_path(state_dir(out), *keys[iid]) for iid in changed_images}
    assembled = job is not None and all(p.is_file() for p in parts.values())
    for iid in sorted(changed_images, key=str):
        if assembled:
            _rewrite_part(parts[iid], per_image.get(iid, []), cats)
            summary.files.append(parts[iid])
    if assembled:
        # every format assembled from the parts, COCO included, re-derived by its own writer
        summary.files += _finalize(out, job)
    else:
        for i, a in enumerate(kept, start=1):
            a["id"] = i
        coco["annotations"] = kept
        with atomic_open(coco_path) as fh:
            json.dump(coco, fh)
            fh.write("\n")
        summary.files.append(coco_path)
        summary.notes.append(
            "note: the job has no parts for these frames (no .box2mask/parts): only "
            f"{COCO_NAME} and the png format were rewritten"
        )
    sidecars = _sidecar_index(out, {keys[i][0] for i in changed_images})
    for iid in sorted(changed_images, key=str):
        summary.frames += 1
        side = sidecars.get(keys[iid])
        if side is not None:
            summary.files += _rewrite_png(side, images[iid], per_image.get(iid, []), cats)
    return summary


def _job_file(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir(out) / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finalize(out: Path, job: dict[str, Any]) -> list[Path]:
    """Run the finalize step of the job's formats that are assembled from the parts."""
    from box2mask.merge import job_assembly
    from box2mask.writers import WRITERS, WriterContext

    ident = job.get("identity", {})
    ctx = WriterContext(out, Path(ident.get("root") or "."), list(job.get("categories", [])),
                        list(job.get("sequences", [])))  # fmt: skip
    assembly = job_assembly(out)
    written: list[Path] = []
    for name in ident.get("formats", []):
        writer = WRITERS.get(name)(ctx)
        if writer.needs_parts:
            written += writer.finalize(assembly, out)
    return written


def _sidecar_index(out: Path, sequences: set[str]) -> dict[tuple[str, int], Path]:
    """``(sequence, frame_index) -> sidecar path`` of the png format's frames in those sequences."""
    found: dict[tuple[str, int], Path] = {}
    for seq in sequences:
        folder = out / sequence_dir(seq)
        if not folder.is_dir() or folder.name == PARTS_DIR:
            continue
        for p in folder.glob("*.json"):
            if not p.with_suffix(".png").is_file():
                continue
            try:
                side = json.loads(p.read_text(encoding="utf-8"))
                found[(str(side["sequence"]), int(side["frame_index"]))] = p
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found


def _rewrite_png(side_path: Path, im: Mapping[str, Any], anns: list[dict],
                 cats: Mapping[Any, str]) -> list[Path]:  # fmt: skip
    """Re-paint a frame's instance map and sidecar from its annotations (as the png writer does)."""
    side = json.loads(side_path.read_text(encoding="utf-8"))
    h, w = int(im["height"]), int(im["width"])
    inst = paint((h, w), [decode(a["segmentation"], (h, w)) for a in anns])
    ok, buf = cv2.imencode(".png", inst)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise UsageError(f"could not encode {side_path.with_suffix('.png')}")
    side["instances"] = [
        {"index": k + 1, "track_id": a.get("track_id"), "category": cats.get(a["category_id"]),
         "score": a.get("score"), "mask_source": a.get("mask_source")}
        for k, a in enumerate(anns)
    ]  # fmt: skip
    png = side_path.with_suffix(".png")
    atomic_write_bytes(png, buf.tobytes())
    atomic_write_bytes(side_path, (json.dumps(side, indent=1) + "\n").encode("utf-8"))
    return [png, side_path]


def _rewrite_part(path: Path, anns: list[dict], cats: Mapping[Any, str]) -> None:
    part = json.loads(path.read_text(encoding="utf-8"))
    drop = ("id", "image_id", "category_id")
    part["annotations"] = [
        {"category": cats.get(a["category_id"]), **{k: v for k, v in a.items() if k not in drop}}
        for a in anns
    ]
    atomic_write_json(path, part)
