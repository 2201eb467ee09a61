"""One overlap rule for every format that gives a pixel one owner (png, davis, mots, ``qa apply``).

A COCO dataset whose boxes overlap, some of them cut by the frame's edges
(their crop windows reach past the frame, so the masks' window areas are
larger than what shows in the frame), is converted with ``--model box`` to
png, davis and mots; then ``qa apply`` removes one object, which repaints the
png map from the job's COCO masks and re-derives davis and mots. Each map,
read back through its own index table (png sidecar, DAVIS ``objects.json``,
MOTS ``tracks.json``) as track ids, equals the reference painted here with
numpy by the documented rule: the fewest pixels inside the frame on top, ties
to the later object.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

runner = CliRunner()
H, W = 48, 64
SEQ = "clip"
#: track id -> COCO bbox [x, y, w, h]; the comments give the pixels inside the frame
BOXES = {
    1: [-30, 5, 50, 20],  # 20x20 = 400 inside (1000 in its window): on top of 2
    2: [5, 10, 30, 20],  # 600
    3: [40, 28, 10, 10],  # 100, overlaps 4 with as many pixels: 4, the later, on top
    4: [45, 33, 10, 10],  # 100
    5: [50, 40, 20, 20],  # 14x8 = 112 inside (400 in its window): on top of 7, under 4
    6: [25, 38, 5, 5],  # alone; removed by qa apply
    7: [52, 36, 11, 11],  # 121
}


def _dataset(root: Path) -> None:
    images, anns = [], []
    for f in (1, 2):
        name = f"{SEQ}/{f:06d}.png"
        (root / SEQ).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((H, W, 3), 90 + f, np.uint8)).save(root / name)
        images.append({"id": f, "file_name": name, "width": W, "height": H,
                       "sequence": SEQ, "frame_index": f})  # fmt: skip
        for tid, box in BOXES.items():
            anns.append({"id": len(anns) + 1, "image_id": f, "category_id": 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0, "track_id": tid})  # fmt: skip
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}
    (root / "annotations.json").write_text(json.dumps(coco))


def _reference(tracks: list[int]) -> np.ndarray:
    """Track ids painted by the rule, from full-frame masks (pixel centres in the box)."""
    masks = []
    for tid in tracks:
        x, y, w, h = BOXES[tid]
        cols, rows = np.arange(W) + 0.5, np.arange(H) + 0.5
        masks.append(((rows >= y) & (rows < y + h))[:, None] & ((cols >= x) & (cols < x + w)))
    out = np.zeros((H, W), np.int64)
    for i in sorted(range(len(tracks)), key=lambda i: -int(masks[i].sum())):
        out[masks[i]] = tracks[i]
    return out


def _png_tracks(job: Path, frame: int) -> np.ndarray:
    index = cv2.imread(str(job / SEQ / f"{frame:06d}.png"), cv2.IMREAD_UNCHANGED)
    side = json.loads((job / SEQ / f"{frame:06d}.json").read_text())
    lut = np.zeros(len(side["instances"]) + 1, np.int64)
    for inst in side["instances"]:
        lut[inst["index"]] = inst["track_id"]
    return lut[index]


def _davis_tracks(job: Path, frame: int) -> np.ndarray:
    index = np.asarray(Image.open(job / "davis" / "Annotations" / SEQ / f"{frame:06d}.png"))
    (video,) = json.loads((job / "davis" / "objects.json").read_text())["videos"]
    lut = np.zeros(256, np.int64)
    for obj in video["objects"]:
        lut[obj["index"]] = obj["track_id"]
    return lut[index]


def _mots_tracks(job: Path, frame: int) -> np.ndarray:
    (video,) = json.loads((job / "mots" / "tracks.json").read_text())["videos"]
    track = {o["id"]: o["track_id"] for o in video["objects"]}
    out = np.zeros((H, W), np.int64)
    for line in (job / "mots" / f"{SEQ}.txt").read_text().splitlines():
        t, oid, _, h, w, counts = line.split()
        if int(t) != frame:
            continue
        m = mask_utils.decode({"size": [int(h), int(w)], "counts": counts.encode()}).astype(bool)
        assert not (out[m] != 0).any(), "MOTS masks must not overlap"
        out[m] = track[int(oid)]
    return out


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("paint_formats")
    _dataset(base / "data")
    out = base / "job"
    r = runner.invoke(app, ["convert", "--dataset", "coco", "--root", str(base / "data"),
                            "--out", str(out), "--model", "box",
                            "--format", "coco,png,davis,mots"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def test_png_davis_and_mots_give_each_pixel_the_same_owner(job: Path) -> None:
    want = _reference(list(BOXES))
    # the rule's cases are all there: cut by the border on top, tie, border object under a smaller
    assert want[15, 10] == 1 and want[35, 47] == 4 and want[41, 53] == 4 and want[44, 60] == 5
    for frame in (1, 2):
        np.testing.assert_array_equal(_png_tracks(job, frame), want)
        np.testing.assert_array_equal(_davis_tracks(job, frame), want)
        np.testing.assert_array_equal(_mots_tracks(job, frame), want)


def test_qa_apply_repaints_by_the_same_rule(job: Path, tmp_path: Path) -> None:
    dec = {"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": SEQ, "frame_index": 1, "track_id": 6, "action": "reject"}]}  # fmt: skip
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps(dec))
    r = runner.invoke(app, ["qa", "apply", str(path), "--out", str(job)])
    assert r.exit_code == 0, r.output
    assert str(job / SEQ / "000001.png") in r.output  # the png map was repainted
    want = _reference([t for t in BOXES if t != 6])
    np.testing.assert_array_equal(_png_tracks(job, 1), want)
    np.testing.assert_array_equal(_davis_tracks(job, 1), want)
    np.testing.assert_array_equal(_mots_tracks(job, 1), want)
    np.testing.assert_array_equal(_png_tracks(job, 2), _reference(list(BOXES)))
