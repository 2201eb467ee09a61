"""Temporal consistency of a track's masks: IoU with the previous frame's mask, aligned by box motion.

A mask that is right in frame ``t - 1`` and right in frame ``t`` has nearly the
same shape once moved (and scaled) the way the object's box moved; a sudden
drop of that IoU along a track marks a frame whose mask changed and the box
did not say so (a leak, a shrink to a part, a jump to a neighbour).

Coordinate frames and shapes
----------------------------
- Masks are frame masks: an ``(H, W)`` bool/0-1 array, or a COCO RLE
  (``{"size": [H, W], "counts": str | list}``, as ``box2mask convert``
  writes them; read with :func:`box2mask.masks.decode`), or a
  :class:`box2mask.masks.MaskBlock` in frame pixels. Row ``r``, column
  ``c`` is the pixel whose centre is at ``(x, y) = (c + 0.5, r + 0.5)``.
- Boxes are ``xyxy`` floats in frame pixels with exclusive ``x2``/``y2``
  (the convention of :mod:`box2mask.geometry`; a COCO ``[x, y, w, h]``
  converts as ``[x, y, x + w, y + h]``).
- The alignment maps the previous box onto the current one: a point ``p``
  of the previous frame goes to ``c_cur + (p - c_prev) * s``, with ``c`` the
  box centres and ``s = (w_cur / w_prev, h_cur / h_prev)`` per axis (1 where
  a side is 0). Current pixel centres are mapped back and read from the
  previous mask (nearest pixel), so the result needs no resampling filter
  and is exact for whole-pixel translations.

:func:`aligned_iou` is one pair; :func:`track_pairs` walks the annotations of a
COCO file (``track_id`` + the image's ``sequence``/``frame_index``);
:func:`temporal_consistency` is the mean over all consecutive pairs.
Both empty: 1.0; one empty: 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from box2mask.masks import MaskBlock, decode

MaskLike = np.ndarray | Mapping[str, Any] | MaskBlock


def as_block(mask: MaskLike) -> tuple[MaskBlock, tuple[int, int] | None]:
    """A frame mask (array, COCO RLE or block) as ``(block in frame pixels, (H, W) or None)``.

    The frame size is the array's shape or the RLE's ``size``; a block does not know it.
    """
    if isinstance(mask, MaskBlock):
        return mask, None
    if isinstance(mask, Mapping):
        size = mask.get("size")
        return decode(dict(mask)), None if size is None else (int(size[0]), int(size[1]))
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"a frame mask must be 2-D (H, W), got shape {arr.shape}")
    return MaskBlock.from_mask(arr != 0), (int(arr.shape[0]), int(arr.shape[1]))


def _scale(cur: float, prev: float) -> float:
    return cur / prev if prev > 0 and cur > 0 else 1.0


def aligned_iou(
    prev_rle_or_mask: MaskLike,
    prev_box_xyxy: Iterable[float],
    mask: MaskLike,
    box_xyxy: Iterable[float],
    frame_hw: tuple[int, int] | None = None,
) -> float:
    """IoU of ``mask`` with the previous frame's mask moved and scaled as the box moved.

    Args:
        prev_rle_or_mask: the previous frame's mask: ``(H, W)`` array, COCO RLE or
            :class:`~box2mask.masks.MaskBlock` in frame pixels.
        prev_box_xyxy: the previous frame's box ``(x1, y1, x2, y2)``, frame pixels.
        mask: the current frame's mask (same kinds; the frame sizes may differ).
        box_xyxy: the current frame's box ``(x1, y1, x2, y2)``.
        frame_hw: ``(H, W)`` of the current frame (the previous mask moved
            past it counts as outside); needed when ``mask`` is a block, else
            its array shape or RLE ``size``.

    Returns:
        In ``[0, 1]``: 1.0 when both masks are empty, 0.0 when one is.

    >>> a = np.zeros((20, 20), bool); a[2:6, 2:8] = True
    >>> b = np.zeros((20, 20), bool); b[12:16, 10:16] = True
    >>> aligned_iou(a, [2, 2, 8, 6], b, [10, 12, 16, 16])
    1.0
    """
    pb, _ = as_block(prev_rle_or_mask)
    cb, hw = as_block(mask)
    hw = frame_hw if frame_hw is not None else hw
    if hw is None:
        raise ValueError("aligned_iou: the current mask is a block; give its frame_hw")
    if pb.area == 0 and cb.area == 0:
        return 1.0
    if pb.area == 0 or cb.area == 0:
        return 0.0
    px1, py1, px2, py2 = (float(v) for v in prev_box_xyxy)
    cx1, cy1, cx2, cy2 = (float(v) for v in box_xyxy)
    sx, sy = _scale(cx2 - cx1, px2 - px1), _scale(cy2 - cy1, py2 - py1)
    pcx, pcy = (px1 + px2) / 2, (py1 + py2) / 2
    ccx, ccy = (cx1 + cx2) / 2, (cy1 + cy2) / 2
    # the previous block's extent mapped into the current frame
    bx1, by1, bx2, by2 = pb.xyxy()
    mx1, mx2 = ccx + (bx1 - pcx) * sx, ccx + (bx2 - pcx) * sx
    my1, my2 = ccy + (by1 - pcy) * sy, ccy + (by2 - pcy) * sy
    kx1, ky1, kx2, ky2 = cb.xyxy()
    x0, x1 = int(np.floor(min(mx1, kx1))), int(np.ceil(max(mx2, kx2)))
    y0, y1 = int(np.floor(min(my1, ky1))), int(np.ceil(max(my2, ky2)))
    fh, fw = hw
    # current pixel centres of the region, mapped back into the previous frame; only
    # those inside the current frame count (the moved mask off the frame is outside it)
    c_lo, c_hi = max(0, -x0), min(x1 - x0, max(0, fw - x0))
    r_lo, r_hi = max(0, -y0), min(y1 - y0, max(0, fh - y0))
    xs = pcx + (np.arange(x0 + c_lo, x0 + c_hi) + 0.5 - ccx) / sx
    ys = pcy + (np.arange(y0 + r_lo, y0 + r_hi) + 0.5 - ccy) / sy
    cols = np.floor(xs).astype(np.int64) - pb.left
    rows = np.floor(ys).astype(np.int64) - pb.top
    # the mapping is monotonic: the region's pixels that land on the previous block are
    # one rectangle, where the moved mask is the block's pixels picked by rows and cols
    ci = np.flatnonzero((cols >= 0) & (cols < pb.width))
    ri = np.flatnonzero((rows >= 0) & (rows < pb.height))
    area = cb.area
    if ci.size == 0 or ri.size == 0:
        return 1.0 if area == 0 else 0.0
    # the moved mask's rectangle in frame pixels
    mr0, mc0 = y0 + r_lo + int(ri[0]), x0 + c_lo + int(ci[0])
    mr1, mc1 = y0 + r_lo + int(ri[-1]) + 1, x0 + c_lo + int(ci[-1]) + 1
    if pb.data is None:
        moved = np.ones((mr1 - mr0, mc1 - mc0), dtype=bool)
    else:
        moved = pb.data[np.ix_(rows[ri[0] : ri[-1] + 1], cols[ci[0] : ci[-1] + 1])]
    n_moved = int(np.count_nonzero(moved))
    # the overlap of the moved rectangle and the current block
    o0, o1 = max(mr0, cb.top), min(mr1, cb.bottom)
    p0, p1 = max(mc0, cb.left), min(mc1, cb.right)
    inter = 0
    if o1 > o0 and p1 > p0:
        m = moved[o0 - mr0 : o1 - mr0, p0 - mc0 : p1 - mc0]
        if cb.data is None:
            inter = int(np.count_nonzero(m))
        else:
            c = cb.data[o0 - cb.top : o1 - cb.top, p0 - cb.left : p1 - cb.left]
            inter = int(np.count_nonzero(m & c))
    union = n_moved + area - inter
    return 1.0 if union == 0 else inter / union


def xywh_to_xyxy(b: Iterable[float]) -> list[float]:
    """COCO ``[x, y, w, h]`` → ``[x1, y1, x2, y2]``."""
    x, y, w, h = (float(v) for v in b)
    return [x, y, x + w, y + h]


def annotation_box(ann: Mapping[str, Any]) -> list[float]:
    """An annotation's box ``xyxy``: its ``prompt_box`` (what the track says), else ``bbox``."""
    return xywh_to_xyxy(ann.get("prompt_box") or ann["bbox"])


