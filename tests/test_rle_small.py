"""The small-object path (issue 15.1): masks as blocks, fills over the box, RLE from the block.

What a user relies on: the COCO RLE strings, areas and boxes are exactly
pycocotools' for the full-frame mask, and every fill gives the same pixels as
before the change, wherever the object sits (frame edges and windows partly
outside the frame included). The ``_ref_*`` functions below are the reference:
the pixel-centre rule tested on every pixel of the whole window (the masks of
box2mask 380a228, the commit before the change, to the pixel), and
``_OLD_clip_to_obb`` the engine's clip of that commit (OpenCV's fillPoly).
"""

from __future__ import annotations

import itertools
import math
import pickle

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

import box2mask.models  # noqa: F401  (registers the models)
from box2mask import geometry
from box2mask.engine import EngineOptions, MaskEngine
from box2mask.geometry import WindowPixels, crop_image, frame_block, paste_mask
from box2mask.masks import encode_block, encode_object_mask, encode_window_mask
from box2mask.models.classical import (
    ClassicalModel,
    FillModel,
    GrabCutModel,
    box_block,
    box_mask,
    ellipse_block,
    ellipse_mask,
    fit_inscribed_shape,
    polygon_block,
    polygon_mask,
)
from box2mask.types import CropWindow, Frame, MaskBlock, ObjectMask

# ---------------------------------------------------------------------------
# Reference: the rasterisation rule by its definition, over the whole window. Every
# pixel centre (c + 0.5, r + 0.5) of the window is tested (no index ranges, no block),
# with the same arithmetic per centre as the rule (so the masks are exact, not close).
# Checked equal to the full-window code of box2mask 380a228 (the commit before the
# block change) when they replaced its verbatim copies, which had become the code.
# ---------------------------------------------------------------------------

_TOUCH = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # where the fit's parallelograms touch the box sides


def _ref_span(lo: float, hi: float, size: int) -> np.ndarray:
    """``(size,)`` bool: the window's rows (or columns) whose centre lies in ``[lo, hi)``."""
    c = np.arange(size) + 0.5
    return (c >= lo) & (c < hi)


def _ref_nonempty(mask: np.ndarray, box) -> np.ndarray:
    """``mask``, or the pixel holding the box centre (if in the window) when it is empty."""
    c, r = math.floor((box[0] + box[2]) / 2), math.floor((box[1] + box[3]) / 2)
    if not mask.any() and 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]:
        mask[r, c] = True
    return mask


def _ref_box_cells(box, size: int) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return _ref_span(y1, y2, size)[:, None] & _ref_span(x1, x2, size)[None, :]


def _ref_box_mask(box, size):
    return _ref_nonempty(_ref_box_cells(box, size), [float(v) for v in box])


