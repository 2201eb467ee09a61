"""The job folder's one owner: the changes operation, the corrections layer, every format.

A job is converted with every built-in format plus ``pixels``, a per-frame
format defined in this file alone (as a plugin would be). Then:

- ``qa apply`` of reject / box / ellipse / accept decisions gives, in every
  format, the files a *fresh* conversion writes when the dataset lacks the
  rejected objects and the boxed one is box-filled (``--box-fill-area``); only
  the ``review`` fields of the COCO output tell them apart;
- :func:`box2mask.job.apply_changes` replaces, adds, removes and reviews objects
  (the operation an annotation tool's import calls), idempotently; a change it
  cannot make writes nothing; a kill in the middle leaves a journal that the
  next change or ``convert`` finishes;
- the corrections survive resume, a frame converted again, shards and
  ``merge``; ``--overwrite`` drops them and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import UsageError
from box2mask.geometry import frame_block
from box2mask.job import JobFolder, ObjectChange, apply_changes, hold_lock
from box2mask.layout import PENDING_FILE, frame_stem, sequence_dir
from box2mask.masks import paint
from box2mask.writers import WRITERS, FrameFile, Writer
from box2mask.writers.coco import output_score

runner = CliRunner()
HW = (48, 64)
FORMATS = "coco,png,ytvis,davis,mots,yolo,pixels"
REVIEW = ("review", "review_tool", "review_time")
#: per sequence and frame: track -> (category id, x, y, w, h); track 3 is cut by the frame
#: border, 1 and 2 overlap; track 4 is small (5x5) in s1 frame 2 only
OBJECTS = {
    ("s1", 1): {1: (1, 2, 2, 20, 16), 2: (2, 14, 8, 14, 12), 3: (2, 50, 30, 20, 22),
                4: (1, 30, 4, 9, 9), 5: (2, 35, 20, 12, 10)},
    ("s1", 2): {1: (1, 3, 2, 20, 16), 2: (2, 15, 9, 14, 12), 3: (2, 51, 31, 20, 22),
                4: (1, 31, 5, 5, 5), 5: (2, 36, 21, 12, 10)},
    ("s1", 3): {1: (1, 4, 3, 20, 16), 2: (2, 16, 9, 14, 12), 4: (1, 32, 5, 9, 9)},
    ("s2", 1): {1: (1, 6, 6, 18, 14), 3: (2, 44, 34, 24, 18), 5: (2, 28, 18, 12, 12)},
    ("s2", 2): {1: (1, 7, 6, 18, 14), 3: (2, 45, 35, 24, 18), 5: (2, 29, 19, 12, 12)},
    ("s2", 3): {1: (1, 8, 7, 18, 14), 3: (2, 46, 35, 24, 18), 5: (2, 30, 19, 12, 12)},
}  # fmt: skip
REJECTED = {("s1", 2, 2), ("s2", 3, 3)}
BOXED = ("s1", 2, 4)  # the one box below 30 px²: box-filled by --box-fill-area 30
DECISIONS = [
    {"sequence": "s1", "frame_index": 2, "track_id": 2, "action": "reject"},
    {"sequence": "s2", "frame_index": 3, "track_id": 3, "action": "reject"},
    {"sequence": "s1", "frame_index": 2, "track_id": 4, "action": "box"},
    {"sequence": "s2", "frame_index": 1, "track_id": 5, "action": "ellipse"},
    {"sequence": "s1", "frame_index": 1, "track_id": 1, "action": "accept"},
]


class PixelsWriter(Writer):
    """A per-frame format the package does not know: each object's visible pixels.

    ``pixels/<sequence>/<frame>.txt``: per object, its track, category, source, score,
    and the count and digest of the pixels it owns under the one paint rule.
    """

    help = "test format"
    per_frame = True

    def encode_frame(self, fm):
        hw = fm.frame.image_hw
        blocks = [frame_block(om.block, om.window, hw) for om in fm.masks]
        owner = paint(hw, blocks, None, np.int32)
        lines = []
        for k, om in enumerate(fm.masks, start=1):
            mine = owner == k
            digest = hashlib.sha256(np.packbits(mine).tobytes()).hexdigest()[:16]
            lines.append(f"{om.track_id} {om.category} {om.source} {output_score(om.score)} "
                         f"{int(mine.sum())} {digest}")  # fmt: skip
        rel = f"pixels/{sequence_dir(fm.frame.sequence)}/{frame_stem(fm.frame.frame_index)}.txt"
        return [FrameFile(rel, "".join(x + "\n" for x in lines).encode())]

    def outputs(self):
        return ["pixels"]


@pytest.fixture(scope="module", autouse=True)
def pixels_format():
    WRITERS.add("pixels", PixelsWriter)
    yield
    WRITERS._items.pop("pixels")


def _dataset(root: Path, name: str = "annotations.json", drop: set = frozenset()) -> Path:
    """A COCO dataset of two sequences (images + boxes with track ids), without ``drop``."""
    rng = np.random.default_rng(5)
    images, anns = [], []
    for n, ((seq, fi), objs) in enumerate(OBJECTS.items(), start=1):
        path = root / "images" / seq / f"{fi:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.fromarray(rng.integers(0, 255, (*HW, 3), dtype=np.uint8)).save(path)
        images.append({"id": n, "file_name": f"{seq}/{fi:06d}.png", "width": HW[1],
                       "height": HW[0], "sequence": seq, "frame_index": fi})  # fmt: skip
        for tid, (cat, *box) in objs.items():
            if (seq, fi, tid) not in drop:
                anns.append({"id": len(anns) + 1, "image_id": n, "category_id": cat,
                             "bbox": box, "track_id": tid, "iscrowd": 0})  # fmt: skip
    cats = [{"id": 1, "name": "airplane"}, {"id": 2, "name": "ship"}]
    (root / name).write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


def _convert(out: Path, root: Path, **kw) -> box2mask.pipeline.Summary:
    return box2mask.convert(dataset="coco", root=root, out=out, model="ellipse",
                            formats=FORMATS, **kw)  # fmt: skip


def _files(out: Path) -> dict[str, bytes]:
    """Every file of every format (links read through), the job's own state left out."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".box2mask" not in p.parts}  # fmt: skip


