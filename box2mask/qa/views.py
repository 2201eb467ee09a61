"""The review page's pictures of the ``--html-top`` objects: thumbnails, full frames, tracks.

For each of the ``--html-top`` most suspicious objects the page can show

- its thumbnail, ``thumbs/<rank>.png`` (:func:`thumbnail`);
- its whole frame, ``frames/<n>.jpg``: the frame downscaled to at most
  :data:`FRAME_SIDE` px on its long side, JPEG quality :data:`FRAME_QUALITY`,
  written once per frame whatever the number of top objects in it; the page
  draws the object's box over it (the box is in the page's data as fractions of
  the frame, so one picture serves every object of the frame);
- its track's neighbouring frames, ``track/<n>.jpg``: the same track's object
  in the :data:`NEAR` frames before and after its own in the sequence's frame
  order, each cropped and drawn as a thumbnail (JPEG), written once per
  (frame, track).

The cost is bounded by ``--html-top``: at most ``html_top`` full frames and
``2 * NEAR * html_top`` track crops, and one image read per distinct frame
among the top objects' frames and their neighbours. Nothing is written for the
objects past ``--html-top``; the page shows the pictures only when asked
(the images load when a card's "view" is opened).

The objects' masks are read again from the source: a job's frames through its
parts with their corrections (:meth:`box2mask.job.JobFolder.read_part`), a COCO
file's through its on-disk index (:class:`box2mask.cocofile.CocoFile`).
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.io import atomic_write_bytes, imread
from box2mask.masks import decode

THUMB = 160  # thumbnail long side, px
_MASK_RGB = (0, 200, 255)
_BOX_RGB = (255, 220, 0)


def thumbnail(image: np.ndarray, seg: dict, box_xywh: list[float]) -> np.ndarray:
    """An RGB crop around the box: the mask filled (40%) and outlined, the prompt box drawn."""
    h, w = image.shape[:2]
    x, y, bw, bh = box_xywh
    side = max(bw, bh, 16.0) * 1.6
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((THUMB, THUMB, 3), np.uint8)
    crop = image[y0:y1, x0:x1].copy()
    blk = decode(seg, (h, w)).clip(y0, x0, y1, x1)  # the part of the mask in the crop
    m = np.zeros(crop.shape[:2], dtype=bool)
    if blk.height:
        m[blk.top - y0 : blk.bottom - y0, blk.left - x0 : blk.right - x0] = blk.pixels()
    scale = THUMB / max(crop.shape[:2])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    interp = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    big = cv2.resize(crop, size, interpolation=interp)
    mb = cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    tint = np.array(_MASK_RGB, np.float32)
    big[mb] = (0.6 * big[mb] + 0.4 * tint).astype(np.uint8)
    contours, _ = cv2.findContours(mb.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(big, contours, -1, _MASK_RGB, 1)
    p0 = (round((x - x0) * scale), round((y - y0) * scale))
    p1 = (round((x + bw - x0) * scale) - 1, round((y + bh - y0) * scale) - 1)
    cv2.rectangle(big, p0, p1, _BOX_RGB, 1)
    return big


#: long side of a full-frame picture, px (a smaller frame is kept at its size)
FRAME_SIDE = 1024
FRAME_QUALITY = 80
#: JPEG quality of a track crop
CROP_QUALITY = 90
#: frames shown before and after an object's own, in its track's view
NEAR = 2


@dataclass(frozen=True)
class TopObject:
    """One of the ``--html-top`` objects, as qa's ranked row gives it."""

    rank: int
    sequence: str
    frame_index: int
    track_id: int | None
    #: where the object is found again: its place in a job's frame, its ordinal in a file
    where: int
    file_name: str
    prompt_box: list[float]


@dataclass
class _Frame:
    """A frame to read: its image record, and what to draw from it."""

    image: dict[str, Any]
    #: top objects in it: (rank, place to read the segmentation, prompt box)
    own: list[tuple[int, int, list[float]]] = field(default_factory=list)
    #: track ids whose object is shown as a neighbour: their picture's number, -1 (not in
    #: this frame) or -2 (the image is unreadable)
    tracks: dict[int, int] = field(default_factory=dict)
    #: the full-frame picture's number (-1: none)
    picture: int = -1
    #: the size of the image read, ``(H, W)``
    hw: tuple[int, int] = (0, 0)


class _Source:
    """A job's or a COCO file's frames, looked up by a hashable handle."""

    def __init__(self, spec: Any) -> None:
        self.job = spec.kind == "job"
        if self.job:
            from box2mask.job import JobFolder

            self.folder = JobFolder(spec.path)
            self._indices: dict[str, list[int]] = {}
        else:
            from box2mask.cocofile import CocoFile

            self.coco = CocoFile.attach(spec.path, spec.index)

    def close(self) -> None:
        if not self.job:
            self.coco.close()

    def locate(self, top: TopObject) -> tuple[Any, dict, list[tuple[Any, dict, int]]] | None:
        """``(handle, image, neighbours)`` of a top object's frame: the neighbours are the
        :data:`NEAR` frames before and after it in frame order, ``(handle, image, side)``
        (``side`` -1 before, 1 after)."""
        if self.job:
            fis = self._indices.get(top.sequence)
            if fis is None:
                fis = self._indices[top.sequence] = sorted(self.folder.frame_indices(top.sequence))
            k = bisect.bisect_left(fis, top.frame_index)
            near = [(fi, -1) for fi in fis[max(0, k - NEAR) : k]]
            near += [(fi, 1) for fi in fis[k + 1 : k + 1 + NEAR]]
            image = {"sequence": top.sequence, "frame_index": top.frame_index}
            return (
                (top.sequence, top.frame_index),
                image,
                [((top.sequence, fi), {"sequence": top.sequence, "frame_index": fi}, side)
                 for fi, side in near],
            )  # fmt: skip
        ann = self.coco.annotation(top.where)
        if ann is None:
            return None
        image = self.coco.image_by_id(ann.get("image_id"))
        if image is None:
            return None
        before, after = self.coco.neighbours(image.get("id"), NEAR)
        return (
            _handle(image),
            image,
            [(_handle(im), im, -1) for im in before] + [(_handle(im), im, 1) for im in after],
        )

    def annotations(self, handle: Any, image: dict) -> tuple[dict, list[tuple[int, dict]]]:
        """A frame's full image record and its annotations as ``(place, annotation)``."""
        if self.job:
            part = self.folder.read_part(*handle)
            return part["image"], list(enumerate(part["annotations"]))
        return image, self.coco.annotations_of(image.get("id"))


