"""Crop geometry: windows, crops, and the crop → paste round trip (DESIGN §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from box2mask import geometry
from box2mask.types import CropWindow


@pytest.mark.parametrize(
    ("box", "hw", "kw", "expected"),
    [
        # small box in the middle: 512 window centred on (110, 55)
        ([100, 50, 120, 60], (1080, 1920), {}, CropWindow(-146, -201, 512)),
        # long side 600 -> S = ceil(1.25 * 600) = 750
        ([0, 0, 600, 100], (1080, 1920), {}, CropWindow(-75, -325, 750)),
        # context 0 keeps the crop at 512 even for large boxes
        ([0, 0, 600, 100], (1080, 1920), {"context": 0}, CropWindow(44, -206, 512)),
        # exact product: 1.25 * 420 = 525, not 526
        ([0, 0, 420, 10], (1080, 1920), {}, CropWindow(-52, -257, 525)),
        # degenerate box: a point
        ([10, 10, 10, 10], (100, 100), {}, CropWindow(-246, -246, 512)),
        # clamped window: shifted inside the image when it fits
        ([100, 50, 120, 60], (1080, 1920), {"mode": "clamped"}, CropWindow(0, 0, 512)),
        ([1900, 1070, 1910, 1075], (1080, 1920), {"mode": "clamped"}, CropWindow(1408, 568, 512)),
        # clamped, image smaller than the window: origin 0, padding bottom/right
        ([10, 10, 20, 20], (300, 400), {"mode": "clamped"}, CropWindow(0, 0, 512)),
    ],
)
def test_window_for_box(box, hw, kw, expected):
    assert geometry.window_for_box(np.array(box, float), hw, **kw) == expected


def test_window_mode_is_checked():
    with pytest.raises(ValueError, match="centred"):
        geometry.window_for_box(np.array([0, 0, 1, 1.0]), (10, 10), mode="middle")


def test_crop_image_fills_outside_with_sam_mean_or_zero():
    img = np.full((10, 10, 3), 7, np.uint8)
    win = CropWindow(-2, 5, 8)
    crop = geometry.crop_image(img, win)
    assert crop.shape == (8, 8, 3)
    assert (crop[:5, 2:] == 7).all()  # rows 5..9, cols 0..5 of the image
    assert (crop[:, :2] == geometry.SAM_PIXEL_MEAN_U8).all()
    assert (crop[5:] == geometry.SAM_PIXEL_MEAN_U8).all()
    zero = geometry.crop_image(img, win, fill=geometry.fill_for_mode("clamped"))
    assert (zero[5:] == 0).all()


def test_crop_outside_image_is_all_fill():
    img = np.zeros((10, 10, 3), np.uint8)
    crop = geometry.crop_image(img, CropWindow(50, 50, 4))
    assert (crop == geometry.SAM_PIXEL_MEAN_U8).all()


def test_resize_crop_bicubic_stays_in_range():
    rng = np.random.default_rng(0)
    crop = (rng.random((512, 512, 3)) > 0.5).astype(np.uint8) * 255  # worst case for overshoot
    up = geometry.resize_crop(crop)
    assert up.shape == (1024, 1024, 3) and up.dtype == np.uint8


def test_box_to_model_scales_by_1024_over_s():
    win = CropWindow(100, 200, 512)
    got = geometry.box_to_model(np.array([110, 210, 130, 220.0]), win)
    np.testing.assert_allclose(got, [20, 20, 60, 40])
    win = CropWindow(0, 0, 750)
    np.testing.assert_allclose(
        geometry.box_to_model(np.array([75, 0, 675, 750.0]), win), [102.4, 0, 921.6, 1024]
    )


boxes = st.tuples(
    st.floats(-300, 1300, allow_nan=False),
    st.floats(-300, 900, allow_nan=False),
    st.floats(0, 900, allow_nan=False),
    st.floats(0, 900, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    box=boxes,
    h=st.integers(1, 800),
    w=st.integers(1, 1200),
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(["centred", "clamped"]),
)
def test_oracle_mask_round_trips_exactly(box, h, w, seed, mode):
    """An oracle mask inside its box, cropped and pasted back, is returned exactly."""
    x, y, bw, bh = box
    xyxy = np.array([x, y, x + bw, y + bh])
    rng = np.random.default_rng(seed)
    full = np.zeros((h, w), bool)
    x0, y0 = max(math.floor(x), 0), max(math.floor(y), 0)
    x1, y1 = min(math.ceil(x + bw), w), min(math.ceil(y + bh), h)
    if x1 > x0 and y1 > y0:
        full[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.6
    win = geometry.window_for_box(xyxy, (h, w), mode=mode)
    if mode == "centred":
        # the box lies inside its centred window, even past the image border
        assert win.x0 <= x and x + bw <= win.x0 + win.size
        assert win.y0 <= y and y + bh <= win.y0 + win.size
        assert win.size >= 512 and win.size >= 1.25 * max(bw, bh) - 1e-6
    crop = geometry.crop_mask(full, win)
    back = geometry.paste_mask(crop, win, (h, w))
    if mode == "centred":
        np.testing.assert_array_equal(back, full)
    else:
        # the authors' window lies inside the image on each axis where the image is large enough,
        # otherwise starts at 0 (padding bottom/right); pasting returns the oracle within the window
        for origin, extent in ((win.x0, w), (win.y0, h)):
            if extent >= win.size:
                assert 0 <= origin <= extent - win.size
            else:
                assert origin == 0
        region = geometry.paste_mask(np.ones((win.size, win.size), bool), win, (h, w))
        np.testing.assert_array_equal(back, full & region)


@settings(max_examples=100, deadline=None)
@given(box=boxes, h=st.integers(1, 600), w=st.integers(1, 600))
def test_box_model_space_round_trip(box, h, w):
    x, y, bw, bh = box
    xyxy = np.array([x, y, x + bw, y + bh])
    win = geometry.window_for_box(xyxy, (h, w))
    model = geometry.box_to_model(xyxy, win)
    back = model * win.size / geometry.MODEL_SIZE + [win.x0, win.y0, win.x0, win.y0]
    np.testing.assert_allclose(back, xyxy, atol=1e-6)
    assert (model >= -1e-9).all() and (model <= geometry.MODEL_SIZE + 1e-9).all()


def test_mask_to_xyxy():
    m = np.zeros((5, 6), bool)
    assert geometry.mask_to_xyxy(m) is None
    m[4, 5] = True
    np.testing.assert_array_equal(geometry.mask_to_xyxy(m), [5, 4, 6, 5])
