"""Weight-free mask makers (:class:`~box2mask.models.base.ShapeModel`).

All work on one crop window and return an ``(S, S)`` bool mask in window
pixels. Rasterisation rule, shared by every shape here: a pixel ``(r, c)`` is
in the shape when its centre ``(c + 0.5, r + 0.5)`` is. A box ``x1 = 10,
x2 = 20`` therefore covers columns 10..19, and a fractional box
``x1 = 10.3, x2 = 19.6`` columns 10..19 as well (centres 10.5..19.5). A shape
too thin to contain any pixel centre (a box narrower than a pixel between two
centres) gets the single pixel that holds the box centre, so that no object
with a box ends up with an empty mask. Pixels outside the window are dropped.

Each shape is made as a :class:`~box2mask.types.MaskBlock` (``box_block``,
``ellipse_block``, ``polygon_block``, the models' ``segment_block``), at a cost
in proportion to the object, not the window; the ``*_mask`` functions and
``segment`` give the same mask as an ``(S, S)`` array.

- ``box``: the box filled.
- ``ellipse``: the ellipse inscribed in the box (axes along the image axes).
- ``obb``: the oriented box (four corners) filled; the axis-aligned box when
  the object has no oriented box.
- ``grabcut``: colour-model graph cut (OpenCV GrabCut) on an upsampled
  region around the box, started from the inscribed ellipse, with a check
  that falls back to the ellipse when the cut is degenerate. See
  :class:`GrabCutModel`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from box2mask.geometry import WindowPixels
from box2mask.models.base import BlockShapeModel
from box2mask.models.registry import MODELS, ModelSpec
from box2mask.types import MaskBlock

if TYPE_CHECKING:
    from box2mask.models.base import Corners, Pixels


def _centres(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Index range ``[i0, i1)`` of pixels whose centre lies in ``[lo, hi)``, clipped to ``[0, size)``."""
    i0 = max(math.ceil(lo - 0.5), 0)
    i1 = min(math.ceil(hi - 0.5), size)
    return i0, max(i1, i0)


def _centre_pixel(box: np.ndarray, size: int) -> tuple[int, int] | None:
    """``(row, col)`` of the pixel holding the box centre, or ``None`` outside the window."""
    cx = (float(box[0]) + float(box[2])) / 2
    cy = (float(box[1]) + float(box[3])) / 2
    c, r = math.floor(cx), math.floor(cy)
    if 0 <= r < size and 0 <= c < size:
        return r, c
    return None


def _nonempty(block: MaskBlock, box: np.ndarray, size: int) -> MaskBlock:
    """``block``, or the pixel holding the box centre when ``block`` has no pixel set."""
    if block.height and block.width and (block.data is None or block.data.any()):
        return block
    p = _centre_pixel(box, size)
    return MaskBlock.empty() if p is None else MaskBlock(p[0], p[1], 1, 1)


def _check_box(box: np.ndarray, size: int) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be 4 finite numbers (xyxy), got {box!r}")
    if size <= 0:
        raise ValueError(f"window size must be > 0, got {size}")
    return b


def _check_crop(crop: np.ndarray | WindowPixels, size: int) -> np.ndarray | WindowPixels:
    """An ``(S, S, 3)`` uint8 crop, or a :class:`~box2mask.geometry.WindowPixels` of that shape."""
    if not isinstance(crop, WindowPixels):
        crop = np.asarray(crop)
    if tuple(crop.shape) != (size, size, 3) or crop.dtype != np.uint8:
        raise ValueError(
            f"crop must be ({size}, {size}, 3) uint8, got {tuple(crop.shape)} {crop.dtype}"
        )
    return crop


