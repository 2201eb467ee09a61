"""Checkpoint reading: kinds, architecture inference, strictness and error messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from model_helpers import (
    assert_keys_listed,
    assert_missing_refused,
    assert_truncated_refused,
    assert_wrong_kind,
    assert_wrong_shape,
)
from safetensors.torch import load_file, save_file
from tiny_sam import TINY_ARCH, TINY_LORA_RANK, tiny_state_dict, write_checkpoints

from box2mask.errors import CheckpointError, UsageError
from box2mask.models.checkpoint import (
    OFFICIAL_ARCHS,
    EncoderArch,
    infer_encoder_arch,
    inspect_checkpoint,
    save_ros_sam,
)
from box2mask.models.lora import fold_lora_state_dict
from box2mask.models.sam import build_modules, load_prompt_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_checkpoints(tmp_path_factory.mktemp("ckpts"))


# --- what a checkpoint is -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "model", "rank", "folded"),
    [
        ("sam", "sam", "sam", None, True),
        ("hq", "hq-sam", "hq-sam", None, True),
        ("ros", "ros-sam", "ros-sam", TINY_LORA_RANK, False),
        ("ros_folded", "ros-sam", "ros-sam", TINY_LORA_RANK, True),
        ("folder", "ros-sam-folder", "ros-sam", TINY_LORA_RANK, False),
        ("folder_module", "ros-sam-folder", "ros-sam", TINY_LORA_RANK, False),
    ],
)
def test_inspect_checkpoint(ckpts, key, kind, model, rank, folded) -> None:
    info = inspect_checkpoint(ckpts[key])
    assert (info.kind, info.model, info.lora_rank, info.lora_folded) == (kind, model, rank, folded)
    assert info.arch == "custom"
    assert (info.embed_dim, info.depth, info.num_heads) == (32, 2, 2)
    assert info.global_attn_indexes == (1,)
    assert info.num_params > 4_000_000  # the full-size decoder is there


@pytest.mark.parametrize("name", sorted(OFFICIAL_ARCHS))
def test_official_architectures_are_recognised(name: str) -> None:
    dim, depth, heads, glob = OFFICIAL_ARCHS[name]
    mlp = 4 * dim
    arch = EncoderArch(dim, depth, heads, glob, mlp_dim=mlp)
    enc, prompt, dec = build_modules(arch, hq=True, device="meta")
    state = {"image_encoder." + k: v for k, v in enc.state_dict().items()}
    inferred = infer_encoder_arch(state)
    assert inferred == arch and inferred.name == name
    # HQ decoder's ViT-feature input follows the encoder width (768 / 1024 / 1280)
    assert dec.state_dict()["compress_vit_feat.0.weight"].shape == (dim, 256, 2, 2)


def test_tiny_arch_is_inferred_from_tensors() -> None:
    assert infer_encoder_arch(tiny_state_dict(hq=False)) == TINY_ARCH


# --- wrong kind of checkpoint ---------------------------------------------


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ("hq-sam", "sam", "is a plain SAM checkpoint, it has no HQ decoder (mask_decoder.hf_token"),
        (
            "sam",
            "hq",
            "is an HQ-SAM checkpoint (it has the HQ decoder, mask_decoder.hf_token.weight); use --model hq-sam",
        ),
        ("ros-sam", "hq", "is an HQ-SAM checkpoint"),
        (
            "ros-sam",
            "sam",
            "is a plain SAM checkpoint, it has no HQ decoder and no LoRA; use --model sam",
        ),
        ("hq-sam", "ros", "is a ROS-SAM checkpoint (SAM + LoRA + HQ decoder); use --model ros-sam"),
        ("sam", "folder", "is a ROS-SAM checkpoint"),
    ],
)
def test_wrong_kind_is_named(ckpts, model, key, message) -> None:
    assert_wrong_kind(model, ckpts[key], message)


def test_hq_token_only_needs_hq_sam(ckpts) -> None:
    with pytest.raises(UsageError, match="--hq-token-only needs --model hq-sam"):
        load_prompt_model("sam", ckpts["sam"], hq_token_only=True)


def test_half_of_authors_folder_says_pass_the_folder(ckpts) -> None:
    for name in ("model.safetensors", "model_1.safetensors"):
        with pytest.raises(CheckpointError, match="pass the folder that holds model.safetensors"):
            load_prompt_model("ros-sam", ckpts["folder"] / name)


def test_incomplete_authors_folder(ckpts, tmp_path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(ckpts["folder"], folder)
    (folder / "model_1.safetensors").unlink()
    with pytest.raises(
        CheckpointError, match=r"not a ROS-SAM training folder: model_1.safetensors missing"
    ):
        load_prompt_model("ros-sam", folder)


# --- strictness ------------------------------------------------------------


def test_unexpected_and_missing_keys_are_listed(ckpts, tmp_path) -> None:
    state = torch.load(ckpts["sam"], weights_only=True)
    extra, missing = "image_encoder.extra.weight", "prompt_encoder.no_mask_embed.weight"
    assert_keys_listed("sam", state, tmp_path / "odd.pth", extra, missing)


def test_wrong_shape_is_reported(ckpts, tmp_path) -> None:
    state = torch.load(ckpts["sam"], weights_only=True)
    key = "mask_decoder.iou_token.weight"
    assert_wrong_shape("sam", state, tmp_path / "shape.pth", key, (1, 128), (1, 256))


def test_not_a_sam_state_dict(tmp_path) -> None:
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no SAM image encoder"):
        inspect_checkpoint(tmp_path / "other.pth")
    torch.save({"model": {"a": torch.zeros(1)}, "epoch": 3}, tmp_path / "wrapped.pth")
    with pytest.raises(CheckpointError, match="not a flat state dict of tensors"):
        inspect_checkpoint(tmp_path / "wrapped.pth")


def test_ros_sam_metadata_must_match_tensors(ckpts, tmp_path) -> None:
    state = load_file(ckpts["ros"])
    path = save_ros_sam(tmp_path / "r.safetensors", state, extra_metadata={"lora_rank": "7"})
    with pytest.raises(
        CheckpointError, match="metadata says lora_rank=7 but the LoRA tensors have rank 4"
    ):
        inspect_checkpoint(path)
    save_file(state, str(tmp_path / "nometa.safetensors"))
    with pytest.raises(CheckpointError, match="no box2mask ROS-SAM metadata"):
        inspect_checkpoint(tmp_path / "nometa.safetensors")


def test_incomplete_lora_is_refused(ckpts) -> None:
    state = load_file(ckpts["ros"])
    del state["image_encoder.blocks.1.attn.qkv.linear_b_v.weight"]
    with pytest.raises(KeyError, match="blocks.1.attn.qkv.linear_b_v.weight"):
        fold_lora_state_dict(state)


# --- missing and broken files ---------------------------------------------


def test_missing_file(tmp_path) -> None:
    assert_missing_refused("sam", tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="checkpoint folder not found|checkpoint not found"):
        inspect_checkpoint(tmp_path / "nope")


@pytest.mark.parametrize("key", ["sam", "ros"])
def test_truncated_file(ckpts, tmp_path, key) -> None:
    assert_truncated_refused("ros-sam" if key == "ros" else "sam", ckpts[key], tmp_path)


def test_garbage_and_empty_files(tmp_path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        inspect_checkpoint(tmp_path / "junk.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        inspect_checkpoint(tmp_path / "empty.pth")


def test_pickled_code_is_not_executed(tmp_path) -> None:
    """weights_only=True: a checkpoint that pickles an arbitrary object is refused."""

    torch.save({"image_encoder.x": torch.zeros(1), "evil": Path("/")}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        inspect_checkpoint(tmp_path / "evil.pth")
