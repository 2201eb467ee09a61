"""A COCO mask as its tight block: decode an RLE at a cost that follows the object, not the frame.

``pycocotools.mask.decode`` builds the whole ``(H, W)`` frame for every
object; on a 4K frame with hundreds of objects that is most of the time of a
quality pass. Here a compressed RLE is read run by run and only the block of
rows and columns the mask covers is filled.

A :class:`Block` is ``mask`` (``(h, w)`` bool) placed at frame pixel
``(top, left)``: block pixel ``(r, c)`` is frame pixel ``(top + r, left + c)``
(row, column). An empty mask is a ``(0, 0)`` block at ``(0, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Block:
    """A mask's tight block in a frame of ``frame_hw`` = ``(H, W)`` pixels."""

    mask: np.ndarray
    top: int
    left: int
    frame_hw: tuple[int, int]

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def empty(self) -> bool:
        return self.mask.size == 0 or not self.mask.any()

    def xyxy(self) -> tuple[int, int, int, int]:
        """Tight box ``(x1, y1, x2, y2)``, exclusive ends, frame pixels; zeros when empty."""
        h, w = self.mask.shape
        if h == 0 or w == 0:
            return (0, 0, 0, 0)
        return (self.left, self.top, self.left + w, self.top + h)

    def full(self) -> np.ndarray:
        """The ``(H, W)`` bool frame mask."""
        out = np.zeros(self.frame_hw, dtype=bool)
        h, w = self.mask.shape
        out[self.top : self.top + h, self.left : self.left + w] = self.mask
        return out


def rle_counts(counts: str) -> list[int]:
    """Run lengths of a COCO compressed ``counts`` string (pycocotools' ``rleFrString``)."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = 1
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = c & 0x20
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def block_from_segmentation(seg: Any, frame_hw: tuple[int, int]) -> Block:
    """A COCO ``segmentation`` (compressed or uncompressed RLE, or polygons) as a :class:`Block`.

    Args:
        seg: ``{"size": [H, W], "counts": str | list[int]}`` or a list of polygons.
        frame_hw: ``(H, W)`` of the image (used for polygons; an RLE's own size wins).
    """
    if isinstance(seg, dict) and "counts" in seg:
        h, w = (int(v) for v in seg.get("size", frame_hw))
        counts = seg["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        runs = rle_counts(counts) if isinstance(counts, str) else [int(v) for v in counts]
        return _block_from_runs(np.asarray(runs, dtype=np.int64), (h, w))
    from pycocotools import mask as mask_utils

    h, w = frame_hw
    if not seg:
        return Block(np.zeros((0, 0), bool), 0, 0, (h, w))
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return block_from_mask(mask_utils.decode(rle).astype(bool))


def block_from_mask(mask: np.ndarray, top: int = 0, left: int = 0,
                    frame_hw: tuple[int, int] | None = None) -> Block:  # fmt: skip
    """The tight block of a bool mask placed at ``(top, left)`` (default: a whole frame mask)."""
    mask = np.asarray(mask, dtype=bool)
    hw = tuple(mask.shape) if frame_hw is None else tuple(frame_hw)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return Block(np.zeros((0, 0), bool), 0, 0, hw)  # type: ignore[arg-type]
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Block(mask[r0:r1, c0:c1], top + r0, left + c0, hw)  # type: ignore[arg-type]


def _block_from_runs(runs: np.ndarray, frame_hw: tuple[int, int]) -> Block:
    h, w = frame_hw
    bounds = np.concatenate(([0], np.cumsum(runs)))
    starts, ends = bounds[1:-1:2], bounds[2::2]  # the 1-runs: odd positions
    n = min(starts.size, ends.size)
    starts, ends = starts[:n], ends[:n]
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0 or h == 0:
        return Block(np.zeros((0, 0), bool), 0, 0, (h, w))
    # split runs at column boundaries (column-major: flat index = col * H + row)
    c_first, c_last = starts // h, (ends - 1) // h
    if np.any(c_first != c_last):
        seg_s, seg_e = [], []
        for s, e, a, b in zip(starts, ends, c_first, c_last, strict=True):
            for c in range(int(a), int(b) + 1):
                seg_s.append(max(int(s), c * h))
                seg_e.append(min(int(e), (c + 1) * h))
        starts, ends = np.asarray(seg_s), np.asarray(seg_e)
    cols = starts // h
    r_s, r_e = starts - cols * h, ends - cols * h
    r0, r1 = int(r_s.min()), int(r_e.max())
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    acc = np.zeros((r1 - r0 + 1, c1 - c0), dtype=np.int32)
    # runs never share a start or an end (a 0-run lies between two 1-runs)
    acc[r_s - r0, cols - c0] += 1
    acc[r_e - r0, cols - c0] -= 1
    mask = np.cumsum(acc, axis=0, dtype=np.int32)[:-1] > 0
    # the runs' extent is the tight block already
    return Block(mask, r0, c0, (h, w))
