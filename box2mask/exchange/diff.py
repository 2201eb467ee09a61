"""What a reviewer's file changes in a job: a pure function of the job's COCO and the file.

:func:`diff` matches the objects a tool's file gives back (:class:`~box2mask.
exchange.model.ToolFile`) to the job's by ``(sequence, frame_index, track_id)``
and sorts them:

- **unchanged**: the file holds the job's mask (bit for bit) and category, or a
  polygon exactly as the export wrote it;
- **changed**: another mask or category for an object of the job;
- **added**: a key the job does not hold on a frame the file covers;
- **removed**: an object the export sent to a frame the file covers, which the
  file no longer holds;
- **unmatched**: what cannot be used, each with its reason (no track id, a frame
  the export did not send, an unknown label, a shape that is not a mask, an
  object the export did not send whose key the job holds with another mask, a
  key the job holds twice, an unreadable mask).

Nothing is removed on doubt: an object whose shape is in the file but cannot be
used stays as it is, and so does every deleted object of a frame that holds a
shape without a usable track id (it may be that object, redrawn).

A frame the file holds without a review (a Label Studio task with no
annotation) changes nothing. Importing the same file again into the job it
produced finds every object unchanged: a changed object now has the file's
mask, an added one is there with it, a removed one is gone. :func:`apply` makes
the corrected COCO; changed and added objects get ``review: manual``, the tool
and the time.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from box2mask.exchange import _codec
from box2mask.exchange.model import Found, FrameKey, ObjectKey, ToolFile, tool_labels
from box2mask.exchange.source import JobData

KINDS = ("unchanged", "changed", "added", "removed")


@dataclass
class Change:
    """One object's fate.

    Attributes:
        kind: one of :data:`KINDS`.
        key: the object.
        ann_id: the job's annotation id (``None`` for an added object).
        record: the annotation to write for a changed or added object (no ``id`` for
            an added one), ``None`` otherwise.
        where: where in the tool's file (``""`` for a removed object).
    """

    kind: str
    key: ObjectKey
    ann_id: int | None
    record: dict[str, Any] | None = None
    where: str = ""


@dataclass
class Unmatched:
    """Something of the file that was not used, and why."""

    where: str
    reason: str


@dataclass
class ImportResult:
    """What a file changes: per object, plus what could not be used."""

    tool: str
    when: str
    changes: list[Change] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    not_reviewed: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for c in self.changes:
            counts[c.kind] += 1
        counts["unmatched"] = len(self.unmatched)
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The report (JSON-ready): counts, each change without its mask (with the job's
        annotation id where the job's COCO was read), each unmatched."""
        return {
            "tool": self.tool,
            "time": self.when,
            "counts": self.counts(),
            "frames_not_reviewed": self.not_reviewed,
            "changes": [
                {
                    "kind": c.kind,
                    "sequence": c.key.sequence,
                    "frame_index": c.key.frame_index,
                    "track_id": c.key.track_id,
                    **({} if c.ann_id is None else {"annotation_id": c.ann_id}),
                    "where": c.where,
                }
                for c in self.changes
                if c.kind != "unchanged"
            ],  # fmt: skip
            "unmatched": [{"where": u.where, "reason": u.reason} for u in self.unmatched],
        }


