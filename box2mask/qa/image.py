"""The image signal of ``box2mask qa``: does the picture agree with the mask?

For each object, two colour models (Gaussians in CIE Lab) are fitted: one to
the mask's pixels inside the prompt box, one to a ring of background around
the box (the box grown by a quarter of its long side, at least 3 px, minus
the box). Every pixel of the box is then given to the likelier model; the
``image_disagreement`` is ``1 - IoU`` of the mask (inside the box) with the
pixels that look like the mask. A mask whose colours do not stand out from
the surroundings, or that leaves out pixels that look just like it, scores
high: it is either a guess on a low-contrast object or the wrong part of the
box.

Cost: ``O(box area)`` per object, one image read per frame. Only the pixels of
each object's region are converted to Lab (OpenCV's 8-bit conversion is per
pixel, so a region converted alone has the values of the whole frame converted).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from numpy.linalg import _umath_linalg  # the kernels np.linalg.inv and det call

from box2mask.io import imread
from box2mask.masks import MaskBlock

_RIDGE = 4.0  # added to the covariances' diagonal (Lab units²): flat regions stay invertible


def read_image(path: Path) -> np.ndarray | None:
    """``(H, W, 3)`` uint8 BGR of an image file, ``None`` when it cannot be read (a FIFO or
    device is not opened: its read would block)."""
    return imread(path)  # not cv2.imread: it crashes on names that are not UTF-8 (always BGR)


def to_lab(bgr: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` float32 CIE Lab of a BGR uint8 image (or region of one)."""
    return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2LAB).astype(np.float32)


def _inv(a: np.ndarray) -> np.ndarray:
    """``np.linalg.inv`` of a 3x3 float64 matrix: its LAPACK kernel without the wrapper."""
    return _umath_linalg.inv(a, signature="d->d")


def _det(a: np.ndarray) -> float:
    """``np.linalg.det`` of a 3x3 float64 matrix: its LAPACK kernel without the wrapper."""
    return float(_umath_linalg.det(a, signature="d->d"))


def _mean0(x: np.ndarray) -> np.ndarray:
    """``x.mean(0)``: numpy's own float32 pairwise sum then the division, without the wrapper."""
    s = np.add.reduce(x, axis=0)
    return np.true_divide(s, np.intp(x.shape[0]), out=s, casting="unsafe")


def _loglik(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log-likelihood (up to a constant) of the rows of ``x`` under a 3-D Gaussian.

    The quadratic form is written out for the 3x3 inverse: numpy's
    ``einsum("ij,jk,ik->i")`` computes the same sums three times slower on these
    small arrays; the two differ only in the order floating-point sums are added.
    """
    ic = _inv(cov)
    d = (x - mu).astype(np.float64, copy=False)
    d0, d1, d2 = d[:, 0], d[:, 1], d[:, 2]
    q = ic[0, 0] * d0 * d0 + ic[1, 1] * d1 * d1 + ic[2, 2] * d2 * d2
    q += (ic[0, 1] + ic[1, 0]) * d0 * d1
    q += (ic[0, 2] + ic[2, 0]) * d0 * d2
    q += (ic[1, 2] + ic[2, 1]) * d1 * d2
    return -0.5 * q - 0.5 * math.log(_det(cov))


def _cov(x: np.ndarray) -> np.ndarray:
    """``np.cov(x.T)`` (rows are samples) plus the ridge; the ridge alone for 3 rows or
    fewer. The sample covariance's own operations, without ``np.cov``'s argument checks."""
    if len(x) <= 3:
        return np.eye(3) * _RIDGE
    xt = np.array(x.T, dtype=np.float64)
    xt -= xt.mean(axis=1)[:, None]
    c = np.dot(xt, xt.T.conj())
    c *= np.true_divide(1, len(x) - 1)
    return c + np.eye(3) * _RIDGE


def image_disagreement(bgr: np.ndarray, block: MaskBlock, box_xyxy: list[float]) -> float | None:
    """``1 - IoU`` of the mask with the box pixels coloured more like the mask than like the ring.

    Args:
        bgr: ``(H, W, 3)`` uint8 BGR image of the frame (the region used is converted
            to CIE Lab, :func:`to_lab`).
        block: the object's mask, in frame pixels.
        box_xyxy: the prompt box, frame pixels.

    Returns:
        In ``[0, 1]``; ``None`` when there is too little to compare (an empty
        mask, a box whose ring lies outside the image).
    """
    h_img, w_img = bgr.shape[:2]
    x1, y1, x2, y2 = box_xyxy
    m = max(3, math.ceil(0.25 * max(x2 - x1, y2 - y1)))
    bx0, by0 = math.ceil(x1 - 0.5), math.ceil(y1 - 0.5)
    bx1, by1 = max(math.ceil(x2 - 0.5), bx0 + 1), max(math.ceil(y2 - 0.5), by0 + 1)
    rx0, ry0 = max(0, bx0 - m), max(0, by0 - m)
    rx1, ry1 = min(w_img, bx1 + m), min(h_img, by1 + m)
    if rx1 <= rx0 or ry1 <= ry0:
        return None
    reg = to_lab(bgr[ry0:ry1, rx0:rx1])
    hh, ww = reg.shape[:2]
    inbox = np.zeros((hh, ww), dtype=bool)
    inbox[max(by0 - ry0, 0) : max(by1 - ry0, 0), max(bx0 - rx0, 0) : max(bx1 - rx0, 0)] = True
    mk = np.zeros((hh, ww), dtype=bool)
    part = block.clip(ry0, rx0, ry1, rx1)  # the part of the mask in the region
    if part.height:
        mk[part.top - ry0 : part.bottom - ry0, part.left - rx0 : part.right - rx0] = part.pixels()
    ring, obj = reg[~inbox], reg[mk & inbox]
    if len(ring) < 5 or len(obj) < 2:
        return None
    pix = reg[inbox]
    fg = _loglik(pix, _mean0(obj), _cov(obj)) > _loglik(pix, _mean0(ring), _cov(ring))
    mb = mk[inbox]
    union = int(np.count_nonzero(fg | mb))
    return 0.0 if union == 0 else 1.0 - int(np.count_nonzero(fg & mb)) / union
