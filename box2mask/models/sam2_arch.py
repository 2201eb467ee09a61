"""The shape of a SAM 2 checkpoint, read from its tensors (no ``sam2`` import).

Official SAM 2 / 2.1 files are ``torch.save({"model": state_dict})`` with the
key names of ``sam2.modeling.sam2_base.SAM2Base``. What the tensors give is
read from them: the Hiera width and blocks per stage (a stage starts at the
block with a ``proj`` of its own), the background and window position-embedding
sizes, the FPN channels, the memory width, the number of memories and of
memory-attention layers. What they cannot give (attention heads, which blocks
attend globally, the later window sizes) is taken from Meta's configs for the
four published models, matched by width and stages, and for any other shape
from the rule :func:`infer_sam2_arch` documents (``docs/models.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from box2mask.errors import CheckpointError

TRUNK = "image_encoder.trunk."
#: a key only SAM 2 checkpoints have
SAM2_KEY = TRUNK + "patch_embed.proj.weight"

#: Meta's configs (sam2.1_hiera_{t,s,b+,l}.yaml): (embed_dim, stages) -> name,
#: heads, global attention blocks, window sizes per stage
OFFICIAL_HIERA: dict[tuple[int, tuple[int, ...]], tuple[str, int, tuple[int, ...], tuple[int, ...]]] = {
    (96, (1, 2, 7, 2)): ("hiera_t", 1, (5, 7, 9), (8, 4, 14, 7)),
    (96, (1, 2, 11, 2)): ("hiera_s", 1, (7, 10, 13), (8, 4, 14, 7)),
    (112, (2, 3, 16, 3)): ("hiera_b+", 2, (12, 16, 20), (8, 4, 14, 7)),
    (144, (2, 6, 36, 4)): ("hiera_l", 2, (23, 33, 43), (8, 4, 16, 8)),
}


@dataclass(frozen=True)
class Sam2Arch:
    """Everything needed to build a SAM 2 model of a checkpoint's shape.

    Attributes:
        name: ``"hiera_t"``, ``"hiera_s"``, ``"hiera_b+"``, ``"hiera_l"`` or ``"custom"``.
        version: ``"2.1"`` or ``"2.0"`` (2.0 files lack ``no_obj_embed_spatial``).
        embed_dim, num_heads, stages, global_att_blocks, window_spec,
            window_pos_embed_bkg_spatial_size: the Hiera trunk.
        backbone_channel_list: trunk channels per FPN level, deepest first.
        d_model: FPN / prompt / decoder / memory-attention width (256).
        mem_dim: memory width (64).
        num_maskmem: memories attended to (7: the frame itself + 6).
        memory_layers, memory_ffn, fuser_layers: memory attention and encoder depth.
    """

    name: str
    version: str
    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    backbone_channel_list: tuple[int, ...]
    d_model: int = 256
    mem_dim: int = 64
    num_maskmem: int = 7
    memory_layers: int = 4
    memory_ffn: int = 2048
    fuser_layers: int = 2

    @property
    def depth(self) -> int:
        return sum(self.stages)


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := rx.match(k))})


def infer_sam2_arch(state: Mapping[str, torch.Tensor], source: str = "") -> Sam2Arch:
    """Read a SAM 2 model's shape from its state dict.

    For shapes other than Meta's four, the parts the tensors do not hold are:
    1 attention head in the first stage (doubling per stage, as Hiera does),
    global attention in the last block of the third stage, windows
    ``(w, 4, 14, 7)`` with ``w`` the side of ``pos_embed_window``.

    Raises:
        CheckpointError: a tensor a SAM 2 model always has is missing.
    """
    where = f" in {source}" if source else ""

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"not a SAM 2 checkpoint{where}: {key} missing")
        return state[key]

    embed_dim = int(need(SAM2_KEY).shape[0])
    blocks = _indices(state, r"image_encoder\.trunk\.blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"Hiera blocks{where} are not numbered 0..N-1: {blocks[:8]}")
    starts = [0] + [i for i in blocks if f"{TRUNK}blocks.{i}.proj.weight" in state]
    stages = tuple(b - a for a, b in zip(starts, [*starts[1:], len(blocks)], strict=True))
    bkg = need(TRUNK + "pos_embed").shape[2:]
    window0 = int(need(TRUNK + "pos_embed_window").shape[-1])
    official = OFFICIAL_HIERA.get((embed_dim, stages))
    if official is not None:
        name, heads, glob, windows = official
    else:
        name, heads = "custom", 1
        glob = (sum(stages[:3]) - 1,) if len(stages) >= 3 else ()
        windows = (window0, 4, 14, 7)[: len(stages)] + (7,) * max(0, len(stages) - 4)
    levels = _indices(state, r"image_encoder\.neck\.convs\.(\d+)\.conv\.weight")
    channels = tuple(int(state[f"image_encoder.neck.convs.{i}.conv.weight"].shape[1]) for i in levels)
    d_model = int(need("image_encoder.neck.convs.0.conv.weight").shape[0])
    return Sam2Arch(
        name=name,
        version="2.1" if "no_obj_embed_spatial" in state else "2.0",
        embed_dim=embed_dim,
        num_heads=heads,
        stages=stages,
        global_att_blocks=tuple(glob),
        window_spec=tuple(windows),
        window_pos_embed_bkg_spatial_size=(int(bkg[0]), int(bkg[1])),
        backbone_channel_list=channels,
        d_model=d_model,
        mem_dim=int(need("maskmem_tpos_enc").shape[-1]),
        num_maskmem=int(need("maskmem_tpos_enc").shape[0]),
        memory_layers=len(_indices(state, r"memory_attention\.layers\.(\d+)\.")),
        memory_ffn=int(need("memory_attention.layers.0.linear1.weight").shape[0]),
        fuser_layers=len(_indices(state, r"memory_encoder\.fuser\.layers\.(\d+)\.")),
    )
