"""The YOLO adapter on both published layouts: boxes, masks, names, bad label lines."""

from __future__ import annotations

import box2mask.adapters  # noqa: F401
import numpy as np
import pytest
from box2mask.adapters.base import ADAPTERS

from box2mask.errors import DatasetNotFound
from box2mask.problems import Problems
from tests.data.make_yolo import make_yolo


@pytest.mark.parametrize(("layout", "val"), [("roboflow", "valid"), ("ultralytics", "val")])
def test_both_layouts_give_the_polygons_as_masks(tmp_path, layout, val):
    truth = make_yolo(tmp_path, layout, images=3)
    a = ADAPTERS.get("yolo")(tmp_path)
    assert [(s.name, s.num_frames) for s in a.list_sequences()] == [("train", 3), (val, 2)]
    assert a.categories() == [
        ("small_vehicle", "small_vehicle"),
        ("ship", "ship"),
        ("airplane", "airplane"),
    ]
    frames = list(a.frames(["train"]))
    assert [f.frame_index for f in frames] == [1, 2, 3]
    for f, masks in zip(frames, truth["train"], strict=True):
        assert list(f.category) == ["small_vehicle", "ship", "airplane", "small_vehicle"]
        assert f.track_id.tolist() == [1, 2, 3, 4]  # the label line
        for i, m in enumerate(masks):
            got = f.gt_mask(i)
            iou = (got & m).sum() / (got | m).sum()
            assert iou > 0.9  # pycocotools' and OpenCV's rasterisations of the same polygon
            ys, xs = np.nonzero(m)
            assert f.xyxy[i][0] == pytest.approx(xs.min(), abs=1.0)
            assert f.xyxy[i][3] == pytest.approx(ys.max() + 1, abs=1.0)
        assert f.gt_mask(3) is None  # the box-only line
        assert f.file_name.endswith(".png") and "images" in f.file_name


def test_names_option_wins_over_data_yaml_and_split_selects(tmp_path):
    make_yolo(tmp_path, "roboflow", images=2)
    a = ADAPTERS.get("yolo")(tmp_path, split="train", names="car,vessel,plane")
    assert [s.name for s in a.list_sequences()] == ["train"]
    assert list(next(a.frames()).category)[:3] == ["car", "vessel", "airplane"]
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    b = ADAPTERS.get("yolo")(tmp_path, split="train", names="names.txt")
    assert list(next(b.frames()).category)[:3] == ["a", "b", "c"]
    with pytest.raises(DatasetNotFound, match="no split 'test'"):
        ADAPTERS.get("yolo")(tmp_path, split="test")


def test_bad_label_lines_are_reported_with_file_and_line(tmp_path):
    make_yolo(tmp_path, "ultralytics", images=1)
    label = next((tmp_path / "labels" / "train").glob("*.txt"))
    lines = label.read_text().splitlines()
    lines += ["x 0.1 0.1 0.2 0.2", "7 0.5 0.5 0.1 0.1", "0 0.1 0.1 0.2", "0 nan 0.1 0.2 0.2",
              "1 0.2 0.2 0.2 0.2 0.2 0.2"]  # fmt: skip
    label.write_text("\n".join(lines) + "\n")
    problems = Problems()
    a = ADAPTERS.get("yolo")(tmp_path, problems=problems)
    f = next(a.frames(["train"]))
    assert len(f) == 4  # the fixture's four objects, none of the bad lines
    text = "\n".join(str(e) for e in problems.reports)
    for n, what in ((5, "not a YOLO label line"), (6, "class 7"), (7, "3 coordinates"), (8, "finite"),
                    (9, "empty box")):  # fmt: skip
        assert f"{label.name}:{n}" in text and what in text


def test_a_folder_without_splits_is_not_a_yolo_dataset(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetNotFound, match="no images/<split>/"):
        ADAPTERS.get("yolo")(tmp_path)
