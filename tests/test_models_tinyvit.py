"""TinyViT encoders: MobileSAM (``--model sam``) and Light HQ-SAM (``--model hq-sam``).

Random weights of the real shape (TinyViT-5M + SAM's full decoder, ~10M
parameters) are saved in the official layouts by the official modules:

- ``mobile_sam.pt``: the state dict of MobileSAM's ``build_sam_vit_t`` model,
  i.e. ``segment_anything``'s ``Sam`` with MobileSAM's TinyViT (built here from
  ``segment_anything_hq``'s ``tiny_vit_sam.TinyViT``, whose code is MobileSAM's
  but for also returning the stage-1 features; see :class:`MobileSamTinyViT`);
- ``sam_hq_vit_tiny.pth``: the state dict of ``segment_anything_hq``'s
  ``sam_model_registry["vit_tiny"]``.

box2mask loads them strictly (architecture read from the tensors) and must give
the reference predictors' logits, IoU and masks for the same crop and box.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import (
    assert_keys_listed,
    assert_missing_refused,
    assert_truncated_refused,
    assert_wrong_kind,
    assert_wrong_shape,
    check_against,
    check_mixed_batch,
    reference_sam,
    smooth_images,
)

from box2mask.errors import CheckpointError
from box2mask.models.checkpoint import (
    TINYVIT_5M,
    TinyViTArch,
    infer_encoder_arch,
    inspect_checkpoint,
)
from box2mask.models.registry import MODELS
from box2mask.models.sam import load_prompt_model
from box2mask.models.tiny_vit import TinyViT

torch.set_num_threads(2)

# Boxes in the 1024 model input; the second one small, as satellite objects are.
BOXES = np.array([[300.0, 350.0, 700.0, 620.0], [100.5, 80.0, 160.0, 130.25]], dtype=np.float32)


def _tiny_vit_kwargs() -> dict:
    """MobileSAM's ``build_sam_vit_t`` encoder arguments (segment_anything_hq's are the same)."""
    return dict(
        img_size=1024, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
        mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8,
    )  # fmt: skip


def _mobile_sam_reference():
    """MobileSAM's ``build_sam_vit_t`` model, built from segment_anything + TinyViT."""
    import segment_anything.modeling as sa
    from segment_anything_hq.modeling.tiny_vit_sam import TinyViT as HqTinyViT

    class MobileSamTinyViT(HqTinyViT):
        """MobileSAM's ``mobile_sam/modeling/tiny_vit_sam.py``.

        Line for line segment_anything_hq's file except ``forward_features``,
        which in MobileSAM returns the embeddings alone (no ``interm_embeddings``).
        """

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x)[0]

    return reference_sam(
        sa,
        MobileSamTinyViT(**_tiny_vit_kwargs()),
        hq=False,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def _light_hq_sam_reference():
    from segment_anything_hq import sam_model_registry

    return sam_model_registry["vit_tiny"]()


def _randomise(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random values for everything the official init sets to constants.

    The attention biases (zeros), BatchNorm statistics and affine (ones/zeros; a
    zero gain on every MBConv's last BN), LayerNorm affine: a loader that drops,
    swaps or caches any of them changes the output.
    """
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            if not v.dtype.is_floating_point:
                continue
            if k.endswith("running_var"):
                v.copy_(0.5 + torch.rand(v.shape, generator=gen))
            elif k.endswith("attention_biases"):
                v.copy_(torch.randn(v.shape, generator=gen))
            elif k.endswith(("running_mean", "bn.bias")) or (
                v.ndim == 1 and ("norm" in k or "neck" in k)
            ):
                v.add_(0.1 * torch.randn(v.shape, generator=gen))
            elif k.endswith("bn.weight"):
                v.copy_(0.5 + 0.5 * torch.rand(v.shape, generator=gen))
    return {k: v.clone() for k, v in state.items()}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tinyvit")
    torch.manual_seed(0)
    mobile = _randomise(_mobile_sam_reference(), seed=1)
    torch.save(mobile, d / "mobile_sam.pt")
    torch.manual_seed(2)
    hq = _randomise(_light_hq_sam_reference(), seed=3)
    torch.save(hq, d / "sam_hq_vit_tiny.pth")
    return {"mobile": d / "mobile_sam.pt", "hq": d / "sam_hq_vit_tiny.pth"}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return smooth_images()


# --- what the files are -------------------------------------------------------------


@pytest.mark.parametrize(("key", "kind"), [("mobile", "sam"), ("hq", "hq-sam")])
def test_inspect_reads_tinyvit_5m(ckpts, key, kind) -> None:
    info = inspect_checkpoint(ckpts[key])
    assert (info.kind, info.model, info.arch) == (kind, kind, "vit_t")
    enc = info.encoder
    assert isinstance(enc, TinyViTArch)
    assert enc.embed_dims == TINYVIT_5M["embed_dims"] and enc.depths == TINYVIT_5M["depths"]
    assert enc.num_heads[1:] == TINYVIT_5M["num_heads"][1:]
    assert enc.window_sizes[1:] == TINYVIT_5M["window_sizes"][1:]
    assert (enc.num_classes, enc.mlp_ratio, enc.interm_dim) == (1000, 4.0, 160)
    state = torch.load(ckpts[key], weights_only=True)
    assert info.num_params == sum(v.numel() for v in state.values())
    assert 9_000_000 < info.num_params < 11_500_000  # TinyViT-5M + SAM's prompt encoder/decoder


@pytest.mark.parametrize(("key", "kind"), [("mobile", "sam"), ("hq", "hq-sam")])
def test_weights_verify_prints_the_tinyvit_stages(ckpts, key, kind) -> None:
    from typer.testing import CliRunner

    import box2mask.cli.commands  # noqa: F401  (registers the subcommands)
    from box2mask.cli import app

    r = CliRunner().invoke(app, ["weights", "verify", str(ckpts[key]), "--no-hash"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert f"model {kind} (kind {kind})" in text and "architecture vit_t" in text
    # TinyViT-5M (MobileSAM's build_sam_vit_t); stage 1 is MBConv, without heads or windows
    assert (
        "encoder TinyViT, 4 stages (the first convolutional): widths [64, 128, 160, 320], "
        "depths [2, 2, 6, 2], heads [-, 4, 5, 10], windows [-, 7, 14, 7]"
    ) in text
    assert "global attention" not in text


# --- masks against the official code --------------------------------------------------


def test_mobile_sam_matches_reference(ckpts, images) -> None:
    from segment_anything import SamPredictor

    model = MODELS.get("sam").build(ckpts["mobile"], "cpu")
    assert isinstance(model.image_encoder, TinyViT) and not model.is_hq
    ref = _mobile_sam_reference()
    ref.eval()  # as build_sam_vit_t: eval, then a strict load...
    ref.load_state_dict(torch.load(ckpts["mobile"], weights_only=True), strict=True)
    pred = SamPredictor(ref.eval())  # ...then eval again, as MobileSAM's README does
    check_mixed_batch(model, pred, images, BOXES)


@pytest.mark.parametrize("stage", [1, 2])
def test_sdpa_attention_equals_the_original(ckpts, stage) -> None:
    """box2mask's SDPA path and the original softmax(QKᵀ) path, on a real-shape block."""
    model = load_prompt_model("sam", ckpts["mobile"])
    blk = model.image_encoder.layers[stage].blocks[0]
    side = blk.input_resolution[0]
    x = torch.randn(1, side * side, blk.attn.qkv.in_features)
    with torch.no_grad():
        ref, ours = blk(x, "reference"), blk(x, "sdpa")
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)


def test_light_hq_sam_matches_segment_anything_hq(ckpts, images) -> None:
    from segment_anything_hq import SamPredictor, sam_model_registry

    ref = sam_model_registry["vit_tiny"](checkpoint=str(ckpts["hq"]))  # the official builder
    # (it loads with strict=False; check the layout strictly too)
    ref.load_state_dict(torch.load(ckpts["hq"], weights_only=True), strict=True)
    pred = SamPredictor(ref.eval())  # eval after loading, as demo_hqsam_light.py does
    pred.set_image(images[1])
    features = None
    for hq_token_only in (False, True):
        model = MODELS.get("hq-sam").build(ckpts["hq"], "cpu", hq_token_only=hq_token_only)
        assert model.is_hq and model.mask_decoder.vit_dim == 160
        # one encoder pass for both (same weights); the output differs in the decoder only
        features = features or model.encode(torch.from_numpy(images[1:]))
        assert features.interm is not None and features.interm.shape == (1, 64, 64, 160)
        logits, iou = model.decode(features, torch.from_numpy(BOXES), torch.tensor([0, 0]))
        for j in range(len(BOXES)):
            kwargs = {"hq_token_only": hq_token_only}
            check_against(pred, kwargs, logits[j], iou[j], BOXES[j])


# --- the same errors as for SAM -------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ("hq-sam", "mobile", "is a plain SAM checkpoint, it has no HQ decoder (mask_decoder.hf_token"),
        ("sam", "hq", "is an HQ-SAM checkpoint (it has the HQ decoder, mask_decoder.hf_token.weight); use --model hq-sam"),
        ("ros-sam", "hq", "is an HQ-SAM checkpoint"),
        ("ros-sam", "mobile", "is a plain SAM checkpoint, it has no HQ decoder and no LoRA"),
    ],
)  # fmt: skip
def test_checkpoint_of_another_kind(ckpts, model, key, message) -> None:
    assert_wrong_kind(model, ckpts[key], message)