def _ref_ellipse_mask(box, size):
    """The box's pixel centres inside its inscribed ellipse."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c = np.arange(size) + 0.5
    with np.errstate(all="ignore"):  # a box (nearly) of no width: its span holds no centre
        u = (c - (x1 + x2) / 2) / ((x2 - x1) / 2)
        v = (c - (y1 + y2) / 2) / ((y2 - y1) / 2)
        inside = v[:, None] ** 2 + u[None, :] ** 2 <= 1.0
    return _ref_nonempty(inside & _ref_box_cells(box, size), [x1, y1, x2, y2])


def _ref_polygon_mask(points, size):
    """Centres inside or on a convex polygon (either winding, within 1e-9), within its
    bounding box: every centre against every edge at once."""
    p = np.asarray(points, dtype=np.float64)
    d = np.roll(p, -1, axis=0) - p
    c = np.arange(size) + 0.5
    rows, cols = c[None, :, None] - p[:, 1, None, None], c[None, None, :] - p[:, 0, None, None]
    cross = d[:, 0, None, None] * rows - d[:, 1, None, None] * cols  # (edges, S, S)
    q = np.roll(p, -1, axis=0)
    winding = 1.0 if float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1])) >= 0 else -1.0
    (x1, y1), (x2, y2) = p.min(axis=0), p.max(axis=0)
    in_bbox = _ref_span(y1, y2 + 1e-9, size)[:, None] & _ref_span(x1, x2 + 1e-9, size)[None, :]
    return _ref_nonempty((winding * cross >= -1e-9).all(axis=0) & in_bbox, [x1, y1, x2, y2])


def _ref_candidates(box, hw):
    """The fit's candidates in an ``hw`` region: the ellipse, the box, then per touch pair
    ``(t, s)`` the parallelogram touching the top side at ``x1 + t`` and the right at
    ``y1 + s``, and its mirror image when both are > 0."""
    x1, y1, x2, y2 = (float(v) for v in box)
    n, (h, w) = max(hw), hw
    out = [("ellipse", _ref_ellipse_mask(box, n)), ("box", _ref_box_mask(box, n))]
    for ft, fs in itertools.product(_TOUCH, _TOUCH):
        t, s = ft * (x2 - x1), fs * (y2 - y1)
        quads = {f"quad{ft}/{fs}": [[x1 + t, y1], [x2, y1 + s], [x2 - t, y2], [x1, y2 - s]]}
        if ft > 0 and fs > 0:
            quads[f"quad-{ft}/{fs}"] = [[x2 - t, y1], [x2, y2 - s], [x1 + t, y2], [x1, y1 + s]]
        out += [(k, _ref_polygon_mask(q, n)) for k, q in quads.items() if ft or fs]
    return [(k, m[:h, :w]) for k, m in out]


def _ref_fit_inscribed_shape(crop, box, size, margin=0.5, min_margin=3, gain=0.05):
    """Otsu's criterion by its definition, one candidate at a time: the between-class
    variance of the region's colours (inside / outside the shape) over their total; the
    ellipse unless another shape explains ``gain`` more."""
    b = np.asarray(box, dtype=np.float64)
    cols = np.flatnonzero(_ref_span(b[0], b[2], size))
    rows = np.flatnonzero(_ref_span(b[1], b[3], size))
    if len(cols) < 2 or len(rows) < 2:
        return _ref_ellipse_mask(b, size), "ellipse"
    m = max(min_margin, math.ceil(margin * max(len(cols), len(rows))))
    x0, x1 = max(int(cols[0]) - m, 0), min(int(cols[-1]) + 1 + m, size)
    y0, y1 = max(int(rows[0]) - m, 0), min(int(rows[-1]) + 1 + m, size)
    cands = _ref_candidates(b - np.array([x0, y0, x0, y0]), (y1 - y0, x1 - x0))
    pix = crop[y0:y1, x0:x1].astype(np.float64).reshape(-1, 3)
    total = float(((pix - pix.mean(axis=0)) ** 2).sum())
    scores = []
    for _, shape in cands:
        fg, bg = pix[shape.reshape(-1)], pix[~shape.reshape(-1)]
        between = 0.0
        if total > 1e-9 and len(fg) and len(bg):
            between = len(fg) * len(bg) / len(pix) * ((fg.mean(0) - bg.mean(0)) ** 2).sum() / total
        scores.append(between)
    k = int(np.argmax(scores))
    k = k if scores[k] >= scores[0] + gain else 0
    out = np.zeros((size, size), dtype=bool)
    out[y0:y1, x0:x1] = cands[k][1]
    return _ref_nonempty(out, b), cands[k][0]


def _OLD_clip_to_obb(mask, obb_window):
    """engine._object_mask's --clip-to-obb before the change (whole window)."""
    poly = np.round(obb_window * 16).astype(np.int32)
    clip = np.zeros(mask.shape, dtype=np.uint8)
    cv2.fillPoly(clip, [poly], 1, lineType=cv2.LINE_8, shift=4)
    return mask & clip.astype(bool)


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

