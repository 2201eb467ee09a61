"""The RLE helpers the track formats share, against pycocotools (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from box2mask.writers.davis import index_runs, paint, pixel_index, rle_runs, video_name
from box2mask.writers.mots import compress
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


masks = st.tuples(st.integers(1, 23), st.integers(1, 23)).flatmap(
    lambda hw: arrays(np.bool_, hw, elements=st.booleans())
)


@settings(max_examples=200, deadline=None)
@given(masks)
def test_rle_helpers_agree_with_pycocotools(mask):
    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"].decode("ascii")
    runs = rle_runs({"size": [h, w], "counts": counts})
    assert runs.tolist() == _runs(mask)
    assert uncompressed({"size": [h, w], "counts": counts})["counts"] == _runs(mask)
    index = pixel_index(runs)
    np.testing.assert_array_equal(index, np.flatnonzero(mask.ravel(order="F")))
    back = index_runs(index, h * w)
    assert back == _runs(mask)
    assert compress(back, (h, w)) == counts


def test_large_counts_and_negative_deltas_decode():
    # a big frame: runs past 2**15 need several characters, and later runs
    # shorter than the run two places back are stored as negative differences
    h, w = 2048, 2048
    mask = np.zeros((h, w), np.uint8)
    mask[1000:1900, 7] = 1
    mask[5:9, 1500] = 1
    mask[3, 2047] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = rle_runs(rle)  # bytes counts, as pycocotools returns them
    np.testing.assert_array_equal(pixel_index(runs), np.flatnonzero(mask.ravel(order="F")))


def test_paint_keeps_the_smaller_object_on_top_and_later_on_ties():
    big, small, tie = np.arange(0, 10), np.arange(3, 5), np.arange(3, 5)
    out = paint([big, small], [10, 2], [1, 2], 12, np.uint8)
    assert out.tolist() == [1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0]
    out = paint([small, big], [2, 10], [2, 1], 12, np.uint8)  # order given does not matter
    assert out[3:5].tolist() == [2, 2]
    out = paint([small, tie], [2, 2], [2, 3], 12, np.uint8)  # equal areas: the later one
    assert out[3:5].tolist() == [3, 3]


def test_video_names_are_flat():
    assert video_name("car/001") == "car_001" and video_name("plain") == "plain"
