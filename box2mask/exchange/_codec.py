"""The exchange's one door to COCO masks: decode, encode, compare, area and box.

Every mask the exchange reads from or writes to a job passes through here, and
here through box2mask's own codec (:mod:`box2mask.masks`, one import line). It
decodes a segmentation to its tight block in frame pixels at the cost of the
object, so a mask is spread over its whole frame only where a tool needs that
(Label Studio's brush RLE covers the image).

Masks are ``(H, W)`` bool arrays in frame pixels (row ``r``, column ``c``), or
:class:`~box2mask.masks.MaskBlock`; RLE is COCO's compressed form
``{"size": [H, W], "counts": str}``, column-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from box2mask import masks as _masks  # the one codec import


def block(segmentation: Any, hw: tuple[int, int]) -> _masks.MaskBlock:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) of a frame of size
    ``hw`` as its tight block in frame pixels.

    Raises:
        ValueError: not a COCO segmentation, or an RLE whose ``size`` is not ``hw``.
    """
    h, w = int(hw[0]), int(hw[1])
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not isinstance(size, list) or [int(v) for v in size] != [h, w]:
            raise ValueError(f"RLE size {size!r} is not the frame's [{h}, {w}]")
    elif not isinstance(segmentation, list):
        raise ValueError("a segmentation is a COCO RLE dict or a list of polygons")
    try:
        return _masks.decode(segmentation, (h, w)).tight()
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a COCO segmentation ({exc})") from None


def decode(segmentation: Any, hw: tuple[int, int]) -> np.ndarray:
    """A COCO segmentation as an ``(H, W)`` bool mask of a frame of size ``hw``."""
    return block(segmentation, hw).to_array((int(hw[0]), int(hw[1])))


def encode(
    mask: np.ndarray | _masks.MaskBlock, hw: tuple[int, int] | None = None
) -> dict[str, Any]:
    """An ``(H, W)`` bool mask (or a block in frame pixels of a frame of size ``hw``) as COCO
    compressed RLE with ``counts`` as str (JSON-ready, pycocotools' own string)."""
    if isinstance(mask, np.ndarray):
        hw, mask = mask.shape, _masks.MaskBlock.from_mask(mask)
    assert hw is not None
    return _masks.encode_frame_block(mask, (int(hw[0]), int(hw[1]))).rle


def same(a: Any, b: Any, hw: tuple[int, int]) -> bool:
    """Whether two COCO segmentations of one frame hold the same pixels (compared as their
    canonical compressed RLE, one string per mask)."""
    return encode(block(a, hw), hw)["counts"] == encode(block(b, hw), hw)["counts"]


def union(segmentations: list[Any], hw: tuple[int, int]) -> dict[str, Any]:
    """The pixels set in any of ``segmentations`` (one frame), as compressed RLE."""
    return encode(_masks.union([block(s, hw) for s in segmentations]), hw)


def area_bbox(segmentation: Any, hw: tuple[int, int]) -> tuple[int, list[float]]:
    """Pixel count and tight ``[x, y, w, h]`` box of a segmentation (zeros when empty)."""
    enc = _masks.encode_frame_block(block(segmentation, hw), (int(hw[0]), int(hw[1])))
    return enc.area, [float(v) for v in enc.bbox]
