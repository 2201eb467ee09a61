"""The exchange's one door to COCO masks: decode, encode, area and box.

Every mask the exchange reads from or writes to a job passes through here, so
switching to box2mask's own codec (``box2mask.masks``, issue 25) is this
module's one import line. Until then it is pycocotools.

Masks are ``(H, W)`` bool arrays in frame pixels (row ``r``, column ``c``);
RLE is COCO's compressed form ``{"size": [H, W], "counts": str}``, column-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as _coco  # the one codec import (box2mask.masks once merged)


def decode(segmentation: Any, hw: tuple[int, int]) -> np.ndarray:
    """A COCO segmentation (compressed or uncompressed RLE, or polygons) as an ``(H, W)``
    bool mask of a frame of size ``hw``.

    Raises:
        ValueError: the segmentation is not one of COCO's forms, or its size is not ``hw``.
    """
    return _coco.decode(to_rle(segmentation, hw)).astype(bool)


def to_rle(segmentation: Any, hw: tuple[int, int]) -> dict[str, Any]:
    """A COCO segmentation as compressed RLE (``counts`` as bytes, pycocotools' own form).

    Raises:
        ValueError: not a COCO segmentation, or an RLE whose ``size`` is not ``hw``.
    """
    h, w = int(hw[0]), int(hw[1])
    if isinstance(segmentation, list):
        polys = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polys:
            return _coco.encode(np.zeros((h, w), dtype=np.uint8, order="F"))
        return _coco.merge(_coco.frPyObjects([[float(v) for v in p] for p in polys], h, w))
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        raise ValueError("a segmentation is a COCO RLE dict or a list of polygons")
    size = segmentation.get("size")
    if not isinstance(size, list) or [int(v) for v in size] != [h, w]:
        raise ValueError(f"RLE size {size!r} is not the frame's [{h}, {w}]")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return _coco.frPyObjects({"size": [h, w], "counts": [int(v) for v in counts]}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [h, w], "counts": counts}


def encode(mask: np.ndarray) -> dict[str, Any]:
    """An ``(H, W)`` bool mask as COCO compressed RLE with ``counts`` as str (JSON-ready)."""
    rle = _coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def same(a: Any, b: Any, hw: tuple[int, int]) -> bool:
    """Whether two COCO segmentations of one frame hold the same pixels.

    Compressed RLE is canonical (one string per mask), so two of them are compared as
    strings; any other form is brought to it first.
    """
    ra, rb = to_rle(a, hw), to_rle(b, hw)
    if ra["counts"] == rb["counts"]:
        return True
    # frPyObjects of an uncompressed RLE with zero-length runs is not canonical
    return bool(np.array_equal(_coco.decode(ra), _coco.decode(rb)))


def area_bbox(rle: dict[str, Any], hw: tuple[int, int]) -> tuple[int, list[float]]:
    """Pixel count and tight ``[x, y, w, h]`` box of an RLE (zeros when empty)."""
    r = to_rle(rle, hw)
    return int(_coco.area(r)), [float(v) for v in _coco.toBbox(r)]
