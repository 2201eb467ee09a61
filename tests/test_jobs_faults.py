"""Faults: a model error skips one frame, CUDA out-of-memory retries in halves, a full disk stops cleanly."""

from __future__ import annotations

import json
import weakref

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import box2mask
import box2mask.executors.base
import box2mask.job.state
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.engine import DeviceFailed, EngineOptions, MaskEngine
from box2mask.models.base import ImageFeatures
from box2mask.models.classical import FillModel
from box2mask.problems import Problems
from box2mask.types import Frame
from tests.data.make_viso_many import make_viso_many
from tests.kill_helpers import disk_full_after

runner = CliRunner()
SIZE = 64  # the fake model's input side


class FakeSam:
    """A prompt model whose mask is its box prompt; can fail on white crops or OOM once.

    ``encode`` raises ``RuntimeError`` for a batch holding a mostly white crop
    (a model error on that frame), and ``torch.cuda.OutOfMemoryError`` the
    first time it sees more than one crop when ``oom_once`` is set.
    """

    name = "fake-sam"
    image_size = SIZE

    def __init__(self, oom_once: bool = False) -> None:
        self.oom_once = oom_once
        self.batches: list[int] = []

    def encode(self, images: torch.Tensor) -> ImageFeatures:
        self.batches.append(len(images))
        if self.oom_once and len(images) > 1:
            self.oom_once = False
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if ((images == 255).float().mean(dim=(1, 2, 3)) > 0.5).any():
            raise RuntimeError("NaN in attention")
        return ImageFeatures(embeddings=images.float().mean(dim=(1, 2, 3)))

    def decode(self, features, boxes, image_index):
        m = len(boxes)
        logits = torch.full((m, 256, 256), -1.0)
        b = (boxes * (256 / SIZE)).round().long()
        for k in range(m):
            logits[k, b[k, 1] : b[k, 3], b[k, 0] : b[k, 2]] = 1.0
        return logits, torch.full((m,), 0.5)


def _frames(tmp_path, n=4, white=()):
    rng = np.random.default_rng(0)
    frames = []
    for f in range(1, n + 1):
        img = (
            np.full((48, 64, 3), 255, np.uint8)
            if f in white
            else rng.integers(0, 200, (48, 64, 3), dtype=np.uint8)
        )
        path = tmp_path / f"{f:03d}.png"
        cv2.imwrite(str(path), img)
        frames.append(
            Frame(
                "s",
                f,
                path,
                (48, 64),
                [[20, 16, 30, 24], [34, 18, 44, 30]],
                [1, 2],
                ["ship", "ship"],
            )
        )
    return frames


def _run(model, frames, batch_size=4):
    problems = Problems()
    engine = MaskEngine(
        model,
        EngineOptions(batch_size=batch_size, crop_size=32, box_fill_classes=()),
        FillModel("box"),
        problems=problems,
    )
    got = {}
    engine.run(frames, lambda fm: got.__setitem__(fm.frame.frame_index, fm))
    return got, problems, engine


def test_a_model_error_skips_that_frame_only_and_is_reported(tmp_path):
    got, problems, _ = _run(FakeSam(), _frames(tmp_path, n=5, white={3}))
    assert sorted(got) == [1, 2, 4, 5]
    assert all(len(fm.masks) == 2 for fm in got.values())
    assert problems.counts["model"] == 1
    (msg,) = [str(r) for r in problems.reports]
    assert (
        "s frame 3: the model failed (RuntimeError: NaN in attention)" in msg and "003.png" in msg
    )


def test_cuda_out_of_memory_retries_the_batch_in_halves_and_lowers_the_batch_size(tmp_path):
    frames = _frames(tmp_path, n=4)
    model = FakeSam(oom_once=True)
    got, problems, engine = _run(model, frames)
    ref, _, _ = _run(FakeSam(), frames)
    assert model.batches[:3] == [4, 2, 2]  # the failed batch of 4, then its two halves
    assert engine.opts.batch_size == 2 and max(model.batches[1:]) == 2
    assert sorted(got) == [1, 2, 3, 4] and len(problems) == 0
    for f in got:
        for a, b in zip(got[f].masks, ref[f].masks, strict=True):
            assert np.array_equal(a.mask, b.mask) and a.mask.any()


