"""``box2mask train --data JOB``: a job's reviewed masks as ROS-SAM training data (issue 27).

The tiny ROS-SAM layout (tests/data/make_rossam.py) is converted by the tiny SAM into a
job; a person's corrections enter it as an import does (:func:`box2mask.job.apply_changes`):
one mask replaced (``review: manual``), one kept (``accepted``). Then:

- the job's frames read by :func:`box2mask.job.frames.training_frames` hold exactly the
  masks the job holds (the corrected one, not the model's), with their review marks, and
  no mask filled from a box unless a person kept it; ``reviewed_only`` keeps only
  reviewed objects;
- the trainer takes the reviewed objects first: their frames whatever the frame share,
  and first among a frame's objects;
- a run on the job trains, records the job's corrections, and refuses to resume once
  more corrections came in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli, flat

import box2mask
from box2mask.errors import JobMismatch, UsageError
from box2mask.job import ObjectChange, apply_changes
from box2mask.job.frames import training_frames
from box2mask.masks import decode
from box2mask.train.data import DataConfig, TrainDataset, _pick, has_reviewed, sample_frames
from box2mask.train.loop import load_frames, train
from tests.train_helpers import train_options

torch.set_num_threads(1)
WHEN = "2026-12-08T10:00:00Z"


def _convert(data: Path, out: Path, model: str) -> Path:
    extra = {"checkpoint": str(data / "sam_tiny.pth")} if model == "sam" else {}
    box2mask.convert(dataset="rossam", root=data / "ros", out=out, model=model,
                     adapter_options={"split": "train"}, box_fill_classes="", box_fill_area=0,
                     **extra)  # fmt: skip
    return out


def _objects(job: Path) -> dict[tuple[str, int, int], dict]:
    coco = json.loads((job / "annotations.json").read_text())
    imgs = {im["id"]: im for im in coco["images"]}
    return {(imgs[a["image_id"]]["sequence"], imgs[a["image_id"]]["frame_index"], a["track_id"]):
            {**a, "hw": (imgs[a["image_id"]]["height"], imgs[a["image_id"]]["width"])}
            for a in coco["annotations"]}  # fmt: skip


@pytest.fixture(scope="module")
def model_job(train_data: Path, tmp_path_factory) -> Path:
    """The tiny SAM's masks (``mask_source: model``) of the three training objects."""
    return _convert(train_data, tmp_path_factory.mktemp("trainjob") / "job", "sam")


@pytest.fixture()
def job(model_job: Path, tmp_path: Path) -> tuple[Path, dict]:
    """The job with one corrected mask and one accepted object (as an import writes them)."""
    job = tmp_path / "job"
    shutil.copytree(model_job, job)
    objs = _objects(job)
    fixed, other, kept = sorted(objs)  # kept: the one object of another frame
    assert fixed[:2] == other[:2] != kept[:2]
    h, w = objs[fixed]["hw"]
    drawn = np.zeros((h, w), bool)
    drawn[8:20, 10:24] = True
    rle = {"size": [h, w], "counts": _counts(drawn)}
    apply_changes(job, [
        ObjectChange("replace", *fixed, annotation={"segmentation": rle}, review_tool="cvat",
                     review_time=WHEN),
        ObjectChange("review", *kept, review_tool="labelstudio", review_time=WHEN),
    ])  # fmt: skip
    return job, {"fixed": fixed, "kept": kept, "drawn": drawn}