coord = st.floats(-20, 60, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw, lo=-20.0, hi=60.0, max_side=40.0):
    """xyxy boxes in window pixels: fractional, thin, partly or wholly outside the window."""
    x1 = draw(st.floats(lo, hi, allow_nan=False))
    y1 = draw(st.floats(lo, hi, allow_nan=False))
    w = draw(st.one_of(st.floats(0, 1.2), st.floats(0, max_side)))
    h = draw(st.one_of(st.floats(0, 1.2), st.floats(0, max_side)))
    if draw(st.booleans()):  # whole pixels, as most datasets give
        x1, y1, w, h = float(round(x1)), float(round(y1)), float(round(w)), float(round(h))
    return np.array([x1, y1, x1 + w, y1 + h])


def _rotated(cx, cy, length, width, deg):
    t = np.deg2rad(deg)
    u = np.array([np.cos(t), np.sin(t)]) * length / 2
    v = np.array([-np.sin(t), np.cos(t)]) * width / 2
    c = np.array([cx, cy])
    return np.array([c - u - v, c + u - v, c + u + v, c - u + v])


def _coco(full: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))


def _assert_same_as_pycocotools(enc, full: np.ndarray) -> None:
    ref = _coco(full)
    assert enc.rle["counts"] == ref["counts"].decode("ascii")
    assert enc.rle["size"] == list(full.shape)
    assert enc.area == int(mask_utils.area(ref)) == int(full.sum())
    if full.any():
        assert enc.bbox == mask_utils.toBbox(ref).tolist()
    else:
        assert enc.bbox == [0.0, 0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------
# RLE against pycocotools
# ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    h=st.integers(1, 50), w=st.integers(1, 50), s=st.integers(1, 40),
    x0=st.integers(-45, 55), y0=st.integers(-45, 55), box=boxes(-10, 45),
)  # fmt: skip
@example(h=20, w=30, s=8, x0=4, y0=0, box=np.array([0.0, 0.0, 8.0, 20.0]))  # full frame height
@example(h=8, w=8, s=8, x0=0, y0=0, box=np.array([0.0, 0.0, 8.0, 8.0]))  # the whole frame
@example(h=10, w=10, s=6, x0=5, y0=5, box=np.array([0.0, 0.0, 6.0, 6.0]))  # to the last pixel
@example(h=10, w=10, s=6, x0=-3, y0=-3, box=np.array([0.0, 0.0, 6.0, 6.0]))  # from pixel 0
@example(h=10, w=10, s=6, x0=-6, y0=2, box=np.array([0.0, 0.0, 6.0, 6.0]))  # window left of frame
def test_box_rle_equals_pycocotools(h, w, s, x0, y0, box):
    """A filled box (no pixels stored) encodes to pycocotools' RLE of the pasted full-frame mask."""
    win = CropWindow(x0, y0, s)
    block = box_block(box, s)
    full = paste_mask(block.to_array(s), win, (h, w))
    enc = encode_block(block, win, (h, w))
    _assert_same_as_pycocotools(enc, full)
    om = ObjectMask.from_block(1, "car", win, block, box + (x0, y0, x0, y0), None, "box")
    assert encode_object_mask(om, (h, w)) == enc
    assert encode_window_mask(om.mask, win, (h, w)) == enc


@settings(max_examples=400, deadline=None)
@given(
    h=st.integers(1, 50), w=st.integers(1, 50), s=st.integers(1, 40),
    x0=st.integers(-45, 55), y0=st.integers(-45, 55),
    top=st.integers(0, 39), left=st.integers(0, 39), bh=st.integers(0, 40), bw=st.integers(0, 40),
    density=st.floats(0, 1), seed=st.integers(0, 10_000), pad=st.booleans(),
)  # fmt: skip
def test_mask_block_rle_equals_pycocotools(h, w, s, x0, y0, top, left, bh, bw, density, seed, pad):
    """Random pixels in a block anywhere in a window anywhere about the frame."""
    top, left = min(top, s - 1), min(left, s - 1)
    bh, bw = min(bh, s - top), min(bw, s - left)
    data = np.random.default_rng(seed).random((bh, bw)) < density
    if pad and bh > 2 and bw > 2:  # an untight block: empty border rows and columns
        data[0] = data[-1] = False
        data[:, 0] = data[:, -1] = False
    block = MaskBlock(top, left, bh, bw, data)
    win = CropWindow(x0, y0, s)
    full = paste_mask(block.to_array(s), win, (h, w))
    enc = encode_block(block, win, (h, w))
    _assert_same_as_pycocotools(enc, full)
    assert encode_window_mask(block.to_array(s), win, (h, w)) == enc