def _state(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "lock"}  # fmt: skip


def _without_review(coco: bytes) -> dict:
    data = json.loads(coco)
    for a in data["annotations"]:
        for k in REVIEW:
            a.pop(k, None)
    return data


def _key_of(coco: dict) -> dict[tuple[str, int, int], dict]:
    ims = {im["id"]: im for im in coco["images"]}
    return {(ims[a["image_id"]]["sequence"], ims[a["image_id"]]["frame_index"], a["track_id"]): a
            for a in coco["annotations"]}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = _dataset(tmp_path_factory.mktemp("changes") / "coco")
    return _dataset(root, "decided.json", REJECTED)


@pytest.fixture(scope="module")
def converted(data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("changes_job") / "job"
    _convert(out, data, adapter_options={"annotations": "annotations.json"})
    return out


@pytest.fixture()
def job(converted: Path, tmp_path: Path) -> Path:
    out = tmp_path / "job"
    shutil.copytree(converted, out, symlinks=True)
    return out


def _decide(path: Path, decisions: list[dict]) -> Path:
    path.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": decisions}))
    return path


def test_qa_apply_gives_every_format_of_a_fresh_conversion_with_the_decisions(
    data: Path, job: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"  # the dataset without the rejected objects; the boxed one boxed
    _convert(fresh, data, adapter_options={"annotations": "decided.json"}, box_fill_area=30)
    want = _files(fresh)
    assert any(k.startswith("pixels/") for k in want) and any(k.startswith("s1/") for k in want)
    assert _files(job) != want  # the decisions change something in every kind of format

    res = runner.invoke(app, ["qa", "apply", str(_decide(tmp_path / "d.json", DECISIONS)),
                              "--job", str(job)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "removed 2, replaced 1 by box, 1 by ellipse, accepted 1" in res.output
    got = _files(job)
    assert sorted(got) == sorted(want)
    for name in want:
        if name == "annotations.json":
            assert _without_review(got[name]) == _without_review(want[name])
        else:
            assert got[name] == want[name], name
    # what tells them apart: the review marks, with the tool and the time
    anns = _key_of(json.loads(got["annotations.json"]))
    assert {k: anns[k]["review"] for k in anns if "review" in anns[k]} == {
        BOXED: "box", ("s2", 1, 5): "ellipse", ("s1", 1, 1): "accepted"}  # fmt: skip
    assert all(anns[k]["review_tool"] == "box2mask qa" for k in anns if "review" in anns[k])
    COCO(str(job / "annotations.json"))  # pycocotools reads it


def test_qa_apply_finds_an_object_by_its_annotation_id(job: Path, tmp_path: Path) -> None:
    """A decision without a track id names the annotation id of the job's COCO output."""
    coco = json.loads((job / "annotations.json").read_bytes())
    target = _key_of(coco)[("s2", 2, 5)]
    decision = {"sequence": "s2", "frame_index": 2, "id": target["id"], "action": "reject"}
    res = runner.invoke(app, ["qa", "apply", str(_decide(tmp_path / "d.json", [decision])),
                              "--job", str(job)])  # fmt: skip
    assert res.exit_code == 0 and "removed 1," in res.output, res.output
    after = _key_of(json.loads((job / "annotations.json").read_bytes()))
    assert set(_key_of(coco)) - set(after) == {("s2", 2, 5)}


def test_changes_replace_add_remove_and_review_in_every_format(job: Path, tmp_path: Path) -> None:
    before = _key_of(json.loads((job / "annotations.json").read_bytes()))
    square = np.zeros(HW, np.uint8, order="F")
    square[10:20, 40:52] = 1
    rle = mask_utils.encode(square)  # counts as bytes, as pycocotools gives them
    when = "2026-12-08T10:00:00Z"
    common = dict(review_tool="cvat", review_time=when)
    changes = [
        ObjectChange("replace", "s1", 1, 5, annotation={"segmentation": rle}, **common),
        ObjectChange("add", "s1", 1, 9, annotation={
            "segmentation": [[2, 30, 12, 30, 12, 40, 2, 40]], "category_id": 2}, **common),
        ObjectChange("remove", "s2", 2, 1, **common),
        ObjectChange("review", "s2", 2, 3, **common),
        ObjectChange("replace", "s1", 3, 2, annotation={"category": "airplane"}, **common),
    ]  # fmt: skip
    done = apply_changes(job, changes)
    assert [o.result for o in done.outcomes] == ["applied"] * 5 and done.frames == 3
    coco = json.loads((job / "annotations.json").read_bytes())
    anns = _key_of(coco)
    got = anns[("s1", 1, 5)]
    assert np.array_equal(mask_utils.decode(got["segmentation"]), square)
    assert (got["area"], got["bbox"]) == (120, [40.0, 10.0, 12.0, 10.0])
    assert (got["score"], got["mask_source"], got["review"]) == (1.0, "manual", "manual")
    assert (got["review_tool"], got["review_time"], got["prompt_box"]) == (
        "cvat", when, before[("s1", 1, 5)]["prompt_box"])  # fmt: skip
    added = anns[("s1", 1, 9)]
    assert added["category_id"] == 2 and added["area"] == 10 * 10
    assert added["prompt_box"] == added["bbox"] and added["review"] == "manual"
    assert ("s2", 2, 1) not in anns and anns[("s2", 2, 3)]["review"] == "accepted"
    assert anns[("s2", 2, 3)]["segmentation"] == before[("s2", 2, 3)]["segmentation"]
    assert anns[("s1", 3, 2)]["category_id"] == 1
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    # every format follows: the png map of the frame holds the new objects, mots the relabel
    side = json.loads((job / "s1" / "000001.json").read_text())
    assert [i["track_id"] for i in side["instances"]] == [1, 2, 3, 4, 5, 9]
    assert side["instances"][4]["mask_source"] == "manual"
    pixels = (job / "pixels" / "s1" / "000001.txt").read_text().splitlines()
    assert pixels[-1].startswith("9 ship manual 1.0 100 ")
    yt = json.loads((job / "ytvis.json").read_text())
    assert any(a["track_id"] == 9 for a in yt["annotations"])
    tracks = json.loads((job / "mots" / "tracks.json").read_text())
    s1 = next(v for v in tracks["videos"] if v["sequence"] == "s1")
    assert {(o["track_id"], o["category"]) for o in s1["objects"]} >= {(2, "airplane"), (9, "ship")}

    # the same changes again (later: another time) change no byte
    snap = _state(job)
    again = [ObjectChange(c.action, c.sequence, c.frame_index, c.track_id, c.annotation,
                          review_tool="cvat", review_time="2026-12-09T00:00:00Z")
             for c in changes]  # fmt: skip
    done = apply_changes(job, again)
    results = {(o.change.action, o.change.track_id): o.result for o in done.outcomes}
    assert results == {("replace", 5): "unchanged", ("add", 9): "unchanged",
                       ("remove", 1): "absent", ("review", 3): "unchanged",
                       ("replace", 2): "unchanged"}  # fmt: skip
    assert done.files == [] and _state(job) == snap


def test_a_change_that_cannot_be_made_writes_nothing(job: Path) -> None:
    snap = _state(job)
    ok = ObjectChange("remove", "s1", 2, 1)  # a change that can be made, in the same set
    bad = [
        (ObjectChange("replace", "s1", 1, 7, annotation={"score": 0.5}), "holds no object"),
        (ObjectChange("add", "s1", 1, 2, annotation={
            "segmentation": [[0, 0, 4, 0, 4, 4]], "category": "ship"}), "already holds track 2"),
        (ObjectChange("add", "s1", 1, 8, annotation={
            "segmentation": [[0, 0, 4, 0, 4, 4]], "category": "car"}), "not a category of the job"),
        (ObjectChange("add", "s1", 1, 8, annotation={"segmentation": {
            "size": [10, 10], "counts": [0, 100]}, "category": "ship"}), "its mask is 10x10"),
        (ObjectChange("add", "s1", 1, 8, annotation={"category": "ship"}), "needs its mask"),
        (ObjectChange("replace", "s1", 1, 3, annotation={"mask_source": "magic"}), "mask_source"),
        (ObjectChange("replace", "s1", 1, 3, annotation={"score": float("nan")}), "score must"),
        (ObjectChange("replace", "s1", 1, 3, annotation={"prompt_box": [1, 2, -3, 4]}),
         "prompt_box must"),
        (ObjectChange("replace", "s1", 1, 3, annotation={"note": {1, 2}}), "not plain JSON"),
        (ObjectChange("review", "s1", 9, 1), "has no frame 9 of sequence 's1'"),
        (ObjectChange("review", "../s1", 1, 1), "has no frame 1 of sequence '../s1'"),
        (ObjectChange("review", "s1", 2, 1), "change the same object"),
    ]  # fmt: skip
    for change, message in bad:
        with pytest.raises(UsageError, match=message):
            apply_changes(job, [ok, change])
    for kwargs, message in [
        (dict(action="move"), "action must be one of"),
        (dict(track_id=1.5), "track_id must be a whole number"),
        (dict(frame_index=float("inf")), "frame_index must be a whole number"),
        (dict(action="replace"), "replace needs annotation"),
        (dict(action="add", annotation=[1, 2]), "annotation must be a mapping"),
    ]:
        with pytest.raises(UsageError, match=message):
            ObjectChange(**{**dict(action="remove", sequence="s1", frame_index=1, track_id=1),
                            **kwargs})  # fmt: skip
    # while a convert of the job runs (it holds the lock), nothing is changed
    fd = hold_lock(job / ".box2mask")
    try:
        with pytest.raises(UsageError, match="is running this job"):
            apply_changes(job, [ok])
    finally:
        os.close(fd)
    with pytest.raises(UsageError, match="job.json: no such file"):
        apply_changes(job / "s1", [ok])
    assert _state(job) == snap


def test_corrections_survive_resume_reconversion_shards_and_merge(
    data: Path, job: Path, tmp_path: Path
) -> None:
    square = np.zeros(HW, np.uint8, order="F")
    square[30:40, 2:14] = 1
    changes = [
        ObjectChange("replace", "s2", 2, 5, annotation={"segmentation": mask_utils.encode(square)}),
        ObjectChange("remove", "s1", 3, 4, review_tool="labelstudio"),
        ObjectChange("review", "s1", 1, 2),
    ]  # fmt: skip
    apply_changes(job, changes)
    corrected = _files(job)
    opts = {"adapter_options": {"annotations": "annotations.json"}}
    # a rerun of the finished job keeps them
    _convert(job, data, **opts)
    assert _files(job) == corrected
    # a frame whose part was lost is converted again: its files are the corrected ones
    JobFolder(job).part_path("s2", 2).unlink()
    (job / "s2" / "000002.png").unlink()
    summary = _convert(job, data, **opts)
    assert summary.frames_done == 1
    assert _files(job) == corrected
    # shards, each corrected, merged: the corrected unsharded job
    for k in (1, 2):
        shard = tmp_path / f"shard{k}"
        _convert(shard, data, shard=f"{k}/2", **opts)
        held = set(JobFolder(shard).sequences)
        apply_changes(shard, [c for c in changes if c.sequence in held])
    merged = tmp_path / "merged"
    res = runner.invoke(app, ["merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"),
                              "--out", str(merged)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _files(merged) == corrected
    # --overwrite drops them, and says so
    summary = _convert(job, data, overwrite=True, **opts)
    assert any("--overwrite dropped the job's corrections: 3 object(s) of 3 frame(s)" in n
               for n in summary.notes)  # fmt: skip
    fresh = tmp_path / "fresh"
    _convert(fresh, data, **opts)
    assert _files(job) == _files(fresh)
    assert not (job / ".box2mask" / "corrections").exists()


_KILLED_APPLY = """
import os, signal, sys
import box2mask.job.changes as changes
from box2mask.job import ObjectChange, apply_changes
sys.path.insert(0, {tests!r})
from test_job_changes import PixelsWriter
from box2mask.writers import WRITERS
WRITERS.add("pixels", PixelsWriter)
real = changes.write_frame_files
calls = []
def dying(*args, **kw):
    calls.append(1)
    if len(calls) == 2:  # the second frame's files: the first frame is done, the rest not
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kw)
changes.write_frame_files = dying
apply_changes({job!r}, [ObjectChange("remove", "s1", 1, 2), ObjectChange("remove", "s2", 1, 3),
                        ObjectChange("review", "s2", 3, 1, review_time="t")])
"""


@pytest.mark.parametrize("finisher", ["change", "convert"])
def test_a_change_killed_midway_is_finished_by_the_next_one(
    data: Path, job: Path, tmp_path: Path, finisher: str
) -> None:
    want = tmp_path / "want"
    shutil.copytree(job, want, symlinks=True)
    apply_changes(want, [ObjectChange("remove", "s1", 1, 2), ObjectChange("remove", "s2", 1, 3),
                         ObjectChange("review", "s2", 3, 1, review_time="t")])  # fmt: skip
    code = _KILLED_APPLY.format(tests=str(Path(__file__).parent), job=str(job))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert (job / ".box2mask" / PENDING_FILE).is_file()
    assert _files(job) != _files(want)  # half done: s1 frame 1 only
    res = runner.invoke(app, ["merge", str(job), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "was interrupted" in res.output
    if finisher == "change":
        done = apply_changes(job, [])
        assert done.recovered == 3 and done.outcomes == []
    else:
        _convert(job, data, adapter_options={"annotations": "annotations.json"})
    assert not (job / ".box2mask" / PENDING_FILE).exists()
    assert _files(job) == _files(want)
