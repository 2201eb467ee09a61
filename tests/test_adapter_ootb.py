"""The OOTB adapter against fixtures in OOTB's real layout (tests/data/make_satsot.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from box2mask.adapters import ADAPTERS
from data.make_satsot import OOTB_ATTRIBUTES, make_ootb
from data.make_viso import write_images

from box2mask.errors import AnnotationError
from box2mask.problems import Problems
from tests.adapter_helpers import open_adapter


def test_reads_oriented_boxes_both_directions(tmp_path: Path) -> None:
    truth = make_ootb(tmp_path)
    ootb, problems = open_adapter("ootb", tmp_path, {"car_1": 4, "plane_2": 2, "ship_3": 2})
    for seq, want in truth.items():
        frames = list(ootb.read_sequence(seq))
        assert [f.frame_index for f in frames] == sorted(want)
        for f in frames:
            if want[f.frame_index] is None:
                assert len(f) == 0 and f.obb is None
                continue
            cat, box, corners = want[f.frame_index]
            assert f.category.tolist() == [cat] and f.track_id.tolist() == [1]
            assert tuple(f.xyxy[0]) == box
            assert f.obb is not None and f.obb.shape == (1, 4, 2)
            np.testing.assert_array_equal(f.obb[0], corners)
            assert f.attributes.get("attributes", [[]])[0] == OOTB_ATTRIBUTES.get(seq, [])
    assert len(problems) == 0


def test_prompt_box_is_clipped_to_image(tmp_path: Path) -> None:
    make_ootb(tmp_path)
    f2 = list(ADAPTERS.get("ootb")(tmp_path).read_sequence("plane_2"))[1]
    assert f2.xyxy[0].tolist() == [78.0, 20.0, 96.0, 42.0]  # x2 102 clipped to W = 96
    assert f2.obb[0, :, 0].max() == 102.0  # the oriented box itself is kept


def test_class_from_onehot_beats_name(tmp_path: Path) -> None:
    make_ootb(tmp_path)
    (tmp_path / "anno/ship_3.txt").write_text("0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0\n")
    frames = list(ADAPTERS.get("ootb")(tmp_path).read_sequence("ship_3"))
    assert frames[0].category.tolist() == ["train"]
    assert frames[0].attributes["attributes"] == [[]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "1,0,0,0,0,1",
            "expected 16 values 0 or 1 (car,ship,train,plane,DEF,IPR,PO,FO,IV,MB,BC,OON,SA,LT,IM,AM), got '1,0,0,0,0,1'",
        ),
        (
            "1,1,0,0,0,1,0,0,0,1,0,0,0,0,0,0",
            "class columns car,ship,train,plane are not one-hot (1,1,0,0); category taken from the sequence name",
        ),
    ],
)
def test_malformed_anno(tmp_path: Path, line: str, message: str) -> None:
    make_ootb(tmp_path)
    anno = tmp_path / "anno/plane_2.txt"
    anno.write_text(line + "\n")
    problems = Problems()
    frames = list(ADAPTERS.get("ootb")(tmp_path, problems).read_sequence("plane_2"))
    assert [(r.path, r.line, r.reason) for r in problems.reports] == [(anno, 1, message)]
    assert frames[0].category.tolist() == ["airplane"]  # fallback: the name prefix


G = "car_1/groundtruth.txt"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("1,2,3,4,5,6,7", "expected 8 values (x1,y1,x2,y2,x3,y3,x4,y4), got 7: '1,2,3,4,5,6,7'"),
        ("1,2,3,4,5,6,7,z", "non-numeric value 'z' in column 8"),
        ("200,100,210,100,210,110,200,110", "oriented box lies outside the 96x64 image; skipped"),
    ],
)
def test_malformed_gt(tmp_path: Path, bad: str, message: str) -> None:
    write_images(tmp_path / "car_1/img", range(1, 4), digits=4)
    gt = tmp_path / G
    gt.write_text(f"10,10,20,12,19,17,9,15\n{bad}\n11 10 21 12 20 17 10 15\n")
    problems = Problems()
    frames = list(ADAPTERS.get("ootb")(tmp_path, problems).read_sequence("car_1"))
    assert [(r.path, r.line, r.reason) for r in problems.reports] == [(gt, 2, message)]
    assert [len(f) for f in frames] == [1, 0, 1]
    assert frames[2].xyxy[0].tolist() == [10.0, 10.0, 21.0, 17.0]


def test_strict(tmp_path: Path) -> None:
    write_images(tmp_path / "car_1/img", range(1, 3), digits=4)
    (tmp_path / G).write_text("10,10,20,12,19,17,9,15\n1,2,3\n")
    with pytest.raises(AnnotationError, match=r"groundtruth.txt:2: expected 8 values"):
        list(ADAPTERS.get("ootb")(tmp_path, Problems(strict=True)).read_sequence("car_1"))
