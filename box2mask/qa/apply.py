"""``box2mask qa apply decisions.json --out JOB``: a reviewer's decisions written into a job.

A decision names one object (``sequence``, ``frame_index``, ``track_id``;
the annotation ``id`` when there is no track id) and an action:

- ``accept``: nothing changes;
- ``reject``: the object is removed;
- ``box`` / ``ellipse``: its mask is replaced by the prompt box filled, or
  the ellipse inscribed in it, drawn exactly as ``--model box`` /
  ``--model ellipse`` draw them (score 1.0, ``mask_source`` ``box`` /
  ``ellipse``, ``"review"`` set to the action).

What is rewritten, each file atomically, nothing else touched:

- ``<out>/annotations.json``: annotations removed or replaced; ``area`` and
  ``bbox`` from the new mask; ids renumbered 1.. in the file's order (as the
  COCO writer numbers them);
- the png format, when the job has it: the affected frames' instance maps
  and sidecars, re-painted from the frame's remaining masks by the png
  writer's rule (largest first, index = position in the frame);
- the job's per-frame COCO parts (``.box2mask/parts``), so a later resume or
  ``box2mask merge`` assembles the reviewed output, and formats assembled
  from the parts are re-derived by re-running the job's finalize step.

Applying the same decisions again changes nothing: a removed object is not
found again (counted as already applied), a replaced one already has the
new mask.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.errors import UsageError
from box2mask.io import atomic_open, atomic_write_bytes, atomic_write_json
from box2mask.layout import COCO_NAME, PARTS_DIR, part_path, state_dir
from box2mask.qa.blocks import block_from_segmentation
from box2mask.rle import encode_window_mask
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
        try:
            tid = d.get("track_id")
            out.append(Decision(
                action, str(d["sequence"]), int(d["frame_index"]),
                None if tid is None else int(tid), None if d.get("id") is None else int(d["id"]),
                where,
            ))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: needs sequence, frame_index and track_id ({exc})") from None
    return out


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
        raise UsageError(f"--out {out}: no {COCO_NAME} (a `box2mask convert --format coco` job)")
    decisions = read_decisions(decisions_path)
    try:
        coco = json.loads(coco_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {coco_path}: not readable JSON ({exc})") from None
    images = {im["id"]: im for im in coco["images"]}
    by_key: dict[tuple, list[int]] = {}
    for k, a in enumerate(coco["annotations"]):
        im = images[a["image_id"]]
        seq, fi = str(im.get("sequence", "")), int(im.get("frame_index", im["id"]))
        by_key.setdefault(_key(seq, fi, a.get("track_id"), a.get("id")), []).append(k)
    summary = ApplySummary(out)
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
    summary.notes += _other_formats(out)
    kept = [a for k, a in enumerate(anns) if k not in remove]
    for i, a in enumerate(kept, start=1):
        a["id"] = i
    coco["annotations"] = kept
    with atomic_open(coco_path) as fh:
        json.dump(coco, fh)
        fh.write("\n")
    summary.files.append(coco_path)
    per_image: dict[Any, list[dict]] = {}
    for a in kept:
        per_image.setdefault(a["image_id"], []).append(a)
    cats = {c["id"]: c["name"] for c in coco.get("categories", [])}
    sidecars = _sidecar_index(out, {str(images[i].get("sequence", "")) for i in changed_images})
    for iid in sorted(changed_images, key=str):
        im = images[iid]
        seq, fi = str(im.get("sequence", "")), int(im.get("frame_index", im["id"]))
        frame_anns = per_image.get(iid, [])
        summary.frames += 1
        side = sidecars.get((seq, fi))
        if side is not None:
            summary.files += _rewrite_png(side, im, frame_anns, cats)
        part = part_path(state_dir(out), seq, fi)
        if part.is_file():
            _rewrite_part(part, frame_anns, cats)
            summary.files.append(part)
    return summary


def _other_formats(out: Path) -> list[str]:
    """Notes for the job's formats that apply does not rewrite itself (docs/qa.md)."""
    try:
        job = json.loads((state_dir(out) / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    others = [f for f in job.get("identity", {}).get("formats", []) if f not in ("coco", "png")]
    if not others:
        return []
    return [
        f"note: format(s) {', '.join(others)} not rewritten here: the job's parts are, so run "
        f"`box2mask convert` on {out} again (it resumes and re-assembles the outputs built from "
        "the parts); per-frame files of other formats keep the old masks (docs/qa.md)"
    ]


def _sidecar_index(out: Path, sequences: set[str]) -> dict[tuple[str, int], Path]:
    """``(sequence, frame_index) -> sidecar path`` of the png format's frames in those sequences."""
    found: dict[tuple[str, int], Path] = {}
    for seq in sequences:
        folder = out / seq
        if not seq or not folder.is_dir() or folder.name == PARTS_DIR:
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
    """Re-paint a frame's instance map and sidecar from its annotations (the png writer's rule)."""
    side = json.loads(side_path.read_text(encoding="utf-8"))
    h, w = int(im["height"]), int(im["width"])
    blocks = [block_from_segmentation(a["segmentation"], (h, w)) for a in anns]
    inst = np.zeros((h, w), dtype=np.uint16)
    for k in sorted(range(len(anns)), key=lambda i: -blocks[i].area):
        b = blocks[k]
        if b.empty:
            continue
        bh, bw = b.mask.shape
        region = inst[b.top : b.top + bh, b.left : b.left + bw]
        region[b.mask] = k + 1
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
