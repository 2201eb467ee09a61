"""Per-frame outputs take the frame's own image name (issue 16 item 9, naming).

SatSOT names its frames ``0001.jpg``: the PNG and sidecar of that frame are
``0001.png`` / ``0001.json``, not ``000001.png``. A stem is used when its last
number is the frame's number (so stems are unique within a sequence); any
other frame falls back to the zero-padded frame number. The job's own part
files keep the zero-padded names, so resume and ``box2mask merge`` are
unaffected.
"""

from __future__ import annotations

import json
from pathlib import Path

import box2mask
from box2mask.layout import output_stem
from box2mask.merge import merge
from box2mask.types import Frame
from tests.data.make_viso import write_images


def make_satsot_like(root: Path) -> None:
    """SatSOT layout: ``car_01`` and ``plane_02``, frames ``0001.jpg`` .., one box per frame."""
    for name, n in (("car_01", 3), ("plane_02", 2)):
        write_images(root / name / "img", range(1, n + 1), digits=4, hw=(64, 96))
        lines = [f"{10 + k},{12 + k},8,6" for k in range(n)]
        (root / name / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def test_satsot_outputs_are_named_after_the_frames_images(tmp_path):
    root = tmp_path / "satsot"
    make_satsot_like(root)
    out = tmp_path / "out"
    box2mask.convert(dataset="satsot", root=root, out=out, model="box", formats=("coco", "png"))
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    sides = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*.json")
        if ".box2mask" not in p.parts and p.name != "annotations.json"
    )
    seqs = sorted({Path(p).parent.as_posix() for p in pngs})
    assert len(seqs) == 2, pngs
    car = next(s for s in seqs if "car" in s)
    plane = next(s for s in seqs if "plane" in s)
    want = [f"{car}/0001", f"{car}/0002", f"{car}/0003", f"{plane}/0001", f"{plane}/0002"]
    assert pngs == sorted(w + ".png" for w in want)
    assert sides == sorted(w + ".json" for w in want)
    side = json.loads((out / car / "0002.json").read_text())
    assert side["frame_index"] == 2 and side["file_name"].endswith("img/0002.jpg")
    # the job's own parts keep the zero-padded frame numbers (read by resume and merge)
    parts = sorted(p.name for p in (out / ".box2mask" / "parts").rglob("*.json"))
    assert parts == sorted(
        ["000001.json", "000002.json", "000003.json", "000001.json", "000002.json"]
    )

    # resume finds every frame done, and merge of the job equals its annotations.json
    again = box2mask.convert(
        dataset="satsot", root=root, out=out, model="box", formats=("coco", "png")
    )
    assert again.frames_done == 0 and again.frames_resumed == 5
    merge([out], tmp_path / "m.json")
    assert (tmp_path / "m.json").read_bytes() == (out / "annotations.json").read_bytes()


def _frame(index: int, path: str, file_name: str = "") -> Frame:
    return Frame("s/1", index, Path(path), (4, 4), [], [], [], file_name=file_name)


def test_output_stem_uses_the_image_stem_only_when_it_carries_the_frame_number():
    assert output_stem(_frame(1, "/d/img/0001.jpg")) == "0001"
    assert output_stem(_frame(12, "/d/img/img_0012.png")) == "img_0012"
    assert output_stem(_frame(7, "/d/x.jpg", file_name="seq/frames/f7.tif")) == "f7"
    assert output_stem(_frame(42, "/d/img/000042.jpg")) == "000042"
    # fallbacks: no number, another number (two frames sharing one image), a hidden name
    assert output_stem(_frame(3, "/d/img/left.jpg")) == "000003"
    assert output_stem(_frame(5, "/d/img/0001.jpg")) == "000005"
    assert output_stem(_frame(2, "/d/img/.0002.jpg")) == "000002"
    # numbered by the frame's last number: a date in front does not count
    assert output_stem(_frame(9, "/d/2021_06_01_0009.jpg")) == "2021_06_01_0009"


def test_output_stems_are_unique_within_a_sequence():
    frames = [
        _frame(1, "/d/1.jpg"),
        _frame(2, "/d/0002.jpg"),
        _frame(3, "/d/same.jpg"),
        _frame(4, "/d/same.jpg"),
        _frame(5, "/d/0001.jpg"),  # not its number: falls back
        _frame(6, "/d/000005.jpg"),  # would be frame 5's fallback name: not its number either
    ]
    stems = [output_stem(f) for f in frames]
    assert len(set(stems)) == len(stems), stems
