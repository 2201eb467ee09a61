"""box2mask's sam / hq-sam / ros-sam against the reference implementations.

Tiny random checkpoints (tests/tiny_sam.py) in the official layouts are loaded
by box2mask and by ``segment_anything`` / ``segment_anything_hq`` (strictly, so
the key names are checked too); both must give the same low-res logits, IoU
and masks for the same image and box.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    check_against,
    check_mixed_batch,
    encode_decode,
    mask_iou,
    reference_sam,
    smooth_images,
)
from tiny_sam import TINY_ARCH, write_checkpoints

from box2mask.models.base import PromptModel
from box2mask.models.lora import LoRAQKV
from box2mask.models.registry import MODELS
from box2mask.models.sam import attention_sdpa, load_prompt_model

torch.set_num_threads(1)

BOXES = np.array([[300.0, 350.0, 700.0, 620.0], [100.5, 80.0, 260.0, 300.25]], dtype=np.float32)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_checkpoints(tmp_path_factory.mktemp("sam_ckpts"), ros_seed=3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return smooth_images()


def _reference(module, hq: bool, checkpoint: Path):
    """``module.Sam`` + ``SamPredictor`` of the tiny architecture, loaded strictly."""
    a = TINY_ARCH
    encoder = module.modeling.ImageEncoderViT(
        img_size=1024,
        patch_size=16,
        embed_dim=a.embed_dim,
        depth=a.depth,
        num_heads=a.num_heads,
        mlp_ratio=a.mlp_dim / a.embed_dim,
        out_chans=256,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        global_attn_indexes=a.global_attn_indexes,
        window_size=a.window_size,
    )
    sam = reference_sam(module.modeling, encoder, hq, vit_dim=a.embed_dim)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sam.load_state_dict(state, strict=True)
    return module.SamPredictor(sam.eval())


def test_sam_matches_segment_anything(ckpts, images) -> None:
    import segment_anything

    model = load_prompt_model("sam", ckpts["sam"])
    pred = _reference(segment_anything, hq=False, checkpoint=ckpts["sam"])
    boxes, logits, iou = check_mixed_batch(model, pred, images, BOXES)

    # segment_anything's own attention gives the same result as the SDPA path.
    model.attention = "reference"
    ref_logits, ref_iou = encode_decode(model, images[:1], boxes[1:2], [0])
    assert torch.allclose(ref_logits[0], logits[1], atol=1e-4, rtol=1e-4)
    assert torch.allclose(ref_iou[0], iou[1], atol=1e-5)


@pytest.mark.parametrize("hq_token_only", [False, True])
def test_hq_sam_matches_segment_anything_hq(ckpts, images, hq_token_only) -> None:
    import segment_anything_hq

    model = MODELS.get("hq-sam").build(ckpts["hq"], "cpu", hq_token_only=hq_token_only)
    pred = _reference(segment_anything_hq, hq=True, checkpoint=ckpts["hq"])
    logits, iou = encode_decode(model, images[1:], BOXES, [0, 0])
    pred.set_image(images[1])
    for j in range(len(BOXES)):
        check_against(pred, {"hq_token_only": hq_token_only}, logits[j], iou[j], BOXES[j])


def test_ros_sam_is_hq_token_of_folded_weights(ckpts, images, tmp_path) -> None:
    """ROS-SAM = HQ-SAM's HQ-token mask on LoRA-folded weights (checked against segment_anything_hq)."""
    import segment_anything_hq
    from safetensors.torch import load_file

    ros = MODELS.get("ros-sam").build(ckpts["ros_folded"])
    folded_pth = tmp_path / "folded.pth"
    torch.save(load_file(ckpts["ros_folded"]), folded_pth)
    pred = _reference(segment_anything_hq, hq=True, checkpoint=folded_pth)
    logits, iou = encode_decode(ros, images[:1], BOXES[:1], [0])
    pred.set_image(images[0])
    check_against(pred, {"hq_token_only": True}, logits[0], iou[0], BOXES[0])


def test_ros_sam_layouts_agree(ckpts, images) -> None:
    """Authors' folder (with or without ``module.``), unfolded and folded files load to
    the same weights, and the unfolded LoRA modules give the same masks as folded ones."""
    folded = load_prompt_model("ros-sam", ckpts["ros_folded"])
    want = folded.state_dict()
    for key in ("ros", "folder", "folder_module"):
        got = load_prompt_model("ros-sam", ckpts[key]).state_dict()
        assert got.keys() == want.keys(), key
        for name, tensor in want.items():
            assert torch.allclose(got[name], tensor, atol=1e-6, rtol=1e-5), (key, name)
    unfolded = load_prompt_model("ros-sam", ckpts["folder"], fold=False)
    assert any(isinstance(m, LoRAQKV) for m in unfolded.modules())
    assert not any(isinstance(m, LoRAQKV) for m in folded.modules())
    ref_logits, ref_iou = encode_decode(folded, images[:1], BOXES[:1], [0])
    logits, iou = encode_decode(unfolded, images[:1], BOXES[:1], [0])
    assert torch.allclose(logits, ref_logits, atol=2e-4, rtol=1e-4)
    assert torch.allclose(iou, ref_iou, atol=1e-5)
    assert mask_iou(logits > 0, ref_logits > 0) > 0.999