@dataclass(frozen=True)
class TrackPair:
    """Two consecutive annotations of one track and their aligned IoU."""

    sequence: str
    track_id: int
    prev_id: Any
    id: Any
    prev_frame: int
    frame: int
    iou: float


def track_pairs(
    annotations: Iterable[Mapping[str, Any]], images: Iterable[Mapping[str, Any]]
) -> Iterator[TrackPair]:
    """Every consecutive pair of annotations along each track, with :func:`aligned_iou`.

    A track is ``(image sequence, track_id)``; its annotations are taken in
    ``frame_index`` order (images without ``sequence``/``frame_index`` form
    one sequence ``""`` ordered by image id). "Consecutive" is the previous
    annotated frame of the track, whatever the gap. Annotations without
    ``track_id`` are skipped. Each mask is decoded once.

    Args:
        annotations: COCO annotations (``id``, ``image_id``, ``track_id``,
            ``segmentation``, ``prompt_box`` or ``bbox``).
        images: COCO images (``id``, ``height``, ``width``, ``sequence``, ``frame_index``).
    """
    ims = {im["id"]: im for im in images}
    tracks: dict[tuple[str, int], list[tuple[int, Mapping[str, Any]]]] = {}
    for a in annotations:
        if a.get("track_id") is None:
            continue
        im = ims.get(a.get("image_id"))
        if im is None:
            continue
        seq = str(im.get("sequence", ""))
        fi = int(im.get("frame_index", im["id"]))
        tracks.setdefault((seq, int(a["track_id"])), []).append((fi, a))
    for (seq, tid), items in tracks.items():
        items.sort(key=lambda t: t[0])
        prev: tuple[int, Mapping[str, Any], MaskBlock] | None = None
        for fi, a in items:
            im = ims[a["image_id"]]
            hw = (int(im["height"]), int(im["width"]))
            blk = decode(a.get("segmentation"), hw)
            if prev is not None:
                pfi, pa, pblk = prev
                iou = aligned_iou(pblk, annotation_box(pa), blk, annotation_box(a), hw)
                yield TrackPair(seq, tid, pa.get("id"), a.get("id"), pfi, fi, iou)
            prev = (fi, a, blk)


def temporal_consistency(coco: Mapping[str, Any]) -> dict[str, float | int]:
    """Mean aligned IoU over all consecutive pairs of a COCO dict's tracks.

    Returns:
        ``{"pairs": n, "mean": m, "below_0.5": share}`` (``mean`` NaN when there is no pair).
    """
    ious = [p.iou for p in track_pairs(coco.get("annotations", []), coco.get("images", []))]
    if not ious:
        return {"pairs": 0, "mean": float("nan"), "below_0.5": float("nan")}
    arr = np.asarray(ious)
    return {
        "pairs": int(arr.size),
        "mean": float(arr.mean()),
        "below_0.5": float((arr < 0.5).mean()),
    }
