"""Prompt-centred crop geometry: pure functions between frame and crop pixels.

Every crop↔frame conversion goes through a :class:`~box2mask.types.CropWindow`
(DESIGN §4). Frames are ``(H, W, 3)`` RGB uint8; boxes are ``xyxy`` float
frame pixels with exclusive ``x2``/``y2``.

Worked example: a 20×10 box at ``x 100..120, y 50..60`` in a 1080×1920 frame
has centre ``(110, 55)`` and long side 20, so the window side is
``max(512, ceil(1.25 * 20)) = 512`` and its origin is
``floor(110 - 256 + 0.5) = -146``, ``floor(55 - 256 + 0.5) = -201``:

    >>> window_for_box(np.array([100, 50, 120, 60]), (1080, 1920))
    CropWindow(x0=-146, y0=-201, size=512)
    >>> box_to_model(np.array([100, 50, 120, 60]), CropWindow(-146, -201, 512))
    array([492., 502., 532., 522.])
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from box2mask.types import CropWindow, MaskBlock

#: SAM's pixel mean (RGB); it normalises to 0, the value of SAM's own padding.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
#: The nearest uint8 colour: crops are uint8 until they reach the model, so
#: outside-image pixels land 0.005 σ from SAM's exact zero.
SAM_PIXEL_MEAN_U8 = (124, 116, 104)
#: SAM's input side.
MODEL_SIZE = 1024

WindowMode = Literal["centred", "clamped"]
Interpolation = Literal["bicubic", "bilinear"]
_CV2_INTERP = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


def crop_side(xyxy: np.ndarray, crop_size: int = 512, context: float = 1.25) -> int:
    """Window side ``S = max(crop_size, ceil(context * L))``, ``L`` the box's long side.

    Objects larger than the crop get a larger window instead of being cut.

    >>> crop_side(np.array([0, 0, 600, 100]))
    750
    >>> crop_side(np.array([0, 0, 600, 100]), context=0)
    512
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    long_side = max(x2 - x1, y2 - y1, 0.0)
    # round first so that 1.25 * 400 = 500.00000000000006 does not become 501
    return max(int(crop_size), math.ceil(round(context * long_side, 6)))


def window_for_box(
    xyxy: np.ndarray,
    image_hw: tuple[int, int],
    crop_size: int = 512,
    context: float = 1.25,
    mode: WindowMode = "centred",
) -> CropWindow:
    """The crop window for one box.

    Args:
        xyxy: ``(4,)`` box in frame pixels.
        image_hw: ``(H, W)`` of the frame.
        crop_size: minimum window side.
        context: the window side is at least ``context`` times the box's long side.
        mode: ``"centred"`` (box2mask): the window is centred on the box even at
            the image border and may extend past it. ``"clamped"`` (the ROS-SAM
            authors' code): the window is shifted to lie inside the image where
            the image is large enough, and the rest is zero-padded at the
            bottom/right (see :func:`crop_image`'s ``fill``).

    Returns:
        The window, origin ``floor(c - S/2 + 0.5)`` for each axis (centred).
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    # crop_side, inlined (one call per object of a dense frame)
    s = max(int(crop_size), math.ceil(round(context * max(x2 - x1, y2 - y1, 0.0), 6)))
    x0 = math.floor((x1 + x2) / 2 - s / 2 + 0.5)
    y0 = math.floor((y1 + y2) / 2 - s / 2 + 0.5)
    if mode == "clamped":
        h, w = image_hw
        x0 = min(max(x0, 0), max(w - s, 0))
        y0 = min(max(y0, 0), max(h - s, 0))
    elif mode != "centred":
        raise ValueError(f"window mode must be 'centred' or 'clamped', got {mode!r}")
    return CropWindow(x0, y0, s)


def fill_for_mode(mode: WindowMode) -> tuple[int, int, int]:
    """The colour of window pixels outside the image: SAM's mean, or the authors' zeros."""
    return (0, 0, 0) if mode == "clamped" else SAM_PIXEL_MEAN_U8


def crop_image(
    image: np.ndarray, window: CropWindow, fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8
) -> np.ndarray:
    """Cut ``window`` out of ``image``; pixels outside the image get ``fill``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        window: the crop window in frame pixels.
        fill: RGB colour for the part of the window outside the image.

    Returns:
        ``(S, S, 3)`` uint8, a new array.
    """
    s = window.size
    return crop_rect(image, window.y0, window.x0, s, s, fill)


def crop_rect(
    image: np.ndarray,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8,
) -> np.ndarray:
    """Frame rows ``top:top+height``, columns ``left:left+width``; pixels outside the image get ``fill``.

    Returns:
        ``(height, width, 3)`` uint8, a new array.
    """
    out = np.empty((height, width, image.shape[2]), dtype=image.dtype)
    h, w = image.shape[:2]
    fy0, fy1 = max(top, 0), min(top + height, h)
    fx0, fx1 = max(left, 0), min(left + width, w)
    if fy1 <= fy0 or fx1 <= fx0:
        out[:] = fill
        return out
    if fy0 != top or fx0 != left or fy1 != top + height or fx1 != left + width:
        out[:] = fill
    out[fy0 - top : fy1 - top, fx0 - left : fx1 - left] = image[fy0:fy1, fx0:fx1]
    return out


class WindowPixels:
    """A crop window's pixels, cut on demand instead of all at once.

    ``pixels[r0:r1, c0:c1]`` is ``crop_image(image, window, fill)[r0:r1, c0:c1]``,
    cut from the frame at a cost in proportion to the region, so that a shape
    model that looks at a small object's surroundings does not pay for the
    whole window. ``np.asarray(pixels)`` gives the whole ``(S, S, 3)`` crop.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        window: the crop window in frame pixels.
        fill: RGB colour of window pixels outside the image.
    """

    def __init__(
        self, image: np.ndarray, window: CropWindow, fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8
    ) -> None:
        self.image = image
        self.window = window
        self.fill = fill
        self.shape = (window.size, window.size, image.shape[2])
        self.dtype = image.dtype

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)):
            raise TypeError("WindowPixels takes two slices: pixels[r0:r1, c0:c1]")
        s = self.window.size
        (r0, r1, rs), (c0, c1, cs) = key[0].indices(s), key[1].indices(s)
        if rs != 1 or cs != 1:
            raise ValueError("WindowPixels slices must have step 1")
        r1, c1 = max(r1, r0), max(c1, c0)
        return crop_rect(
            self.image, self.window.y0 + r0, self.window.x0 + c0, r1 - r0, c1 - c0, self.fill
        )

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        crop = crop_image(self.image, self.window, self.fill)
        return crop if dtype is None else crop.astype(dtype)


def resize_crop(
    crop: np.ndarray, model_size: int = MODEL_SIZE, interpolation: Interpolation = "bicubic"
) -> np.ndarray:
    """Resize an ``(S, S, 3)`` uint8 crop to ``(model_size, model_size, 3)`` uint8.

    OpenCV's INTER_CUBIC on uint8 saturates, so values stay in 0..255.
    """
    if crop.shape[0] == model_size and crop.shape[1] == model_size:
        return crop
    return cv2.resize(crop, (model_size, model_size), interpolation=_CV2_INTERP[interpolation])


def box_to_model(xyxy: np.ndarray, window: CropWindow, model_size: int = MODEL_SIZE) -> np.ndarray:
    """Frame-pixel box → the model's ``model_size`` input pixels: ``(box - origin) * model_size / S``."""
    return window.box_to_crop(xyxy) * (model_size / window.size)


