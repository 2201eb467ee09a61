"""box2mask's ``sam2`` against Meta's SAM 2 (the ``sam2`` package) on the same crops and boxes.

A tiny random SAM 2.1 checkpoint in the official layout (tests/tiny_sam2.py,
built by Meta's hydra builder) is loaded by box2mask (architecture read from the
file) and by ``build_sam2`` / ``build_sam2_video_predictor`` (strictly); both must
give the same masks: image mode against ``SAM2ImagePredictor``, and propagation
along a short synthetic track against ``SAM2VideoPredictor``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sam2")

from tiny_sam2 import reference_net, write_sam2_pt  # noqa: E402

from box2mask.errors import CheckpointError, UsageError  # noqa: E402
from box2mask.models.checkpoint import inspect_checkpoint  # noqa: E402
from box2mask.models.registry import MODELS  # noqa: E402
from box2mask.models.sam2 import load_sam2  # noqa: E402

torch.set_num_threads(2)

BOXES = np.array([[300.0, 350.0, 700.0, 620.0], [100.5, 80.0, 260.0, 300.25]], dtype=np.float32)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sam2_pt(tmp_path_factory.mktemp("sam2"))


@pytest.fixture(scope="module")
def model(ckpt):
    return load_sam2(ckpt)


def _smooth_images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(n, 3, 24, 24)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(low), size=(1024, 1024), mode="bilinear")
    return up.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _up(logits: torch.Tensor) -> np.ndarray:
    """Low-res logits → 1024 masks, as SAM2Transforms.postprocess_masks does."""
    up = F.interpolate(logits[:, None].float(), (1024, 1024), mode="bilinear", align_corners=False)
    return (up[:, 0] > 0).numpy()


def test_checkpoint_is_sam2_of_its_own_shape(ckpt) -> None:
    info = inspect_checkpoint(ckpt)
    assert (info.kind, info.model, info.arch) == ("sam2", "sam2", "custom")
    assert (info.embed_dim, info.depth, info.num_heads, info.global_attn_indexes) == (16, 5, 1, (3,))


def test_image_mode_matches_sam2_image_predictor(ckpt, model) -> None:
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    images = _smooth_images(2)
    feats = model.encode(torch.from_numpy(images))
    logits, iou = model.decode(feats, torch.from_numpy(BOXES[[0, 1, 1]]), torch.tensor([0, 0, 1]))
    ours = _up(logits)
    pred = SAM2ImagePredictor(reference_net(ckpt))  # build_sam2 loads strictly (raises otherwise)
    for j, (img, box) in enumerate([(0, 0), (0, 1), (1, 1)]):
        if j != 1:
            pred.set_image(images[img])
        masks, ious, low = pred.predict(box=BOXES[box], multimask_output=False)
        assert abs(float(ious[0]) - float(iou[j])) < 1e-3
        assert _iou(ours[j], masks[0] > 0) >= 0.99
        # the reference's low-res logits too (clamped to ±32 there)
        assert torch.allclose(logits[j].clamp(-32, 32), torch.from_numpy(low[0]), atol=1e-2)


def test_propagation_matches_sam2_video_predictor(ckpt, model) -> None:
    """A 4-frame track: prompted on frames 0 and 2 (--prompt-every 2), the others propagated."""
    n = 4
    frames = _smooth_images(n, seed=3)
    boxes = np.array([[400.0 + 20 * i, 380.0, 600.0 + 20 * i, 560.0] for i in range(n)], np.float32)
    prompted = [i % 2 == 0 for i in range(n)]
    outs = [model.backbone(torch.from_numpy(frames[i : i + 1])) for i in range(n)]
    track = model.propagate(outs, boxes, prompted)
    ours = _up(track.logits)

    video = reference_net(ckpt, video=True)
    state = _reference_state(video, frames)
    for i in range(n):
        if prompted[i]:
            video.add_new_points_or_box(state, frame_idx=i, obj_id=1, box=boxes[i])
    ref = {i: (m[0, 0] > 0).numpy() for i, _ids, m in video.propagate_in_video(state)}
    assert sorted(ref) == list(range(n))
    for i in range(n):
        assert _iou(ours[i], ref[i]) >= 0.99, i


def _reference_state(video, frames: np.ndarray) -> dict:
    """``SAM2VideoPredictor.init_state`` on exactly these pixels.

    ``init_state`` reads JPEG folders or MP4s only (lossy): it is given a folder
    of placeholder JPEGs, then its ``images`` are replaced by the same crops
    normalised as ``load_video_frames`` does, and frame 0's cached features
    recomputed from them.
    """
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        for i in range(len(frames)):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f"{d}/{i:05d}.jpg")
        state = video.init_state(d)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    state["images"] = (x - mean) / std
    state["video_height"] = state["video_width"] = 1024
    state["cached_features"] = {}
    video._get_image_feature(state, frame_idx=0, batch_size=1)
    return state


# --- the same clear errors as for SAM -------------------------------------------


def test_other_kind_truncated_and_missing_files(ckpt, tmp_path) -> None:
    from tiny_sam import write_sam_pth

    sam = write_sam_pth(tmp_path)
    with pytest.raises(CheckpointError, match="plain SAM checkpoint|not SAM 2.*--model sam"):
        load_sam2(sam)
    with pytest.raises(CheckpointError, match="SAM 2 checkpoint.*--model sam2"):
        MODELS.get("sam").build(ckpt)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_sam2(cut)
    with pytest.raises(CheckpointError, match="not found"):
        load_sam2(tmp_path / "nope.pt")


def test_strict_keys(ckpt, tmp_path) -> None:
    state = torch.load(ckpt, weights_only=True)["model"]
    state.pop("no_mem_embed")
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save({"model": state}, bad)
    with pytest.raises(CheckpointError, match="missing keys: no_mem_embed.*unexpected keys: extra"):
        load_sam2(bad)


def test_registry_builds_sam2_and_refuses_hq_token_only(ckpt) -> None:
    spec = MODELS.get("sam2")
    assert spec.checkpoint_kinds == ("sam2",) and spec.temporal and not spec.int8
    assert spec.default_weights[0] == "sam2.1-hiera-large"
    m = spec.build(ckpt)
    assert m.name == "sam2" and m.image_size == 1024
    with pytest.raises(UsageError, match="hq-token-only"):
        spec.build(ckpt, hq_token_only=True)
