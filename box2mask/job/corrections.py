"""The corrections layer: what people changed in a job, kept beside the model's parts.

A correction is a change to one object of a converted frame, keyed by
``(sequence, frame_index, track_id)`` (:class:`ObjectChange`): its mask
replaced, an object added or removed, or the object marked as reviewed. They
come from ``box2mask qa apply`` (the review page's decisions) and from the
annotation tools' imports, and are kept per frame, beside the part the model
made::

    <out>/.box2mask/corrections/<sequence>/<frame>.json
    {"box2mask_corrections": 1, "sequence": "car/001", "frame_index": 3,
     "objects": [
       {"track_id": 7, "annotation": {... the object's whole record ...}},
       {"track_id": 9, "removed": {"review": "manual", "review_tool": "cvat",
                                   "review_time": "2026-12-08T10:00:00Z"}}]}

An ``annotation`` entry whose track id the part holds replaces that object's
record (a new mask, a new category, a review mark); one whose track id the part
does not hold is an added object, placed after the part's objects in the
layer's order; ``removed`` drops the object (and says who removed it). The
records have the part's fields (:mod:`box2mask.job.parts`) plus ``review``
(``"manual"`` for a mask a person drew or corrected and for an added object,
``"accepted"`` for one a person kept as it was, ``"box"`` / ``"ellipse"`` for
the shapes ``qa apply`` fills), ``review_tool`` and ``review_time`` (ISO 8601,
UTC).

The part is never rewritten: :func:`overlay` gives the frame as the job holds
it (part + layer), and every reader of the job's frames reads through it
(:meth:`box2mask.job.folder.JobFolder.iter_parts`), so a resumed or rerun
``convert``, ``merge``, ``qa apply`` and every format keep the corrections,
and ``--overwrite`` (which starts the model's work afresh) drops them and
says so. This module is pure (dicts in, dicts out); the file I/O, the lock and
the re-derived formats are :mod:`box2mask.job.changes`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.ids import whole_id
from box2mask.job.parts import Part, part_hw
from box2mask.layout import CORRECTIONS_DIR, frame_stem, sequence_dir
from box2mask.masks import decode, encode_frame_block
from box2mask.types import MASK_SOURCES

#: what a change does to its object
ACTIONS = ("replace", "add", "remove", "review")
#: the ``review`` an action records when the change gives none
DEFAULT_REVIEW = {"replace": "manual", "add": "manual", "remove": "manual", "review": "accepted"}
#: ``review`` values of an annotation whose mask a person vouches for (a trainer's
#: reviewed objects: ``box2mask train lite`` reads them)
REVIEWED = frozenset({"manual", "accepted"})
#: fields a change cannot set: given by the assembly (ids) or computed from the mask
COMPUTED = frozenset({"id", "image_id", "area", "bbox"})
REVIEW_FIELDS = ("review", "review_tool", "review_time")
#: a part's annotation fields, in the order a part writes them (records keep it)
PART_FIELDS = ("category", "segmentation", "area", "bbox", "iscrowd", "track_id", "score",
               "prompt_box", "mask_source")  # fmt: skip

Entry = dict[str, Any]


@dataclass(frozen=True)
class ObjectChange:
    """One change to one object of a job.

    Attributes:
        action: ``replace`` (the object's record updated from ``annotation``: a new
            mask, category, score...), ``add`` (a new object, ``annotation`` its
            record), ``remove``, or ``review`` (nothing changes but the review
            mark: a person looked at the object and kept it).
        sequence, frame_index, track_id: the object; the frame must be one the job
            converted.
        annotation: for ``replace`` and ``add``: the fields to set, as a part or a
            COCO annotation holds them. ``segmentation`` is any COCO form of the
            frame's size (compressed or uncompressed RLE, polygons): it is stored as
            compressed RLE and ``area`` and ``bbox`` are computed from it.
            ``category`` (a name) or ``category_id`` (the job's COCO id) must be a
            category of the job. A new mask without its own ``score`` and
            ``mask_source`` gets score 1.0 and mask source ``manual`` (the model's
            no longer describe it); an added object's ``prompt_box`` defaults to
            the mask's box. ``id``, ``image_id``, ``area`` and ``bbox`` are ignored.
        review: the review mark (:data:`DEFAULT_REVIEW` when ``None``).
        review_tool: who or what decided (``"cvat"``, ``"labelstudio"``,
            ``"box2mask qa"``); left out of the record when ``None``.
        review_time: when (ISO 8601, UTC); left out when ``None``. Applying a change
            again later with only another time changes nothing.
        where: where the change came from, for messages (``decisions[3]``).
    """

    action: str
    sequence: str
    frame_index: int
    track_id: int
    annotation: Mapping[str, Any] | None = None
    review: str | None = None
    review_tool: str | None = None
    review_time: str | None = None
    where: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise UsageError(
                f"{self.label}: action must be one of {', '.join(ACTIONS)}, got {self.action!r}"
            )
        if not isinstance(self.sequence, str):
            raise UsageError(f"{self.label}: sequence must be a string, got {self.sequence!r}")
        for key in ("frame_index", "track_id"):
            number = whole_id(getattr(self, key))
            if number is None:
                raise UsageError(
                    f"{self.label}: {key} must be a whole number, got {getattr(self, key)!r}"
                )
            object.__setattr__(self, key, number)
        if self.annotation is not None and not isinstance(self.annotation, Mapping):
            raise UsageError(f"{self.label}: annotation must be a mapping of fields")
        if (self.annotation is None) == (self.action in ("replace", "add")):
            need = "needs" if self.annotation is None else "takes no"
            raise UsageError(f"{self.label}: {self.action} {need} annotation")
        for key in ("review", "review_tool", "review_time"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{self.label}: {key} must be a string, got {value!r}")

    @property
    def label(self) -> str:
        """The change in messages: where it came from, or its key."""
        return self.where or (
            f"{self.action} of sequence {self.sequence!r} frame {self.frame_index} "
            f"track {self.track_id}"
        )

    @property
    def frame_key(self) -> tuple[str, int]:
        return (self.sequence, self.frame_index)

    def review_fields(self, given: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The review mark this change records: its own fields, else those ``given`` in
        its annotation, else :data:`DEFAULT_REVIEW` (no tool, no time)."""
        given = given or {}
        out = {"review": self.review or given.get("review") or DEFAULT_REVIEW[self.action]}
        for key in ("review_tool", "review_time"):
            value = getattr(self, key) or given.get(key)
            if value is not None:
                out[key] = str(value)
        return out


def layer_path(state: Path, sequence: str, frame_index: int) -> Path:
    """``<state>/corrections/<sequence_dir>/<frame_stem>.json``."""
    return (
        Path(state) / CORRECTIONS_DIR / sequence_dir(sequence) / f"{frame_stem(frame_index)}.json"
    )


def new_entry(sequence: str, frame_index: int) -> Entry:
    return {"box2mask_corrections": 1, "sequence": sequence, "frame_index": int(frame_index),
            "objects": []}  # fmt: skip


def check_entry(entry: Any, where: Path | str) -> Entry:
    """A layer file's content, checked (a damaged one is refused, naming it).

    Raises:
        UsageError: not a corrections file of box2mask.
    """
    ok = (
        isinstance(entry, dict)
        and entry.get("box2mask_corrections") == 1
        and isinstance(entry.get("sequence"), str)
        and type(entry.get("frame_index")) is int
        and isinstance(entry.get("objects"), list)
        and all(
            isinstance(o, dict)
            and type(o.get("track_id")) is int
            and (isinstance(o.get("annotation"), dict) or isinstance(o.get("removed"), dict))
            for o in entry["objects"]
        )
    )
    if not ok:
        raise UsageError(f"{where}: not a corrections file of a box2mask job (damaged?)")
    return entry


def read_entry(path: Path) -> Entry | None:
    """The layer file at ``path``, ``None`` when the frame has no corrections."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from None
    try:
        return check_entry(json.loads(text), path)
    except ValueError as exc:
        raise UsageError(f"{path}: not a corrections file of a box2mask job ({exc})") from None


def overlay(part: Part, entry: Entry | None) -> Part:
    """The frame as the job holds it: ``part`` with its corrections. ``part`` is not changed.

    Objects keep the part's order; a replaced one takes its layer record, a removed
    one is dropped, added ones follow in the layer's order.
    """
    if not entry or not entry["objects"]:
        return part
    by_track = {o["track_id"]: o for o in entry["objects"]}
    held = {int(a["track_id"]) for a in part["annotations"]}
    anns = []
    for ann in part["annotations"]:
        o = by_track.get(int(ann["track_id"]))
        if o is None:
            anns.append(ann)
        elif "annotation" in o:
            anns.append(o["annotation"])
    anns += [o["annotation"] for o in entry["objects"]
             if o["track_id"] not in held and "annotation" in o]  # fmt: skip
    return {**part, "annotations": anns}


@dataclass
class Outcome:
    """What a change did: ``applied``, ``unchanged`` (the job already held it), or
    ``absent`` (a removal or review of an object the frame does not hold)."""

    change: ObjectChange
    result: str


def apply_to_frame(
    part: Part,
    entry: Entry | None,
    changes: Iterable[ObjectChange],
    categories: list[dict[str, Any]],
) -> tuple[Entry, list[Outcome]]:
    """A frame's layer entry with ``changes`` made, and what each change did.

    Args:
        part: the frame's part as the model made it.
        entry: its layer entry now (``None``: no corrections yet).
        changes: changes of this frame, at most one per track id.
        categories: the job's category table.

    Raises:
        UsageError: a change that cannot be made (naming it): a replace or an add
            that conflicts with what the frame holds, a track id the frame holds
            twice, an unknown category, a mask of another size.
    """
    seq, fi = str(part["image"]["sequence"]), int(part["image"]["frame_index"])
    entry = json.loads(json.dumps(entry)) if entry else new_entry(seq, fi)  # a deep copy
    objects: dict[int, dict[str, Any]] = {o["track_id"]: o for o in entry["objects"]}
    current = overlay(part, entry)["annotations"]
    outcomes = []
    for ch in changes:
        held = [a for a in current if int(a["track_id"]) == ch.track_id]
        if len(held) > 1:
            raise UsageError(
                f"{ch.label}: the job holds {len(held)} objects with track {ch.track_id} in "
                f"sequence {seq!r} frame {fi}; one change cannot say which"
            )
        now = held[0] if held else None
        if ch.action == "remove":
            if now is None:
                outcomes.append(Outcome(ch, "absent"))
                continue
            objects[ch.track_id] = {"track_id": ch.track_id, "removed": ch.review_fields()}
            outcomes.append(Outcome(ch, "applied"))
            continue
        if ch.action == "review":
            if now is None:
                outcomes.append(Outcome(ch, "absent"))
                continue
            record = {**now, **ch.review_fields()}
        elif ch.action == "replace":
            if now is None:
                raise UsageError(
                    f"{ch.label}: the job holds no object with track {ch.track_id} in "
                    f"sequence {seq!r} frame {fi} (changes for another job?)"
                )
            record = _record(now, ch, part, categories)
        else:  # add
            record = _record(None, ch, part, categories)
            if now is not None and not same_record(now, record):
                raise UsageError(
                    f"{ch.label}: the job already holds track {ch.track_id} in sequence {seq!r} "
                    f"frame {fi}, with another mask or record; change it with replace"
                )
        if now is not None and same_record(now, record):
            outcomes.append(Outcome(ch, "unchanged"))
            continue
        objects[ch.track_id] = {"track_id": ch.track_id, "annotation": record}
        outcomes.append(Outcome(ch, "applied"))
    entry["objects"] = list(objects.values())
    return entry, outcomes


def same_record(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two records equal but for the review's time (made again later, it changes nothing)."""
    strip = ("review_time",) if a.get("review") == b.get("review") else ()
    return {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def _record(
    now: Mapping[str, Any] | None, ch: ObjectChange, part: Part, categories: list[dict[str, Any]]
) -> dict[str, Any]:
    """The record of a replaced (``now`` given) or added object after ``ch``."""
    fields = {k: v for k, v in dict(ch.annotation or {}).items() if k not in COMPUTED}
    fields.pop("category_id", None)
    fields.pop("track_id", None)
    category = _category(ch, categories)
    if category is not None:
        fields["category"] = category
    elif now is None:
        raise UsageError(f"{ch.label}: a new object needs its category (category or category_id)")
    review = {k: fields.pop(k) for k in REVIEW_FIELDS if k in fields}
    record: dict[str, Any] = dict(now) if now is not None else {"iscrowd": 0}
    record["track_id"] = ch.track_id
    for key in REVIEW_FIELDS:
        record.pop(key, None)
    if "segmentation" in fields or now is None:
        if "segmentation" not in fields:
            raise UsageError(f"{ch.label}: a new object needs its mask (segmentation)")
        enc = _encode(fields.pop("segmentation"), part_hw(part), ch)
        if now is None or enc.rle != now.get("segmentation"):
            record.update(score=1.0, mask_source="manual")  # unless the change gives its own
        record.update(segmentation=enc.rle, area=enc.area, bbox=enc.bbox)
        if now is None:
            record["prompt_box"] = list(enc.bbox)
    record.update(fields)
    record.update(ch.review_fields(review))
    _check_record(record, ch)
    first = [k for k in PART_FIELDS if k in record]
    return {k: record[k] for k in [*first, *(k for k in record if k not in PART_FIELDS)]}


def _check_record(record: Mapping[str, Any], ch: ObjectChange) -> None:
    """A record every format can be derived from (checked before anything is written)."""
    if record.get("mask_source") not in MASK_SOURCES:
        raise UsageError(
            f"{ch.label}: mask_source must be one of {', '.join(MASK_SOURCES)}, "
            f"got {record.get('mask_source')!r}"
        )
    score = record.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        raise UsageError(f"{ch.label}: score must be a finite number or null, got {score!r}")
    box = record.get("prompt_box")
    ok = (
        isinstance(box, (list, tuple))
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        and all(math.isfinite(v) for v in box)
        and box[2] >= 0
        and box[3] >= 0
    )
    if not ok:
        raise UsageError(f"{ch.label}: prompt_box must be [x, y, w, h] (w, h >= 0), got {box!r}")
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{ch.label}: a field is not plain JSON ({exc})") from None


def _category(ch: ObjectChange, categories: list[dict[str, Any]]) -> str | None:
    names = {str(c["name"]) for c in categories}
    ann = ch.annotation or {}
    if "category" in ann:
        name = ann["category"]
        if not isinstance(name, str) or name not in names:
            raise UsageError(f"{ch.label}: category {name!r} is not a category of the job")
        return name
    if "category_id" in ann:
        by_id = {c["id"]: str(c["name"]) for c in categories}
        cid = ann["category_id"]
        if isinstance(cid, bool) or cid not in by_id:
            raise UsageError(f"{ch.label}: category_id {cid!r} is not a category of the job")
        return by_id[cid]
    return None


def _encode(seg: Any, hw: tuple[int, int], ch: ObjectChange) -> Any:
    """A change's mask as compressed RLE of the frame (with its area and box)."""
    size = seg.get("size") if isinstance(seg, Mapping) else None
    if size is not None and [int(v) for v in size] != list(hw):
        raise UsageError(f"{ch.label}: its mask is {size[0]}x{size[1]}, the frame {hw[0]}x{hw[1]}")
    try:
        block = decode(seg, hw)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{ch.label}: its segmentation is not a COCO mask ({exc})") from None
    return encode_frame_block(block, hw)


def layer_frames(state: Path, sequence: str) -> set[int]:
    """The frame numbers of a sequence that have corrections (a listing, no file read)."""
    folder = Path(state) / CORRECTIONS_DIR / sequence_dir(sequence)
    if not folder.is_dir():
        return set()
    return {int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()}


def layer_digest(state: Path) -> str:
    """SHA-256 of a job's corrections layer (each file's path and bytes, in path order): what
    a trainer records of a job's reviewed objects, so that a run resumed after more
    corrections were imported is told apart."""
    import hashlib

    root = Path(state) / CORRECTIONS_DIR
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        h.update(path.relative_to(root).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def count_layer(state: Path) -> tuple[int, int]:
    """``(frames, objects)`` the layer of a job holds corrections for."""
    root = Path(state) / CORRECTIONS_DIR
    frames = objects = 0
    if not root.is_dir():
        return 0, 0
    for path in root.rglob("*.json"):
        try:
            entry = read_entry(path)
        except UsageError:
            continue
        if entry and entry["objects"]:
            frames += 1
            objects += len(entry["objects"])
    return frames, objects


__all__ = [
    "ACTIONS",
    "CORRECTIONS_DIR",
    "DEFAULT_REVIEW",
    "REVIEWED",
    "ObjectChange",
    "Outcome",
    "apply_to_frame",
    "layer_path",
    "overlay",
    "read_entry",
]
