"""Masks as polygons and back, for the tools' polygon shapes (``--shape polygon``).

A polygon is a list of ``(x, y)`` vertices in frame pixels, continuous
coordinates: pixel ``(r, c)`` covers ``[c, c+1) × [r, r+1)`` and its centre is
``(c + 0.5, r + 0.5)``. A mask becomes one polygon per outer boundary of an
8-connected part (OpenCV's ``findContours`` on the mask doubled in size), each
vertex a quarter pixel inside the mask's edge, so that every mask pixel's centre
is inside its polygon and every other centre outside. Holes are lost: a polygon
has none. Back to a mask, polygons are filled as COCO fills them (pycocotools'
``frPyObjects``, through :mod:`box2mask.exchange._codec`).

The way back is not exact in general (holes; a part one pixel wide), which is
why the import compares a polygon with the one the export wrote and keeps the
job's own mask when the reviewer left it as it was.
"""

from __future__ import annotations

import cv2
import numpy as np

from box2mask.exchange import _codec
from box2mask.masks import MaskBlock


def mask_to_polygons(mask: np.ndarray | MaskBlock) -> list[list[tuple[float, float]]]:
    """The outer boundaries of a mask's parts, largest part first.

    ``mask``: an ``(H, W)`` bool array of the frame, or the mask's block in frame pixels
    (then the cost is that of the block).

    Each polygon has at least 3 vertices, in frame pixels (see the module docstring).

    >>> m = np.zeros((4, 5), bool); m[1:3, 1:4] = True
    >>> mask_to_polygons(m)
    [[(1.25, 1.25), (1.25, 2.75), (3.75, 2.75), (3.75, 1.25)]]
    """
    top = left = 0
    if isinstance(mask, MaskBlock):
        top, left, mask = mask.top, mask.left, mask.pixels()
    if not mask.any():
        return []
    big = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # the doubled mask makes every part at least 2x2 pixels: each contour has 4+ vertices
    return [
        [(left + float((x + 0.5) / 2), top + float((y + 0.5) / 2)) for x, y in c.reshape(-1, 2)]
        for c in sorted(contours, key=lambda c: -cv2.contourArea(c))
    ]


def polygons_to_mask(polygons: list[list[tuple[float, float]]], hw: tuple[int, int]) -> np.ndarray:
    """Polygons in frame pixels filled as an ``(H, W)`` bool mask (COCO's fill)."""
    flat = [[float(v) for xy in p for v in xy] for p in polygons if len(p) >= 3]
    return _codec.decode(flat, hw)
