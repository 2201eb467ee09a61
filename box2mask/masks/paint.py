"""Paint a frame's objects into one index map, by box2mask's one overlap rule.

**The overlap rule: the smaller object stays on top.** Where masks overlap,
the pixel goes to the object with the fewest mask pixels *inside the frame*
(the only area that depends neither on the crop window a mask was made in nor
on the format it was read from: pixels of a window past the frame's edge do
not count); between objects of equal area, to the later one in annotation
order (the frame's object order). Said as a procedure: objects are painted
largest first, ties in annotation order, each over the ones before it.

Every format that gives a pixel one owner uses :func:`paint`: the png
instance maps, the DAVIS palette PNGs, MOTS (an object's mask there is the
part of it that shows), and ``box2mask qa apply``'s repaint of the png maps.
So a pixel has the same owner in each of them, whether the masks come from
the engine (crop windows cut by the frame border) or are decoded from the
job's COCO parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from box2mask.masks.block import MaskBlock


def paint_order(areas: Sequence[int]) -> list[int]:
    """The order objects are painted in: largest ``areas`` first, ties in the given order.

    >>> paint_order([5, 9, 5, 1])
    [1, 0, 2, 3]
    """
    return sorted(range(len(areas)), key=lambda i: -areas[i])  # sorted() is stable


def paint(
    frame_hw: tuple[int, int],
    objects: Sequence[MaskBlock],
    values: Sequence[int] | None = None,
    dtype: Any = np.uint16,
) -> np.ndarray:
    """``(H, W)`` map of ``dtype``: ``values[i]`` where object ``i`` shows, 0 elsewhere.

    Args:
        frame_hw: ``(H, W)`` of the frame.
        objects: the masks, each a :class:`MaskBlock` in frame pixels, in
            annotation order; pixels outside the frame are dropped (and do not
            count in the area the overlap rule compares).
        values: each object's value in the map (> 0; several objects may
            share one: a track's masks united); default ``i + 1``, the
            object's 1-based position.
        dtype: the map's integer type; the values must fit it.

    Overlaps go by the module's rule: fewest pixels inside the frame on top,
    ties to the later object. Costs ``O(H·W)`` for the map, then in
    proportion to each object's block.

    >>> big, small = MaskBlock(0, 0, 2, 3), MaskBlock(1, 1, 1, 1)
    >>> paint((2, 4), [small, big]).tolist()
    [[2, 2, 2, 0], [2, 1, 2, 0]]
    """
    h, w = frame_hw
    out = np.zeros((h, w), dtype=dtype)
    parts = [b.clip(0, 0, h, w) for b in objects]
    for i in paint_order([p.area for p in parts]):
        p = parts[i]
        if p.height == 0:
            continue
        v = i + 1 if values is None else values[i]
        region = out[p.top : p.bottom, p.left : p.right]
        if p.data is None:
            region[...] = v
        else:
            region[p.data] = v
    return out
