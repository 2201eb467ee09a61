"""``box2mask qa apply``: removal, box / ellipse replacement, png + parts kept consistent, idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"


def _convert(out: Path, model: str) -> None:
    r = runner.invoke(app, ["convert", "-d", "viso", "--root", str(EXAMPLE), "--out", str(out),
                            "--model", model, "--format", "coco,png,ytvis",
                            "--sequences", "plane/001"])  # fmt: skip
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("qa_apply")
    out = {}
    for model in ("ellipse", "box"):
        out[model] = base / model
        _convert(out[model], model)
    return out


def _frames(coco: dict) -> dict[tuple[str, int], list[dict]]:
    ims = {im["id"]: im for im in coco["images"]}
    by: dict[tuple[str, int], list[dict]] = {}
    for a in coco["annotations"]:
        im = ims[a["image_id"]]
        by.setdefault((im["sequence"], im["frame_index"]), []).append(a)
    return by


def _snapshot(job: Path) -> dict[str, bytes]:
    return {str(p.relative_to(job)): p.read_bytes() for p in sorted(job.rglob("*"))
            if p.is_file() and "qa" not in p.parts and p.name != "lock"}  # fmt: skip


def test_apply_removes_and_replaces_consistently(jobs: dict[str, Path], tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(jobs["ellipse"], job)
    before = json.loads((job / "annotations.json").read_text())
    frames = _frames(before)
    key = sorted(frames)[0]
    seq, fi = key
    anns = frames[key]
    assert len(anns) >= 3
    rej, boxed, ell, acc = anns[0], anns[1], anns[2], anns[-1]
    dec = {"box2mask_qa_decisions": 1, "source": str(job / "annotations.json"), "decisions": [
        {"id": a["id"], "sequence": seq, "frame_index": fi, "track_id": a["track_id"],
         "action": act}
        for a, act in ((rej, "reject"), (boxed, "box"), (ell, "ellipse"), (acc, "accept"))
    ]}  # fmt: skip
    dpath = tmp_path / "decisions.json"
    dpath.write_text(json.dumps(dec))
    untouched = _snapshot(job)
    r = runner.invoke(app, ["qa", "apply", str(dpath), "--job", str(job)])
    assert r.exit_code == 0, r.output
    assert "removed 1, replaced 1 by box, 1 by ellipse, accepted 1" in r.output

    # pycocotools reads the result; ids 1..n; areas and boxes are those of the masks
    coco = COCO(str(job / "annotations.json"))
    after = json.loads((job / "annotations.json").read_text())
    assert [a["id"] for a in after["annotations"]] == list(range(1, len(before["annotations"])))
    for a in after["annotations"]:
        assert a["area"] == int(mask_utils.area(a["segmentation"]))
        assert a["bbox"] == pytest.approx(mask_utils.toBbox(a["segmentation"]).tolist())
    assert len(coco.getAnnIds()) == len(before["annotations"]) - 1
    new = {a["track_id"]: a for a in _frames(after)[key]}
    assert rej["track_id"] not in new
    # the box replacement is exactly what `--model box` draws for that object
    box_job = json.loads((jobs["box"] / "annotations.json").read_text())
    ref = {a["track_id"]: a for a in _frames(box_job)[key]}[boxed["track_id"]]
    assert new[boxed["track_id"]]["segmentation"] == ref["segmentation"]
    assert new[boxed["track_id"]]["mask_source"] == "box"
    assert new[boxed["track_id"]]["review"] == "box"
    # the ellipse one is the ellipse model's own mask (this job's model), marked reviewed
    assert new[ell["track_id"]]["segmentation"] == ell["segmentation"]
    assert new[ell["track_id"]]["review"] == "ellipse"
    # the accepted one keeps its mask and records the review: who and when
    kept = new[acc["track_id"]]
    assert kept["segmentation"] == acc["segmentation"] and kept["review"] == "accepted"
    assert kept["review_tool"] == "box2mask qa" and kept["review_time"].endswith("Z")
    assert new[boxed["track_id"]]["review_tool"] == "box2mask qa"
    # the rest of the file is unchanged, but for renumbered ids
    strip = ("id",)
    keep_b = [{k: v for k, v in a.items() if k not in strip} for a in before["annotations"]
              if a["id"] not in (rej["id"], boxed["id"], ell["id"], acc["id"])]  # fmt: skip
    keep_a = [{k: v for k, v in a.items() if k not in strip} for a in after["annotations"]
              if not (a["image_id"] == rej["image_id"] and a["track_id"] in
                      (boxed["track_id"], ell["track_id"], acc["track_id"]))]  # fmt: skip
    assert keep_a == keep_b
    assert after["images"] == before["images"] and after["categories"] == before["categories"]

    # png format: the frame's instance map and sidecar re-painted without the removed object
    side_path = next(p for p in (job / seq).glob("*.json")
                     if json.loads(p.read_text())["frame_index"] == fi)  # fmt: skip
    side = json.loads(side_path.read_text())
    assert [i["track_id"] for i in side["instances"]] == [
        a["track_id"] for a in _frames(after)[key]
    ]
    inst = cv2.imread(str(side_path.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
    assert inst.max() == len(side["instances"])
    k = [i["track_id"] for i in side["instances"]].index(boxed["track_id"]) + 1
    m = mask_utils.decode(new[boxed["track_id"]]["segmentation"]).astype(bool)
    assert (inst == k).sum() <= m.sum() and np.all(m[inst == k])
    # other frames' files are untouched; the model's part stays, the decisions are the
    # frame's corrections beside it
    changed = {n for n, b in _snapshot(job).items() if untouched.get(n) != b}
    stem = side_path.stem
    layer = f".box2mask/corrections/{seq}/{fi:06d}.json"
    assert changed == {"annotations.json", "ytvis.json", f"{seq}/{stem}.png",
                       f"{seq}/{stem}.json", layer}  # fmt: skip
    assert {o["track_id"] for o in json.loads((job / layer).read_text())["objects"]} == {
        a["track_id"] for a in (rej, boxed, ell, acc)
    }

    # a format assembled from the parts (ytvis) is re-derived through its writer
    yt = json.loads((job / "ytvis.json").read_text())
    frame_no = next(im["frame_index"] for im in after["images"] if im["id"] == rej["image_id"])
    frames_of_video = sorted(im["frame_index"] for im in after["images"]
                             if im["sequence"] == seq)  # fmt: skip
    t = frames_of_video.index(frame_no)
    tracks = {a["track_id"]: a for a in yt["annotations"]}
    assert tracks[rej["track_id"]]["segmentations"][t] is None
    yt_box = tracks[boxed["track_id"]]["segmentations"][t]
    assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(yt_box, *yt_box["size"])),
                          mask_utils.decode(new[boxed["track_id"]]["segmentation"]))  # fmt: skip

    # idempotent: the same decisions again change no byte
    snap = _snapshot(job)
    r = runner.invoke(app, ["qa", "apply", str(dpath), "--job", str(job)])
    assert r.exit_code == 0, r.output
    assert "already applied: 1 removed before, 2 unchanged" in r.output
    assert _snapshot(job) == snap

    # a resumed convert assembles the COCO again from the parts: the review stays
    _convert(job, "ellipse")
    again = json.loads((job / "annotations.json").read_text())
    assert again["annotations"] == after["annotations"]


def test_apply_waits_for_a_running_job(jobs: dict[str, Path], tmp_path: Path) -> None:
    import fcntl
    import os

    job = tmp_path / "job"
    shutil.copytree(jobs["box"], job)
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": "plane/001", "frame_index": 1, "track_id": 1, "action": "reject"}]}))  # fmt: skip
    fd = os.open(job / ".box2mask" / "lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running convert holds it
    try:
        snap = _snapshot(job)
        r = runner.invoke(app, ["qa", "apply", str(p), "--job", str(job)])
        assert r.exit_code == 2 and "is running this job" in r.output
        assert _snapshot(job) == snap
    finally:
        os.close(fd)
    r = runner.invoke(app, ["qa", "apply", str(p), "--job", str(job)])
    assert r.exit_code == 0 and "removed 1" in r.output


def test_bad_decisions_file_is_one_message(jobs: dict[str, Path], tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": "plane/001", "frame_index": 1, "track_id": 1, "action": "delete"},
    ]}))  # fmt: skip
    r = runner.invoke(app, ["qa", "apply", str(p), "--job", str(jobs["box"])])
    assert r.exit_code == 2 and "decisions[0]" in r.output and "action must be one of" in r.output
    p.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": "nope", "frame_index": 1, "track_id": 1, "action": "box"}]}))  # fmt: skip
    r = runner.invoke(app, ["qa", "apply", str(p), "--job", str(jobs["box"])])
    assert r.exit_code == 2 and "has no object" in r.output
    p.write_text("{}")
    r = runner.invoke(app, ["qa", "apply", str(p), "--job", str(jobs["box"])])
    assert r.exit_code == 2 and "not a box2mask qa decisions file" in r.output


def test_accept_marks_a_coco_file_without_a_job(jobs: dict[str, Path], tmp_path: Path) -> None:
    """Issue 27: in a folder holding only another tool's ``annotations.json``, an accept marks the
    annotation reviewed (who and when) as a job's corrections layer does, so the next qa ranks it
    out; applying again changes no byte."""
    folder = tmp_path / "foreign"
    folder.mkdir()
    shutil.copy(jobs["box"] / "annotations.json", folder / "annotations.json")
    coco = json.loads((folder / "annotations.json").read_text())
    ims = {im["id"]: im for im in coco["images"]}
    a = coco["annotations"][3]
    dec = tmp_path / "accept.json"
    dec.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": ims[a["image_id"]]["sequence"], "frame_index": ims[a["image_id"]]["frame_index"],
         "track_id": a["track_id"], "action": "accept"}]}))  # fmt: skip
    r = runner.invoke(app, ["qa", "apply", str(dec), "--job", str(folder)])
    assert r.exit_code == 0, r.output
    assert "accepted 1" in r.output and "only annotations.json was rewritten" in r.output
    after = json.loads((folder / "annotations.json").read_text())
    marked = [x for x in after["annotations"] if x.get("review")]
    assert [x["id"] for x in marked] == [a["id"]]
    assert marked[0]["review"] == "accepted" and marked[0]["review_tool"] == "box2mask qa"
    assert marked[0]["segmentation"] == a["segmentation"]
    before = (folder / "annotations.json").read_bytes()
    r = runner.invoke(app, ["qa", "apply", str(dec), "--job", str(folder)])
    assert r.exit_code == 0, r.output
    assert (folder / "annotations.json").read_bytes() == before
    r = runner.invoke(app, ["qa", "--job", str(folder / "annotations.json"), "--no-images",
                            "--out", str(tmp_path / "qa")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 reviewed objects not ranked" in r.output
    rep = json.loads((tmp_path / "qa" / "qa.json").read_text())
    assert [o["id"] for o in rep["reviewed"]] == [a["id"]]
    assert a["id"] not in {o["id"] for o in rep["ranked"]}
