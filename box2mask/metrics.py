"""Mask quality metrics: mask IoU and Boundary IoU (DESIGN §10).

Boundary IoU follows Cheng et al. 2021 and the official ``boundary_iou`` API
(also copied into HQ-SAM's and the ROS-SAM authors' evaluation code)::

    d = max(1, int(round(ratio * sqrt(H**2 + W**2))))       # H, W of the frame
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, BORDER_CONSTANT, 0)
    eroded = cv2.erode(padded, np.ones((3, 3)), iterations=d)[1:-1, 1:-1]
    boundary = mask & ~eroded
    biou = |boundary(a) & boundary(b)| / |boundary(a) | boundary(b)|

The 1-pixel zero border makes a mask cut by the frame edge have a boundary
along that edge. ``d`` iterations of a 3×3 erosion with zeros outside the
frame equal one erosion by a ``(2d+1)×(2d+1)`` square with zeros outside, and
a mask pixel's boundary status only depends on pixels within ``d`` of it, so
the metrics here work on the union bounding box of the two masks grown by
``d + 1`` and clipped to the frame, with zeros outside: the same numbers as
the full-frame code at a cost that follows the objects, not the frame.

Empty masks: IoU and Boundary IoU of two empty masks are 1.0 (the prediction
is exactly right), of an empty and a non-empty mask 0.0; never NaN.

Two ways to average, both reported by :class:`QualityAccumulator`:

- per object: each object's mask against its own ground truth, mean over
  objects (and the share of objects above IoU 0.5 and 0.75);
- per frame, as the ROS-SAM authors compute it: the union of all predicted
  masks of a frame against the union of all its ground-truth masks, mean over
  frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from box2mask.masks import MaskBlock
from box2mask.types import CropWindow

#: Boundary width as a share of the frame diagonal (official Boundary IoU API default).
DEFAULT_BIOU_RATIO = 0.02


def boundary_dilation(image_hw: tuple[int, int], ratio: float = DEFAULT_BIOU_RATIO) -> int:
    """Boundary width ``d`` in pixels: ``max(1, int(round(ratio * diagonal)))``.

    Python's ``round`` (half to even), exactly as the official code.

    >>> boundary_dilation((512, 512))
    14
    >>> boundary_dilation((10, 10))
    1
    """
    h, w = image_hw
    return max(1, int(round(ratio * math.sqrt(h * h + w * w))))


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"masks must be 2-D of the same shape, got {a.shape} and {b.shape}")
    return a.astype(bool, copy=False), b.astype(bool, copy=False)


def _union_bbox(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)`` (exclusive ends) of ``a | b``, or ``None`` if both are empty."""
    rows = np.flatnonzero(a.any(axis=1) | b.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(a.any(axis=0) | b.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _ratio(inter: int, union: int) -> float:
    return 1.0 if union == 0 else inter / union


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(H, W)`` masks (any dtype, nonzero = in).

    Two empty masks give 1.0, an empty and a non-empty one 0.0.

    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[:, :2] = True
    >>> mask_iou(a, b)
    0.3333333333333333
    """
    a, b = _check_pair(a, b)
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a | b))
    return _ratio(inter, union)


def mask_boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """The inner boundary of a mask: its pixels within ``dilation`` of a background pixel.

    Pixels outside the array count as background, so a mask cut by the array
    edge has a boundary there (the official API's 1-pixel zero padding).

    Args:
        mask: ``(H, W)`` mask, nonzero = in.
        dilation: ``d >= 1`` (Chebyshev distance, 3×3 kernel iterated ``d`` times).

    Returns:
        ``(H, W)`` bool.
    """
    if dilation < 1:
        raise ValueError(f"boundary dilation must be >= 1, got {dilation}")
    m = np.asarray(mask).astype(np.uint8, copy=False)
    if m.size == 0:
        return np.zeros(m.shape, dtype=bool)
    k = 2 * dilation + 1
    # A rectangular kernel is separable: OpenCV erodes rows then columns, so the
    # cost does not grow with d² as d iterations of 3×3 would.
    eroded = cv2.erode(
        m,
        cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return (m != 0) & (eroded == 0)


def _boundary_iou_cropped(a: np.ndarray, b: np.ndarray, d: int) -> float:
    """Boundary IoU of two same-shape bool masks with zeros outside the array."""
    bb = _union_bbox(a, b)
    if bb is None:
        return 1.0
    h, w = a.shape
    r0, r1, c0, c1 = bb
    # Grow by d + 1: every mask pixel's (2d+1)² neighbourhood then lies inside
    # the region or outside the array, where zeros are right in both cases.
    r0, r1 = max(r0 - d - 1, 0), min(r1 + d + 1, h)
    c0, c1 = max(c0 - d - 1, 0), min(c1 + d + 1, w)
    ba = mask_boundary(a[r0:r1, c0:c1], d)
    bb_ = mask_boundary(b[r0:r1, c0:c1], d)
    return _ratio(int(np.count_nonzero(ba & bb_)), int(np.count_nonzero(ba | bb_)))


def boundary_iou(
    a: np.ndarray, b: np.ndarray, ratio: float = DEFAULT_BIOU_RATIO, dilation: int | None = None
) -> float:
    """Boundary IoU (Cheng et al. 2021) of two ``(H, W)`` frame masks.

    Args:
        a, b: ``(H, W)`` masks over the whole frame, nonzero = in.
        ratio: boundary width as a share of the frame diagonal.
        dilation: the width ``d`` in pixels; overrides ``ratio`` when given.

    Returns:
        In ``[0, 1]``; 1.0 for two empty masks, 0.0 for empty vs non-empty.
    """
    a, b = _check_pair(a, b)
    d = boundary_dilation(a.shape, ratio) if dilation is None else int(dilation)
    if d < 1:
        raise ValueError(f"boundary dilation must be >= 1, got {d}")
    return _boundary_iou_cropped(a, b, d)


def block_ious(
    a: MaskBlock,
    b: MaskBlock,
    image_hw: tuple[int, int],
    ratio: float = DEFAULT_BIOU_RATIO,
    dilation: int | None = None,
    tight: bool = False,
) -> tuple[float, float]:
    """``(mask IoU, Boundary IoU)`` of two masks given as blocks in frame pixels.

    Exactly :func:`mask_iou` and :func:`boundary_iou` of the two masks painted into
    ``(H, W)`` frames (``d`` from the frame's diagonal), at the cost of the blocks: the
    full-frame code works on the union box of the masks grown by ``d + 1`` and clipped
    to the frame, which is the region built here. Pixels of a block outside the frame
    are dropped, as painting drops them. ``tight``: the caller gives blocks already inside
    the frame and tight (:meth:`~box2mask.masks.MaskBlock.tight`).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    d = boundary_dilation((h, w), ratio) if dilation is None else int(dilation)
    if d < 1:
        raise ValueError(f"boundary dilation must be >= 1, got {d}")
    if not tight:
        a = a.clip(0, 0, h, w).tight() if a.height else a
        b = b.clip(0, 0, h, w).tight() if b.height else b
    boxes = [x for x in (a, b) if x.height]
    if not boxes:
        return 1.0, 1.0
    r0, c0 = min(x.top for x in boxes), min(x.left for x in boxes)
    r1, c1 = max(x.bottom for x in boxes), max(x.right for x in boxes)
    # the full-frame code's region: the union box grown by d + 1, inside the frame
    g0, g1 = max(r0 - d - 1, 0), min(r1 + d + 1, h)
    k0, k1 = max(c0 - d - 1, 0), min(c1 + d + 1, w)
    pa = np.zeros((g1 - g0, k1 - k0), dtype=bool)
    pb = np.zeros_like(pa)
    for blk, arr in ((a, pa), (b, pb)):
        if blk.height:
            arr[blk.top - g0 : blk.bottom - g0, blk.left - k0 : blk.right - k0] = blk.pixels()
    inter = int(np.count_nonzero(pa & pb))
    iou = _ratio(inter, int(np.count_nonzero(pa | pb)))
    ba, bb = (_boundary_of(x, arr, d) for x, arr in ((a, pa), (b, pb)))
    if ba is pa and bb is pb:  # both all boundary: the same counts as the IoU
        return iou, iou
    return iou, _ratio(int(np.count_nonzero(ba & bb)), int(np.count_nonzero(ba | bb)))


def _boundary_of(block: MaskBlock, region: np.ndarray, d: int) -> np.ndarray:
    """:func:`mask_boundary` of ``region`` (the tight ``block`` painted into it): the mask
    itself when the block is less than ``2d + 1`` pixels tall or wide, since then every
    pixel's ``(2d+1)``-square holds a row or column with no mask pixel (nothing erodes
    to 1); else the erosion."""
    if block.height < 2 * d + 1 or block.width < 2 * d + 1:
        return region
    return mask_boundary(region, d)


def window_masks_to_frame_region(
    pred: np.ndarray, gt: np.ndarray, window: CropWindow, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The part of two window-local masks that lies inside the frame.

    Args:
        pred, gt: ``(S, S)`` masks in the pixels of ``window``.
        window: the crop window (may extend past the frame).
        image_hw: ``(H, W)`` of the frame.

    Returns:
        Two bool arrays (the window ∩ frame region). Pixels outside the frame
        are dropped, as paste-back drops them.
    """
    pred, gt = _check_pair(pred, gt)
    if pred.shape != (window.size, window.size):
        raise ValueError(
            f"masks must be {window.size}×{window.size} for {window}, got {pred.shape}"
        )
    ov = window.overlap(image_hw)
    if ov is None:
        return np.zeros((0, 0), bool), np.zeros((0, 0), bool)
    _, _, cr, cc = ov
    return pred[cr, cc], gt[cr, cc]


def window_ious(
    pred: np.ndarray,
    gt: np.ndarray,
    window: CropWindow,
    image_hw: tuple[int, int],
    ratio: float = DEFAULT_BIOU_RATIO,
    dilation: int | None = None,
) -> tuple[float, float]:
    """``(mask IoU, Boundary IoU)`` of two masks given in the same crop window.

    The result equals :func:`mask_iou` / :func:`boundary_iou` of the two masks
    pasted into the ``(H, W)`` frame, with ``d`` from the frame's diagonal,
    without building frame-sized arrays: pasted masks are background
    outside their window, so zeros beyond the window are exact.
    """
    p, g = window_masks_to_frame_region(pred, gt, window, image_hw)
    d = boundary_dilation(image_hw, ratio) if dilation is None else int(dilation)
    if d < 1:
        raise ValueError(f"boundary dilation must be >= 1, got {d}")
    return _ratio(int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))), (
        _boundary_iou_cropped(p, g, d) if p.size else 1.0
    )


@dataclass
class _Sums:
    n: int = 0
    iou: float = 0.0
    biou: float = 0.0
    above_50: int = 0
    above_75: int = 0

    def add(self, iou: float, biou: float) -> None:
        self.n += 1
        self.iou += iou
        self.biou += biou
        self.above_50 += iou >= 0.5
        self.above_75 += iou >= 0.75

    def merge(self, other: _Sums) -> None:
        self.n += other.n
        self.iou += other.iou
        self.biou += other.biou
        self.above_50 += other.above_50
        self.above_75 += other.above_75

    def as_dict(self) -> dict[str, float]:
        if self.n == 0:
            return {
                "count": 0,
                "iou": math.nan,
                "biou": math.nan,
                "iou@0.5": math.nan,
                "iou@0.75": math.nan,
            }
        return {
            "count": self.n,
            "iou": self.iou / self.n,
            "biou": self.biou / self.n,
            "iou@0.5": self.above_50 / self.n,
            "iou@0.75": self.above_75 / self.n,
        }


@dataclass
class QualityAccumulator:
    """Running mask-quality totals for ``box2mask eval`` and the benchmarks.

    Memory stays constant in the number of objects (only sums are kept), and
    accumulators of shards or devices combine with :meth:`merge`.

    Args:
        ratio: Boundary IoU width as a share of the frame diagonal.

    Example::

        acc = QualityAccumulator()
        for frame in frames:
            for cat, pred, gt in objects:
                acc.add_object(cat, pred, gt, frame_hw)
            acc.add_frame(pred_union, gt_union)
        acc.summary()["per_object"]["overall"]["iou"]
    """

    ratio: float = DEFAULT_BIOU_RATIO
    _objects: dict[str, _Sums] = field(default_factory=dict)
    _frames: _Sums = field(default_factory=_Sums)

    def add_object(
        self,
        category: str,
        pred: np.ndarray,
        gt: np.ndarray,
        image_hw: tuple[int, int] | None = None,
        window: CropWindow | None = None,
    ) -> tuple[float, float]:
        """Score one object's mask against its ground truth.

        Args:
            category: the object's category name.
            pred, gt: ``(H, W)`` frame masks, or ``(S, S)`` masks in ``window``.
            image_hw: ``(H, W)`` of the frame; required with ``window``,
                taken from the masks' shape otherwise.
            window: the crop window both masks are expressed in, if crop-local.

        Returns:
            ``(iou, boundary_iou)`` of this object.
        """
        if window is not None:
            if image_hw is None:
                raise ValueError("add_object with a window needs image_hw")
            iou, biou = window_ious(pred, gt, window, image_hw, self.ratio)
        else:
            pred, gt = _check_pair(pred, gt)
            if image_hw is not None and tuple(image_hw) != pred.shape:
                raise ValueError(f"frame masks are {pred.shape} but image_hw is {tuple(image_hw)}")
            iou, biou = mask_iou(pred, gt), boundary_iou(pred, gt, self.ratio)
        self._objects.setdefault(str(category), _Sums()).add(iou, biou)
        return iou, biou

    def add_scores(self, category: str, iou: float, biou: float) -> None:
        """Count one object's ``(iou, biou)`` already computed (:func:`block_ious`)."""
        self._objects.setdefault(str(category), _Sums()).add(iou, biou)

    def add_frame_scores(self, iou: float, biou: float) -> None:
        """Count one frame's ``(iou, biou)`` already computed (:meth:`add_frame`'s)."""
        self._frames.add(iou, biou)

    def add_frame(self, pred_union: np.ndarray, gt_union: np.ndarray) -> tuple[float, float]:
        """Score one frame the authors' way: the union of its predicted masks vs the union of its GT masks.

        Args:
            pred_union, gt_union: ``(H, W)`` frame masks.

        Returns:
            ``(iou, boundary_iou)`` of this frame.
        """
        iou, biou = mask_iou(pred_union, gt_union), boundary_iou(pred_union, gt_union, self.ratio)
        self._frames.add(iou, biou)
        return iou, biou

    def merge(self, other: QualityAccumulator) -> None:
        """Add ``other``'s totals to this one (e.g. from another shard)."""
        if other.ratio != self.ratio:
            raise ValueError(
                f"cannot merge accumulators with ratios {self.ratio} and {other.ratio}"
            )
        for cat, sums in other._objects.items():
            self._objects.setdefault(cat, _Sums()).merge(sums)
        self._frames.merge(other._frames)

    def summary(self) -> dict[str, Any]:
        """The means so far.

        Returns:
            ``{"per_object": {"overall": S, "by_category": {name: S}},
            "per_frame": S, "biou_ratio": ratio}``, where ``S`` is
            ``{"count", "iou", "biou", "iou@0.5", "iou@0.75"}``: means in
            ``[0, 1]`` and the share of objects (frames) with IoU at or above
            0.5 / 0.75; NaN where the count is 0. The overall per-object mean
            is over objects, not over categories.
        """
        overall = _Sums()
        for sums in self._objects.values():
            overall.merge(sums)
        by_cat: Mapping[str, dict[str, float]] = {
            cat: self._objects[cat].as_dict() for cat in sorted(self._objects)
        }
        return {
            "per_object": {"overall": overall.as_dict(), "by_category": dict(by_cat)},
            "per_frame": self._frames.as_dict(),
            "biou_ratio": self.ratio,
        }
