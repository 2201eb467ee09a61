"""The one mask codec (box2mask.masks): decode against pycocotools, union, and the paint rule.

What a user relies on: every reader of a COCO mask in box2mask sees the
pixels pycocotools sees (compressed and uncompressed RLE, polygons, large
frames, masks that touch the frame's edges), and a frame painted from the
same masks gives every pixel the same owner whoever paints it. The
cross-format check (png, davis, mots and ``qa apply`` on one job) is in
``tests/test_paint_formats.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from box2mask.masks import (
    MaskBlock,
    compress,
    decode,
    encode_frame_block,
    paint,
    paint_order,
    rle_runs,
    union,
)
from box2mask.writers.ytvis import uncompressed


def _runs(mask: np.ndarray) -> list[int]:
    """Run lengths of a mask, column-major, 0s first: stated directly, one pixel at a time."""
    runs, cur, n = [], 0, 0
    for v in mask.ravel(order="F"):
        if int(v) != cur:
            runs.append(n)
            cur, n = int(v), 0
        n += 1
    runs.append(n)
    return runs


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


masks = st.tuples(st.integers(1, 23), st.integers(1, 23)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)


@settings(max_examples=300, deadline=None)
@given(masks)
def test_decode_is_pycocotools_for_every_form_of_rle(mask):
    h, w = mask.shape
    rle = _rle(mask)
    want = mask_utils.decode(rle).astype(bool)
    assert rle_runs(rle).tolist() == _runs(mask)
    assert uncompressed(rle)["counts"] == _runs(mask)  # what the ytvis writer writes
    for seg in (
        rle,
        {**rle, "counts": rle["counts"].encode()},
        {"size": [h, w], "counts": _runs(mask)},
    ):
        b = decode(seg)
        np.testing.assert_array_equal(b.to_array((h, w)), want)
        assert b.area == int(mask_utils.area(rle))
        # a tight block in frame pixels; no pixel array when every pixel of it is set
        assert b.tight().xyxy() == b.xyxy()
        assert (b.data is None) == (b.area == b.height * b.width)  # (0 x 0 when empty)
    # and back: the block encodes to the very string it came from
    assert encode_frame_block(decode(rle), (h, w)).rle == rle
    assert compress(_runs(mask), (h, w)) == rle["counts"]


@pytest.mark.parametrize(
    "fill",
    [
        lambda m: m.__setitem__((slice(None), slice(3, 7)), True),  # full-height columns
        lambda m: [
            m.__setitem__(k, True)
            for k in ((slice(5, None), 2), (slice(None), 3), (slice(0, 4), 4))
        ],  # one run over 3 columns
        lambda m: m.__setitem__((-1, -1), True),  # the very last pixel
        lambda m: m.__setitem__((0, 0), True),  # the very first
        lambda m: m.__setitem__((slice(None), slice(None)), True),  # the whole frame
        lambda m: None,  # empty
    ],
)
def test_decode_at_the_frame_edges(fill):
    m = np.zeros((9, 11), bool)
    fill(m)
    b = decode(_rle(m))
    np.testing.assert_array_equal(b.to_array(m.shape), m)
    assert b.area == m.sum()


def test_large_counts_and_negative_deltas_decode():
    # a big frame: runs past 2**15 need several characters, and later runs
    # shorter than the run two places back are stored as negative differences
    h, w = 2048, 2048
    mask = np.zeros((h, w), np.uint8)
    mask[1000:1900, 7] = 1
    mask[5:9, 1500] = 1
    mask[3, 2047] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))  # bytes counts, as pycocotools returns them
    b = decode(rle)
    assert (b.top, b.left, b.bottom, b.right) == (3, 7, 1900, 2048)
    np.testing.assert_array_equal(b.to_array((h, w)), mask.astype(bool))


def test_polygons_decode_as_pycocotools_rasterises_them():
    hw = (40, 50)
    polys = [[2.0, 3.0, 20.5, 3.0, 20.5, 17.2, 2.0, 17.2], [30, 20, 45, 25, 33, 38]]
    want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, *hw))).astype(bool)
    np.testing.assert_array_equal(decode(polys, hw).to_array(hw), want)
    with pytest.raises(ValueError, match="frame size"):
        decode(polys)


def test_hostile_rle_is_refused_or_cut_to_the_frame():
    for empty in (None, [], {"size": [4, 5], "counts": ""}, {"size": [4, 5], "counts": []}):
        assert decode(empty, (4, 5)).area == 0
    with pytest.raises(ValueError, match="below 0"):
        decode({"size": [4, 5], "counts": [3, -2, 4]})
    with pytest.raises(TypeError, match="string or a list"):
        decode({"size": [4, 5], "counts": 5})
    with pytest.raises(ValueError):
        decode({"size": [4, 5], "counts": "5\u00e9"})  # not ASCII
    # runs past the frame's 20 pixels (and a huge one) are cut at its end
    b = decode({"size": [4, 5], "counts": [18, 10**15, 7]})
    assert b.to_array((4, 5)).sum() == 2 and b.bottom <= 4 and b.right <= 5
    # a compressed string cut inside a number reads as if the number ended there
    assert decode({"size": [4, 5], "counts": "5R"}).xyxy() == (1, 1, 2, 3)  # runs 5, 2
    with pytest.raises(ValueError, match="below 0"):
        decode({"size": [4, 5], "counts": "5b"})  # runs 5, -14


def test_union_and_to_frame():
    a, b = MaskBlock(0, 0, 2, 2), MaskBlock(1, 1, 2, 2, np.array([[1, 0], [0, 1]], bool))
    u = union([a, b, MaskBlock.empty()])
    want = a.to_array(4) | b.to_array(4)
    np.testing.assert_array_equal(u.to_array(4), want)
    assert u.area == want.sum() and union([]).area == 0
    # a window at (-2, 5): block rows 0..3 land on frame rows 5..8, columns past -2 are cut
    assert MaskBlock(0, 0, 4, 6).to_frame((5, -2), (20, 30)).xyxy() == (0, 5, 4, 9)
    assert MaskBlock(0, 0, 4, 6).to_frame((-10, -10), (20, 30)).area == 0


def test_paint_puts_the_smaller_object_on_top_and_the_later_on_ties():
    big, small = MaskBlock(0, 0, 4, 4), MaskBlock(1, 1, 2, 2)
    for objs, vals in (([big, small], [1, 2]), ([small, big], [2, 1])):  # order does not matter
        out = paint((5, 5), objs, vals, np.uint8)
        assert out[1:3, 1:3].tolist() == [[2, 2], [2, 2]] and out[0, 0] == 1 and out[4, 4] == 0
    tie = MaskBlock(2, 2, 2, 2)  # as many pixels as `small`: the later one shows
    assert paint((5, 5), [small, tie])[2, 2] == 2
    assert paint((5, 5), [tie, small])[2, 2] == 2
    assert paint_order([5, 9, 5, 1]) == [1, 0, 2, 3]


def test_paint_compares_the_pixels_inside_the_frame():
    # `cut` has 40 pixels, 30 of them past the right edge: 10 inside, fewer than `inner`'s 16
    cut = MaskBlock(0, 3, 2, 20)
    inner = MaskBlock(0, 0, 4, 4)
    out = paint((4, 5), [cut, inner])
    assert out[0, 3] == 1 and out[1, 4] == 1 and out[3, 3] == 2
    # values default to the 1-based position; other values and dtypes as given
    assert paint((4, 5), [cut, inner], [7, 9], np.int32)[0, 3] == 7
