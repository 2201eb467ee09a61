"""The encoder's speed paths keep SAM's numerics.

- the windowed blocks' attention without the padding tokens' projections equals
  ``segment_anything``'s own ``Block`` (padding and no padding);
- ``--precision int8`` and ``bf16`` give masks at IoU >= 0.98 to fp32 on a tiny
  SAM (random weights, random relative-position tables).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Block
from tiny_sam import write_sam_pth

from box2mask.models.sam import Int8DynamicLinear, _block_sdpa, load_prompt_model

torch.set_num_threads(1)


@pytest.mark.parametrize("grid", [20, 28, 14])  # padded to 28; exact windows; one window
def test_windowed_block_equals_segment_anything(grid: int) -> None:
    torch.manual_seed(grid)
    blk = Block(32, num_heads=2, use_rel_pos=True, window_size=14, input_size=(14, 14))
    with torch.no_grad():
        blk.attn.rel_pos_h.normal_()
        blk.attn.rel_pos_w.normal_()
        blk.attn.qkv.bias.normal_()  # padding tokens project to the bias: make it count
        x = torch.randn(2, grid, grid, 32)
        ref, ours = blk(x), _block_sdpa(blk, x)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)


def _masks(model, images: torch.Tensor, boxes: torch.Tensor, dtype=None) -> torch.Tensor:
    index = torch.arange(len(boxes)) % len(images)
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else torch.inference_mode()
    with torch.inference_mode(), ctx:
        logits, _ = model.decode(model.encode(images), boxes, index)
    return logits > 0


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    path = write_sam_pth(tmp_path_factory.mktemp("enc_speed"), seed=4)
    rng = np.random.default_rng(4)
    low = torch.from_numpy(rng.integers(0, 256, size=(2, 3, 24, 24)).astype(np.float32))
    images = F.interpolate(low, size=(1024, 1024), mode="bicubic").clamp(0, 255).round()
    images = images.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    boxes = torch.tensor(
        [[300.0, 350.0, 700.0, 620.0], [100.5, 80.0, 260.0, 300.25], [40.0, 500.0, 980.0, 1000.0],
         [480.0, 480.0, 560.0, 530.0]]
    )  # fmt: skip
    fp32 = load_prompt_model("sam", path)
    return path, images, boxes, _masks(fp32, images, boxes)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_precision_masks_agree_with_fp32(tiny, precision: str) -> None:
    path, images, boxes, want = tiny
    model = load_prompt_model("sam", path)
    if precision == "int8":
        model.quantize_encoder_int8()
        got = _masks(model, images, boxes)
    else:
        got = _masks(model, images, boxes, torch.bfloat16)
    for w, g in zip(want, got, strict=True):
        assert w.any() and not w.all(), "degenerate fp32 mask; pick another box"
        assert _iou(w, g) >= 0.98


def test_int8_full_range_activations_halve_the_error() -> None:
    """8-bit activations (VNNI CPUs) against torch's 7-bit ``reduce_range`` on the same weights."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 192)
    x = torch.randn(4, 50, 96)
    with torch.inference_mode():
        want = lin(x)
        err = {}
        for reduce in (True, False):
            got = Int8DynamicLinear(lin, reduce_range=reduce)(x)
            assert got.shape == want.shape and got.dtype == torch.float32
            err[reduce] = ((got - want).norm() / want.norm()).item()
    assert err[False] < 0.6 * err[True] and err[True] < 0.05, err


def test_cpu_bf16_decoder_runs_in_fp32(tiny) -> None:
    """Under CPU bf16 autocast only the encoder is bf16: the same features decode as in fp32."""
    path, images, boxes, _ = tiny
    model = load_prompt_model("sam", path)
    index = torch.arange(len(boxes)) % len(images)
    with torch.inference_mode():
        feats = model.encode(images[:2])
        want, want_iou = model.decode(feats, boxes, index)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, got_iou = model.decode(feats, boxes, index)
    assert torch.equal(got, want) and torch.equal(got_iou, want_iou)
