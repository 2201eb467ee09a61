"""COCO RLE built from crop-local masks, at a cost that does not depend on the frame size.

COCO's RLE runs over the whole ``H×W`` frame in column-major order. Encoding a
full-frame mask costs ``O(H·W)`` per object, which for 300 objects on a 4K
frame is most of a second. Here the runs come from the mask's tight block
only (``O(h·w)`` for an ``h×w`` object), are shifted to frame indices, and
pycocotools compresses the counts into its string form (its own C code, a
few microseconds: the string is exactly what ``pycocotools.mask.encode`` of
the full-frame mask gives).

- :func:`encode_block` / :func:`encode_object_mask`: from a
  :class:`~box2mask.types.MaskBlock` (what the engine makes): the cost is
  that of the block; a filled box (``data is None``) is a few runs per
  column, written down directly without looking at any pixel.
- :func:`encode_window_mask`: from a full ``(S, S)`` window mask; finding
  its block costs one pass over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from box2mask.geometry import frame_block
from box2mask.types import CropWindow, MaskBlock, ObjectMask


@dataclass(frozen=True)
class EncodedMask:
    """A mask ready for COCO.

    Attributes:
        rle: ``{"size": [H, W], "counts": str}`` compressed RLE.
        area: number of mask pixels inside the frame.
        bbox: ``[x, y, w, h]`` tight box of the mask in frame pixels (zeros if empty).
    """

    rle: dict
    area: int
    bbox: list[float]


def encode_window_mask(
    mask: np.ndarray, window: CropWindow, image_hw: tuple[int, int]
) -> EncodedMask:
    """Encode an ``(S, S)`` crop-local bool mask as a frame-level compressed RLE.

    Pixels of the window outside the frame are dropped.

    Args:
        mask: ``(S, S)`` bool, pixel ``(r, c)`` is frame pixel ``(window.y0 + r, window.x0 + c)``.
        window: the mask's window.
        image_hw: ``(H, W)`` of the frame.
    """
    ov = window.overlap(image_hw)
    if ov is None:
        return encode_frame_block(MaskBlock.empty(), image_hw)
    fr, fc, cr, cc = ov
    block = MaskBlock.from_mask(mask[cr, cc])
    if block.height:
        block = MaskBlock(block.top + fr.start, block.left + fc.start, block.height,
                          block.width, block.data)  # fmt: skip
    return encode_frame_block(block, image_hw)


def encode_block(block: MaskBlock, window: CropWindow, image_hw: tuple[int, int]) -> EncodedMask:
    """Encode a mask given by its block in ``window`` pixels; same result as
    :func:`encode_window_mask` of ``block.to_array(window.size)``, at the block's cost."""
    return encode_frame_block(frame_block(block, window, image_hw), image_hw)


def encode_object_mask(om: ObjectMask, image_hw: tuple[int, int]) -> EncodedMask:
    """:func:`encode_block` of an :class:`~box2mask.types.ObjectMask`'s block."""
    return encode_block(om.block, om.window, image_hw)


def encode_frame_block(block: MaskBlock, image_hw: tuple[int, int]) -> EncodedMask:
    """Encode a mask given by a block in frame pixels (inside the frame; tightened here)."""
    h_img, w_img = image_hw
    if block.data is not None:
        block = block.tight()
    if block.height == 0 or block.width == 0:
        return EncodedMask(_compress([h_img * w_img], image_hw), 0, [0.0, 0.0, 0.0, 0.0])
    top, left, bh, bw = block.top, block.left, block.height, block.width
    if block.bottom > h_img or block.right > w_img:
        raise ValueError(f"block {block.top}:{block.bottom}, {block.left}:{block.right} "
                         f"is not inside the {h_img}x{w_img} frame")  # fmt: skip
    if block.data is None:
        counts = _box_counts(top, left, bh, bw, h_img, w_img)
        area = bh * bw
    else:
        counts = _block_counts(block.data, top, left, h_img, w_img)
        area = int(np.count_nonzero(block.data))
    return EncodedMask(
        _compress(counts, image_hw), area, [float(left), float(top), float(bw), float(bh)]
    )


def _box_counts(top: int, left: int, bh: int, bw: int, h_img: int, w_img: int) -> list[int]:
    """Uncompressed COCO counts of a frame that is zero except for a filled ``bh×bw`` box.

    Column-major: the zeros before the box's first pixel, then per column
    ``bh`` ones and the ``h_img - bh`` zeros down to the next column's first
    box pixel, then the zeros after the box (left out when there are none).
    A box the frame's full height is one run (COCO runs join across columns).

    >>> _box_counts(1, 1, 2, 2, 4, 3)
    [5, 2, 2, 2, 1]
    """
    total = h_img * w_img
    if bh == h_img:
        counts = [left * h_img, bh * bw]
    else:
        counts = [left * h_img + top]
        counts += [bh, h_img - bh] * (bw - 1)
        counts.append(bh)
    rest = total - ((left + bw - 1) * h_img + top + bh)
    if rest:
        counts.append(rest)
    return counts


def _block_counts(block: np.ndarray, top: int, left: int, h_img: int, w_img: int) -> list[int]:
    """Uncompressed COCO counts of a frame that is zero except for ``block`` at ``(top, left)``."""
    bh, bw = block.shape
    # One zero row above and below each column, so that runs never join across
    # columns here (they are joined below where the block spans the full height).
    padded = np.zeros((bh + 2, bw), dtype=np.int8)
    padded[1:-1] = block
    flat = padded.ravel(order="F")
    d = np.diff(flat)
    starts = np.flatnonzero(d == 1) + 1  # positions in `flat` of first 1 of each run
    ends = np.flatnonzero(d == -1) + 1  # one past the last 1
    # position in flat -> (column j, padded row i) -> frame index (left + j) * H + top + i - 1
    col_s, row_s = np.divmod(starts, bh + 2)
    col_e, row_e = np.divmod(ends, bh + 2)
    fs = (left + col_s) * h_img + top + row_s - 1
    fe = (left + col_e) * h_img + top + row_e - 1
    if fs.size > 1:
        # a run ending at the bottom of one column and one starting at the top
        # of the next are one run when the block spans the full frame height
        join = fs[1:] == fe[:-1]
        if join.any():
            keep = np.concatenate(([True], ~join))
            fs = fs[keep]
            fe = np.concatenate((fe[:-1][~join], fe[-1:]))
    bounds = np.empty(fs.size * 2 + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = fs
    bounds[2:-1:2] = fe
    bounds[-1] = h_img * w_img
    counts = np.diff(bounds).tolist()
    if counts[-1] == 0:  # the mask reaches the last pixel: no trailing zero run
        counts.pop()
    return counts


def _compress(counts: list[int], image_hw: tuple[int, int]) -> dict:
    h, w = image_hw
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle
