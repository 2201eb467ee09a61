"""Polygon rasterisation, polygon boxes and greedy box matching for adapters.

Coordinates are frame pixels with the origin at the top-left corner of the
top-left pixel (DESIGN §3): pixel ``(r, c)`` covers ``[c, c+1) × [r, r+1)``
and its centre is ``(c + 0.5, r + 0.5)``.

Rasterisation rule (exact, implementation-independent): a pixel belongs to a
polygon when its centre lies inside it, by the even-odd rule with half-open
edges — an edge from ``(x0, y0)`` to ``(x1, y1)`` counts for the centre row
``y`` when ``min(y0, y1) <= y < max(y0, y1)``, and the centre is left of the
crossing when ``x < x_cross``. A centre exactly on a left or top edge is in,
on a right or bottom edge is out, so an axis-aligned rectangle polygon with
corners ``(x1, y1)``, ``(x2, y2)`` covers exactly the pixels of the ``xyxy``
box ``[x1, y1, x2, y2)`` and its area equals the box's area for integer
corners. An object made of several parts is the union of its parts (each part
filled on its own, so overlapping parts do not cancel).

OpenCV's ``fillPoly`` is not used: it also fills the outline, so a polygon of
a 10-px-wide box comes out 11 px wide and disagrees with the box rebuilt from
the same polygon.

    >>> rasterize_polygons([[1, 1, 4, 1, 4, 3, 1, 3]], (4, 5)).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def polygon_parts(segmentation: object) -> list[np.ndarray]:
    """Normalise a COCO-style polygon list into ``(K, 2)`` float64 vertex arrays.

    Accepts ``[x0, y0, x1, y1, ...]``, a list of such lists, or lists of
    ``[x, y]`` pairs. Parts with fewer than 3 vertices are dropped.

    Raises:
        ValueError: the value is not a polygon list (non-numeric, odd length).
    """
    if not isinstance(segmentation, list | tuple) or not segmentation:
        raise ValueError("segmentation must be a non-empty list of polygons")
    first = segmentation[0]
    raw_parts = [segmentation] if isinstance(first, int | float) else list(segmentation)
    parts: list[np.ndarray] = []
    for raw in raw_parts:
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("polygon coordinates must be numbers") from None
        if arr.ndim == 2 and arr.shape[1] == 2:
            pts = arr
        elif arr.ndim == 1 and arr.size % 2 == 0:
            pts = arr.reshape(-1, 2)
        else:
            raise ValueError(f"a polygon must hold x, y pairs, got shape {arr.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("polygon coordinates must be finite")
        if len(pts) >= 3:
            parts.append(pts)
    return parts


def polygons_xyxy(parts: Sequence[np.ndarray]) -> np.ndarray | None:
    """The ``xyxy`` box around every vertex of every part (float64), ``None`` if no part."""
    if not parts:
        return None
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in parts])
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def _fill_part(out: np.ndarray, pts: np.ndarray) -> None:
    h, w = out.shape
    ys = pts[:, 1]
    r0 = max(math.floor(ys.min() - 0.5), 0)
    r1 = min(math.ceil(ys.max() - 0.5) + 1, h)
    if r1 <= r0:
        return
    cy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5  # (R, 1) centre rows
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    spans = (np.minimum(y0, y1) <= cy) & (cy < np.maximum(y0, y1))  # (R, E)
    dy = np.where(y1 == y0, 1.0, y1 - y0)
    xc = x0 + (cy - y0) * (x1 - x0) / dy  # crossing x per row and edge
    # centre c + 0.5 < xc  <=>  c < k with k = ceil(xc - 0.5): each crossing flips
    # the parity of columns [0, k); parity at c = number of crossings with k > c.
    k = np.clip(np.ceil(xc - 0.5), 0, w).astype(np.int64)
    rows, edges = np.nonzero(spans)
    counts = np.zeros((r1 - r0, w + 1), dtype=np.int64)
    np.add.at(counts, (rows, k[rows, edges]), 1)
    above = counts[:, ::-1].cumsum(axis=1)[:, ::-1]  # above[:, c] = #crossings with k >= c
    inside = (above[:, 1:] % 2).astype(bool)  # crossings with k > c
    out[r0:r1] |= inside


def rasterize_polygons(segmentation: object, image_hw: tuple[int, int]) -> np.ndarray:
    """Rasterise one object's polygon(s) by the pixel-centre rule (module docstring).

    Args:
        segmentation: polygon list(s) in absolute frame pixels (see :func:`polygon_parts`).
        image_hw: ``(H, W)`` of the frame.

    Returns:
        ``(H, W)`` bool mask; parts outside the frame are cut off. Cost is in
        proportion to the rows the polygon spans.
    """
    out = np.zeros(image_hw, dtype=bool)
    parts = segmentation if _is_parts(segmentation) else polygon_parts(segmentation)
    for pts in parts:
        _fill_part(out, np.asarray(pts, dtype=np.float64))
    return out


def _is_parts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(p, np.ndarray) for p in value)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes → ``(N, M)`` float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_match(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> dict[int, int]:
    """Match boxes ``a`` to boxes ``b`` greedily by IoU, best pair first.

    Each box is used at most once; pairs below ``min_iou`` stay unmatched; ties
    go to the lower index of ``a`` then of ``b``.

    Returns:
        ``{index in a: index in b}``.

    >>> greedy_match(np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), np.array([[21, 0, 30, 10]]))
    {1: 0}
    """
    iou = box_iou(a, b)
    if iou.size == 0:
        return {}
    ia, ib = np.nonzero(iou >= min_iou)
    order = np.lexsort((ib, ia, -iou[ia, ib]))
    match: dict[int, int] = {}
    used_b: set[int] = set()
    for j in order:
        i, k = int(ia[j]), int(ib[j])
        if i in match or k in used_b:
            continue
        match[i] = k
        used_b.add(k)
    return match