def test_a_full_disk_stops_the_job_cleanly_and_a_rerun_completes_it(tmp_path, monkeypatch):
    root = tmp_path / "viso"
    make_viso_many(root, (6, 5))
    args = [
        "convert",
        "--dataset",
        "viso",
        "--root",
        root,
        "--model",
        "ellipse",
        "--format",
        "coco,png",
    ]
    clean = tmp_path / "clean"
    assert runner.invoke(app, [str(a) for a in [*args, "--out", clean]]).exit_code == 0

    # every frame's files are written by the executors' sink, through the job module
    room_again = disk_full_after(monkeypatch, 4)
    out = tmp_path / "out"
    res = runner.invoke(app, [str(a) for a in [*args, "--out", out]])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "stopped: no space left on device while writing" in text
    assert "4 of 11 frames are done" in text and "run the same command again to resume" in text
    assert "Traceback" not in res.output
    ledger = [json.loads(x) for x in (out / ".box2mask" / "ledger.jsonl").read_text().splitlines()]
    parts = sorted(
        p.relative_to(out / ".box2mask" / "parts")
        for p in (out / ".box2mask" / "parts").rglob("*.json")
    )
    assert len(ledger) == 4 and [f"{r['sequence']}/{r['frame']:06d}.json" for r in ledger] == [
        str(p) for p in parts
    ]
    assert not list(out.rglob("*.tmp")) and not (out / "annotations.json").exists()

    room_again()
    res = runner.invoke(app, [str(a) for a in [*args, "--out", out]])
    assert res.exit_code == 0, res.output
    assert "7 converted, 4 already done" in " ".join(res.output.split())
    assert (out / "annotations.json").read_bytes() == (clean / "annotations.json").read_bytes()
    for png in clean.rglob("*.png"):
        assert (out / png.relative_to(clean)).read_bytes() == png.read_bytes()


