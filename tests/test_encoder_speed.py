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

from box2mask.models.sam import (
    Int8DynamicLinear,
    _block_sdpa,
    cpu_has_vnni,
    int8_bits,
    load_prompt_model,
)

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


@pytest.mark.parametrize("compiled", [False, True])
def test_int8_crop_features_do_not_depend_on_the_batch(tiny, compiled: bool) -> None:
    """Dynamic int8 takes activation ranges over its input: a crop batched with others
    gets the features it gets alone, whatever its companions (a resumed job batches
    crops differently from an uninterrupted one); compiled, one graph of batch 1."""
    path, images, _, _ = tiny
    model = load_prompt_model("sam", path).quantize_encoder_int8()
    if compiled:
        model.compile_encoder(backend="eager")
    other = (255 - images).contiguous()  # other ranges than images'
    with torch.inference_mode():
        alone = model.encode(images[:1]).embeddings[0]
        first = model.encode(torch.cat([images[:1], other])).embeddings
        last = model.encode(torch.cat([other[1:], images[:1]])).embeddings
    assert first.shape == (3, 256, 64, 64)
    assert torch.equal(first[0], alone) and torch.equal(last[1], alone)
    assert not torch.equal(first[1], alone)  # the crops really differ
    if compiled:
        assert model._compiled_sizes == [1]


def _int8_emulated(lin: torch.nn.Linear, x: torch.Tensor, weight_bits: int, act_bits: int):
    """What an int8 linear computes when no product saturates: dequantized per-channel
    weights times the activations fake-quantized over the whole tensor (uint8, with 0)."""
    w = lin.weight.detach()
    w_scale = w.abs().amax(dim=1, keepdim=True) / (2 ** (weight_bits - 1) - 1)
    wq = torch.round(w / w_scale) * w_scale
    levels = 2**act_bits - 1
    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = (hi - lo) / levels
    zero = torch.round(-lo / scale)
    xq = (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale
    return xq @ wq.t() + lin.bias.detach()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


#: torch's scheme and every one int8_bits may pick on this CPU
SCHEMES = sorted({(8, 7), int8_bits(False), int8_bits(cpu_has_vnni())})


@pytest.mark.parametrize("bits", SCHEMES, ids=lambda b: f"w{b[0]}a{b[1]}")
def test_int8_products_do_not_saturate_on_this_cpu(bits: tuple[int, int]) -> None:
    """Each scheme box2mask may pick here gives the exact int8 result (AVX2 without VNNI
    saturates 8-bit × 8-bit pairs: the reason :func:`int8_bits` drops a bit there)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 192)
    x = torch.randn(4, 50, 96)
    with torch.inference_mode():
        got = Int8DynamicLinear(lin, *bits)(x)
        assert got.shape == (4, 50, 192) and got.dtype == torch.float32
        assert _rel(got, _int8_emulated(lin, x, *bits)) < 1e-3


@pytest.mark.skipif(cpu_has_vnni(), reason="with AVX512-VNNI 8-bit x 8-bit does not saturate")
def test_8_bit_weights_and_activations_saturate_without_vnni() -> None:
    """Why :func:`int8_bits` drops a bit on this CPU: the full-range product is wrong here."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 192)
    x = torch.randn(4, 50, 96)
    with torch.inference_mode():
        assert _rel(Int8DynamicLinear(lin, 8, 8)(x), _int8_emulated(lin, x, 8, 8)) > 0.01


def test_int8_scheme_of_this_cpu_beats_torch_reduce_range() -> None:
    """The scheme of this CPU (8/8 bits with VNNI, 7-bit weights without) against torch's
    8-bit weights with 7-bit activations, on the same layer."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 192)
    x = torch.randn(4, 50, 96)
    with torch.inference_mode():
        want = lin(x)
        ours = _rel(Int8DynamicLinear(lin, *int8_bits(cpu_has_vnni()))(x), want)
        torchs = _rel(Int8DynamicLinear(lin, 8, 7)(x), want)
    assert ours < 0.75 * torchs and torchs < 0.05, (ours, torchs)


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
