"""Checks on the frames an adapter yields, before they reach the engine.

A box that lies entirely outside its image can have no mask: converted, it
becomes a zero-area COCO annotation (``bbox [0, 0, 0, 0]``) that no detection
can ever match, which lowers the AP of the masks evaluated against
themselves. Some adapters drop such boxes themselves (``adapters._objects.checked``);
this check makes it hold for every adapter, user adapters included: the box
is dropped and reported (file of the frame, track id, box), so that it is
counted in the summary's skipped inputs, and ``--strict`` stops on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from box2mask.errors import AnnotationError
from box2mask.problems import Problems
from box2mask.types import Frame


def outside_image(frame: Frame) -> np.ndarray:
    """``(N,)`` bool: the boxes of ``frame`` with no pixel inside its image."""
    h, w = frame.image_hw
    x1, y1, x2, y2 = frame.xyxy.T
    return (x2 <= 0) | (y2 <= 0) | (x1 >= w) | (y1 >= h)


def drop_outside_boxes(frames: Iterable[Frame], problems: Problems) -> Iterator[Frame]:
    """The frames with every box wholly outside the image removed (each one reported)."""
    for frame in frames:
        out = outside_image(frame)
        if not out.any():
            yield frame
            continue
        h, w = frame.image_hw
        for i in np.flatnonzero(out):
            box = ", ".join(f"{v:g}" for v in frame.xyxy[i].tolist())
            problems.report(
                AnnotationError(
                    f"{frame.sequence} frame {frame.frame_index}: box [{box}] of track "
                    f"{int(frame.track_id[i])} lies entirely outside the {w}x{h} image; dropped",
                    frame.image_path,
                )
            )
        yield _subset(frame, np.flatnonzero(~out))


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
