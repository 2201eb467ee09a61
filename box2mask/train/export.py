"""After training: folded files for inference, and the ``--dry-run`` pictures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from box2mask.errors import CheckpointError, UsageError
from box2mask.train.augment import Augmented

RUN_FILES = {"model": "model.safetensors", "best": "best.safetensors"}


def run_model_file(run: Path, which: str = "model") -> Path:
    """The ROS-SAM file of a run folder: ``model`` (final) or ``best`` (best validation IoU)."""
    run = Path(run)
    if run.is_file():
        return run
    if which not in RUN_FILES:
        raise UsageError(f"--which must be model or best, got {which!r}")
    path = run / RUN_FILES[which]
    if not path.is_file():
        have = sorted(p.name for p in run.glob("*.safetensors")) if run.is_dir() else []
        raise CheckpointError(
            f"{path} does not exist (the run has {', '.join(have) or 'no model files'}; "
            "model.safetensors is written when the last epoch ends)"
        )
    return path


def export_folded(run: Path, out: Path, which: str = "model") -> Path:
    """Write the run's model with LoRA folded into the qkv weights (inference costs as SAM).

    Args:
        run: a run folder, or a ROS-SAM ``.safetensors`` file.
        out: destination ``.safetensors``.
        which: ``model`` or ``best`` (for a run folder).

    Returns:
        ``out``; its metadata is the source's plus ``lora_folded = true`` and
        ``exported_from``.
    """
    from box2mask.models.checkpoint import load_checkpoint, read_tensors, save_ros_sam
    from box2mask.models.lora import fold_lora_state_dict

    src = run_model_file(run, which)
    state, info = load_checkpoint(src)
    if info.kind != "ros-sam":
        raise CheckpointError(f"{src} is a {info.kind} checkpoint, not a box2mask ROS-SAM file")
    _, metadata = read_tensors(src)
    if not info.lora_folded:
        state = fold_lora_state_dict(state)
    keep = {k: v for k, v in metadata.items() if k not in ("format", "format_version", "arch",
            "encoder", "lora_rank", "lora_folded", "lora_targets")}  # fmt: skip
    keep["exported_from"] = json.dumps(str(src))
    return save_ros_sam(Path(out), state, lora_rank=info.lora_rank, extra_metadata=keep)


_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230]], dtype=np.uint8,
)  # fmt: skip


def sample_picture(aug: Augmented, title: str = "") -> np.ndarray:
    """An augmented sample as an RGB picture: masks tinted, boxes outlined.

    Returns:
        ``(H, W, 3)`` uint8 RGB, the sample's image size.
    """
    pic = aug.image.astype(np.float32)
    for k, m in enumerate(aug.masks):
        c = _COLOURS[k % len(_COLOURS)].astype(np.float32)
        pic[m] = 0.5 * pic[m] + 0.5 * c
    pic = pic.clip(0, 255).astype(np.uint8)
    for k, b in enumerate(aug.boxes):
        c = tuple(int(v) for v in _COLOURS[k % len(_COLOURS)])
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cv2.rectangle(pic, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), c, 2)
    if title:
        cv2.putText(pic, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    return pic


def write_picture(path: Path, picture: np.ndarray) -> Path:
    """Write an RGB picture as PNG."""
    from box2mask.io import write_png_file  # not cv2.imwrite: it crashes on non-UTF-8 names

    if not write_png_file(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise UsageError(f"cannot write {path}")
    return path