def test_box_string_equals_pycocotools_for_every_box_of_small_frames():
    """box2mask's own string code for boxes, against pycocotools on every box of every
    frame up to 7x7 (top, left, height, width all tried) and on random big ones."""
    from box2mask.masks.rle import _box_string

    n = 0
    for h in range(1, 8):
        for w in range(1, 8):
            for top in range(h):
                for left in range(w):
                    for bh in range(1, h - top + 1):
                        for bw in range(1, w - left + 1):
                            full = np.zeros((h, w), np.uint8, order="F")
                            full[top : top + bh, left : left + bw] = 1
                            want = mask_utils.encode(full)["counts"].decode("ascii")
                            assert _box_string(top, left, bh, bw, h, w) == want, (h, w, top, left, bh, bw)
                            n += 1
    assert n == sum((h * (h + 1) // 2) * (w * (w + 1) // 2) for h in range(1, 8) for w in range(1, 8))
    rng = np.random.default_rng(5)
    for _ in range(300):  # counts up to millions: several characters per count
        h, w = (int(v) for v in rng.integers(1, 3000, 2))
        top, left = int(rng.integers(0, h)), int(rng.integers(0, w))
        bh, bw = int(rng.integers(1, min(h - top, 60) + 1)), int(rng.integers(1, min(w - left, 60) + 1))
        if rng.random() < 0.1:
            top, bh = 0, h  # full height: one run
        full = np.zeros((h, w), np.uint8, order="F")
        full[top : top + bh, left : left + bw] = 1
        want = mask_utils.encode(full)["counts"].decode("ascii")
        assert _box_string(top, left, bh, bw, h, w) == want


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(0, 5_000_000), min_size=1, max_size=30))
def test_counts_string_equals_pycocotools(counts):
    from box2mask.masks.rle import _counts_string

    counts = [counts[0]] + [max(c, 1) for c in counts[1:]]  # only the first run may be empty
    total = sum(counts)
    ref = mask_utils.frPyObjects({"size": [total, 1], "counts": counts}, total, 1)
    assert _counts_string(counts) == ref["counts"].decode("ascii")


def test_box_rle_of_a_dense_frame_decodes_to_the_boxes():
    """A 1024x1024 frame of ~10x20 px boxes, as in the dense benchmark, edges included."""
    rng = np.random.default_rng(3)
    hw = (1024, 1024)
    for _ in range(200):
        bw, bh = rng.integers(8, 25, 2)
        x, y = rng.integers(-12, 1024, 2)
        fbox = np.array([x, y, x + bw, y + bh], float)
        win = geometry.window_for_box(fbox, hw)
        block = box_block(win.box_to_crop(fbox), win.size)
        enc = encode_block(block, win, hw)
        full = np.zeros(hw, bool)
        full[max(y, 0) : y + bh, max(x, 0) : x + bw] = True
        assert enc.rle["counts"] == _coco(full)["counts"].decode("ascii")
        assert enc.area == full.sum()


