"""Options of a tiny ROS-SAM training run on the ``train_data`` fixture (tests/conftest.py)."""

from __future__ import annotations

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
