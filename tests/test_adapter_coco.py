"""The COCO adapter against the generator's truth, plus its bad-input reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from box2mask.adapters import ADAPTERS

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.problems import Problems
from tests.data.make_coco import HW, make_coco

COCO = ADAPTERS.get("coco")


@pytest.fixture()
def data(tmp_path: Path):
    return tmp_path, *make_coco(tmp_path)


def test_sequences_frames_boxes_and_categories(data):
    root, js, _ = data
    ad = COCO(root)
    assert [(s.name, s.num_frames) for s in ad.list_sequences()] == [("clipA", 2), ("other", 1)]
    assert ad.categories() == [("airplane", "vehicle"), ("small_vehicle", "small_vehicle")]
    frames = [f for s in ("clipA", "other") for f in ad.read_sequence(s)]
    assert [(f.sequence, f.frame_index) for f in frames] == [
        ("clipA", 1),
        ("clipA", 2),
        ("other", 30),
    ]
    by_image = {}
    for a in js["annotations"]:
        if not a["iscrowd"]:
            by_image.setdefault(a["image_id"], []).append(a)
    for f, im in zip(frames, js["images"], strict=True):
        anns = by_image[im["id"]]
        assert f.file_name == "images/" + im["file_name"] and f.image_hw == HW
        assert f.track_id.tolist() == [a.get("track_id", a["id"]) for a in anns]
        assert f.category.tolist() == [
            "airplane",
            "small_vehicle",
            "small_vehicle",
            "small_vehicle",
        ]
        x, y, w, h = np.array([a["bbox"] for a in anns], dtype=float).T
        np.testing.assert_array_equal(f.xyxy, np.stack([x, y, x + w, y + h], 1))


def test_gt_masks_polygon_and_both_rle_kinds(data):
    root, js, masks = data
    ad = COCO(root)
    for f in ad.frames():
        anns = [
            a
            for a in js["annotations"]
            if a["image_id"] == int(f.frame_index if f.sequence == "other" else 10 + f.frame_index)
            and not a["iscrowd"]
        ]
        for i, a in enumerate(anns):
            got = f.gt_mask(i)
            if masks[a["id"]] is None:
                assert got is None
            else:
                assert got.dtype == bool
                np.testing.assert_array_equal(got, masks[a["id"]])


def test_json_choice(data):
    root, _, _ = data
    (root / "annotations.json").rename(root / "train.json")
    assert COCO(root).json_path.name == "train.json"  # the only JSON
    (root / "val.json").write_text("{}")
    with pytest.raises(UsageError, match="2 JSON files"):
        COCO(root)
    assert COCO(root, annotations="train.json", images="images").list_sequences()[0].name == "clipA"
    with pytest.raises(DatasetNotFound, match="nope.json does not exist"):
        COCO(root, annotations="nope.json")


def test_unreadable_json_is_an_annotation_error(data):
    root, _, _ = data
    (root / "annotations.json").write_text("[1, 2")
    with pytest.raises(AnnotationError, match="cannot read COCO JSON"):
        COCO(root)


#: The annotation every bad-input case changes: id 2, frame 1's second object, track 2.
CHANGED = 2


def _change(root: Path, **fields: object) -> None:
    """Set ``fields`` on annotation :data:`CHANGED` of the fixture's JSON."""
    p = root / "annotations.json"
    d = json.loads(p.read_text())
    next(a for a in d["annotations"] if a["id"] == CHANGED).update(fields)
    p.write_text(json.dumps(d))


#: ``case: (fields set on annotation 2, the one report)``; the annotation is then dropped.
BAD = {
    "bad-bbox": ({"bbox": [1, 2]}, "annotation id 2: bbox must be 4 numbers [x, y, w, h]; skipped"),
    "empty-bbox": (
        {"bbox": [1, 2, 0, 3]},
        "annotation id 2: empty or invalid bbox [1, 2, 1, 5]; skipped",
    ),
    "unknown-category": ({"category_id": 9}, "annotation id 2: unknown category_id 9; skipped"),
    "no-such-image": (
        {"image_id": 5},
        "annotation id 2 (annotations[1]): no such image_id; skipped",
    ),
    "outside": (
        {"bbox": [50, 2, 3, 3]},
        "frame 1: box [50, 2, 53, 5] of track 2 lies entirely outside the 40x24 image; dropped",
    ),
    "duplicate-track": ({"track_id": 1}, "frame 1: track id 1 appears twice; kept the first"),
}


@pytest.mark.parametrize(("fields", "message"), list(BAD.values()), ids=list(BAD))
def test_bad_input_is_reported_and_the_rest_is_read(data, fields, message):
    root, js, _ = data
    _change(root, **fields)
    problems = Problems()
    frames = list(COCO(root, problems=problems).frames())
    assert [str(r) for r in problems.reports] == [f"{root / 'annotations.json'}: {message}"]
    assert [len(f) for f in frames] == [3, 4, 4]
    assert CHANGED not in frames[0].track_id.tolist()[1:]


def test_missing_and_unreadable_images(data):
    root, _, _ = data
    (root / "images/clipA/000002.png").unlink()
    (root / "images/single.png").write_bytes(b"\x89PNG broken")
    problems = Problems()
    frames = list(COCO(root, problems=problems).frames())
    assert [f.frame_index for f in frames] == [1]
    assert [str(r) for r in problems.reports] == [
        f"{root / 'images/clipA/000002.png'}: frame 2: image clipA/000002.png (id 12) not found; skipped",
        f"{root / 'images/single.png'}: frame 30: unreadable image (cannot read image size: not an image format PIL reads); skipped",
    ]


def test_strict_raises(data):
    root, _, _ = data
    _change(root, bbox=[1, 2])
    with pytest.raises(AnnotationError, match="bbox must be 4 numbers"):
        list(COCO(root, problems=Problems(strict=True)).frames())