def _counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of ``mask`` (column-major runs, background first)."""
    flat_ = mask.T.reshape(-1).astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat_, [1 - flat_[-1]]])))
    return np.diff(np.concatenate([[0], changes])).tolist()


def _gt(frames) -> dict[tuple[str, int, int], tuple[np.ndarray, bool]]:  # noqa: ANN001
    out = {}
    for _, fs in frames:
        for f in fs:
            for i, t in enumerate(f.track_id):
                out[(f.sequence, f.frame_index, int(t))] = (
                    f.gt_mask(i),
                    f.attributes["reviewed"][i],
                )
    return out


def test_a_jobs_frames_hold_its_masks_with_the_corrections_and_review_marks(job) -> None:
    path, pick = job
    objs = _objects(path)
    got = _gt(training_frames(path))
    assert {o["mask_source"] for o in objs.values()} == {"model", "manual"}
    assert got.keys() == objs.keys()
    for key, (mask, reviewed) in got.items():
        want = decode(objs[key]["segmentation"], objs[key]["hw"]).to_array(objs[key]["hw"])
        assert np.array_equal(mask, want), key
        assert reviewed == (key in (pick["fixed"], pick["kept"]))
    assert np.array_equal(got[pick["fixed"]][0], pick["drawn"])  # the person's, not the model's
    only = _gt(training_frames(path, reviewed_only=True))
    assert only.keys() == {pick["fixed"], pick["kept"]}


def test_masks_filled_from_the_box_are_no_ground_truth_unless_a_person_kept_them(
    train_data: Path, tmp_path: Path
) -> None:
    job = _convert(train_data, tmp_path / "ellipse", "ellipse")
    assert _gt(training_frames(job)) == {}
    key = sorted(_objects(job))[0]
    apply_changes(job, [ObjectChange("review", *key, review_tool="box2mask qa")])
    assert list(_gt(training_frames(job))) == [key]


def test_reviewed_objects_come_first(job) -> None:
    path, pick = job
    seqs = list(training_frames(path))
    frames = [f for _, fs in seqs for f in fs]
    # their frames are kept whatever the share; the share is drawn from the others
    kept = sample_frames(seqs, 0.01, 0, always=has_reviewed)
    assert {f.key for f in frames if has_reviewed(f)} <= {f.key for f in kept}
    # without reviewed objects, the draw is the one it always was
    assert [f.key for f in sample_frames(seqs, 0.5, 3)] == [
        f.key for f in sample_frames(seqs, 0.5, 3, always=lambda f: False)
    ]
    rng = np.random.default_rng(0)
    reviewed = [False, True, False, False, True, False]
    for _ in range(20):
        assert {1, 4} <= set(_pick(list(range(6)), reviewed, 3, rng))
        assert set(_pick(list(range(6)), reviewed, 1, rng)) <= {1, 4}
    # a frame of one corrected and one model object, one object a sample: the corrected one
    frame = next(f for f in frames if f.key == pick["fixed"][:2])
    assert frame.attributes["reviewed"] == [True, False]
    ds = TrainDataset([frame], DataConfig(max_objects=1, exclude_classes=()))
    for seed in range(10):
        _, (mask,) = ds._base(frame, -1, np.random.default_rng(seed))
        assert np.array_equal(mask, pick["drawn"])


def test_training_on_a_job_records_its_corrections_and_resumes_only_with_the_same(
    job, train_data: Path, tmp_path: Path
) -> None:
    path, pick = job
    opts = dict(dataset=None, root=None, adapter_options={}, data=(path,), reviewed_only=True,
                exclude_classes=(), steps_per_epoch=1, epochs=1)  # fmt: skip
    train_frames, _ = load_frames(train_options(train_data, tmp_path / "r", **opts))
    assert sum(len(f) for f in train_frames) == 2  # the two reviewed objects
    run = tmp_path / "run"
    res = train(train_options(train_data, run, **opts))
    assert res.model_path is not None and res.model_path.is_file()
    ident = json.loads((run / "run.json").read_text())["identity"]
    assert [d["job"] for d in ident["data"]] == [str(path.resolve())]
    assert len(ident["data"][0]["corrections_sha256"]) == 64
    # another correction imported: the same command is another run
    apply_changes(path, [ObjectChange("remove", *pick["kept"], review_tool="cvat")])
    with pytest.raises(JobMismatch, match="corrections_sha256"):
        train(train_options(train_data, run, **{**opts, "epochs": 2}))


def test_cli_train_data_job(job, train_data: Path, tmp_path: Path) -> None:
    path, _ = job
    base = ["train", "--sam", train_data / "sam_tiny.pth", "--hq", train_data / "sam_hq_tiny.pth",
            "--out", tmp_path / "run"]  # fmt: skip
    r = cli(*base, "--data", path, "--reviewed-only", "--exclude-classes", "", "--dry-run",
            "--frame-fraction", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "train frames 2, samples per epoch 2" in flat(r.output)
    r = cli(*base)
    assert r.exit_code == 2 and "--dataset or --data" in flat(r.output)
    r = cli(*base, "--data", path, "--root", train_data / "ros")
    assert r.exit_code == 2 and "--root and --opt describe a --dataset" in flat(r.output)
    r = cli(*base, "--dataset", "rossam", "--root", train_data / "ros", "--reviewed-only")
    assert r.exit_code == 2 and "--reviewed-only chooses among the objects of --data" in flat(
        r.output
    )
    r = cli(*base, "--data", tmp_path / "nope")
    assert r.exit_code == 2 and "not a box2mask job folder" in flat(r.output), r.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_options_need_data(train_data: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no training data"):
        train_options(train_data, tmp_path, dataset=None, root=None, adapter_options={})
