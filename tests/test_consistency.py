"""box2mask.consistency: aligned IoU along tracks (masks read with box2mask.masks.decode)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from box2mask.consistency import aligned_iou, temporal_consistency, track_pairs
from box2mask.masks import MaskBlock
from box2mask.metrics import mask_iou


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def test_aligned_iou_undoes_box_motion_and_scale() -> None:
    a = np.zeros((80, 80), bool)
    a[10:20, 10:30] = True
    a[10:14, 10:14] = False  # a notch, so the shape matters
    # the same object moved by (+25, +31) and doubled in size
    b = np.zeros((80, 80), bool)
    b[41:61, 35:75] = True
    b[41:49, 35:43] = False
    assert aligned_iou(a, [10, 10, 30, 20], b, [35, 41, 75, 61]) == 1.0
    # without alignment the two masks do not even overlap
    assert mask_iou(a, b) == 0.0
    # a mask that leaked to twice its width is caught
    c = b.copy()
    c[41:61, 0:35] = True
    assert aligned_iou(a, [10, 10, 30, 20], c, [35, 41, 75, 61]) == pytest.approx(b.sum() / c.sum())
    # RLEs and arrays give the same answer; empty cases
    assert aligned_iou(_rle(a), [10, 10, 30, 20], _rle(c), [35, 41, 75, 61]) == aligned_iou(
        a, [10, 10, 30, 20], c, [35, 41, 75, 61]
    )
    # blocks in frame pixels too, given the current frame's size
    ba, bc = MaskBlock.from_mask(a), MaskBlock.from_mask(c)
    assert aligned_iou(ba, [10, 10, 30, 20], bc, [35, 41, 75, 61], (80, 80)) == aligned_iou(
        a, [10, 10, 30, 20], c, [35, 41, 75, 61]
    )
    with pytest.raises(ValueError, match="frame_hw"):
        aligned_iou(ba, [10, 10, 30, 20], bc, [35, 41, 75, 61])
    z = np.zeros_like(a)
    assert aligned_iou(z, [0, 0, 1, 1], z, [0, 0, 1, 1]) == 1.0
    assert aligned_iou(a, [10, 10, 30, 20], z, [35, 41, 75, 61]) == 0.0


def test_track_pairs_over_a_coco_dict() -> None:
    images, anns = [], []
    for f in range(4):
        images.append({"id": f + 1, "height": 60, "width": 60, "sequence": "s", "frame_index": f})
        m = np.zeros((60, 60), bool)
        m[10:20, 5 + 5 * f : 15 + 5 * f] = True
        if f == 2:
            m[30:50, 30:50] = True  # frame 2 grows a blob the box does not have
        box = [5 + 5 * f, 10, 10, 10]
        anns.append({"id": f + 1, "image_id": f + 1, "track_id": 7, "segmentation": _rle(m),
                     "bbox": box, "prompt_box": box})  # fmt: skip
    pairs = list(track_pairs(reversed(anns), images))
    assert [(p.prev_frame, p.frame) for p in pairs] == [(0, 1), (1, 2), (2, 3)]
    assert [round(p.iou, 3) for p in pairs] == [1.0, 0.2, 0.2]
    tc = temporal_consistency({"images": images, "annotations": anns})
    assert tc["pairs"] == 3 and tc["mean"] == pytest.approx(1.4 / 3)