# ---------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    s=st.integers(1, 30), h=st.integers(1, 40), w=st.integers(1, 40),
    x0=st.integers(-35, 40), y0=st.integers(-35, 40), density=st.floats(0, 1),
    seed=st.integers(0, 999),
)  # fmt: skip
def test_blocks_round_trip_and_frame_block_is_the_pasted_mask(s, h, w, x0, y0, density, seed):
    mask = np.random.default_rng(seed).random((s, s)) < density
    block = MaskBlock.from_mask(mask)
    assert np.array_equal(block.to_array(s), mask)
    assert block.area == int(mask.sum())
    if block.height:  # tight: every border row and column of the block holds a pixel
        px = block.pixels()
        assert px[0].any() and px[-1].any() and px[:, 0].any() and px[:, -1].any()
    win = CropWindow(x0, y0, s)
    fb = frame_block(block, win, (h, w))
    assert np.array_equal(fb.to_array((h, w)), paste_mask(mask, win, (h, w)))
    om = ObjectMask(7, "ship", win, mask, np.array([1, 2, 3, 4]), 0.5, "model")
    back = pickle.loads(pickle.dumps(om))
    assert np.array_equal(back.mask, mask) and back.area == om.area == int(mask.sum())
    assert (back.track_id, back.category, back.window, back.score, back.source) == (
        7, "ship", win, 0.5, "model",
    )  # fmt: skip


