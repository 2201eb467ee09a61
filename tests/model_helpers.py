"""Checks shared by the SAM-family model tests (SAM, HQ-SAM, ROS-SAM, TinyViT).

smooth_images()                       two smooth random 1024×1024 RGB crops
reference_sam(modeling, encoder, hq)  the official ``Sam`` around an encoder
encode_decode(model, images, ...)     box2mask's low-res logits and IoU
check_against(pred, ...)              one output against a ``SamPredictor``
check_mixed_batch(model, pred, ...)   three boxes over two images, each checked
assert_wrong_kind / assert_truncated_refused / assert_missing_refused /
assert_keys_listed / assert_wrong_shape
                                      the checkpoint errors every loader gives
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from box2mask.errors import CheckpointError
from box2mask.models.sam import load_prompt_model


def smooth_images() -> np.ndarray:
    """Two smooth random 1024×1024 RGB images (uint8)."""
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, size=(2, 3, 32, 32)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(low), size=(1024, 1024), mode="bilinear")
    return up.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


def reference_sam(modeling, encoder: torch.nn.Module, hq: bool, **sam_kwargs):
    """``modeling.Sam`` (segment_anything's or segment_anything_hq's) around ``encoder``.

    SAM's prompt encoder and two-way decoder at full size, as every official
    builder makes them; ``hq`` takes ``MaskDecoderHQ`` fed by ``sam_kwargs``'
    ``vit_dim`` (popped), otherwise the plain ``MaskDecoder``.
    """
    vit_dim = sam_kwargs.pop("vit_dim", None)
    transformer = modeling.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)
    decoder_cls = modeling.MaskDecoderHQ if hq else modeling.MaskDecoder
    extra = {"vit_dim": vit_dim} if hq else {}
    decoder = decoder_cls(
        num_multimask_outputs=3,
        transformer=transformer,
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        **extra,
    )
    prompt = modeling.PromptEncoder(
        embed_dim=256,
        image_embedding_size=(64, 64),
        input_image_size=(1024, 1024),
        mask_in_chans=16,
    )
    return modeling.Sam(
        image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder, **sam_kwargs
    )


def encode_decode(model, images: np.ndarray, boxes: np.ndarray, index: list[int]):
    """box2mask's ``(logits, iou)`` for ``boxes`` on ``images[index]``."""
    feats = model.encode(torch.from_numpy(images))
    return model.decode(feats, torch.from_numpy(boxes), torch.tensor(index))


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def check_against(pred, kwargs, logits, iou, box) -> None:
    """One of our outputs against ``pred`` (a SamPredictor whose image is set)."""
    masks, ious, low = pred.predict(box=box, multimask_output=False, return_logits=True, **kwargs)
    low = torch.from_numpy(low[0])
    assert logits.shape == (256, 256) and logits.dtype == torch.float32
    scale = low.abs().max().item()
    assert torch.allclose(logits, low, atol=1e-4 * max(scale, 1.0), rtol=1e-4)
    assert abs(iou.item() - float(ious[0])) < 1e-4
    # SamPredictor upsamples 256 -> 1024 bilinearly and thresholds at 0; do the same.
    ours_1024 = F.interpolate(
        logits[None, None], (1024, 1024), mode="bilinear", align_corners=False
    )
    ref_mask = torch.from_numpy(masks[0] > 0)
    assert ref_mask.any() and not ref_mask.all(), "degenerate reference mask; pick another box"
    assert mask_iou(ours_1024[0, 0] > 0, ref_mask) >= 0.99


def check_mixed_batch(model, pred, images: np.ndarray, two_boxes: np.ndarray):
    """Three boxes over two images in one batch: batching must not mix images.

    Boxes ``two_boxes[0], two_boxes[1], two_boxes[0]`` on images 1, 0, 1, each
    checked against ``pred``; returns ``(boxes, logits, iou)``.
    """
    boxes = np.concatenate([two_boxes, two_boxes[:1]])
    logits, iou = encode_decode(model, images, boxes, [1, 0, 1])
    pred.set_image(images[1])
    check_against(pred, {}, logits[0], iou[0], boxes[0])
    check_against(pred, {}, logits[2], iou[2], boxes[2])
    pred.set_image(images[0])
    check_against(pred, {}, logits[1], iou[1], boxes[1])
    return boxes, logits, iou


# --- checkpoint errors --------------------------------------------------------------


def assert_wrong_kind(model: str, path: Path, message: str) -> None:
    """Loading ``path`` as ``model`` is refused with ``message``, naming the file."""
    with pytest.raises(CheckpointError) as err:
        load_prompt_model(model, path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def assert_truncated_refused(model: str, src: Path, tmp_path: Path) -> None:
    """The first half of ``src`` is refused as corrupt or truncated, naming the file."""
    data = src.read_bytes()
    bad = tmp_path / src.name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_prompt_model(model, bad)
    assert "corrupt or truncated" in str(err.value)
    assert str(bad) in str(err.value)


def assert_missing_refused(model: str, path: Path) -> None:
    """A path that does not exist: ``checkpoint not found: <path>``."""
    with pytest.raises(CheckpointError, match="checkpoint not found: .*" + re.escape(path.name)):
        load_prompt_model(model, path)


def assert_keys_listed(model: str, state: dict, path: Path, extra: str, missing: str) -> None:
    """``state`` plus ``extra`` and less ``missing``, saved at ``path``: both are listed."""
    odd = dict(state)
    odd[extra] = torch.zeros(1)
    del odd[missing]
    torch.save(odd, path)
    with pytest.raises(CheckpointError) as err:
        load_prompt_model(model, path)
    msg = str(err.value)
    assert f"missing keys: {missing}" in msg
    assert f"unexpected keys: {extra}" in msg


def assert_wrong_shape(
    model: str, state: dict, path: Path, key: str, shape: tuple, expected: tuple
) -> None:
    """``state`` with ``key`` of ``shape`` instead of ``expected``: the shapes are named."""
    wrong = dict(state)
    wrong[key] = torch.zeros(shape)
    torch.save(wrong, path)
    message = f"wrong shapes: {key} {tuple(shape)} (expected {tuple(expected)})"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_prompt_model(model, path)