def _box_span(box: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The checked box and the rows/columns of the window whose centres it holds."""
    b = _check_box(box, size)
    c0, c1 = _centres(b[0], b[2], size)
    r0, r1 = _centres(b[1], b[3], size)
    return b, (r0, r1, c0, c1)


def box_block(box: np.ndarray, size: int) -> MaskBlock:
    """:func:`box_mask` as a :class:`~box2mask.types.MaskBlock` (a filled rectangle, no pixels stored).

    Plain float arithmetic for a ``(4,)`` float array (the engine's case: one
    call per box-filled object), the same numbers as :func:`_check_box`'s.

    >>> box_block(np.array([1.0, 0.0, 3.0, 2.0]), 4)
    MaskBlock(top=0, left=1, height=2, width=2, data=None)
    """
    if isinstance(box, np.ndarray) and box.shape == (4,) and box.dtype == np.float64 and size > 0:
        x1, y1, x2, y2 = box.tolist()
        if not (math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)):
            _check_box(box, size)  # raises the usual message
    else:
        x1, y1, x2, y2 = _check_box(box, size).tolist()
    c0, c1 = _centres(x1, x2, size)
    r0, r1 = _centres(y1, y2, size)
    if c1 > c0 and r1 > r0:
        return MaskBlock(r0, c0, r1 - r0, c1 - c0)
    return _nonempty(MaskBlock.empty(), (x1, y1, x2, y2), size)  # type: ignore[arg-type]


def box_mask(box: np.ndarray, size: int) -> np.ndarray:
    """The box filled, in an ``(S, S)`` window.

    Args:
        box: ``(4,)`` xyxy in window pixels (x2/y2 exclusive; may be fractional
            or extend past the window).
        size: window side ``S``.

    Returns:
        ``(S, S)`` bool.

    >>> box_mask(np.array([1, 0, 3, 2]), 4).astype(int).tolist()
    [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    return box_block(box, size).to_array(size)


def ellipse_block(box: np.ndarray, size: int) -> MaskBlock:
    """:func:`ellipse_mask` as a :class:`~box2mask.types.MaskBlock` over the box's pixels."""
    b, (r0, r1, c0, c1) = _box_span(box, size)
    block = MaskBlock.empty()
    if c1 > c0 and r1 > r0:
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        ax, ay = (b[2] - b[0]) / 2, (b[3] - b[1]) / 2
        xs = (np.arange(c0, c1) + 0.5 - cx) / ax
        ys = (np.arange(r0, r1) + 0.5 - cy) / ay
        block = MaskBlock(r0, c0, r1 - r0, c1 - c0, ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0)
    return _nonempty(block, b, size)


def ellipse_mask(box: np.ndarray, size: int) -> np.ndarray:
    """The ellipse inscribed in the box (pixel centres inside it); arguments as :func:`box_mask`.

    >>> ellipse_mask(np.array([0, 0, 4, 4]), 4).astype(int)
    array([[0, 1, 1, 0],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [0, 1, 1, 0]])
    """
    return ellipse_block(box, size).to_array(size)


def polygon_block(points: np.ndarray, size: int) -> MaskBlock:
    """:func:`polygon_mask` as a :class:`~box2mask.types.MaskBlock` over the polygon's bounding pixels."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3 or not np.isfinite(p).all():
        raise ValueError(f"polygon must be (K >= 3, 2) finite points, got shape {p.shape}")
    lo, hi = p.min(axis=0), p.max(axis=0)
    c0, c1 = _centres(lo[0], hi[0] + 1e-9, size)
    r0, r1 = _centres(lo[1], hi[1] + 1e-9, size)
    bbox = np.array([lo[0], lo[1], hi[0], hi[1]])
    block = MaskBlock.empty()
    if c1 > c0 and r1 > r0:
        xs = np.arange(c0, c1) + 0.5
        ys = np.arange(r0, r1) + 0.5
        x, y = xs[None, :], ys[:, None]
        nxt = np.roll(p, -1, axis=0)
        # Signed area decides the winding, so corners may go either way round.
        area2 = float(np.sum(p[:, 0] * nxt[:, 1] - nxt[:, 0] * p[:, 1]))
        sign = 1.0 if area2 >= 0 else -1.0
        inside = np.ones((r1 - r0, c1 - c0), dtype=bool)
        for (ax_, ay_), (bx_, by_) in zip(p, nxt, strict=True):
            cross = (bx_ - ax_) * (y - ay_) - (by_ - ay_) * (x - ax_)
            inside &= sign * cross >= -1e-9
        block = MaskBlock(r0, c0, r1 - r0, c1 - c0, inside)
    return _nonempty(block, bbox, size)


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """A convex polygon (e.g. an oriented box) filled, in an ``(S, S)`` window.

    Args:
        points: ``(K, 2)`` float ``(x, y)`` corners in window pixels, in order
            around the polygon (either direction), ``K >= 3``, convex.
        size: window side ``S``.

    Returns:
        ``(S, S)`` bool: the pixels whose centre is inside or on the polygon.
    """
    return polygon_block(points, size).to_array(size)


@dataclass(frozen=True)
class FillModel(BlockShapeModel):
    """``box``, ``ellipse`` or ``obb``: a geometric shape filled, no image needed.

    ``obb`` fills the oriented box, and the axis-aligned box (source
    ``"box"``) for an object that has none. The score is ``None``: a fill
    has no confidence of its own.
    """

    name: str = "box"
    needs_image: bool = False

    def __post_init__(self) -> None:
        if self.name not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {self.name!r}")

    def segment_block(
        self, crop: Pixels, box: np.ndarray, size: int, obb: Corners = None, category: str = ""
    ) -> tuple[MaskBlock, float | None, str]:
        """:meth:`segment` with the mask as a :class:`~box2mask.types.MaskBlock` in window pixels."""
        if self.name == "ellipse":
            return ellipse_block(box, size), None, "ellipse"
        if self.name == "obb" and obb is not None:
            return polygon_block(np.asarray(obb, dtype=np.float64).reshape(4, 2), size), None, "obb"
        return box_block(box, size), None, "box"


#: the fills and their one-line descriptions (``--model`` help)
FILLS = {
    "box": "the box filled (no weights)",
    "ellipse": "the ellipse inscribed in the box (no weights)",
    "obb": "the oriented box filled, else the box (no weights)",
}


@dataclass(frozen=True)
class GrabCutModel(BlockShapeModel):
    """``grabcut``: OpenCV GrabCut made to work on small aerial objects.

    Plain GrabCut started from the box fails on small objects (an empty mask
    for about half of the vehicles of iSAID): a handful of pixels cannot fit
    its 5-component colour models, and "everything outside the box is
    background, everything inside unknown" gives no hint that the object fills
    the box. This variant

    1. cuts a region around the box (``margin`` × the box's long side, at
       least ``min_margin`` px) out of the window, so the background model
       learns the object's surroundings rather than the whole window;
    2. upsamples it (bicubic) so that the box's short side is at least
       ``min_side`` px, which gives the colour models and the smoothness term
       enough pixels;
    3. starts from a shape prior instead of the bare box: outside the box is
       definite background, the inscribed ellipse probable foreground, the
       box corners probable background, and a small central core (the ellipse
       shrunk by ``core``) definite foreground, so the cut cannot vanish;
    4. keeps the connected component that holds the core, fills its holes,
       and brings it back to window resolution;
    5. falls back to the ellipse when the cut is degenerate: its IoU with
       the closest shape that fills a tight box (:func:`inscribed_shapes`:
       the ellipse, the box, rotated rectangles) is below ``min_agreement``
       (it leaked into the background or shrank to the core), which happens
       on low-contrast objects where the colour models separate nothing.

    The score is that IoU (how plausible the cut's shape is), ``None`` when
    the ellipse is returned.
    """

    name: str = "grabcut"
    needs_image: bool = True
    margin: float = 0.5
    min_margin: int = 6
    min_side: int = 32
    max_side: int = 160
    iterations: int = 4
    core: float = 0.35
    min_agreement: float = 0.5

    def segment_block(
        self, crop: Pixels, box: np.ndarray, size: int, obb: Corners = None, category: str = ""
    ) -> tuple[MaskBlock, float | None, str]:
        """:meth:`segment` with the mask as a :class:`~box2mask.types.MaskBlock` in window
        pixels; ``crop`` may be a :class:`~box2mask.geometry.WindowPixels` (only the
        region around the box is cut)."""
        b = _check_box(box, size)
        prior = ellipse_block(b, size)
        if crop is None:
            return prior, None, "ellipse"
        crop = _check_crop(crop, size)
        c0, c1 = _centres(b[0], b[2], size)
        r0, r1 = _centres(b[1], b[3], size)
        bw, bh = c1 - c0, r1 - r0
        if bw < 2 or bh < 2:
            return prior, None, "ellipse"
        m = max(self.min_margin, math.ceil(self.margin * max(bw, bh)))
        x0, x1 = max(c0 - m, 0), min(c1 + m, size)
        y0, y1 = max(r0 - m, 0), min(r1 + m, size)
        region = crop[y0:y1, x0:x1]
        if int(np.ptp(region.reshape(-1, 3), axis=0).max()) < 8:
            return prior, None, "ellipse"  # flat colour: nothing for the colour models to learn
        f = max(1.0, self.min_side / min(bw, bh))
        f = min(f, max(1.0, self.max_side / max(y1 - y0, x1 - x0)))
        rh, rw = y1 - y0, x1 - x0
        uh, uw = max(round(rh * f), 1), max(round(rw * f), 1)
        img = (
            cv2.resize(region, (uw, uh), interpolation=cv2.INTER_CUBIC) if f > 1 else region.copy()
        )
        sx, sy = uw / rw, uh / rh
        ub = np.array([(b[0] - x0) * sx, (b[1] - y0) * sy, (b[2] - x0) * sx, (b[3] - y0) * sy])
        init = np.full((uh, uw), cv2.GC_BGD, dtype=np.uint8)
        init[box_mask(ub, max(uh, uw))[:uh, :uw]] = cv2.GC_PR_BGD
        init[ellipse_mask(ub, max(uh, uw))[:uh, :uw]] = cv2.GC_PR_FGD
        cx, cy = (ub[0] + ub[2]) / 2, (ub[1] + ub[3]) / 2
        hw_, hh_ = (ub[2] - ub[0]) * self.core / 2, (ub[3] - ub[1]) * self.core / 2
        core = ellipse_mask(np.array([cx - hw_, cy - hh_, cx + hw_, cy + hh_]), max(uh, uw))[
            :uh, :uw
        ]
        init[core] = cv2.GC_FGD
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        # GrabCut seeds its GMMs with k-means on OpenCV's global RNG: reseed so
        # the same object gives the same mask in every run (resume, shards).
        cv2.setRNGSeed(0)
        try:
            cv2.grabCut(img, init, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return prior, None, "ellipse"  # too few pixels of one label for a colour model
        fg = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.uint8)
        n, labels = cv2.connectedComponents(fg, connectivity=4)
        if n > 2:
            keep = np.bincount(labels[core], minlength=n)
            keep[0] = 0
            fg = (labels == int(np.argmax(keep))).astype(np.uint8)
        fg = _fill_holes(fg)
        if f > 1:
            small = cv2.resize(fg.astype(np.float32), (rw, rh), interpolation=cv2.INTER_AREA) >= 0.5
        else:
            small = fg.astype(bool)
        # the cut within the box (bw, bh >= 2: the box's own pixels, rows r0:r1,
        # columns c0:c1, all inside the region); nothing outside the box is kept
        sub = small[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]
        # Plausible cuts are close to some shape that fills a tight box (the
        # ellipse, or a rotated rectangle for a thin diagonal object); a cut
        # far from all of them leaked into the background or shrank to the core.
        shapes = inscribed_shapes(b - np.array([c0, r0, c0, r0]), (r1 - r0, c1 - c0))
        agreement = max(
            np.count_nonzero(sub & m) / max(np.count_nonzero(sub | m), 1) for _, m in shapes
        )
        if agreement < self.min_agreement:
            return prior, None, "ellipse"
        return MaskBlock(r0, c0, r1 - r0, c1 - c0, sub), float(agreement), "grabcut"


#: Where the inscribed quadrilaterals touch the box sides, as shares of the side.
_TOUCH = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def inscribed_shapes(box: np.ndarray, hw: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """The shapes that fill a tight box: its ellipse, the box, and inscribed parallelograms.

    A ground-truth box is tight, so the object touches all four sides. The
    parallelograms touch the top side at ``x1 + t``, the right at ``y1 + s``,
    the bottom at ``x2 - t`` and the left at ``y2 - s`` (and the mirror
    image), for ``t/w, s/h`` in :data:`_TOUCH`: rotated rectangles such as
    vehicles and ships seen at an angle are among them.

    Args:
        box: ``(4,)`` xyxy in the pixels of an ``(h, w)`` region.
        hw: the region's ``(h, w)``.

    Returns:
        ``[(name, (h, w) bool mask), ...]``, the ellipse first and the box second.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    n = max(hw)
    h, w = hw
    out = [("ellipse", ellipse_mask(box, n)[:h, :w]), ("box", box_mask(box, n)[:h, :w])]
    for ft in _TOUCH:
        for fs in _TOUCH:
            if ft == 0 and fs == 0:
                continue
            t, s = ft * bw, fs * bh
            p1 = np.array([[x1 + t, y1], [x2, y1 + s], [x2 - t, y2], [x1, y2 - s]])
            out.append((f"quad{ft}/{fs}", polygon_mask(p1, n)[:h, :w]))
            if ft > 0 and fs > 0:
                p2 = np.array([[x2 - t, y1], [x2, y2 - s], [x1 + t, y2], [x1, y1 + s]])
                out.append((f"quad-{ft}/{fs}", polygon_mask(p2, n)[:h, :w]))
    return out


def fit_inscribed_shape(
    crop: np.ndarray | WindowPixels, box: np.ndarray, size: int, **fit: Any
) -> tuple[np.ndarray, str]:
    """:func:`fit_inscribed_block` with the mask as an ``(S, S)`` array (same arguments)."""
    block, name = fit_inscribed_block(crop, box, size, **fit)
    return block.to_array(size), name


def fit_inscribed_block(
    crop: np.ndarray | WindowPixels,
    box: np.ndarray,
    size: int,
    margin: float = 0.5,
    min_margin: int = 3,
    gain: float = 0.05,
) -> tuple[MaskBlock, str]:
    """Pick the inscribed shape whose inside and outside differ most in colour.

    Each candidate of :func:`inscribed_shapes` splits a region (the box plus a
    margin) into two parts; its score is the share of the region's colour
    variance explained by that split (between-class variance / total, as in
    Otsu's method). The ellipse is kept unless another shape explains at least
    ``gain`` more: with weak evidence the safe average shape wins.

    Args:
        crop: ``(S, S, 3)`` uint8 RGB window (or its
            :class:`~box2mask.geometry.WindowPixels`: only the region is cut).
        box: ``(4,)`` xyxy in window pixels.
        size: ``S``.
        margin, min_margin: the region is the box grown by
            ``max(min_margin, margin * long side)`` px.
        gain: how much more variance a shape must explain than the ellipse.

    Returns:
        ``(mask, name of the shape)``: the mask as a :class:`~box2mask.types.MaskBlock`
        in window pixels (over the region at most), made at the region's cost.
    """
    b = _check_box(box, size)
    c0, c1 = _centres(b[0], b[2], size)
    r0, r1 = _centres(b[1], b[3], size)
    if c1 - c0 < 2 or r1 - r0 < 2:
        return ellipse_block(b, size), "ellipse"
    m = max(min_margin, math.ceil(margin * max(c1 - c0, r1 - r0)))
    x0, x1 = max(c0 - m, 0), min(c1 + m, size)
    y0, y1 = max(r0 - m, 0), min(r1 + m, size)
    rh, rw = y1 - y0, x1 - x0
    pix = crop[y0:y1, x0:x1].astype(np.float64).reshape(-1, 3)
    names, stacked = _candidate_masks(tuple((b - np.array([x0, y0, x0, y0])).tolist()), (rh, rw))
    masks = stacked.astype(np.float64)
    total = float(((pix - pix.mean(axis=0)) ** 2).sum())
    k = 0
    if total > 1e-9:
        nf = masks.sum(axis=1)
        nb = masks.shape[1] - nf
        sf = masks @ pix
        mf = sf / np.maximum(nf, 1)[:, None]
        mb = (pix.sum(axis=0)[None, :] - sf) / np.maximum(nb, 1)[:, None]
        score = nf * nb / masks.shape[1] * ((mf - mb) ** 2).sum(axis=1) / total
        best = int(np.argmax(score))
        if score[best] >= score[0] + gain:
            k = best
    shape = stacked[k].reshape(rh, rw).copy()
    return _nonempty(MaskBlock(y0, x0, rh, rw, shape), b, size), names[k]


#: regions up to this many pixels have their candidate shapes kept (62 x 4096 bytes each at most)
_CACHED_REGION_PX = 4096


def _candidate_masks(
    box: tuple[float, float, float, float], hw: tuple[int, int]
) -> tuple[tuple[str, ...], np.ndarray]:
    """:func:`inscribed_shapes` as ``(names, (K, h*w) bool)``, kept for small regions.

    The candidates depend only on the box's place in its region, not on the
    image: in a dense sequence each track's box has the same size and place
    frame after frame (whole-pixel boxes sit at the margin of a region the
    window does not cut), so the 62 rasterisations are made once per
    geometry instead of once per object. The same numbers in give the same
    masks out: the result does not change.
    """
    if hw[0] * hw[1] <= _CACHED_REGION_PX:
        return _candidate_masks_cached(box, hw)
    return _candidate_masks_made(box, hw)


def _candidate_masks_made(
    box: tuple[float, float, float, float], hw: tuple[int, int]
) -> tuple[tuple[str, ...], np.ndarray]:
    cands = inscribed_shapes(np.array(box, dtype=np.float64), hw)
    stacked = np.stack([c[1].reshape(-1) for c in cands])
    stacked.flags.writeable = False
    return tuple(c[0] for c in cands), stacked


_candidate_masks_cached = functools.lru_cache(maxsize=256)(_candidate_masks_made)


@dataclass(frozen=True)
class ClassicalModel(BlockShapeModel):
    """``classical``: the best weight-free mask maker here (default without a checkpoint).

    Objects whose box is at least ``grabcut_min_side`` px on its short side
    go to :class:`GrabCutModel` (enough pixels for its colour models and for
    irregular outlines such as planes and harbours); smaller ones get the
    inscribed shape that best separates the colours
    (:func:`fit_inscribed_block`), which falls back to the ellipse when the
    evidence is weak. Sources: ``"grabcut"``, ``"ellipse"`` or ``"shape"``.
    """

    name: str = "classical"
    needs_image: bool = True
    grabcut_min_side: int = 32
    gain: float = 0.05
    grabcut: GrabCutModel = GrabCutModel()

    def segment_block(
        self, crop: Pixels, box: np.ndarray, size: int, obb: Corners = None, category: str = ""
    ) -> tuple[MaskBlock, float | None, str]:
        """:meth:`segment` with the mask as a :class:`~box2mask.types.MaskBlock` in window
        pixels; ``crop`` may be a :class:`~box2mask.geometry.WindowPixels`."""
        b = _check_box(box, size)
        if crop is None:
            return ellipse_block(b, size), None, "ellipse"
        crop = _check_crop(crop, size)
        c0, c1 = _centres(b[0], b[2], size)
        r0, r1 = _centres(b[1], b[3], size)
        if min(c1 - c0, r1 - r0) >= self.grabcut_min_side:
            return self.grabcut.segment_block(crop, b, size, obb, category)
        block, shape = fit_inscribed_block(crop, b, size, gain=self.gain)
        return block, None, "ellipse" if shape == "ellipse" else "shape"


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (uint8 0/1) with the background regions that do not reach its border filled."""
    h, w = mask.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flood[1:-1, 1:-1] = mask
    ff = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 1)
    return (mask | (1 - flood[1:-1, 1:-1])).astype(np.uint8)


for _fill, _description in FILLS.items():
    MODELS.add(
        _fill,
        ModelSpec("shape", _description, build=lambda _f=_fill, **opts: FillModel(_f, **opts)),
    )
MODELS.add(
    "grabcut",
    ModelSpec(
        "shape",
        "GrabCut on an upsampled region, started from the inscribed ellipse (no weights)",
        build=lambda **opts: GrabCutModel(**opts),
    ),
)
MODELS.add(
    "classical",
    ModelSpec(
        "shape",
        "GrabCut for large boxes, colour-fitted inscribed shape for small ones (no weights)",
        build=lambda **opts: ClassicalModel(**opts),
        weight_free_default=True,
    ),
)
