"""Weight-free shape models on synthetic crops made here (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

import box2mask.models  # noqa: F401  (registers the models)
from box2mask.geometry import WindowPixels
from box2mask.metrics import mask_iou
from box2mask.models.base import BlockShapeModel, ShapeModel
from box2mask.models.classical import (
    ClassicalModel,
    GrabCutModel,
    box_mask,
    ellipse_mask,
    polygon_mask,
)
from box2mask.models.registry import MODELS
from box2mask.types import MASK_SOURCES, CropWindow

SHAPE_NAMES = ["box", "ellipse", "obb", "grabcut", "classical"]


def textured_background(size: int, seed: int) -> np.ndarray:
    """Dark grey-green ground with per-pixel noise, like a field seen from above."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float64)
    img[:] = (70, 85, 60)
    img += rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def paint(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.copy()
    vals = np.asarray(colour, np.float64) + rng.normal(0, 8, (int(mask.sum()), 3))
    out[mask] = np.clip(vals, 0, 255).astype(np.uint8)
    return out


def rotated_rect(
    size: int, cx: float, cy: float, length: float, width: float, deg: float
) -> np.ndarray:
    t = np.deg2rad(deg)
    u = np.array([np.cos(t), np.sin(t)]) * length / 2
    v = np.array([-np.sin(t), np.cos(t)]) * width / 2
    c = np.array([cx, cy])
    return np.array([c - u - v, c + u - v, c + u + v, c - u + v])


def tight_box(mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_registered_as_shape_models(name: str) -> None:
    spec = MODELS.get(name)
    assert spec.kind == "shape" and not spec.needs_checkpoint
    model = spec.build()
    assert isinstance(model, ShapeModel)
    assert model.name == name


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_segment_is_the_block_the_engine_gets_as_a_window(name: str) -> None:
    """Every built-in shape model has one ``segment``, built from ``segment_block`` (the
    engine's call, with pixels cut from the frame on demand): the same mask, score, source."""
    model = MODELS.get(name).build()
    assert isinstance(model, BlockShapeModel)
    size = 64
    # a large rotated object (classical: grabcut) and a small one (classical: the shape fit)
    for seed, (length, width, deg) in enumerate([(50, 30, 20.0), (18, 7, -35.0)]):
        obb = rotated_rect(size, 32, 30, length, width, deg)
        inside = polygon_mask(obb, size)
        crop = paint(textured_background(size, seed), inside, (200, 190, 170), seed)
        b = tight_box(inside)
        frame = np.zeros((size + 9, size + 5, 3), np.uint8)
        frame[9:, 5:] = crop
        pixels = WindowPixels(frame, CropWindow(5, 9, size))
        mask, score, src = model.segment(crop, b, size, obb, "ship")
        block, bscore, bsrc = model.segment_block(pixels, b, size, obb, "ship")
        assert mask.shape == (size, size) and mask.any()
        assert (score, src) == (bscore, bsrc) and np.array_equal(block.to_array(size), mask)


def test_box_rasterisation_rule() -> None:
    m = box_mask(np.array([10, 2, 20, 5]), 32)
    assert np.array_equal(np.flatnonzero(m.any(axis=0)), np.arange(10, 20))
    assert np.array_equal(np.flatnonzero(m.any(axis=1)), np.arange(2, 5))
    # fractional: pixel centres 10.5..19.5 are inside [10.3, 19.6)
    f = box_mask(np.array([10.3, 2.0, 19.6, 5.0]), 32)
    assert np.array_equal(np.flatnonzero(f.any(axis=0)), np.arange(10, 20))
    # thinner than a pixel between two centres: the centre pixel, never empty
    t = box_mask(np.array([10.6, 4.6, 11.2, 5.2]), 32)
    assert t.sum() == 1 and t[4, 10]
    # partly outside the window: clipped
    o = box_mask(np.array([-5, 28, 3, 40]), 32)
    assert o.sum() == 3 * 4 and o[28:, :3].all()


def test_ellipse_is_inscribed_and_touches_the_box_sides() -> None:
    box = np.array([4, 6, 24, 16])
    e = ellipse_mask(box, 32)
    assert not (e & ~box_mask(box, 32)).any()
    assert np.array_equal(tight_box(e), box)
    assert abs(e.sum() - np.pi * 10 * 5) < 6  # area close to π·a·b


def test_obb_polygon_and_fallback() -> None:
    obb = rotated_rect(64, 32, 32, 30, 10, 30)
    m, score, src = MODELS.get("obb").build().segment(None, np.array([0, 0, 1, 1]), 64, obb)
    assert src == "obb" and score is None
    assert abs(int(m.sum()) - 300) < 20
    # corners in either winding give the same mask
    assert np.array_equal(polygon_mask(obb[::-1], 64), m)
    box = np.array([5, 5, 15, 12])
    m2, _, src2 = MODELS.get("obb").build().segment(None, box, 64, None)
    assert src2 == "box" and np.array_equal(m2, box_mask(box, 64))


@pytest.mark.parametrize(
    ("shape", "seed"),
    [("ellipse", 0), ("rect", 1), ("rect", 2)],
)
def test_grabcut_recovers_a_bright_object_better_than_the_box(shape: str, seed: int) -> None:
    size = 96
    rng = np.random.default_rng(seed)
    if shape == "ellipse":
        gt = ellipse_mask(np.array([30, 38, 70, 58]), size)
    else:
        gt = polygon_mask(rotated_rect(size, 48, 48, 44, 16, float(rng.uniform(20, 60))), size)
    img = paint(textured_background(size, seed), gt, (220, 215, 200), seed + 10)
    box = tight_box(gt)
    box_iou = mask_iou(box_mask(box, size), gt)
    for model in (GrabCutModel(), ClassicalModel(grabcut_min_side=8)):
        mask, _, src = model.segment(img, box, size, None, "car")
        assert src == "grabcut"
        assert mask_iou(mask, gt) > max(0.85, box_iou + 0.1)


def test_classical_fits_a_small_rotated_vehicle() -> None:
    # 14×7 px vehicle at 35°: too small for GrabCut, the fitted inscribed shape
    # beats both the box and the ellipse.
    size = 64
    gt = polygon_mask(rotated_rect(size, 32, 32, 14, 7, 35), size)
    img = paint(textured_background(size, 3), gt, (200, 200, 210), 4)
    box = tight_box(gt)
    mask, _, src = ClassicalModel().segment(img, box, size, None, "car")
    assert src == "shape"
    iou = mask_iou(mask, gt)
    assert iou > mask_iou(ellipse_mask(box, size), gt) + 0.05
    assert iou > mask_iou(box_mask(box, size), gt) + 0.05


@pytest.mark.parametrize("name", SHAPE_NAMES)
@pytest.mark.parametrize(
    "box",
    [
        np.array([20.0, 20.0, 21.0, 21.0]),  # one pixel
        np.array([20.2, 20.2, 20.4, 20.4]),  # thinner than a pixel
        np.array([-10.0, 50.0, 12.0, 80.0]),  # partly outside the window
        np.array([5.0, 5.0, 59.0, 59.0]),  # almost the whole window
        np.array([30.0, 10.0, 31.0, 40.0]),  # one column wide
    ],
)
def test_degenerate_inputs_never_raise(name: str, box: np.ndarray) -> None:
    size = 64
    model = MODELS.get(name).build()
    for crop in (textured_background(size, 5), np.full((size, size, 3), 124, np.uint8)):
        mask, score, src = model.segment(
            crop if model.needs_image else None, box, size, None, "car"
        )
        assert mask.shape == (size, size) and mask.dtype == bool
        assert src in MASK_SOURCES
        assert score is None or 0.0 <= score <= 1.0
        inside = box_mask(box, size)
        if inside.any():
            assert mask.any()
            assert not (mask & ~inside).any(), "masks stay inside their box"


@pytest.mark.parametrize("model", [GrabCutModel(), ClassicalModel()])
def test_uniform_crop_falls_back_to_the_ellipse(model: ShapeModel) -> None:
    size = 64
    box = np.array([12.0, 20.0, 52.0, 44.0])
    crop = np.full((size, size, 3), (124, 116, 104), np.uint8)
    mask, score, src = model.segment(crop, box, size, None, "ship")
    assert src == "ellipse" and score is None
    assert np.array_equal(mask, ellipse_mask(box, size))


def test_bad_crop_is_an_error() -> None:
    with pytest.raises(ValueError, match="uint8"):
        GrabCutModel().segment(np.zeros((64, 64, 3), np.float32), np.array([1, 1, 30, 30]), 64)
    with pytest.raises(ValueError, match="box"):
        MODELS.get("box").build().segment(None, np.array([1, 2, 3]), 64)
