"""The SatSOT adapter against fixtures in SatSOT's real layout (tests/data/make_satsot.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from box2mask.adapters import ADAPTERS
from box2mask.adapters.base import SequenceInfo
from data.make_satsot import make_satsot
from data.make_viso import write_images

from box2mask.errors import AnnotationError, DatasetNotFound
from box2mask.problems import Problems


def test_reads_sequences_and_absent_lines(tmp_path: Path) -> None:
    truth = make_satsot(tmp_path)
    problems = Problems()
    sat = ADAPTERS.get("satsot")(tmp_path, problems)
    assert sat.list_sequences() == [SequenceInfo("car_01", 5), SequenceInfo("plane_02", 3)]
    # ship_03 has no groundtruth.txt: left out, reported once
    assert [str(r) for r in problems.reports] == [
        f"{tmp_path / 'ship_03'}: sequence ship_03 has no groundtruth.txt; skipped"
    ]
    for seq, want in truth.items():
        frames = list(sat.read_sequence(seq))
        assert [f.frame_index for f in frames] == sorted(want)
        for f in frames:
            assert f.image_hw == (64, 96)
            assert f.file_name == f"{seq}/img/{f.frame_index:04d}.jpg"
            if want[f.frame_index] is None:
                assert len(f) == 0
            else:
                cat, box = want[f.frame_index]
                assert f.track_id.tolist() == [1]
                assert f.category.tolist() == [cat]
                assert tuple(f.xyxy[0]) == box
    assert len(problems) == 1  # none/NaN/zero lines are absent targets, not errors


G = "car_01/groundtruth.txt"


@pytest.mark.parametrize(
    ("lines", "messages", "present"),
    [
        (
            ["1,1,4,4", "1,2,3", "3,3,4,4"],
            [(2, "expected 4 values (x,y,w,h), got 3: '1,2,3'")],
            {1: 1, 3: 3},
        ),
        (
            ["1,1,4,4", "a,2,3,4", "3,3,4,4"],
            [(2, "non-numeric value 'a' in column 1")],
            {1: 1, 3: 3},
        ),
        (
            [",1,1,4,4", "2,2,4,4", "3,3,4,4"],
            [(1, "line starts with an empty field; read the remaining 4 values as x,y,w,h")],
            {1: 1, 2: 2, 3: 3},
        ),
        (
            ["1,1,4,4", "2,2,4,4"],
            [
                (
                    None,
                    "frame-count mismatch: 2 ground-truth lines but 3 images in img/ (frames without a line have no box)",
                )
            ],
            {1: 1, 2: 2},
        ),
        (
            ["1,1,4,4", "2,2,4,4", "3,3,4,4", "4,4,4,4"],
            [
                (
                    None,
                    "frame-count mismatch: 4 ground-truth lines but 3 images in img/ (lines without an image are ignored)",
                )
            ],
            {1: 1, 2: 2, 3: 3},
        ),
    ],
)
def test_malformed(tmp_path: Path, lines: list[str], messages: list, present: dict) -> None:  # type: ignore[type-arg]
    write_images(tmp_path / "car_01/img", range(1, 4), digits=4)
    gt = tmp_path / G
    gt.write_text("\n".join(lines) + "\n")
    problems = Problems()
    frames = list(ADAPTERS.get("satsot")(tmp_path, problems).read_sequence("car_01"))
    assert [(r.path, r.line, r.reason) for r in problems.reports] == [
        (gt, n, m) for n, m in messages
    ]
    assert len(frames) == 3  # every image is a frame
    assert {f.frame_index: int(f.xyxy[0, 0]) for f in frames if len(f)} == present


def test_strict(tmp_path: Path) -> None:
    write_images(tmp_path / "car_01/img", range(1, 4), digits=4)
    (tmp_path / G).write_text("1,1,4,4\n2,2,4\n3,3,x,4\n")
    with pytest.raises(AnnotationError) as err:
        list(ADAPTERS.get("satsot")(tmp_path, Problems(strict=True)).read_sequence("car_01"))
    assert (err.value.path, err.value.line) == (tmp_path / G, 2)


def test_not_a_satsot_root(tmp_path: Path) -> None:
    (tmp_path / "something").mkdir()
    with pytest.raises(DatasetNotFound, match=r"no sequence folders \(expected <seq>/img/0001.jpg"):
        ADAPTERS.get("satsot")(tmp_path)
