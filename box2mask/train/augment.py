"""Training augmentation: random rotation and large-scale jittering (LSJ).

Applied to an image and its objects' masks together, so they stay aligned;
the boxes are recomputed from the transformed masks (a rotated box is no
longer tight, the mask's box is). All coordinates are pixels with the
project's convention: ``xyxy`` float, origin at the top-left corner of the
top-left pixel, ``x2``/``y2`` exclusive. OpenCV's warps work in pixel-*centre*
coordinates; :func:`affine_points` converts.

The pipeline (:func:`augment`):

1. rotation by a random angle about the image centre onto a canvas large
   enough to hold the whole rotated image (nothing is cut off; the new
   corners are filled with SAM's pixel mean);
2. LSJ as in HQ-SAM / ROS-SAM: resize so that the long side is
   ``out_size * s`` with ``s ~ U(scale_min, scale_max)``, then, where the
   result is larger than ``out_size``, cut a random ``out_size`` window (chosen
   so that a random object's centre stays inside), and pad to ``out_size`` at
   the bottom/right;
3. boxes from the transformed masks; objects whose mask has fewer than
   ``min_pixels`` pixels left are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from box2mask.geometry import SAM_PIXEL_MEAN_U8, mask_to_xyxy


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings.

    Attributes:
        out_size: side of the square output (SAM's 1024).
        scale_min, scale_max: LSJ scale range (the paper's 0.1–4.0).
        rotate_prob: probability of rotating a sample.
        max_angle: rotation angle drawn from ``U(-max_angle, max_angle)`` degrees.
        right_angles: draw the angle from {0, 90, 180, 270} instead (no
            interpolation of the image, boxes stay tight).
        min_pixels: objects with fewer mask pixels after augmentation are dropped.
        fill: RGB colour of new pixels (SAM's mean, 0 after normalisation).
    """

    out_size: int = 1024
    scale_min: float = 0.1
    scale_max: float = 4.0
    rotate_prob: float = 0.5
    max_angle: float = 180.0
    right_angles: bool = False
    min_pixels: int = 4
    fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8

    def __post_init__(self) -> None:
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(
                f"LSJ scale range must satisfy 0 < min <= max, got {self.scale_min}, {self.scale_max}"
            )
        if not 0.0 <= self.rotate_prob <= 1.0:
            raise ValueError(f"rotation probability must be in [0, 1], got {self.rotate_prob}")


def affine_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points in edge coordinates through an OpenCV ``(2, 3)`` matrix.

    OpenCV maps pixel centres (pixel ``(r, c)`` sits at ``(c, r)``); in the
    project's edge coordinates it sits at ``(c + 0.5, r + 0.5)``, hence the
    half-pixel shifts.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2) - 0.5
    return p @ matrix[:, :2].T + matrix[:, 2] + 0.5


def affine_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes → the xyxy boxes enclosing their mapped corners."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = np.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1
    )  # (N, 4, 2)
    mapped = affine_points(corners.reshape(-1, 2), matrix).reshape(-1, 4, 2)
    return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)


