"""Mask IoU and Boundary IoU: hand-computed cases and a full-frame reference."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from box2mask import geometry
from box2mask.metrics import (
    QualityAccumulator,
    boundary_dilation,
    boundary_iou,
    mask_boundary,
    mask_iou,
    window_ious,
)
from box2mask.types import CropWindow


def reference_boundary_iou(a: np.ndarray, b: np.ndarray, ratio: float = 0.02) -> float:
    """The official API's code, on the whole frame (copyMakeBorder + iterated 3×3 erosion)."""

    def to_boundary(m: np.ndarray) -> np.ndarray:
        h, w = m.shape
        d = max(1, int(round(ratio * np.sqrt(h**2 + w**2))))
        m = m.astype(np.uint8)
        padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
        return (m - eroded) > 0

    ba, bb = to_boundary(a), to_boundary(b)
    union = np.count_nonzero(ba | bb)
    return 1.0 if union == 0 else np.count_nonzero(ba & bb) / union


def rect(hw: tuple[int, int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros(hw, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def test_dilation_from_diagonal() -> None:
    assert boundary_dilation((512, 512)) == 14  # 0.02 * 724.08 = 14.48
    assert boundary_dilation((1080, 1920)) == 44  # 0.02 * 2202.9
    assert boundary_dilation((20, 20)) == 1  # 0.57 rounds to 1
    assert boundary_dilation((10, 10)) == 1  # 0.28 rounds to 0, clamped to 1


def test_empty_and_disjoint_masks() -> None:
    z = np.zeros((8, 8), bool)
    one = rect((8, 8), 2, 4, 2, 4)
    assert mask_iou(z, z) == 1.0
    assert boundary_iou(z, z) == 1.0
    assert mask_iou(z, one) == 0.0 and mask_iou(one, z) == 0.0
    assert boundary_iou(z, one) == 0.0
    assert boundary_iou(one, rect((8, 8), 5, 7, 5, 7)) == 0.0
    assert not math.isnan(boundary_iou(z, z))


def test_mask_iou_by_hand() -> None:
    a = rect((6, 6), 0, 2, 0, 3)  # 6 px
    b = rect((6, 6), 1, 3, 0, 3)  # 6 px, 3 shared
    assert mask_iou(a, b) == pytest.approx(3 / 9)


def test_boundary_d1_by_hand() -> None:
    # A 4×4 square in the middle of a 10×10 frame: its d=1 boundary is the 12-pixel ring.
    a = rect((10, 10), 3, 7, 3, 7)
    ring = a & ~rect((10, 10), 4, 6, 4, 6)
    assert np.array_equal(mask_boundary(a, 1), ring)
    # A 4×5 rectangle one column to the right: boundaries are the two rings
    # (12 and 14 px); they share rows 3 and 6 at columns 4..6 (6 px), while in
    # rows 4..5 a's ring is at columns 3, 6 and b's at 4, 8.
    b = rect((10, 10), 3, 7, 4, 9)
    inter = 6
    union = 12 + 14 - inter
    assert boundary_iou(a, b, dilation=1) == pytest.approx(inter / union)
    assert boundary_iou(a, b, dilation=1) == pytest.approx(reference_boundary_iou(a, b, 0.1))


def test_boundary_d2_by_hand() -> None:
    # 6×6 square, d=2: the boundary is everything but the 2×2 centre (32 px).
    a = rect((12, 12), 3, 9, 3, 9)
    assert np.count_nonzero(mask_boundary(a, 2)) == 32
    # A 5×5 square, d=2: only the single centre pixel survives erosion.
    b = rect((12, 12), 3, 8, 3, 8)
    bb = mask_boundary(b, 2)
    assert np.count_nonzero(bb) == 24 and not bb[5, 5]
    # Shared boundary: b's 24 px minus the pixels of a's inner 2×2 (rows/cols 5..6)
    # that lie in b's boundary: (5,6), (6,5), (6,6) -> 21; union 32 + 24 - 21 = 35.
    assert boundary_iou(a, b, dilation=2) == pytest.approx(21 / 35)


def test_mask_touching_the_image_border_has_boundary_there() -> None:
    # The full 5×5 frame: with zero padding every pixel within d=1 of the edge
    # is boundary; without it the mask would have none.
    full = np.ones((5, 5), bool)
    assert np.count_nonzero(mask_boundary(full, 1)) == 16
    # A left half touching the left edge: the boundary includes column 0.
    half = rect((6, 6), 0, 6, 0, 3)
    assert mask_boundary(half, 1)[:, 0].all()
    assert boundary_iou(full, full, dilation=1) == 1.0


def test_one_pixel_objects() -> None:
    a = rect((9, 9), 4, 5, 4, 5)
    assert np.array_equal(mask_boundary(a, 1), a)
    assert boundary_iou(a, a) == 1.0
    assert boundary_iou(a, rect((9, 9), 4, 5, 5, 6)) == 0.0
    assert mask_iou(a, a) == 1.0


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)

    def blob() -> np.ndarray:
        kind = rng.integers(0, 3)
        if kind == 0:
            return rng.random((h, w)) < rng.random()
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(0, 4)):
            r0, c0 = rng.integers(0, h), rng.integers(0, w)
            m[r0 : r0 + rng.integers(1, h + 1), c0 : c0 + rng.integers(1, w + 1)] = True
        return m

    ratio = draw(st.sampled_from([0.02, 0.05, 0.1, 0.2]))
    return blob(), blob(), ratio


@settings(max_examples=200, deadline=None)
@given(mask_pairs())
def test_boundary_iou_matches_full_frame_reference(
    pair: tuple[np.ndarray, np.ndarray, float],
) -> None:
    a, b, ratio = pair
    assert boundary_iou(a, b, ratio) == pytest.approx(reference_boundary_iou(a, b, ratio))
    inter, union = np.count_nonzero(a & b), np.count_nonzero(a | b)
    assert mask_iou(a, b) == pytest.approx(1.0 if union == 0 else inter / union)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(-30, 60),
    st.integers(-30, 40),
    st.integers(1, 25),
    st.integers(1, 25),
    st.integers(0, 2**31 - 1),
)
def test_window_ious_equal_frame_ious(x: int, y: int, bw: int, bh: int, seed: int) -> None:
    # Crop-local masks in a window that may stick out of a 50×70 frame score
    # the same as the pasted frame masks.
    hw = (50, 70)
    rng = np.random.default_rng(seed)
    win = CropWindow(x - 5, y - 5, 40)
    pred = np.zeros((40, 40), bool)
    gt = np.zeros((40, 40), bool)
    pred[5 : 5 + bh, 5 : 5 + bw] = rng.random((bh, bw)) < 0.8
    gt[5 : 5 + bh, 5 : 5 + bw] = rng.random((bh, bw)) < 0.8
    fp, fg = geometry.paste_mask(pred, win, hw), geometry.paste_mask(gt, win, hw)
    iou, biou = window_ious(pred, gt, win, hw, ratio=0.05)
    assert iou == pytest.approx(mask_iou(fp, fg))
    assert biou == pytest.approx(reference_boundary_iou(fp, fg, 0.05))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(np.zeros((3, 3)), np.zeros((3, 4)))