@pytest.mark.parametrize("key", ["mobile", "hq"])
def test_truncated_file(ckpts, tmp_path, key) -> None:
    assert_truncated_refused("sam" if key == "mobile" else "hq-sam", ckpts[key], tmp_path)


def test_missing_file(tmp_path) -> None:
    assert_missing_refused("sam", tmp_path / "mobile_sam.pt")


def test_strict_keys_and_shapes(ckpts, tmp_path) -> None:
    state = torch.load(ckpts["mobile"], weights_only=True)
    extra = "image_encoder.layers.1.blocks.0.extra"
    missing = "image_encoder.layers.2.blocks.3.local_conv.bn.running_var"
    assert_keys_listed("sam", state, tmp_path / "odd.pt", extra, missing)
    qkv = "image_encoder.layers.2.blocks.0.attn.qkv.weight"
    assert_wrong_shape("sam", state, tmp_path / "wrong.pt", qkv, (480, 128), (480, 160))


def test_lora_training_needs_a_vit(ckpts) -> None:
    """ROS-SAM (LoRA on the ViT's q/v) cannot start from a TinyViT file: said so."""
    state = torch.load(ckpts["hq"], weights_only=True)
    with pytest.raises(CheckpointError, match="is a TinyViT .*needs a ViT-B/L/H checkpoint"):
        infer_encoder_arch(state, str(ckpts["hq"]))


# --- through the pipeline -------------------------------------------------------------


def test_light_hq_sam_runs_through_convert(viso_root, ckpts, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from box2mask.cli import app
    from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

    root, _ = viso_root
    ckpt = tmp_path / "w" / "sam_hq_vit_tiny.pth"
    ckpt.parent.mkdir()
    shutil.copy(ckpts["hq"], ckpt)
    args = ["convert", "--dataset", "viso", "--root", root, "--out", tmp_path / "o",
            "--model", "auto", "--checkpoint", ckpt, "--hq-token-only",
            "--sequences", "plane/001", "--batch-size", "2"]  # fmt: skip
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    anns = json.loads((tmp_path / "o" / "annotations.json").read_text())["annotations"]
    assert len(anns) == 4 and {a["mask_source"] for a in anns} == {"model"}
