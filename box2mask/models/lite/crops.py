"""The ``lite`` model's window rule and input tensors, shared by inference and training.

Frames are RGB uint8 ``(H, W, 3)``; boxes ``xyxy`` float frame pixels (x2/y2
exclusive), as everywhere in box2mask.

- **Window**: a square :class:`~box2mask.types.CropWindow` centred on the box
  (the engine's ``centred`` rule), of side ``S = max(min_side, ceil(context × L))``
  with ``L`` the box's long side. It may extend past the frame.
- **Input side** ``R``: the smallest of :data:`INPUT_SIDES` that is ``>= k × S``
  (the largest when none is), ``k`` the checkpoint's *input scale* (1 when a
  file does not say): with ``k = 1`` the network sees an object at (or a little
  above) its own resolution up to 128 px windows, with ``k = 1.5`` small objects
  enlarged by about half (a 10×20 px car: a 48×48 input instead of 32×32),
  which gives a small network finer steps along their edges; large windows are
  shrunk either way.
- **Input**: the window cut from the frame (outside the frame: the pixel mean),
  resized to ``R × R`` (area averaging when shrinking, bilinear when
  enlarging; both map input pixel ``j`` onto window pixels
  ``[j·S/R, (j+1)·S/R)``), normalised, plus two coverage planes on the same
  grid: the box's and the frame's share of each input pixel.
- **Output**: ``(R, R)`` logits, resized bilinearly back to ``S × S`` and
  thresholded: the mask in window pixels. The threshold depends on the box's
  long side (:data:`THRESHOLD_EDGES`) and is part of the checkpoint
  (calibrated on training objects when the file is written: a small network
  unsure of a 10-px car's edge gives it logits under 0, and cutting at 0 drew
  small objects too small).

The same functions cut training crops, so the model is trained on exactly what
it sees at inference.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from box2mask.geometry import crop_rect
from box2mask.masks import MaskBlock
from box2mask.models.lite.net import PIXEL_MEAN, PIXEL_STD
from box2mask.types import CropWindow

#: the input sides the network runs at (all multiples of 16)
INPUT_SIDES = (32, 48, 64, 96, 128)
#: bins of the box's long side (frame pixels) with a threshold each: [0, 8), [8, 12), ... [128, inf)
THRESHOLD_EDGES = (8, 12, 16, 24, 32, 48, 64, 96, 128)
#: frame pixels outside the image are filled with the normalisation mean (0 after it)
FILL_U8 = tuple(int(round(v)) for v in PIXEL_MEAN)

_MEAN = np.asarray(PIXEL_MEAN, dtype=np.float32)
_INV_STD = 1.0 / np.asarray(PIXEL_STD, dtype=np.float32)


def window_side(long_side: float, context: float, min_side: int) -> int:
    """``max(min_side, ceil(context × long_side))`` (rounded to 6 decimals first, so
    ``1.5 × 20`` is 30 on every platform)."""
    return max(int(min_side), math.ceil(round(context * max(long_side, 0.0), 6)))


def window_for_box(xyxy: np.ndarray | list[float], context: float, min_side: int) -> CropWindow:
    """The centred window of one box (see the module docstring).

    >>> window_for_box([10.0, 10.0, 30.0, 20.0], 1.5, 16)
    CropWindow(x0=5, y0=0, size=30)
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    s = window_side(max(x2 - x1, y2 - y1), context, min_side)
    x0 = math.floor((x1 + x2) / 2 - s / 2 + 0.5)
    y0 = math.floor((y1 + y2) / 2 - s / 2 + 0.5)
    return CropWindow(x0, y0, s)


def input_side(window_side: int, scale: float = 1.0) -> int:
    """The network input side for a window of ``window_side`` pixels, enlarged ``scale`` times.

    >>> [input_side(s) for s in (8, 32, 33, 100, 500)]
    [32, 32, 48, 128, 128]
    >>> [input_side(s, 1.5) for s in (16, 22, 30, 32, 64, 65)]
    [32, 48, 48, 48, 96, 128]
    """
    want = round(scale * window_side, 6)
    for r in INPUT_SIDES:
        if want <= r:
            return r
    return INPUT_SIDES[-1]


def threshold_bin(long_side: float) -> int:
    """The :data:`THRESHOLD_EDGES` bin of a box's long side.

    >>> [threshold_bin(v) for v in (3.0, 8.0, 11.9, 200.0)]
    [0, 1, 1, 9]
    """
    return int(np.searchsorted(THRESHOLD_EDGES, long_side, side="right"))


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """Resize a square ``(S, S[, C])`` array to ``side × side``: area when shrinking, bilinear otherwise."""
    s = image.shape[0]
    if s == side:
        return image
    interp = cv2.INTER_AREA if s > side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interp)