def _handle(image: dict) -> str:
    return json.dumps(image.get("id"))


def _frame_label(image: dict) -> Any:
    return image.get("frame_index", image.get("id"))


def write_pictures(
    dest: Path, spec: Any, root: Path, tops: list[TopObject]
) -> tuple[set[int], list[dict[str, Any] | None]]:
    """The pictures of ``tops`` (in rank order) under ``dest``; returns the ranks whose
    thumbnail was made and, per top object, its view for the page (``None`` when its
    frame could not be read): ``{"frame": n, "box": [x, y, w, h]}`` (the full-frame
    picture's number, the prompt box as fractions of the frame) and ``"near"``: the
    neighbouring frames in order, ``[frame_index, n, side]`` (``n`` the track crop's
    number, -1 when the track is not in that frame, -2 when its image is unreadable;
    ``side`` -1 before the object's frame, 1 after)."""
    for sub in ("thumbs", "frames", "track"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    src = _Source(spec)
    try:
        frames: dict[Any, _Frame] = {}
        plan: list[tuple[TopObject, Any, list[tuple[Any, int]]] | None] = []
        for top in tops:
            found = src.locate(top)
            if found is None:
                plan.append(None)
                continue
            handle, image, near = found
            frames.setdefault(handle, _Frame(image)).own.append(
                (top.rank, top.where, top.prompt_box)
            )
            sides = []
            for h, im, side in near:
                fr = frames.setdefault(h, _Frame(im))
                if top.track_id is not None:
                    fr.tracks.setdefault(top.track_id, -1)
                sides.append((h, side))
            plan.append((top, handle, sides))
        made, n_frames, n_crops = set(), 0, 0
        for handle, fr in frames.items():
            image, anns = src.annotations(handle, fr.image)
            fr.image = image
            bgr = imread(root / str(image.get("file_name", "")))
            if bgr is None:
                for tid in fr.tracks:
                    fr.tracks[tid] = -2
                continue
            fr.hw = (int(bgr.shape[0]), int(bgr.shape[1]))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            by_place = dict(anns)
            for rank, where, box in fr.own:
                ann = by_place.get(where)
                if ann is None:
                    continue
                th = thumbnail(rgb, ann.get("segmentation"), box)
                ok, buf = cv2.imencode(".png", cv2.cvtColor(th, cv2.COLOR_RGB2BGR))
                if ok:
                    atomic_write_bytes(dest / f"thumbs/{rank:06d}.png", buf.tobytes())
                    made.add(rank)
            picture = dest / f"frames/{n_frames:06d}.jpg"
            if fr.own and _write_jpeg(picture, _downscaled(bgr), FRAME_QUALITY):
                fr.picture = n_frames
                n_frames += 1
            for tid in fr.tracks:
                held = [a for _, a in anns if a.get("track_id") == tid]
                if not held:
                    continue
                a = held[0]
                box = _box(a.get("prompt_box") or a.get("bbox"))
                if box is None:
                    continue
                th = thumbnail(rgb, a.get("segmentation"), box)
                path = dest / f"track/{n_crops:06d}.jpg"
                if _write_jpeg(path, cv2.cvtColor(th, cv2.COLOR_RGB2BGR), CROP_QUALITY):
                    fr.tracks[tid] = n_crops
                    n_crops += 1
        views: list[dict[str, Any] | None] = []
        for item in plan:
            if item is None:
                views.append(None)
                continue
            top, handle, sides = item
            fr = frames[handle]
            if fr.picture < 0:
                views.append(None)
                continue
            h, w = float(fr.hw[0]), float(fr.hw[1])
            x, y, bw, bh = (float(v) for v in top.prompt_box)
            near = [
                [_frame_label(frames[hh].image), -1 if top.track_id is None
                 else frames[hh].tracks.get(top.track_id, -1), side]
                for hh, side in sides
            ]  # fmt: skip
            views.append({"frame": fr.picture,
                          "box": [round(x / w, 6), round(y / h, 6), round(bw / w, 6), round(bh / h, 6)],
                          "near": near})  # fmt: skip
        return made, views
    finally:
        src.close()


def _box(value: Any) -> list[float] | None:
    """A box ``[x, y, w, h]`` of finite numbers, or ``None`` (another tool's file may lack it)."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return box if all(np.isfinite(box)) else None


def _downscaled(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    scale = FRAME_SIDE / max(h, w)
    if scale >= 1:
        return bgr
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


def _write_jpeg(path: Path, bgr: np.ndarray, quality: int) -> bool:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        atomic_write_bytes(path, buf.tobytes())
    return bool(ok)


__all__ = ["FRAME_SIDE", "NEAR", "THUMB", "TopObject", "thumbnail", "write_pictures"]