def test_model_errors_in_convert_are_listed_in_the_summary(tmp_path, monkeypatch):
    """A shape model raising on one frame: the job goes on, the summary lists the frame."""
    from box2mask.models import classical

    root = tmp_path / "viso"
    make_viso_many(root, (4,))
    # the engine asks shape models for their mask's block (segment_block)
    real = classical.FillModel.segment_block
    calls = {"n": 0}

    def segment(self, crop, box, size, obb=None, category=""):
        if self.name != "ellipse":  # the box fill of small objects is not under test
            return real(self, crop, box, size, obb, category)
        calls["n"] += 1
        if calls["n"] == 4:  # the first object of frame 2
            raise ValueError("bad ellipse")
        return real(self, crop, box, size, obb, category)

    monkeypatch.setattr(classical.FillModel, "segment_block", segment)
    res = runner.invoke(
        app,
        ["convert", "--dataset", "viso", "--root", str(root), "--out", str(tmp_path / "o"), "--model", "ellipse",
         "--workers", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "3 converted" in text and "model 1" in text and "ValueError: bad ellipse" in text
    images = json.loads((tmp_path / "o" / "annotations.json").read_text())["images"]
    assert [i["frame_index"] for i in images] == [1, 3, 4]


def test_frames_skipped_for_errors_are_retried_by_the_next_run(tmp_path, monkeypatch):
    from box2mask.models import classical

    root = tmp_path / "viso"
    make_viso_many(root, (3,))
    real = classical.FillModel.segment_block  # what the engine calls
    state = {"fail": True}

    def segment(self, crop, box, size, obb=None, category=""):
        if state["fail"] and self.name == "ellipse" and category == "airplane":
            raise ValueError("transient")
        return real(self, crop, box, size, obb, category)

    monkeypatch.setattr(classical.FillModel, "segment_block", segment)
    base = dict(dataset="viso", root=root, out=tmp_path / "o", model="ellipse")
    s = box2mask.convert(**base)
    assert s.frames_done == 0 and s.problems.counts["model"] == 3
    state["fail"] = False
    s = box2mask.convert(**base)
    assert s.frames_done == 3 and len(s.problems) == 0


class FailingSam(FakeSam):
    """``FakeSam`` that raises ``error`` on its first multi-crop batch (``each``: on every batch
    from call ``after`` on), holding a tensor of the failed attempt that the retry must not keep."""

    def __init__(self, error, after=0, each=False):  # error: a no-argument exception factory
        super().__init__()
        self.error, self.after, self.each = error, after, each
        self.held = None  # weakref to the failed attempt's tensor
        self.held_alive_at_retry: list[bool] = []

    def encode(self, images):
        if self.held is not None and len(self.held_alive_at_retry) < 1:
            self.held_alive_at_retry.append(self.held() is not None)
        calls = len(self.batches)
        if (self.each and calls >= self.after) or (
            not self.each and calls == self.after and len(images) > 1
        ):
            self.batches.append(len(images))
            activations = torch.zeros(len(images), 256, 64, 64)  # what a failed pass leaves
            self.held = weakref.ref(activations)
            raise self.error()  # a new exception each time, as a real failure
        return super().encode(images)


def test_the_oom_retry_does_not_hold_the_failed_attempts_tensors(tmp_path):
    model = FailingSam(lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried 2 GiB"))
    got, problems, engine = _run(model, _frames(tmp_path, n=4))
    assert model.batches[:3] == [4, 2, 2] and sorted(got) == [1, 2, 3, 4] and len(problems) == 0
    assert model.held_alive_at_retry == [False]  # freed before the halves ran


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
        "CUDA error: out of memory",
    ],
)
def test_allocation_failures_raised_as_runtime_error_lower_the_batch_size(tmp_path, message):
    model = FailingSam(lambda: RuntimeError(message))
    got, problems, engine = _run(model, _frames(tmp_path, n=4))
    assert model.batches[:3] == [4, 2, 2]
    assert engine.opts.batch_size == 2 and max(model.batches[1:]) == 2
    assert sorted(got) == [1, 2, 3, 4] and len(problems) == 0


def test_a_sticky_cuda_error_stops_at_once_without_retrying(tmp_path):
    model = FailingSam(
        lambda: torch.AcceleratorError("CUDA error: an illegal memory access was encountered"),
        after=1,
        each=True,
    )
    frames = _frames(tmp_path, n=6)
    got = {}
    engine = MaskEngine(
        model, EngineOptions(batch_size=2, crop_size=32, box_fill_classes=()), FillModel("box")
    )
    with pytest.raises(DeviceFailed, match="illegal memory access"):
        engine.run(frames, lambda fm: got.__setitem__(fm.frame.frame_index, fm))
    assert model.batches == [2, 2]  # one good batch, one failed attempt, no retries
    assert sorted(got) == [1]  # the frame finished before is still delivered


def test_a_sticky_cuda_error_stops_the_job_with_exit_1_and_keeps_finished_frames(
    tmp_path, monkeypatch, tiny_checkpoints
):
    from box2mask.models import sam

    root = tmp_path / "viso"
    make_viso_many(root, (6,), objects=1)
    real = sam.SamModel.encode
    calls = {"n": 0}

    def encode(self, images):
        calls["n"] += 1
        if calls["n"] >= 4:
            raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
        return real(self, images)

    monkeypatch.setattr(sam.SamModel, "encode", encode)
    out = tmp_path / "o"
    args = ["convert", "--dataset", "viso", "--root", str(root), "--out", str(out), "--model",
            "sam", "--checkpoint", str(tiny_checkpoints["sam"]), "--batch-size", "1",
            "--workers", "1"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "illegal memory access" in text and "cannot be used by this process" in text
    assert "3 of 6 frames are done" in text and "run the same command again to resume" in text
    assert calls["n"] == 4  # stopped after the one failed attempt
    assert "Traceback" not in res.output and not (out / "annotations.json").exists()
    ledger = (out / ".box2mask" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 3
    monkeypatch.setattr(sam.SamModel, "encode", real)
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "3 converted, 3 already done" in " ".join(res.output.split())
