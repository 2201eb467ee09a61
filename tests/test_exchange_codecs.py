"""The tools' mask codecs: Label Studio's brush RLE, CVAT's mask RLE, polygons (issue 27).

Label Studio's encoder and decoder themselves (label_studio_sdk.converter.brush) read and
write the same bytes in tests/test_exchange_labelstudio.py; datumaro reads CVAT's RLE in
tests/test_exchange_datumaro.py. Here: the round trips, the streams the format allows that
box2mask does not write (literal chunks, other widths), and damaged input.
"""

from __future__ import annotations

import doctest

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from box2mask.exchange import _codec, cvat, lsrle, model, polygons

masks = st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)


def test_docstring_examples_hold() -> None:
    for mod in (lsrle, cvat, polygons, model):
        assert doctest.testmod(mod).failed == 0, mod.__name__


@settings(max_examples=200, deadline=None)
@given(masks)
def test_brush_rle_round_trip(mask: np.ndarray) -> None:
    rle = lsrle.encode(mask)
    assert all(0 <= b <= 255 for b in rle)
    assert np.array_equal(lsrle.decode(rle, mask.shape), mask)


def test_brush_rle_long_runs_split_at_the_widest_field() -> None:
    # a 4K frame: a background run of 33 million values is cut into 65536-value chunks
    mask = np.zeros((2160, 3840), bool)
    mask[100:400, 200:700] = True
    mask[-1, -1] = True
    assert np.array_equal(lsrle.decode(lsrle.encode(mask), mask.shape), mask)


def _stream(
    num: int, word: int, widths: list[int], chunks: list[tuple[int, list[int]]]
) -> list[int]:
    """An rle-pack stream written bit by bit from the format's description (not box2mask's
    encoder): chunks ``(flag, values)``, a run (flag 1) of len(values) equal values or
    literals (flag 0); each chunk takes the first width its length fits."""
    bits = f"{num:032b}{word - 1:05b}" + "".join(f"{w - 1:04b}" for w in widths)
    for flag, values in chunks:
        n = len(values)
        idx = next(i for i, w in enumerate(widths) if n - 1 < (1 << w))
        bits += f"{flag}{idx:02b}{n - 1:0{widths[idx]}b}"
        bits += f"{values[0]:0{word}b}" if flag else "".join(f"{v:0{word}b}" for v in values)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def test_brush_rle_reads_literal_chunks_as_the_editor_writes_them() -> None:
    # the editor paints RGBA (r, g, b, 255): the four values of a pixel differ, so they come
    # as literal chunks; alpha, not the colour, says whether a pixel is in the mask (the
    # last pixel has a colour and alpha 0)
    painted = [10, 200, 30, 255]
    stream = _stream(
        2 * 2 * 4, 8, [3, 4, 8, 16], [(1, [0] * 4), (0, painted + painted), (0, [5, 6, 7, 0])]
    )
    assert lsrle.decode(stream, (2, 2)).tolist() == [[False, True], [True, False]]


def test_brush_rle_reads_other_word_sizes_and_widths() -> None:
    stream = _stream(6, 12, [2, 5, 9, 16], [(1, [4095] * 3), (0, [1, 0, 3])])
    assert lsrle.decode_values(stream).tolist() == [4095, 4095, 4095, 1, 0, 3]


@pytest.mark.parametrize(
    ("rle", "hw", "message"),
    [
        (lsrle.encode(np.ones((2, 2), bool)), (2, 3), "holds 16 values, not the 2x3 image's 24"),
        (lsrle.encode(np.ones((4, 4), bool))[:-2], (4, 4), "cut short"),
        ([0, 0], (1, 1), "cut short"),
        ([256, 1, 2], (1, 1), "not a list of byte values"),
        (["a"], (1, 1), "not a list of byte values"),
    ],
)
def test_brush_rle_damaged(rle: list, hw: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lsrle.decode(rle, hw)


@settings(max_examples=200, deadline=None)
@given(masks)
def test_cvat_rle_round_trip(mask: np.ndarray) -> None:
    enc = cvat.mask_to_cvat(mask)
    if not mask.any():
        assert enc is None
        return
    rle, left, top, width, height = enc
    assert sum(rle) == width * height
    assert all(r > 0 for r in rle[1:])  # only the leading background run may be 0
    # the tight box: its first and last rows and columns hold mask pixels
    box = mask[top : top + height, left : left + width]
    assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
    assert np.array_equal(
        cvat.cvat_to_block(rle, left, top, width, height, mask.shape).to_array(mask.shape), mask
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2], 0, 0, 2, 2), "add up to 3, not width x height = 4"),
        (([4], 3, 0, 2, 2), "not inside the 4x3 frame"),
        (([4], 0, -1, 2, 2), "not inside"),
        (([2, -1, 3], 0, 0, 2, 2), "add up to"),
        (([0], 0, 0, 0, 0), "not inside"),
    ],
)
def test_cvat_rle_damaged(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cvat.cvat_to_block(*args, (3, 4))


def test_polygons_cover_exactly_the_mask_pixels_of_shapes_without_holes() -> None:
    rng = np.random.default_rng(7)
    exact = 0
    for _ in range(100):
        m = np.zeros((40, 50), np.uint8)
        c = (int(rng.integers(5, 45)), int(rng.integers(5, 35)))
        axes = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask = m.astype(bool)
        back = polygons.polygons_to_mask(polygons.mask_to_polygons(mask), mask.shape)
        exact += np.array_equal(back, mask)
    assert exact == 100


def test_polygons_of_thin_parts_and_the_lost_hole() -> None:
    for mask in (
        np.eye(6, dtype=bool),
        np.pad(np.ones((1, 1), bool), 2),
        np.pad(np.ones((1, 7), bool), 1),
    ):
        polys = polygons.mask_to_polygons(mask)
        assert all(len(p) >= 4 for p in polys)
        assert np.array_equal(polygons.polygons_to_mask(polys, mask.shape), mask)
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    filled = polygons.polygons_to_mask(polygons.mask_to_polygons(ring), ring.shape)
    assert filled.sum() == 49 and (filled | ring).sum() == 49  # the hole is filled: documented


def test_coco_codec_compares_masks_not_encodings() -> None:
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    rle = _codec.encode(mask)
    # the same mask as uncompressed RLE (column-major runs)
    uncompressed = {"size": [5, 6], "counts": [11, 2, 3, 2, 3, 2, 7]}
    assert _codec.same(rle, uncompressed, (5, 6))
    assert _codec.area_bbox(rle, (5, 6)) == (6, [2.0, 1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match=r"size \[4, 6\] is not the frame's \[5, 6\]"):
        _codec.decode({"size": [4, 6], "counts": rle["counts"]}, (5, 6))
