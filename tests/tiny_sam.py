"""Tiny random SAM-family checkpoints in the official layouts, for tests.

A tiny encoder (ViT width 32, 2 blocks, 2 heads, block 1 global) keeps the real
1024 px input, 64×64 token grid, 14 px windows and the full-size 256-channel
prompt encoder and decoder, so every code path of the real models runs, in
well under a second per image on a CPU. Everything is seeded.

    write_sam_pth(dir)                 official SAM .pth layout
    write_hq_sam_pth(dir)              official HQ-SAM .pth layout
    write_ros_sam_file(dir, folded)    box2mask's ROS-SAM .safetensors
    write_authors_folder(dir, prefix)  ROS-SAM authors' training folder
    write_checkpoints(dir)             all of them, by key (a test module's fixture)
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from box2mask.models.checkpoint import EncoderArch, save_ros_sam
from box2mask.models.lora import LoRAQKV
from box2mask.models.sam import SamModel, build_modules

TINY_ARCH = EncoderArch(
    embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), window_size=14, mlp_dim=64
)
TINY_LORA_RANK = 4


def tiny_model(
    hq: bool, seed: int = 0, lora_rank: int | None = None, arch: EncoderArch = TINY_ARCH
) -> SamModel:
    """A randomly initialised tiny :class:`SamModel` (unfolded LoRA if ``lora_rank``).

    Tensors that SAM initialises to constants (relative positions, absolute
    positions, LayerNorm affine, LoRA ``B``) get random values too, so that a
    loader that drops or swaps them changes the output.
    """
    torch.manual_seed(seed)
    enc, prompt, dec = build_modules(arch, hq=hq, lora_rank=lora_rank)
    model = SamModel("tiny", enc, prompt, dec, output="sum" if hq else "sam")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("rel_pos_h", "rel_pos_w")):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("pos_embed"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif ("norm" in name or "neck.1" in name or "neck.3" in name) and p.ndim == 1:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
        for mod in model.modules():
            if isinstance(mod, LoRAQKV):
                # LoRA's B starts at zero; a trained one is not.
                for lin in (mod.linear_b_q, mod.linear_b_v):
                    lin.weight.copy_(0.05 * torch.randn(lin.weight.shape, generator=gen))
    return model.eval()


def tiny_state_dict(
    hq: bool, seed: int = 0, lora_rank: int | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of :func:`tiny_model` (official key names)."""
    return {k: v.clone() for k, v in tiny_model(hq, seed, lora_rank).state_dict().items()}


def write_sam_pth(directory: Path, seed: int = 0, name: str = "sam_tiny.pth") -> Path:
    """A SAM checkpoint in the official layout: ``torch.save`` of a flat state dict."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(hq=False, seed=seed), path)
    return path


def write_hq_sam_pth(directory: Path, seed: int = 0, name: str = "sam_hq_tiny.pth") -> Path:
    """An HQ-SAM checkpoint in the official layout (SAM keys plus the HQ decoder)."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(hq=True, seed=seed), path)
    return path


def write_ros_sam_file(
    directory: Path,
    seed: int = 0,
    folded: bool = False,
    rank: int = TINY_LORA_RANK,
    name: str = "ros_sam_tiny.safetensors",
) -> Path:
    """box2mask's ROS-SAM file; LoRA unfolded, or folded with ``folded=True``."""
    model = tiny_model(hq=True, seed=seed, lora_rank=rank)
    if folded:
        from box2mask.models.lora import fold_lora

        fold_lora(model.image_encoder)
    state = {k: v for k, v in model.state_dict().items()}
    return save_ros_sam(Path(directory) / name, state, lora_rank=rank)


def write_authors_folder(
    directory: Path,
    seed: int = 0,
    module_prefix: bool = False,
    rank: int = TINY_LORA_RANK,
    sam_decoder_seed: int = 99,
) -> Path:
    """The ROS-SAM authors' training folder (accelerate ``save_state`` layout).

    ``model.safetensors``: the HQ decoder, keys without ``mask_decoder.``;
    ``model_1.safetensors``: SAM with unfolded LoRA, including SAM's plain
    mask decoder (random weights of another seed, which ROS-SAM must not use).
    ``module_prefix`` adds ``module.`` to every key, as multi-GPU training does.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = tiny_state_dict(hq=True, seed=seed, lora_rank=rank)
    pre = "module." if module_prefix else ""
    decoder = {
        pre + k[len("mask_decoder.") :]: v.contiguous()
        for k, v in state.items()
        if k.startswith("mask_decoder.")
    }
    sam = {pre + k: v.contiguous() for k, v in state.items() if not k.startswith("mask_decoder.")}
    plain_decoder = tiny_state_dict(hq=False, seed=sam_decoder_seed)
    sam.update(
        {pre + k: v.contiguous() for k, v in plain_decoder.items() if k.startswith("mask_decoder.")}
    )
    save_file(decoder, str(folder / "model.safetensors"))
    save_file(sam, str(folder / "model_1.safetensors"))
    return folder


def write_checkpoints(directory: Path, seed: int = 0, ros_seed: int = 0) -> dict[str, Path]:
    """Every layout above in ``directory``, by key.

    ``sam``, ``hq`` (of ``seed``); ``ros`` (unfolded LoRA), ``ros_folded``,
    ``folder`` (the authors' folder) and ``folder_module`` (its keys with
    ``module.``), all of ``ros_seed``.
    """
    d = Path(directory)
    return {
        "sam": write_sam_pth(d, seed=seed),
        "hq": write_hq_sam_pth(d, seed=seed),
        "ros": write_ros_sam_file(d, seed=ros_seed),
        "ros_folded": write_ros_sam_file(
            d, seed=ros_seed, folded=True, name="ros_folded.safetensors"
        ),
        "folder": write_authors_folder(d / "checkpoint_5", seed=ros_seed),
        "folder_module": write_authors_folder(
            d / "checkpoint_5_ddp", seed=ros_seed, module_prefix=True
        ),
    }