def test_accumulator_per_object_per_category_and_per_frame() -> None:
    hw = (20, 20)
    gt1 = rect(hw, 2, 6, 2, 6)
    gt2 = rect(hw, 10, 14, 10, 16)
    acc = QualityAccumulator(ratio=0.05)
    i1, b1 = acc.add_object("car", gt1, gt1, hw)  # perfect
    i2, b2 = acc.add_object("ship", rect(hw, 10, 14, 10, 13), gt2, hw)  # half
    i3, b3 = acc.add_object("car", np.zeros(hw, bool), gt1, hw)  # missed
    assert (i1, b1, i3, b3) == (1.0, 1.0, 0.0, 0.0)
    assert i2 == pytest.approx(0.5)
    pred_union = gt1 | rect(hw, 10, 14, 10, 13)
    fi, fb = acc.add_frame(pred_union, gt1 | gt2)
    assert fi == pytest.approx((16 + 12) / (16 + 24))
    s = acc.summary()
    assert s["per_object"]["by_category"]["car"]["iou"] == pytest.approx(0.5)
    assert s["per_object"]["by_category"]["car"]["count"] == 2
    assert s["per_object"]["by_category"]["ship"]["iou"] == pytest.approx(0.5)
    overall = s["per_object"]["overall"]
    assert overall["count"] == 3
    assert overall["iou"] == pytest.approx(1.5 / 3)
    assert overall["biou"] == pytest.approx((1.0 + b2 + 0.0) / 3)
    assert overall["iou@0.5"] == pytest.approx(2 / 3)
    assert overall["iou@0.75"] == pytest.approx(1 / 3)
    assert s["per_frame"]["count"] == 1 and s["per_frame"]["iou"] == pytest.approx(fi)
    assert s["biou_ratio"] == 0.05


def test_accumulator_window_masks_and_merge() -> None:
    hw = (30, 30)
    win = CropWindow(-10, -10, 32)  # sticks out of the frame top-left
    gt = np.zeros((32, 32), bool)
    gt[10:15, 10:18] = True  # touches the frame's top-left corner
    pred = np.zeros((32, 32), bool)
    pred[10:15, 10:16] = True
    a, b = QualityAccumulator(), QualityAccumulator()
    iou, biou = a.add_object("plane", pred, gt, hw, window=win)
    fp, fg = geometry.paste_mask(pred, win, hw), geometry.paste_mask(gt, win, hw)
    assert iou == pytest.approx(mask_iou(fp, fg))
    assert biou == pytest.approx(reference_boundary_iou(fp, fg))
    b.add_object("plane", fg, fg)
    a.merge(b)
    s = a.summary()["per_object"]["by_category"]["plane"]
    assert s["count"] == 2 and s["iou"] == pytest.approx((iou + 1.0) / 2)
    with pytest.raises(ValueError, match="image_hw"):
        a.add_object("plane", pred, gt, window=win)
    with pytest.raises(ValueError, match="ratios"):
        a.merge(QualityAccumulator(ratio=0.1))


def test_empty_accumulator_summary_is_nan_not_error() -> None:
    s = QualityAccumulator().summary()
    assert s["per_object"]["overall"]["count"] == 0
    assert math.isnan(s["per_frame"]["iou"])
