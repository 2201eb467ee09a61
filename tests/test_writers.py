"""COCO JSON (read by pycocotools), crop-local RLE, PNG instance maps."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from box2mask.geometry import paste_mask
from box2mask.masks import encode_window_mask
from box2mask.types import CropWindow, Frame, FrameMasks, ObjectMask
from box2mask.writers.coco import category_table, frame_part, read_parts, write_coco
from box2mask.writers.png import instance_map, write_png_frame


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(1, 60), w=st.integers(1, 60), s=st.integers(1, 40),
    x0=st.integers(-45, 60), y0=st.integers(-45, 60), density=st.floats(0, 1), seed=st.integers(0, 999),
)  # fmt: skip
def test_crop_rle_equals_pycocotools_full_frame_encoding(h, w, s, x0, y0, density, seed):
    mask = np.random.default_rng(seed).random((s, s)) < density
    win = CropWindow(x0, y0, s)
    full = paste_mask(mask, win, (h, w))
    ref = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
    enc = encode_window_mask(mask, win, (h, w))
    assert enc.rle["counts"] == ref["counts"].decode("ascii")
    assert enc.rle["size"] == [h, w]
    assert enc.area == int(full.sum()) == int(mask_utils.area(ref))
    if full.any():
        assert enc.bbox == mask_utils.toBbox(ref).tolist()
    else:
        assert enc.bbox == [0.0, 0.0, 0.0, 0.0]


def test_full_height_column_runs_join():
    # a block spanning the whole frame height: runs continue across columns
    mask = np.ones((4, 4), bool)
    enc = encode_window_mask(mask, CropWindow(1, 0, 4), (4, 6))
    full = np.zeros((4, 6), bool)
    full[:, 1:5] = True
    assert mask_utils.decode(enc.rle).astype(bool).tolist() == full.tolist()


def _frame(seq, idx, boxes, cats, hw=(40, 50)):
    return Frame(
        seq,
        idx,
        f"/data/{seq}/{idx:06d}.jpg",
        hw,
        np.array(boxes, float),
        np.arange(1, len(boxes) + 1),
        cats,
        file_name=f"{seq}/img/{idx:06d}.jpg",
    )


def _om(box, hw, cat, track, source="model", score=0.9):
    win = CropWindow(int(box[0]) - 4, int(box[1]) - 4, 24)
    full = np.zeros(hw, bool)
    full[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = True
    from box2mask.geometry import crop_mask

    return ObjectMask(track, cat, win, crop_mask(full, win), np.array(box, float), score, source)


def _write_dataset(tmp_path):
    hw = (40, 50)
    frames = []
    parts = []
    for seq, idx, boxes, cats in [
        ("car/001", 1, [[2, 3, 12, 9], [30, 30, 45, 40]], ["car", "airplane"]),
        ("car/001", 2, [], []),
        ("ship/002", 7, [[0, 0, 5, 5]], ["ship"]),
    ]:
        fr = _frame(seq, idx, boxes, cats, hw)
        fm = FrameMasks(
            fr,
            tuple(_om(b, hw, c, t + 1) for t, (b, c) in enumerate(zip(boxes, cats, strict=True))),
        )
        frames.append(fm)
        p = tmp_path / "parts" / f"{len(parts)}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(frame_part(fm)))
        parts.append(p)
    cats = category_table(
        [("airplane", "vehicle"), ("ship", "vessel"), ("train", "vehicle"), ("car", "vehicle")]
    )
    dest = tmp_path / "annotations.json"
    n_img, n_ann = write_coco(read_parts(parts), cats, dest)
    return frames, dest, n_img, n_ann


def test_coco_json_reads_in_pycocotools_with_masks_in_place(tmp_path):
    frames, dest, n_img, n_ann = _write_dataset(tmp_path)
    assert (n_img, n_ann) == (3, 3)
    coco = COCO(str(dest))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    img = coco.loadImgs(1)[0]
    assert (
        img["file_name"] == "car/001/img/000001.jpg"
        and img["sequence"] == "car/001"
        and img["frame_index"] == 1
    )
    assert (img["width"], img["height"]) == (50, 40)
    assert coco.getAnnIds(imgIds=[2]) == []  # a frame without boxes is still an image
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1], catIds=coco.getCatIds(catNms=["airplane"])))[0]
    m = coco.annToMask(ann).astype(bool)
    expected = np.zeros((40, 50), bool)
    expected[30:40, 30:45] = True
    np.testing.assert_array_equal(m, expected)
    assert ann["bbox"] == [30.0, 30.0, 15.0, 10.0] and ann["area"] == 150
    assert ann["track_id"] == 2 and ann["mask_source"] == "model" and ann["iscrowd"] == 0
    assert ann["prompt_box"] == [30.0, 30.0, 15.0, 10.0]
    assert isinstance(ann["segmentation"]["counts"], str)
    ids = [a["id"] for a in coco.dataset["annotations"]]
    assert ids == sorted(set(ids))


def test_cocoeval_scores_a_perfect_prediction_as_1(tmp_path):
    _, dest, _, _ = _write_dataset(tmp_path)
    gt = COCO(str(dest))
    dets = []
    for a in gt.dataset["annotations"]:
        dets.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "segmentation": a["segmentation"],
                "score": 1.0,
            }
        )
    dt = gt.loadRes(dets)
    ev = COCOeval(gt, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_png_instance_map_keeps_smaller_object_on_top(tmp_path):
    hw = (30, 30)
    fr = _frame("s", 3, [[0, 0, 20, 20], [5, 5, 10, 10]], ["ship", "car"], hw)
    big = _om([0, 0, 20, 20], hw, "ship", 1)
    small = _om([5, 5, 10, 10], hw, "car", 2, source="box", score=None)
    fm = FrameMasks(fr, (big, small))
    im = instance_map(fm)
    assert im.dtype == np.uint16
    assert im[7, 7] == 2 and im[1, 1] == 1 and im[25, 25] == 0
    paths = write_png_frame(fm, tmp_path)
    png = cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    np.testing.assert_array_equal(png, im)
    side = json.loads(paths[1].read_text())
    assert side["instances"][1] == {
        "index": 2,
        "track_id": 2,
        "category": "car",
        "score": 1.0,  # a box fill has no score of its own: 1.0, never null
        "mask_source": "box",
    }
    assert paths[0] == tmp_path / "s" / "000003.png"


def test_rle_cost_does_not_depend_on_frame_size():
    """Encoding a small object on a huge frame touches only its block (no H×W array)."""
    mask = np.zeros((512, 512), bool)
    mask[250:262, 250:270] = True
    enc = encode_window_mask(mask, CropWindow(20000, 30000, 512), (40000, 60000))
    assert enc.area == 240 and enc.bbox == [20250.0, 30250.0, 20.0, 12.0]
    assert math.prod(enc.rle["size"]) == 40000 * 60000