def test_object_mask_checks_and_stays_immutable():
    win = CropWindow(0, 0, 8)
    with pytest.raises(ValueError, match="window's shape"):
        ObjectMask(1, "car", win, np.zeros((4, 4), bool), np.zeros(4))
    with pytest.raises(ValueError, match="past the"):
        ObjectMask.from_block(1, "car", win, MaskBlock(6, 0, 3, 2), np.zeros(4))
    with pytest.raises(ValueError, match="source"):
        ObjectMask.from_block(1, "car", win, MaskBlock(0, 0, 1, 1), np.zeros(4), None, "magic")
    om = ObjectMask.from_block(1, "car", win, MaskBlock(2, 3, 2, 2), np.zeros(4))
    with pytest.raises(AttributeError):
        om.score = 1.0  # type: ignore[misc]
    assert om.mask.sum() == 4 and om.mask[2:4, 3:5].all()


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 60), w=st.integers(1, 60), s=st.integers(1, 40),
    x0=st.integers(-45, 60), y0=st.integers(-45, 60),
)  # fmt: skip
def test_window_pixels_are_the_crop(h, w, s, x0, y0):
    image = np.random.default_rng(h * 100 + w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    win = CropWindow(x0, y0, s)
    crop = crop_image(image, win, (1, 2, 3))
    pixels = WindowPixels(image, win, (1, 2, 3))
    assert np.array_equal(np.asarray(pixels), crop)
    for r0, r1, c0, c1 in ((0, s, 0, s), (s // 3, s, 0, s // 2), (1, 1, 0, 3), (2, s + 5, -9, s)):
        assert np.array_equal(pixels[r0:r1, c0:c1], crop[r0:r1, c0:c1])


# ---------------------------------------------------------------------------
# fills equal the previous implementation
# ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(box=boxes(), size=st.integers(1, 64))
@example(box=np.array([10.6, 4.6, 11.2, 5.2]), size=32)  # thinner than a pixel: the centre pixel
@example(box=np.array([70.0, 70.0, 71.0, 71.0]), size=32)  # outside the window: empty
def test_box_and_ellipse_fills_equal_the_previous_output(box, size):
    assert np.array_equal(box_mask(box, size), _ref_box_mask(box, size))
    assert np.array_equal(box_block(box, size).to_array(size), _ref_box_mask(box, size))
    assert np.array_equal(ellipse_mask(box, size), _ref_ellipse_mask(box, size))
    assert np.array_equal(ellipse_block(box, size).to_array(size), _ref_ellipse_mask(box, size))


@settings(max_examples=300, deadline=None)
@given(
    cx=coord, cy=coord, length=st.floats(0, 50), width=st.floats(0, 30),
    deg=st.floats(-180, 180), size=st.integers(1, 64),
)  # fmt: skip
def test_obb_fill_equals_the_previous_output(cx, cy, length, width, deg, size):
    poly = _rotated(cx, cy, length, width, deg)
    want = _ref_polygon_mask(poly, size)
    assert np.array_equal(polygon_mask(poly, size), want)
    assert np.array_equal(polygon_block(poly, size).to_array(size), want)
    block, _, src = FillModel("obb").segment_block(None, np.zeros(4), size, obb=poly)
    assert src == "obb" and np.array_equal(block.to_array(size), want)


def _scene(size: int, seed: int, box: np.ndarray) -> np.ndarray:
    """Noisy ground with a brighter rotated object inside ``box``."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal((70, 85, 60), 12, (size, size, 3)), 0, 255)
    x1, y1, x2, y2 = box
    poly = _rotated((x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.9, (y2 - y1) * 0.5, rng.uniform(-40, 40))
    inside = _ref_polygon_mask(poly, size)
    img[inside] = np.clip(rng.normal((200, 190, 170), 8, (int(inside.sum()), 3)), 0, 255)
    return img.astype(np.uint8)


@settings(max_examples=80, deadline=None)
@given(
    x=st.floats(-8, 50), y=st.floats(-8, 50), bw=st.floats(0.5, 31), bh=st.floats(0.5, 31),
    seed=st.integers(0, 999),
)  # fmt: skip
def test_classical_shape_fit_equals_the_previous_output(x, y, bw, bh, seed):
    """The shape model of the weight-free default for small non-car boxes (short side < 32)."""
    size = 64
    box = np.array([x, y, x + bw, y + bh])
    crop = _scene(size, seed, np.clip(box, 0, size))
    want, want_name = _ref_fit_inscribed_shape(crop, box, size)
    got, name = fit_inscribed_shape(crop, box, size)
    assert name == want_name and np.array_equal(got, want)
    # the engine's path: pixels cut on demand from the frame, same mask
    frame = np.zeros((size + 20, size + 20, 3), np.uint8)
    frame[10 : 10 + size, 10 : 10 + size] = crop
    pixels = WindowPixels(frame, CropWindow(10, 10, size))
    block, score, src = ClassicalModel().segment_block(pixels, box, size)
    assert np.array_equal(block.to_array(size), want)
    assert src == ("ellipse" if want_name == "ellipse" else "shape") and score is None


def test_shape_fit_with_repeated_geometry_equals_the_previous_output():
    """Whole-pixel boxes of a few sizes, in many places and images (a dense sequence's
    tracks): the candidate shapes made once per geometry give the old masks every time."""
    rng = np.random.default_rng(11)
    size = 64
    sizes = [(9, 18), (12, 8), (20, 11), (6, 6)]
    for k in range(60):
        bw, bh = sizes[k % len(sizes)]
        x, y = (float(v) for v in rng.integers(-3, size - 5, 2))
        box = np.array([x, y, x + bw, y + bh])
        crop = _scene(size, k, np.clip(box, 0, size))
        want = _ref_fit_inscribed_shape(crop, box, size)
        got = fit_inscribed_shape(crop, box, size)
        assert got[1] == want[1] and np.array_equal(got[0], want[0]), k


@pytest.mark.parametrize("seed", range(6))
def test_grabcut_block_equals_its_full_window_mask(seed):
    """GrabCut (boxes >= 32 px in classical) gives the same mask from pixels cut on demand."""
    size = 160
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-10, 100, 2)
    box = np.array([x, y, x + rng.uniform(34, 60), y + rng.uniform(34, 60)])
    crop = _scene(size, seed, np.clip(box, 0, size))
    full, score, src = GrabCutModel().segment(crop, box, size)
    block, bscore, bsrc = GrabCutModel().segment_block(WindowPixels(crop, CropWindow(0, 0, size)), box, size)
    assert (bscore, bsrc) == (score, src)
    assert np.array_equal(block.to_array(size), full)
    assert not (full & ~_ref_box_mask(box, size)).any()
    if src == "ellipse":
        assert np.array_equal(full, _ref_ellipse_mask(box, size))


# ---------------------------------------------------------------------------
# the engine: every ObjectMask equals the old full-window fill, clip-to-obb too
# ---------------------------------------------------------------------------


def _frames(n: int, hw: tuple[int, int], seed: int, with_obb: bool) -> list[Frame]:
    rng = np.random.default_rng(seed)
    out = []
    for f in range(n):
        k = 25
        xy = rng.uniform(-15, max(hw) + 5, (k, 2))
        wh = rng.uniform(0.4, 30, (k, 2))
        xyxy = np.concatenate([xy, xy + wh], axis=1)
        # keep boxes that touch the frame (the pipeline drops the others first)
        keep = (xyxy[:, 2] > 0) & (xyxy[:, 3] > 0) & (xyxy[:, 0] < hw[1]) & (xyxy[:, 1] < hw[0])
        xyxy = xyxy[keep]
        cats = rng.choice(["car", "ship", "plane"], len(xyxy))
        obb = None
        if with_obb:
            obb = np.stack([
                _rotated((a + c) / 2, (b + d) / 2, (c - a) * 1.1, (d - b) * 0.6, rng.uniform(-90, 90))
                for a, b, c, d in xyxy
            ]) if len(xyxy) else np.zeros((0, 4, 2))  # fmt: skip
        out.append(Frame("s/1", f + 1, f"/nonexistent/{f}.jpg", hw, xyxy, np.arange(len(xyxy)),
                         cats, obb=obb))  # fmt: skip
    return out


@pytest.mark.parametrize("fill", ["box", "ellipse", "obb"])
@pytest.mark.parametrize("clip", [False, True])
def test_engine_masks_equal_the_previous_fills(fill, clip):
    hw = (90, 130)
    frames = _frames(4, hw, seed=len(fill) + clip, with_obb=True)
    opts = EngineOptions(crop_size=48, box_fill_classes=("car",), clip_to_obb=clip, write_queue=0)
    engine = MaskEngine(FillModel(fill), opts, box_filler=FillModel("box"))
    got = []
    engine.run(frames, got.append)
    assert [fm.frame.frame_index for fm in got] == [1, 2, 3, 4]
    old = {"box": _ref_box_mask, "ellipse": _ref_ellipse_mask}
    n = 0
    for fm in got:
        fr = fm.frame
        assert len(fm.masks) == len(fr)
        for i, om in enumerate(fm.masks):
            win = geometry.window_for_box(fr.xyxy[i], hw, 48)
            assert om.window == win
            box = win.box_to_crop(fr.xyxy[i])
            obb = fr.obb[i] - (win.x0, win.y0)
            if fr.category[i] == "car":
                want, src = _ref_box_mask(box, win.size), "box"
            elif fill == "obb":
                want, src = _ref_polygon_mask(obb, win.size), "obb"
            else:
                want, src = old[fill](box, win.size), fill
            if clip and src not in ("obb", "box"):
                want = _OLD_clip_to_obb(want, obb)
            assert om.source == src
            assert np.array_equal(om.mask, want), (fr.frame_index, i)
            assert om.area == int(want.sum())
            assert encode_object_mask(om, hw) == encode_window_mask(want, win, hw)
            n += 1
    assert n > 40


@settings(max_examples=400, deadline=None)
@given(
    cx=st.floats(-30, 90), cy=st.floats(-30, 90), length=st.floats(0, 120), width=st.floats(0, 60),
    deg=st.floats(-180, 180), size=st.integers(1, 64), box=boxes(-20, 70, 70),
)  # fmt: skip
def test_clip_to_obb_equals_the_previous_full_window_clip(cx, cy, length, width, deg, size, box):
    """--clip-to-obb over the block only: the same pixels as fillPoly on the whole window,
    polygons crossing the window's sides included."""
    from box2mask.engine import _clip_block_to_polygon

    poly = _rotated(cx, cy, length, width, deg)
    mask = _ref_ellipse_mask(box, size)
    want = _OLD_clip_to_obb(mask, poly)
    got = _clip_block_to_polygon(MaskBlock.from_mask(mask), poly, size)
    assert np.array_equal(got.to_array(size), want)
