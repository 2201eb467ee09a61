"""Tiny random SAM 2.1 checkpoints in the official layout, built by Meta's own builder.

``build_sam2`` / ``build_sam2_video_predictor`` (hydra, ``configs/sam2.1/sam2.1_hiera_t.yaml``)
with overrides for a small Hiera (width 16, stages 1-1-2-1, global attention in
block 3 = the last of stage 3, as box2mask's rule for non-official shapes says),
one memory-attention layer and one fuser layer, 64 channels where the published
models have 256 (prompt encoder, decoder, memory attention); the real 1024 px input
and 64-channel memory. Saved as ``torch.save({"model": state_dict})``,
the layout of ``sam2.1_hiera_*.pt``. Everything is seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=256",
    "++model.memory_encoder.fuser.num_layers=1",
    # a 64-channel model (the published ones are 256): prompt encoder, decoder, memory
    "++model.image_encoder.neck.d_model=64",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=64",
    "++model.memory_attention.d_model=64",
    "++model.memory_attention.layer.d_model=64",
    "++model.memory_attention.layer.self_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.embedding_dim=64",
    "++model.memory_encoder.fuser.layer.dim=64",
    "++model.memory_encoder.in_dim=64",
    "++model.memory_encoder.mask_downsampler.embed_dim=64",
]


def reference_net(checkpoint: Path | None = None, video: bool = False):
    """Meta's model of the tiny shape (image: ``build_sam2``; video: ``build_sam2_video_predictor``)."""
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    build = build_sam2_video_predictor if video else build_sam2
    return build(
        CONFIG, str(checkpoint) if checkpoint else None, device="cpu",
        hydra_overrides_extra=list(OVERRIDES),
    )  # fmt: skip


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict; tensors SAM 2 starts at constants get random values too."""
    torch.manual_seed(seed)
    net = reference_net()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim <= 1 or float(p.abs().sum()) == 0.0 or "embed" in name or "tpos" in name:
                base = 1.0 if p.ndim == 1 and name.endswith("weight") and "norm" in name else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def write_sam2_pt(directory: Path, seed: int = 0, name: str = "sam2.1_tiny_test.pt") -> Path:
    """A SAM 2 checkpoint in the official layout: ``torch.save({"model": state_dict})``."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": tiny_state_dict(seed)}, path)
    return path
