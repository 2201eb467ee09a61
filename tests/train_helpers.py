"""Options of a tiny ROS-SAM training run on the ``train_data`` fixture (tests/conftest.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from box2mask.train.loop import TrainOptions


def train_options(d: Path, out: Path, **kw: object) -> TrainOptions:
    """Two epochs of the tiny model on ``d/ros``'s train split, every option overridable."""
    base: dict[str, object] = dict(
        dataset="rossam", root=d / "ros", adapter_options={"split": "train"},
        sam=d / "sam_tiny.pth", hq=d / "sam_hq_tiny.pth", out=out, lora_rank=4, epochs=2,
        frame_fraction=1.0, log_every=1, lsj_scale=(0.5, 1.5),
    )  # fmt: skip
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def torchrun_train_command(d: Path, out: Path, device: str, *extra: str) -> list[str]:
    """``torchrun --nproc-per-node 2 -m box2mask train`` with :func:`train_options`' run
    (no loader workers) on ``device``, plus ``extra`` options."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "box2mask", "train", "--dataset", "rossam", "--root", str(d / "ros"),
        "--opt", "split=train", "--sam", str(d / "sam_tiny.pth"), "--hq", str(d / "sam_hq_tiny.pth"),
        "--out", str(out), "--lora-rank", "4", "--epochs", "2",
        "--frame-fraction", "1.0", "--lsj-scale", "0.5,1.5", "--workers", "0", "--device", device,
        *extra,
    ]  # fmt: skip


def logged_epochs(out: Path) -> list[int]:
    """The epochs that ``out/metrics.jsonl`` records as finished, in order."""
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in rows if r["kind"] == "epoch"]
