"""Checks on the frames an adapter yields, before they reach the engine.

A box that lies entirely outside its image can have no mask: converted, it
becomes a zero-area COCO annotation (``bbox [0, 0, 0, 0]``) that no detection
can ever match, which lowers the AP of the masks evaluated against
themselves. Some adapters drop such boxes themselves (``adapters._objects.checked``);
this check makes it hold for every adapter, user adapters included: the box
is dropped and reported (file of the frame, track id, box), so that it is
counted in the summary's skipped inputs, and ``--strict`` stops on it.

A box more than :data:`MAX_BOX_SCALE` times as wide or as tall as its image
(``[5, 5, 1e308, 15]``: finite, but no object of the frame) is dropped and
reported the same way: its crop window (``context`` times its long side)
could not be allocated, and one such box cost the whole frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from box2mask.errors import AnnotationError
from box2mask.problems import Problems
from box2mask.types import Frame

#: a box wider or taller than this many times its image is no object of the frame
MAX_BOX_SCALE = 2


def outside_image(frame: Frame) -> np.ndarray:
    """``(N,)`` bool: the boxes of ``frame`` with no pixel inside its image."""
    h, w = frame.image_hw
    x1, y1, x2, y2 = frame.xyxy.T
    return (x2 <= 0) | (y2 <= 0) | (x1 >= w) | (y1 >= h)


def too_large(frame: Frame) -> np.ndarray:
    """``(N,)`` bool: the boxes of ``frame`` more than :data:`MAX_BOX_SCALE` times as
    wide or as tall as its image."""
    h, w = frame.image_hw
    x1, y1, x2, y2 = frame.xyxy.T
    with np.errstate(over="ignore"):  # 1e308 - -1e308 is inf: too large all the same
        return ((x2 - x1) > MAX_BOX_SCALE * w) | ((y2 - y1) > MAX_BOX_SCALE * h)


def drop_outside_boxes(frames: Iterable[Frame], problems: Problems) -> Iterator[Frame]:
    """The frames with every box wholly outside the image, or far larger than it,
    removed (each one reported)."""
    for frame in frames:
        out = outside_image(frame)
        large = too_large(frame) & ~out
        bad = out | large
        if not bad.any():
            yield frame
            continue
        h, w = frame.image_hw
        for i in np.flatnonzero(bad):
            box = ", ".join(f"{v:g}" for v in frame.xyxy[i].tolist())
            why = (
                f"is more than {MAX_BOX_SCALE} times as large as the {w}x{h} image"
                if large[i]
                else f"lies entirely outside the {w}x{h} image"
            )
            problems.report(
                AnnotationError(
                    f"{frame.sequence} frame {frame.frame_index}: box [{box}] of track "
                    f"{int(frame.track_id[i])} {why}; dropped",
                    frame.image_path,
                )
            )
        yield _subset(frame, np.flatnonzero(~bad))


def _subset(frame: Frame, keep: np.ndarray) -> Frame:
    """``frame`` with only the objects ``keep`` (indices, in order)."""
    gt = frame.gt_mask
    index = [int(i) for i in keep]
    return dataclasses.replace(
        frame,
        xyxy=frame.xyxy[keep],
        track_id=frame.track_id[keep],
        category=frame.category[keep],
        obb=None if frame.obb is None else frame.obb[keep],
        gt_mask=None if gt is None else (lambda j: gt(index[j])),
        attributes={k: [v[i] for i in index] for k, v in frame.attributes.items()},
    )