def _warp_masks(masks: np.ndarray, matrix: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    out = np.zeros((masks.shape[0], size_wh[1], size_wh[0]), dtype=bool)
    for k, m in enumerate(masks):
        out[k] = (
            cv2.warpAffine(
                m.astype(np.uint8),
                matrix,
                size_wh,
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            > 0
        )
    return out


def rotation_matrix(image_hw: tuple[int, int], angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotation by ``angle`` degrees (counter-clockwise on screen) about the image centre.

    Returns:
        ``(matrix (2, 3), out_hw)``: an OpenCV matrix onto a canvas that holds
        the whole rotated image, centred. For multiples of 90° the canvas is
        the image's (swapped for 90°/270°) and pixels map onto pixels exactly.
    """
    h, w = image_hw
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    # round away float noise so that 90° gives exactly (W, H)
    out_w = int(math.ceil(round(c * w + s * h, 6)))
    out_h = int(math.ceil(round(s * w + c * h, 6)))
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    m[0, 2] += (out_w - 1) / 2.0 - (w - 1) / 2.0
    m[1, 2] += (out_h - 1) / 2.0 - (h - 1) / 2.0
    if float(angle) % 90.0 == 0.0:
        m[:, :2] = np.round(m[:, :2])
        m[:, 2] = np.round(m[:, 2] * 2) / 2
    return m, (out_h, out_w)


def rotate(
    image: np.ndarray,
    masks: np.ndarray,
    angle: float,
    fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate an image and its masks onto a canvas that holds all of the image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(K, H, W)`` bool.
        angle: degrees, counter-clockwise on screen.
        fill: colour of the new canvas pixels.

    Returns:
        ``(image (H', W', 3), masks (K, H', W'), matrix (2, 3))``.
    """
    m, (oh, ow) = rotation_matrix(image.shape[:2], angle)
    exact = float(angle) % 90.0 == 0.0
    img = cv2.warpAffine(
        image,
        m,
        (ow, oh),
        flags=cv2.INTER_NEAREST if exact else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(int(v) for v in fill),
    )
    return img, _warp_masks(masks, m, (ow, oh)), m


def _resize_masks(masks: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize bool masks by interpolating their 0/255 image and keeping >= half.

    Nearest-neighbour would drop thin parts when shrinking by 10×; the area
    (shrinking) or bilinear (growing) average keeps a pixel whose footprint is
    mostly inside the object.
    """
    out = np.zeros((masks.shape[0], size_wh[1], size_wh[0]), dtype=bool)
    shrink = size_wh[0] < masks.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    for k, m in enumerate(masks):
        out[k] = cv2.resize(m.astype(np.uint8) * 255, size_wh, interpolation=interp) >= 128
    return out


def large_scale_jitter(
    image: np.ndarray,
    masks: np.ndarray,
    scale: float,
    rng: np.random.Generator,
    out_size: int = 1024,
    fill: tuple[int, int, int] = SAM_PIXEL_MEAN_U8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize by ``scale`` relative to fitting ``out_size``, crop or pad bottom-right to ``out_size``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(K, H, W)`` bool.
        scale: the long side becomes ``round(out_size * scale)``.
        rng: draws the crop offset when the resized image exceeds ``out_size``;
            the window keeps a random object's centre inside (any window if no
            object).
        out_size: output side.
        fill: colour of the padding.

    Returns:
        ``(image (out, out, 3), masks (K, out, out), matrix (2, 3))``: the
        matrix maps input pixels to output pixels (OpenCV centre convention,
        see :func:`affine_points`).
    """
    h, w = image.shape[:2]
    f = out_size * scale / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    fy, fx = nh / h, nw / w
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    img = cv2.resize(image, (nw, nh), interpolation=interp)
    ms = _resize_masks(masks, (nw, nh))
    x0 = y0 = 0
    if nh > out_size or nw > out_size:
        lo_x, hi_x = 0, max(nw - out_size, 0)
        lo_y, hi_y = 0, max(nh - out_size, 0)
        present = [k for k in range(ms.shape[0]) if ms[k].any()]
        if present:
            box = mask_to_xyxy(ms[int(rng.choice(present))])
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2  # type: ignore[index]
            # windows [x0, x0 + out) containing cx
            lo_x, hi_x = max(lo_x, math.ceil(cx - out_size)), min(hi_x, math.floor(cx))
            lo_y, hi_y = max(lo_y, math.ceil(cy - out_size)), min(hi_y, math.floor(cy))
            lo_x, lo_y = min(lo_x, hi_x), min(lo_y, hi_y)
        x0 = int(rng.integers(lo_x, hi_x + 1))
        y0 = int(rng.integers(lo_y, hi_y + 1))
    out_img = np.empty((out_size, out_size, 3), dtype=np.uint8)
    out_img[:] = fill
    out_masks = np.zeros((masks.shape[0], out_size, out_size), dtype=bool)
    ch, cw = min(out_size, nh - y0), min(out_size, nw - x0)
    out_img[:ch, :cw] = img[y0 : y0 + ch, x0 : x0 + cw]
    out_masks[:, :ch, :cw] = ms[:, y0 : y0 + ch, x0 : x0 + cw]
    # edge coords: x' = x * fx - x0  ->  centre coords: c' = (c + 0.5) * fx - 0.5 - x0
    matrix = np.array(
        [[fx, 0.0, 0.5 * fx - 0.5 - x0], [0.0, fy, 0.5 * fy - 0.5 - y0]], dtype=np.float64
    )
    return out_img, out_masks, matrix


@dataclass
class Augmented:
    """One augmented sample.

    Attributes:
        image: ``(out, out, 3)`` uint8 RGB.
        masks: ``(K, out, out)`` bool, the objects that survived.
        boxes: ``(K, 4)`` float64 xyxy, the tight boxes of ``masks``.
        keep: ``(K,)`` int64 indices of the surviving objects in the input.
        matrix: ``(2, 3)`` the whole transform (OpenCV centre convention).
        angle: the rotation applied, degrees.
        scale: the LSJ scale drawn.
    """

    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    keep: np.ndarray
    matrix: np.ndarray
    angle: float
    scale: float


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The matrix of ``a`` after ``b`` (2×3 affine)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def augment(
    image: np.ndarray, masks: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> Augmented:
    """Rotation then LSJ (see the module docstring), boxes from the transformed masks.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(K, H, W)`` bool ground-truth masks.
        rng: the sample's random generator.
        cfg: the settings.
    """
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"masks must be (K, {image.shape[0]}, {image.shape[1]}), got {tuple(masks.shape)}"
        )
    angle = 0.0
    matrix = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if cfg.rotate_prob > 0 and rng.random() < cfg.rotate_prob:
        if cfg.right_angles:
            angle = float(rng.choice([90.0, 180.0, 270.0]))
        else:
            angle = float(rng.uniform(-cfg.max_angle, cfg.max_angle))
        image, masks, rot = rotate(image, masks, angle, cfg.fill)
        matrix = rot
    scale = float(rng.uniform(cfg.scale_min, cfg.scale_max))
    image, masks, lsj = large_scale_jitter(image, masks, scale, rng, cfg.out_size, cfg.fill)
    matrix = _compose(lsj, matrix)
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1)
    keep = np.flatnonzero(areas >= max(cfg.min_pixels, 1))
    masks = masks[keep]
    boxes = np.array([mask_to_xyxy(m) for m in masks], dtype=np.float64).reshape(-1, 4)
    return Augmented(image, masks, boxes, keep.astype(np.int64), matrix, angle, scale)


def no_augment(image: np.ndarray, masks: np.ndarray, out_size: int = 1024) -> Augmented:
    """Fit the long side to ``out_size`` and pad bottom-right (SAM's own preprocessing, for validation-like samples)."""
    rng = np.random.default_rng(0)
    image, masks, matrix = large_scale_jitter(image, masks, 1.0, rng, out_size)
    keep = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))
    masks = masks[keep]
    boxes = np.array([mask_to_xyxy(m) for m in masks], dtype=np.float64).reshape(-1, 4)
    return Augmented(image, masks, boxes, keep.astype(np.int64), matrix, 0.0, 1.0)
