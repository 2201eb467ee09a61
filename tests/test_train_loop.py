"""The training loop: resume after a stop or a kill, the saved model in convert, export, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from box2mask.engine import EngineOptions, MaskEngine
from box2mask.errors import JobMismatch
from box2mask.models.registry import MODELS
from box2mask.models.sam import load_prompt_model
from box2mask.train.loop import train
from tests.train_helpers import logged_epochs, torchrun_train_command, train_options

torch.set_num_threads(1)


@pytest.fixture
def data(train_data: Path) -> Path:
    return train_data


_opts = partial(train_options, steps_per_epoch=1)


def test_stop_and_resume_gives_the_uninterrupted_state(data: Path, tmp_path: Path) -> None:
    full = train(_opts(data, tmp_path / "full"))
    assert full.epochs_done == 2 and full.model_path is not None
    # an injected stop after the first epoch, then the same command again
    ended: list[int] = []
    first = train(
        _opts(data, tmp_path / "split"),
        progress=lambda p: ended.append(p.epoch) if p.event == "epoch" else None,
        should_stop=lambda: bool(ended),
    )
    assert first.epochs_done == 1 and first.model_path is None
    second = train(_opts(data, tmp_path / "split"))
    assert second.resumed_from == 1 and second.epochs_done == 2
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    for n in a["trainable"]:
        assert torch.equal(a["trainable"][n], b["trainable"][n]), n
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for field in sa[k]:
            assert torch.equal(sa[k][field], sb[k][field]), (k, field)
    assert a["scheduler"] == b["scheduler"]
    epochs = [r["epoch"] for r in second.history]
    assert epochs == [1, 2]
    # another learning rate in the same run folder is refused, naming the option
    with pytest.raises(JobMismatch, match="lr"):
        train(_opts(data, tmp_path / "split", lr=5e-4))


def test_saved_model_loads_in_convert_and_gives_the_same_masks(data: Path, tmp_path: Path) -> None:
    res = train(_opts(data, tmp_path / "run", val_options={"split": "val"}, epochs=1))
    path = tmp_path / "run" / "model.safetensors"
    assert res.model_path == path
    assert np.isfinite(res.history[-1]["val_iou"])  # validation ran on the val split
    from box2mask.adapters.rossam import RosSam

    frames = list(RosSam(data / "ros", split="train").frames())

    def masks(model: torch.nn.Module) -> dict[tuple[str, int, int], np.ndarray]:
        out: dict[tuple[str, int, int], np.ndarray] = {}
        engine = MaskEngine(
            model,
            EngineOptions(box_fill_classes=(), workers=1),
            MODELS.get("box").build(),  # type: ignore[arg-type]
        )
        engine.run(
            frames,
            lambda fm: out.update(
                {(fm.frame.sequence, fm.frame.frame_index, m.track_id): m.mask for m in fm.masks}
            ),
        )
        return out

    in_memory = masks(res.model.eval())
    loaded = masks(MODELS.get("ros-sam").build(path))  # what convert --model ros-sam builds
    assert in_memory.keys() == loaded.keys() and len(in_memory) == 3
    for k in in_memory:
        diff = np.count_nonzero(in_memory[k] != loaded[k])
        assert diff <= 0.001 * in_memory[k].size, (k, diff)
    # the CLI: convert loads it; export folds it and the folded file gives the same logits
    from box2mask.cli import (
        app,
        commands,  # noqa: F401
    )

    runner = CliRunner()
    r = runner.invoke(app, ["convert", "--dataset", "rossam", "--root", str(data / "ros"),
                            "--out", str(tmp_path / "conv"), "--model", "ros-sam",
                            "--checkpoint", str(path), "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["train", "export", str(tmp_path / "run"), "--out", str(tmp_path / "f.safetensors")]
    )
    assert r.exit_code == 0, r.output
    folded = load_prompt_model("ros-sam", tmp_path / "f.safetensors")
    unfolded = load_prompt_model("ros-sam", path, fold=False)
    x = torch.randint(0, 256, (1, 1024, 1024, 3), dtype=torch.uint8)
    box, idx = torch.tensor([[100.0, 100.0, 400.0, 300.0]]), torch.zeros(1, dtype=torch.long)
    torch.testing.assert_close(
        folded.decode(folded.encode(x), box, idx)[0],
        unfolded.decode(unfolded.encode(x), box, idx)[0],
        atol=1e-4,
        rtol=1e-4,
    )
    meta = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["training"])
    assert meta["lora_rank"] == 4 and meta["dataset"] == "rossam"


def test_sigkill_then_rerun_resumes_from_the_saved_epoch(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "box2mask", "train", "--dataset", "rossam",
           "--root", str(data / "ros"), "--opt", "split=train", "--sam", str(data / "sam_tiny.pth"),
           "--hq", str(data / "sam_hq_tiny.pth"), "--out", str(out), "--lora-rank", "4",
           "--epochs", "3", "--steps-per-epoch", "1", "--frame-fraction", "1",
           "--lsj-scale", "0.5,1.5", "--workers", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            csv = out / "metrics.csv"
            if csv.is_file() and len(csv.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / "checkpoint.pt").is_file(), proc.stderr.read().decode() if proc.stderr else ""
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= saved < 3
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert logged_epochs(out) == [1, 2, 3]
    assert (out / "model.safetensors").is_file()


def test_dry_run_prints_parts_and_writes_pictures(data: Path, tmp_path: Path) -> None:
    from box2mask.cli import (
        app,
        commands,  # noqa: F401
    )

    r = CliRunner().invoke(app, ["train", "--dataset", "rossam", "--root", str(data / "ros"),
                                 "--sam", str(data / "sam_tiny.pth"), "--hq", str(data / "sam_hq_tiny.pth"),
                                 "--out", str(tmp_path / "run"), "--dry-run", "--frame-fraction", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    for part in ("lora", "last_block", "hq_decoder", "sam_decoder", "frozen"):
        assert part in r.output
    pics = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert len(pics) == 3  # three frames with objects (train + val, car-free)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_two_process_ddp_on_cpu_trains_and_rank_0_alone_writes(data: Path, tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2`` (Gloo on CPU): both epochs run, the LoRA moved
    off its zero start, one process reports and writes, and the model loads in convert."""
    out = tmp_path / "ddp"
    cmd = torchrun_train_command(data, out, "cpu", "--steps-per-epoch", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("model: ") == 1 and "stopped after" not in res.stdout, res.stdout
    assert json.loads((out / "run.json").read_text())["identity"]["world_size"] == 2
    assert logged_epochs(out) == [1, 2]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    lora_b = [v for k, v in state["trainable"].items() if ".linear_b_" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # fresh LoRA B is all zeros
    model = load_prompt_model("ros-sam", out / "model.safetensors", "cpu")
    assert model.is_hq
