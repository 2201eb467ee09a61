"""The ROS-SAM training-layout adapter (tests/data/make_rossam.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from box2mask.adapters import ADAPTERS
from box2mask.adapters.base import SequenceInfo
from data.make_rossam import make_rossam

from box2mask.errors import AnnotationError, DatasetNotFound
from box2mask.problems import Problems


def test_sequences_per_split_and_class(tmp_path: Path) -> None:
    make_rossam(tmp_path)
    ros = ADAPTERS.get("rossam")
    assert ros(tmp_path).list_sequences() == [
        SequenceInfo("train/airplane", 2),
        SequenceInfo("train/ship", 1),
        SequenceInfo("val/ship", 1),
    ]
    assert ros(tmp_path, split="val").list_sequences() == [SequenceInfo("val/ship", 1)]
    # --root may also be the data folder itself; file names stay relative to --root
    inner = ros(tmp_path / "data", split="val")
    assert next(inner.read_sequence("val/ship")).file_name == "val/img/ship1.png"


def test_frames_boxes_and_gt_masks(tmp_path: Path) -> None:
    truth = make_rossam(tmp_path)
    problems = Problems()
    ros = ADAPTERS.get("rossam")(tmp_path, problems)
    seen = set()
    for info in ros.list_sequences():
        split, cls = info.name.split("/")
        for f in ros.read_sequence(info.name):
            name = f"{cls}{f.frame_index}"
            hw, boxes, masks = truth[(split, name)]
            seen.add((split, name))
            assert f.file_name == f"data/{split}/img/{name}.png"
            assert f.image_hw == hw
            np.testing.assert_array_equal(f.xyxy, boxes)
            assert f.track_id.tolist() == list(range(1, len(boxes) + 1))
            assert set(f.category.tolist()) <= {"airplane", "ship"}
            assert f.gt_mask is not None
            for i in range(len(f)):
                m = f.gt_mask(i)
                assert m.dtype == bool and m.shape == hw
                np.testing.assert_array_equal(m, masks[i])
    assert seen == set(truth)
    assert [f.frame_index for f in ros.read_sequence("train/airplane")] == [3, 12]
    assert len(problems) == 0


def _bad(root: Path, kind: str) -> Path:
    base = root / "data/train"
    if kind == "count":
        np.save(base / "onehotmask/airplane3.npy", np.zeros((3, 40, 60), np.uint8))
        return base / "onehotmask/airplane3.npy"
    if kind == "size":
        np.save(base / "onehotmask/airplane3.npy", np.zeros((2, 41, 60), np.uint8))
        return base / "onehotmask/airplane3.npy"
    if kind == "boxes":
        np.save(base / "boxes/airplane3.npy", np.zeros((2, 5)))
        return base / "boxes/airplane3.npy"
    (base / "boxes/airplane3.npy").unlink()
    return base / "boxes/airplane3.npy"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "count",
            "mask count does not match the boxes: masks [3, 40, 60], boxes [2, 4]; frame skipped",
        ),
        ("size", "mask size [41, 60] (H, W) differs from the image's [40, 60]; frame skipped"),
        ("boxes", "boxes must be a numeric [N, 4] array, got float64[2, 5]; frame skipped"),
        ("missing", "missing boxes file for this image; frame skipped"),
    ],
)
def test_bad_frame_is_reported_and_skipped(tmp_path: Path, kind: str, message: str) -> None:
    make_rossam(tmp_path)
    path = _bad(tmp_path, kind)
    problems = Problems()
    frames = list(ADAPTERS.get("rossam")(tmp_path, problems).read_sequence("train/airplane"))
    assert [(r.path, r.reason) for r in problems.reports] == [(path, message)]
    assert [f.frame_index for f in frames] == [12]  # the other frame is still read


def test_strict_and_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="has no train/img or val/img"):
        ADAPTERS.get("rossam")(tmp_path)
    make_rossam(tmp_path)
    _bad(tmp_path, "count")
    with pytest.raises(AnnotationError, match="mask count does not match"):
        list(
            ADAPTERS.get("rossam")(tmp_path, Problems(strict=True)).read_sequence("train/airplane")
        )