def diff(job: JobData, tf: ToolFile, when: str) -> ImportResult:
    """Sort the objects of ``tf`` against ``job`` (see the module docstring).

    Args:
        job: the job's COCO, indexed (:func:`~box2mask.exchange.source.read_job`).
        tf: what the tool's file says.
        when: the import's time (ISO 8601, UTC), recorded on changed and added objects.
    """
    res = ImportResult(tf.tool, when, not_reviewed=tf.not_reviewed)
    res.unmatched += [Unmatched(w, r) for w, r in tf.skipped]
    labels = tool_labels(list(job.categories.values()))
    groups: dict[ObjectKey, list[Found]] = defaultdict(list)
    seen: set[ObjectKey] = set()  # keys the file holds, usable or not: never removed
    blocked: dict[FrameKey, str] = {}  # frames holding a shape that has no usable key
    for f in tf.found:
        key = None
        if f.frame is not None and f.track_id is not None:
            key = ObjectKey(f.frame.sequence, f.frame.frame_index, f.track_id)
            seen.add(key)
        reason = _unusable(f, tf, labels)
        if reason:
            res.unmatched.append(Unmatched(f.where, reason))
            if key is None and f.frame is not None:
                blocked.setdefault(f.frame, f.where)
            continue
        groups[key].append(f)  # type: ignore[index]
    for key, parts in groups.items():
        where = "; ".join(p.where for p in parts)
        if len({p.label for p in parts}) > 1:
            reason = f"track {key.track_id} has shapes with different labels"
            res.unmatched.append(Unmatched(where, reason))
            continue
        change = _match(job, key, parts, tf, labels, when, where)
        if isinstance(change, Unmatched):
            res.unmatched.append(change)
        else:
            res.changes.append(change)
    for fkey, tracks in tf.covered.items():
        for track in sorted(tracks):
            key = ObjectKey(fkey.sequence, fkey.frame_index, track)
            if key in seen:
                continue
            anns = job.objects.get(key, [])
            where = f"sequence {key.sequence!r} frame {key.frame_index} track {track}"
            if anns and fkey in blocked:
                # a shape without a usable track id may be this object, redrawn: keep it
                res.unmatched.append(Unmatched(where, (
                    "deleted in the tool, but not removed: the frame holds a shape without a "
                    f"usable track id ({blocked[fkey]}), which may be this object redrawn"
                )))  # fmt: skip
            elif len(anns) == 1:
                res.changes.append(Change("removed", key, _id(anns[0])))
            elif len(anns) > 1:
                reason = f"deleted in the tool, but the job holds {len(anns)} objects with this key"
                res.unmatched.append(Unmatched(where, reason))
            # none: already gone from the job (imported before), nothing to do
        for track in sorted(tf.empty.get(fkey, set())):
            key = ObjectKey(fkey.sequence, fkey.frame_index, track)
            anns = job.objects.get(key, [])
            if key not in seen and len(anns) == 1:  # sent without a shape, left so
                res.changes.append(Change("unchanged", key, _id(anns[0])))
    return res


def _unusable(f: Found, tf: ToolFile, labels: dict[str, int]) -> str | None:
    if f.problem:
        return f.problem
    if f.frame is None:
        return "its frame is not one the export sent"
    if f.frame not in tf.covered:
        return "its frame is not one the export sent"
    if f.label not in labels:
        return f"label {f.label!r} is not a category of the job"
    if f.track_id is None:
        return "a new object without a track id: give it one (CVAT: its 'track' attribute; Label Studio: its track number)"
    if f.rle is None:
        return "no mask"
    return None


def _match(
    job: JobData,
    key: ObjectKey,
    parts: list[Found],
    tf: ToolFile,
    labels: dict[str, int],
    when: str,
    where: str,
) -> Change | Unmatched:
    anns = job.objects.get(key, [])
    img = job.frames.get(key.frame)
    if img is None:
        return Unmatched(where, "the job has no such frame")
    hw = (int(img["height"]), int(img["width"]))
    category = labels[parts[0].label]  # type: ignore[index]
    if any(p.rle["size"] != [hw[0], hw[1]] for p in parts):  # type: ignore[index]
        size = next(p.rle["size"] for p in parts)  # type: ignore[index]
        return Unmatched(where, f"mask of {size[0]}x{size[1]} on a {hw[0]}x{hw[1]} frame")
    rle = parts[0].rle
    if len(parts) > 1:  # a multi-part object comes back as several shapes with one track
        rle = _codec.union([p.rle for p in parts], hw)
    assert rle is not None
    empty = _codec.area_bbox(rle, hw)[0] == 0
    sent = tf.covered.get(key.frame, set()) | tf.empty.get(key.frame, set())
    exported = key.track_id in sent
    if len(anns) > 1:
        return Unmatched(where, f"the job holds {len(anns)} objects with this key")
    if not anns:
        if exported:
            return Unmatched(where, "the export sent this object, and the job no longer holds it")
        if empty:
            return Unmatched(where, "a new object with an empty mask")
        return Change(
            "added", key, None, _record(None, img, key, category, rle, tf.tool, when), where
        )
    ann = anns[0]
    same_cat = int(ann["category_id"]) == category
    if _as_exported(parts, tf, ann, hw):  # polygons as sent: the job's own mask, kept exactly
        rle = ann["segmentation"]
    if same_cat and (rle is ann["segmentation"] or _codec.same(rle, ann["segmentation"], hw)):
        return Change("unchanged", key, _id(ann), None, where)
    if not exported:
        return Unmatched(
            where,
            f"track {key.track_id} is on this frame in the job with another mask, and the "
            "export did not send it: a new object needs a track id of its own",
        )
    if rle is not ann["segmentation"] and empty:
        return Unmatched(where, "an empty mask: delete the object instead")
    record = _record(ann, img, key, category, rle, tf.tool, when)
    return Change("changed", key, _id(ann), record, where)


