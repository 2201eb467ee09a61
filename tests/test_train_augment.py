"""Training augmentation keeps images, masks and boxes aligned (box2mask.train.augment)."""

from __future__ import annotations

import numpy as np
import pytest

from box2mask.geometry import mask_to_xyxy
from box2mask.train.augment import (
    AugmentConfig,
    affine_boxes,
    augment,
    large_scale_jitter,
    rotate,
)
from box2mask.train.data import sample_frames

RED = (255, 0, 0)


def _reddish(pixels: np.ndarray) -> float:
    """Share of pixels closer to the objects' red than to the grey background (G < 45)."""
    return float((pixels[:, 1] < 45).mean())


def _scene(h: int, w: int, boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Grey image with red rectangles, and their masks."""
    image = np.full((h, w, 3), 90, dtype=np.uint8)
    masks = np.zeros((len(boxes), h, w), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
        image[y1:y2, x1:x2] = RED
    return image, masks


@pytest.mark.parametrize("angle", [90.0, 180.0, 270.0, -90.0])
@pytest.mark.parametrize("hw", [(40, 60), (61, 33)])
def test_right_angle_rotation_maps_boxes_and_pixels_exactly(
    angle: float, hw: tuple[int, int]
) -> None:
    boxes = [(5, 6, 20, 18), (30, 2, 33, 30)]
    image, masks = _scene(*hw, boxes)
    img, ms, m = rotate(image, masks, angle)
    assert img.shape[:2] == (hw if angle % 180 == 0 else hw[::-1])
    expected = affine_boxes(np.array(boxes, float), m)
    for k in range(len(boxes)):
        np.testing.assert_allclose(mask_to_xyxy(ms[k]), expected[k], atol=1e-6)
        assert ms[k].sum() == masks[k].sum()
        assert (img[ms[k]] == RED).all()


@pytest.mark.parametrize("angle", [17.0, -45.0, 133.0])
def test_free_rotation_keeps_mask_on_the_object_and_inside(angle: float) -> None:
    image, masks = _scene(50, 70, [(10, 10, 40, 25)])
    img, ms, m = rotate(image, masks, angle)
    corners = affine_boxes(np.array([[10, 10, 40, 25]], float), m)[0]
    got = mask_to_xyxy(ms[0])
    assert got is not None
    # the tight box of the rotated mask lies within a pixel of the rotated corners' box
    assert np.all(np.abs(got - corners) <= 1.0 + 1e-6)
    assert abs(int(ms[0].sum()) - 30 * 15) <= 0.1 * 30 * 15
    assert _reddish(img[ms[0]]) > 0.95
    # the whole rotated image fits: every object pixel survives the rotation
    assert img.shape[0] >= 50 and img.shape[1] >= 50


@pytest.mark.parametrize("scale", [0.1, 0.37, 1.0, 2.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lsj_box_from_mask_matches_transformed_box(scale: float, seed: int) -> None:
    boxes = [(100, 120, 300, 260), (500, 40, 700, 200)]
    image, masks = _scene(600, 800, boxes)
    rng = np.random.default_rng(seed)
    img, ms, m = large_scale_jitter(image, masks, scale, rng, out_size=1024)
    assert img.shape == (1024, 1024, 3) and ms.shape == (2, 1024, 1024)
    expected = affine_boxes(np.array(boxes, float), m)
    clipped = np.clip(expected, 0, 1024)
    any_present = False
    for k in range(2):
        got = mask_to_xyxy(ms[k])
        if got is None:
            # only an object the crop window left out may vanish
            assert clipped[k, 2] - clipped[k, 0] < 1 or clipped[k, 3] - clipped[k, 1] < 1
            continue
        any_present = True
        assert np.all(np.abs(got - clipped[k]) <= 1.0), (got, clipped[k])
        assert _reddish(img[ms[k]]) > 0.95
    assert any_present  # the crop window keeps an object's centre
    # padding (bottom/right) holds no mask and SAM's mean colour
    nh = round(600 * 1024 * scale / 800)
    if nh < 1024:
        assert not ms[:, nh:].any()
        assert (img[nh + 1 :, :, 0] == 124).all()


def test_augment_recomputes_tight_boxes_and_drops_vanished_objects() -> None:
    image, masks = _scene(300, 400, [(10, 10, 200, 150), (390, 290, 391, 291)])
    cfg = AugmentConfig(
        scale_min=0.2, scale_max=0.2, rotate_prob=1.0, right_angles=True, min_pixels=4
    )
    out = augment(image, masks, np.random.default_rng(3), cfg)
    # the 1-pixel object shrinks below min_pixels at scale 0.2 and is dropped
    assert out.keep.tolist() == [0]
    assert out.masks.shape == (1, 1024, 1024)
    np.testing.assert_array_equal(out.boxes[0], mask_to_xyxy(out.masks[0]))
    assert _reddish(out.image[out.masks[0]]) > 0.95
    # same generator state → same sample (samples are reproducible on resume)
    again = augment(image, masks, np.random.default_rng(3), cfg)
    np.testing.assert_array_equal(out.image, again.image)
    assert out.angle == again.angle and out.scale == again.scale


def test_augment_config_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="scale range"):
        AugmentConfig(scale_min=2.0, scale_max=1.0)
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(rotate_prob=1.5)


def test_frame_sampling_keeps_a_fixed_share_per_sequence() -> None:
    seqs = [("a", list(range(100))), ("b", list(range(7))), ("c", [0])]
    first = sample_frames(seqs, 0.25, seed=5)  # type: ignore[arg-type]
    again = sample_frames(seqs, 0.25, seed=5)  # type: ignore[arg-type]
    other = sample_frames(seqs, 0.25, seed=6)  # type: ignore[arg-type]
    assert first == again and first != other
    assert len(first) == 25 + 2 + 1  # round(0.25 n), at least one per sequence
    assert sample_frames(seqs, 1.0, 0) == list(range(100)) + list(range(7)) + [0]  # type: ignore[arg-type]