def coverage(lo: float, hi: float, size: float, side: int) -> np.ndarray:
    """``(side,)`` share of each input pixel ``j`` (window span ``[j·size/side, (j+1)·size/side)``)
    covered by the window interval ``[lo, hi)``.

    >>> coverage(1.0, 3.0, 4.0, 4).tolist()
    [0.0, 1.0, 1.0, 0.0]
    >>> coverage(0.5, 4.0, 4.0, 2).tolist()
    [0.75, 1.0]
    """
    step = size / side
    edges = np.arange(side + 1, dtype=np.float64) * step
    inter = np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)
    return np.clip(inter / step, 0.0, 1.0).astype(np.float32)


def input_planes(
    pixels: np.ndarray, box: np.ndarray, frame_rect: np.ndarray, size: float
) -> np.ndarray:
    """One network input ``(5, R, R)`` float32 from the resized pixels.

    Args:
        pixels: ``(R, R, 3)`` uint8 RGB, the window resized to ``R``.
        box: ``(4,)`` the box in window pixels (xyxy).
        frame_rect: ``(4,)`` the frame's rectangle in window pixels (xyxy).
        size: the window side ``S`` in window pixels.
    """
    r = pixels.shape[0]
    out = np.empty((5, r, r), dtype=np.float32)
    out[:3] = ((pixels.astype(np.float32) - _MEAN) * _INV_STD).transpose(2, 0, 1)
    out[3] = np.outer(coverage(box[1], box[3], size, r), coverage(box[0], box[2], size, r))
    out[4] = np.outer(
        coverage(frame_rect[1], frame_rect[3], size, r),
        coverage(frame_rect[0], frame_rect[2], size, r),
    )
    return out


def frame_input(
    image: np.ndarray, xyxy: np.ndarray | list[float], window: CropWindow, scale: float = 1.0
) -> np.ndarray:
    """The network input ``(5, R, R)`` of one object of a frame.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        xyxy: the object's box in frame pixels.
        window: its window (:func:`window_for_box`).
        scale: the checkpoint's input scale (:func:`input_side`).
    """
    s = window.size
    crop = crop_rect(image, window.y0, window.x0, s, s, FILL_U8)
    x0, y0 = window.x0, window.y0
    box = np.array([xyxy[0] - x0, xyxy[1] - y0, xyxy[2] - x0, xyxy[3] - y0], dtype=np.float64)
    h, w = image.shape[:2]
    rect = np.array([-x0, -y0, w - x0, h - y0], dtype=np.float64)
    return input_planes(resize(crop, input_side(s, scale)), box, rect, s)


def inside_box(mask: np.ndarray, box: np.ndarray | list[float]) -> np.ndarray:
    """``mask`` with every pixel the box does not touch cleared (in place; returned).

    Args:
        mask: ``(S, S)`` bool, window (or cut) pixels.
        box: ``(4,)`` xyxy on the same grid; pixel ``j`` spans ``[j, j + 1)``, so the
            pixels kept are ``floor(x1) .. ceil(x2) - 1`` (and the same in y).
    """
    s = mask.shape[0]
    x0, y0 = (min(max(math.floor(v), 0), s) for v in (box[0], box[1]))
    x1, y1 = (min(max(math.ceil(v), 0), s) for v in (box[2], box[3]))
    mask[:y0] = False
    mask[y1:] = False
    mask[:, :x0] = False
    mask[:, x1:] = False
    return mask


def mask_block(
    logits: np.ndarray,
    window_size: int,
    threshold: float = 0.0,
    box: np.ndarray | list[float] | None = None,
) -> MaskBlock:
    """The mask in window pixels from ``(R, R)`` float logits: bilinear to ``S × S``, ``> threshold``,
    and with a ``box`` (window pixels, xyxy), only the pixels it touches.

    A box annotation encloses its object, so a mask pixel the box does not touch is
    wrong by definition; the network, trained on boxes with jittered edges, spills
    about a pixel past tight boxes (on the development tiles, keeping the masks inside
    their boxes added 0.4 points of IoU per object to the first shipped file).

    Returns the tight :class:`~box2mask.types.MaskBlock` (window coordinates).
    """
    r = logits.shape[0]
    if r == window_size:
        full = logits
    else:
        full = cv2.resize(logits, (window_size, window_size), interpolation=cv2.INTER_LINEAR)
    mask = full > threshold
    if box is not None:
        inside_box(mask, box)
    return MaskBlock.from_mask(mask)