def paste_mask(
    mask: np.ndarray, window: CropWindow, image_hw: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """Put an ``(S, S)`` crop mask back at its place in the frame.

    The part of the window outside the image is dropped.

    Args:
        mask: ``(S, S)`` bool in window pixels.
        window: where the mask lies in the frame.
        image_hw: ``(H, W)`` of the frame.
        out: optional ``(H, W)`` bool array to OR the mask into (modified in place).

    Returns:
        ``(H, W)`` bool frame mask (``out`` when given).
    """
    if out is None:
        out = np.zeros(image_hw, dtype=bool)
    ov = window.overlap(image_hw)
    if ov is not None:
        fr, fc, cr, cc = ov
        out[fr, fc] |= mask[cr, cc]
    return out


def crop_mask(full: np.ndarray, window: CropWindow) -> np.ndarray:
    """The inverse of :func:`paste_mask`: an ``(H, W)`` frame mask seen through ``window``.

    Returns:
        ``(S, S)`` bool; window pixels outside the frame are False.
    """
    s = window.size
    out = np.zeros((s, s), dtype=bool)
    ov = window.overlap(full.shape[:2])
    if ov is not None:
        fr, fc, cr, cc = ov
        out[cr, cc] = full[fr, fc]
    return out


def clip_to_image(mask: np.ndarray, window: CropWindow, image_hw: tuple[int, int]) -> np.ndarray:
    """``mask`` (window pixels) with the pixels outside the frame set to False."""
    ov = window.overlap(image_hw)
    out = np.zeros_like(mask, dtype=bool)
    if ov is not None:
        _, _, cr, cc = ov
        out[cr, cc] = mask[cr, cc]
    return out


def mask_to_xyxy(mask: np.ndarray) -> np.ndarray | None:
    """The tight ``xyxy`` box (exclusive ``x2``/``y2``) of a 2-D bool mask, ``None`` if empty.

    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> mask_to_xyxy(m)
    array([2., 1., 5., 3.])
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def frame_block(block: MaskBlock, window: CropWindow, image_hw: tuple[int, int]) -> MaskBlock:
    """A window-pixel :class:`MaskBlock` seen in the frame: shifted, cut to the image, tight.

    The pixels of the window outside the image are dropped, as in
    :func:`paste_mask` (:meth:`MaskBlock.to_frame` at the window's corner).
    Costs in proportion to the block.

    Returns:
        The block in frame pixels (:meth:`MaskBlock.empty` when nothing is inside the frame).

    >>> frame_block(MaskBlock(0, 0, 4, 6), CropWindow(-2, 5, 8), (20, 30))
    MaskBlock(top=5, left=0, height=4, width=4, data=None)
    """
    return block.to_frame((window.y0, window.x0), image_hw)
