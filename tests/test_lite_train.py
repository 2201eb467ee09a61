"""``box2mask train lite``: a few steps on a tiny YOLO-seg fixture, exact resume after SIGKILL,
the checkpoint's metadata, and fine-tuning that changes the masks and loads back."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401
from box2mask.models.lite import checkpoint as ckpt
from box2mask.train.lite.loop import DEFAULT_INPUT_SCALE
from tests.data.make_yolo import make_yolo

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("yolo")
    make_yolo(root, "roboflow", images=4)
    return root


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "lite", "--dataset", "yolo", "--root", str(data), "--opt", "split=train",
            "--val-dataset", "yolo", "--val-root", str(data), "--val-opt", "split=valid",
            "--out", str(out), "--steps", "8", "--batch-pixels", "16384", "--widths", "8,12",
            "--full", "4", "--save-every", "1", "--val-every", "4", "--threads", "1",
            "--warmup", "2", "--source", "fixture@0", "--licence", "test data", *extra]  # fmt: skip


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "box2mask", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_train_resumes_bit_identically_after_sigkill(data, tmp_path):
    whole = _cli(_args(data, tmp_path / "whole"))
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    model = tmp_path / "whole" / "model.safetensors"
    meta = ckpt.load(model).metadata
    recipe = json.loads(meta["recipe"])
    assert recipe["steps"] == 8 and recipe["seed"] == 0 and recipe["arch"]["widths"] == [8, 12]
    assert recipe["aug"]["box_jitter"] == 0.015
    sources = json.loads(meta["data"])
    assert sources[0]["source"] == "fixture@0" and sources[0]["objects"] == 12
    dev = json.loads(meta["dev"])
    assert dev["step"] == 8 and dev["objects"] == 6 and 0 <= dev["per_object_iou"] <= 100
    assert meta["command"].startswith("box2mask train lite --dataset yolo")
    assert (tmp_path / "whole" / "best.safetensors").is_file()
    assert ckpt.load(model).input_scale == DEFAULT_INPUT_SCALE  # a random start's input scale

    killed_out = tmp_path / "killed"
    rng = random.Random(5)
    kills = 0
    for _ in range(3):  # killed at a random moment after a saved step, three times
        proc = _cli(_args(data, killed_out))
        t0 = time.monotonic()
        while not (killed_out / "state.pt").is_file() and proc.poll() is None:
            assert time.monotonic() - t0 < 120
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=120)
    assert kills >= 1
    last = _cli(_args(data, killed_out))
    _, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    a, b = ckpt.load(model).metadata, ckpt.load(killed_out / "model.safetensors").metadata
    assert a["tensors"] == b["tensors"]  # the same weights, bit for bit
    assert {k: v for k, v in a.items() if k != "command"} == {
        k: v for k, v in b.items() if k != "command"
    }
    steps = [json.loads(x)["step"] for x in (killed_out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # lines of steps lost to a kill are not left behind


def test_sigint_saves_and_the_same_command_resumes(data, tmp_path):
    proc = _cli(_args(data, tmp_path / "run", "--steps", "400"))
    t0 = time.monotonic()
    while not (tmp_path / "run" / "state.pt").is_file():
        assert proc.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err


def test_changed_options_are_refused_and_overwrite_starts_afresh(data, tmp_path):
    res = CliRunner().invoke(app, _args(data, tmp_path / "run", "--steps", "2"))
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, _args(data, tmp_path / "run", "--steps", "2", "--lr", "0.01"))
    assert res.exit_code == 2 and "other options" in res.output and "lr" in res.output
    res = CliRunner().invoke(
        app, _args(data, tmp_path / "run", "--steps", "2", "--lr", "0.01", "--overwrite")
    )
    assert res.exit_code == 0, res.output


def test_fine_tuning_changes_the_masks_and_loads_back(data, tmp_path):
    """``--init lite``: the shipped weights fine-tuned on the fixture; the new file keeps
    their network and window rule, records where it started, and changes the masks."""
    from box2mask.io import sha256_file
    from box2mask.models.lite import shipped_weights

    shipped = ckpt.load(shipped_weights())
    res = CliRunner().invoke(app, _args(data, tmp_path / "tuned", "--init", "lite", "--lr", "0.01"))
    assert res.exit_code == 0, res.output
    tuned = tmp_path / "tuned" / "model.safetensors"
    loaded = ckpt.load(tuned)
    recipe = json.loads(loaded.metadata["recipe"])
    assert recipe["init_sha256"] == sha256_file(shipped_weights())
    assert loaded.net.arch == shipped.net.arch  # the shipped network, not --widths 8,12
    assert (loaded.context, loaded.min_side) == (shipped.context, shipped.min_side)
    assert loaded.input_scale == shipped.input_scale  # kept unless --input-scale says otherwise
    outs = {}
    for name, extra in (("shipped", []), ("tuned", ["--checkpoint", str(tuned)])):
        out = tmp_path / f"conv-{name}"
        res = CliRunner().invoke(app, ["convert", "--dataset", "yolo", "--root", str(data), "--opt",
                                       "split=valid", "--out", str(out), "--model", "lite",
                                       *extra])  # fmt: skip
        assert res.exit_code == 0, res.output
        outs[name] = json.loads((out / "annotations.json").read_text())["annotations"]
    assert len(outs["shipped"]) == len(outs["tuned"]) == 8
    assert {a["mask_source"] for a in outs["tuned"]} == {"model"}
    assert [a["segmentation"] for a in outs["shipped"]] != [
        a["segmentation"] for a in outs["tuned"]
    ]
    assert all(0 <= a["score"] <= 1 for a in outs["tuned"])


def test_bad_training_options_are_one_message(tmp_path, data):
    for extra, says in (
        (["--widths", "8,x"], "--widths"),
        (["--context", "0.5"], "--context"),
        (["--input-scale", "0"], "--input-scale"),
        (["--box-jitter", "0.9"], "--box-jitter"),
    ):
        res = CliRunner().invoke(app, _args(data, tmp_path / "r", *extra))
        assert res.exit_code == 2 and says in res.output, res.output
    res = CliRunner().invoke(app, ["train", "lite", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "no training data" in res.output
    res = CliRunner().invoke(
        app, _args(data, tmp_path / "r", "--init", str(tmp_path / "nope.safetensors"))
    )
    assert res.exit_code == 2 and "nope.safetensors" in res.output


def test_a_job_is_training_data_with_its_reviewed_objects_drawn_first(data, tmp_path):
    from box2mask.job import ObjectChange, apply_changes
    from box2mask.train.lite.cache import build_cache
    from box2mask.train.lite.loop import draw_weights
    from box2mask.train.lite.sources import data_source

    job = tmp_path / "job"
    res = CliRunner().invoke(app, ["convert", "--dataset", "yolo", "--root", str(data), "--opt",
                                   "split=train", "--out", str(job), "--model", "box"])  # fmt: skip
    assert res.exit_code == 0, res.output
    part = json.loads(next((job / ".box2mask" / "parts").rglob("*.json")).read_text())
    seq, k = part["image"]["sequence"], part["image"]["frame_index"]
    x, y, w, h = part["annotations"][1]["bbox"]
    poly = [x, y, x + w, y, x + w, y + h / 2, x, y + h / 2]  # a person's corrected mask
    apply_changes(job, [
        ObjectChange("replace", seq, k, part["annotations"][1]["track_id"],
                     annotation={"segmentation": [poly]}, review_tool="test"),
        ObjectChange("review", seq, k, part["annotations"][0]["track_id"]),
    ], doing="correct")  # fmt: skip
    cache = build_cache(tmp_path / "cache", [data_source(job)], 16)
    # box fills are shapes, not masks: only the two objects a person vouched for are data
    assert len(cache) == 2 and cache.reviewed.all()
    assert draw_weights(cache, 0.0, 4.0).tolist() == [4.0, 4.0]
    _, mask = cache.patch(int(np.argmin(cache.box[:, 3] - cache.box[:, 1])))
    assert 0 < (mask > 127).mean() < 1
    res = CliRunner().invoke(app, ["train", "lite", "--data", str(job), "--out", str(tmp_path / "run"),
                                   "--steps", "2", "--batch-pixels", "16384", "--widths", "8,12",
                                   "--full", "4", "--threads", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = ckpt.load(tmp_path / "run" / "model.safetensors").metadata
    assert json.loads(meta["data"])[0]["job"] == str(job.resolve())