def _id(ann: dict[str, Any]) -> int | None:
    """The job's annotation id (``None`` for frames read from the job's parts, which are
    matched by key: :func:`~box2mask.exchange.source.read_job_frames`)."""
    return None if ann.get("id") is None else int(ann["id"])


def _as_exported(
    parts: list[Found], tf: ToolFile, ann: dict[str, Any], hw: tuple[int, int]
) -> bool:
    """The object's shapes are the polygons the export wrote for the job's mask."""
    if tf.exported_shapes is None or any(p.shape_text is None for p in parts):
        return False
    want = tf.exported_shapes(_codec.block(ann["segmentation"], hw), hw)
    return sorted(p.shape_text for p in parts) == sorted(want)  # type: ignore[type-var]


def _record(
    ann: dict[str, Any] | None,
    img: dict[str, Any],
    key: ObjectKey,
    category: int,
    rle: dict[str, Any],
    tool: str,
    when: str,
) -> dict[str, Any]:
    """The annotation of a changed (``ann`` given) or added object, with the reviewer's mask
    (COCO compressed RLE, ``counts`` as str). A relabelled object whose mask is the job's
    keeps the model's score and mask source."""
    hw = (int(img["height"]), int(img["width"]))
    area, bbox = _codec.area_bbox(rle, hw)
    rec: dict[str, Any] = copy.deepcopy(ann) if ann is not None else {
        "image_id": img["id"], "iscrowd": 0, "track_id": key.track_id, "prompt_box": bbox,
    }  # fmt: skip
    rec.pop("id", None)
    if ann is None or not _codec.same(rle, ann["segmentation"], hw):
        # a new mask: the model's score and source no longer describe it
        rec.update({"segmentation": rle, "area": area, "bbox": bbox, "score": 1.0,
                    "mask_source": "manual"})  # fmt: skip
    rec.update({"category_id": category, "review": "manual", "review_tool": tool,
                "review_time": when})  # fmt: skip
    return rec


def apply(coco: dict[str, Any], res: ImportResult) -> dict[str, Any]:
    """The job's COCO with ``res`` applied: changed records replaced (same id), removed ones
    dropped, added ones appended with new ids after the largest. ``coco`` is not changed."""
    out = dict(coco)
    replace = {c.ann_id: c.record for c in res.changes if c.kind == "changed"}
    drop = {c.ann_id for c in res.changes if c.kind == "removed"}
    anns = []
    for a in coco["annotations"]:
        if a["id"] in drop:
            continue
        anns.append({"id": a["id"], **replace[a["id"]]} if a["id"] in replace else a)
    next_id = max((int(a["id"]) for a in coco["annotations"]), default=0) + 1
    for c in res.changes:
        if c.kind == "added":
            anns.append({"id": next_id, **(c.record or {})})
            next_id += 1
    out["annotations"] = anns
    return out