def test_lora_changes_the_output(ckpts, images, tmp_path) -> None:
    """The LoRA update matters: dropping it (HQ-token mask of the un-LoRA'd weights) differs."""
    from safetensors.torch import load_file

    state = load_file(ckpts["ros"])
    base = {
        k.replace("attn.qkv.qkv.", "attn.qkv."): v for k, v in state.items() if "linear_" not in k
    }
    torch.save(base, tmp_path / "no_lora.pth")
    no_lora = load_prompt_model("hq-sam", tmp_path / "no_lora.pth", hq_token_only=True)
    ros = load_prompt_model("ros-sam", ckpts["ros"])
    x = torch.from_numpy(images[:1])
    a, b = no_lora.encode(x).embeddings, ros.encode(x).embeddings
    assert (a - b).abs().max() > 1e-2


def test_lora_module_equals_folded() -> None:
    torch.manual_seed(0)
    qkv = torch.nn.Linear(24, 72)
    lora = LoRAQKV(qkv, rank=5)
    torch.nn.init.normal_(lora.linear_b_q.weight)
    torch.nn.init.normal_(lora.linear_b_v.weight)
    x = torch.randn(2, 7, 7, 24)
    out = lora(x)
    assert torch.allclose(out, lora.folded()(x), atol=1e-5)
    # k is untouched, q and v are changed
    assert torch.allclose(out[..., 24:48], qkv(x)[..., 24:48])
    assert not torch.allclose(out[..., :24], qkv(x)[..., :24])
    assert not torch.allclose(out[..., 48:], qkv(x)[..., 48:])


def test_fresh_lora_is_identity() -> None:
    qkv = torch.nn.Linear(16, 48)
    x = torch.randn(1, 3, 3, 16)
    assert torch.equal(LoRAQKV(qkv, rank=2)(x), qkv(x))


@pytest.mark.parametrize("window", [True, False])
def test_sdpa_attention_equals_reference(window: bool) -> None:
    from segment_anything.modeling.image_encoder import Attention

    torch.manual_seed(1)
    size = (14, 14) if window else (64, 64)
    attn = Attention(32, num_heads=2, use_rel_pos=True, input_size=size)
    with torch.no_grad():
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
    x = torch.randn(3 if window else 1, *size, 32)
    with torch.no_grad():
        ref, ours = attn(x), attention_sdpa(attn, x)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)


def test_registry_entries_build_prompt_models(ckpts) -> None:
    for name, ckpt in (("sam", "sam"), ("hq-sam", "hq"), ("ros-sam", "folder")):
        spec = MODELS.get(name)
        assert spec.kind == "prompt" and spec.needs_checkpoint
        model = spec.build(ckpts[ckpt], device="cpu")
        assert isinstance(model, PromptModel)
        assert model.name == name and model.image_size == 1024
        assert not model.training
        assert all(p.device.type == "cpu" for p in model.parameters())
    assert MODELS.get("sam").default_weights == (
        "sam-vit-b", "sam-vit-l", "sam-vit-h", "mobile-sam-vit-t",
    )  # fmt: skip
    assert MODELS.get("hq-sam").default_weights[0] == "hq-sam-vit-b"


def test_encode_and_decode_shapes(ckpts, images) -> None:
    model = load_prompt_model("hq-sam", ckpts["hq"])
    feats = model.encode(torch.from_numpy(images[:1]))
    assert feats.embeddings.shape == (1, 256, 64, 64)
    assert feats.interm is not None and feats.interm.shape == (1, 64, 64, TINY_ARCH.embed_dim)
    logits, iou = model.decode(feats, torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long))
    assert logits.shape == (0, 256, 256) and iou.shape == (0,)
    assert (
        load_prompt_model("sam", ckpts["sam"]).encode(torch.from_numpy(images[:1])).interm is None
    )
    with pytest.raises(ValueError, match=r"\(B, 1024, 1024, 3\) uint8"):
        model.encode(torch.zeros((1, 512, 512, 3), dtype=torch.uint8))
