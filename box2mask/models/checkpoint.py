"""Reading SAM-family checkpoints: formats, kinds, architecture inference, strict key checks.

Formats read (see ``docs/models.md``):

- ``sam``: the official ``sam_vit_{b,l,h}_*.pth`` (a flat torch state dict), and
  MobileSAM's ``mobile_sam.pt`` (the same layout with a TinyViT encoder).
- ``hq-sam``: the official ``sam_hq_vit_{b,l,h}.pth`` (SAM keys plus the HQ decoder),
  and Light HQ-SAM's ``sam_hq_vit_tiny.pth`` (TinyViT encoder).
- ``ros-sam``: box2mask's own ROS-SAM file, one ``.safetensors`` with HQ-SAM key
  names, LoRA folded or unfolded, and metadata ``format = box2mask.ros-sam``
  (written by :func:`save_ros_sam`).
- ``ros-sam-folder``: the ROS-SAM authors' accelerate ``save_state`` folder
  (``model.safetensors`` = HQ decoder without the ``mask_decoder.`` prefix,
  ``model_1.safetensors`` = SAM with unfolded LoRA, optional ``module.`` prefix).

Torch files are read with ``weights_only=True``; nothing here unpickles code.
Every failure is a :class:`~box2mask.errors.CheckpointError` that names the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from box2mask.errors import CheckpointError
from box2mask.models.lora import LORA_SUFFIXES, lora_rank_of

CheckpointKind = Literal["sam", "hq-sam", "ros-sam", "ros-sam-folder", "sam2"]

#: ``format`` value in the metadata of box2mask's ROS-SAM file
ROS_SAM_FORMAT = "box2mask.ros-sam"
ROS_SAM_FORMAT_VERSION = "1"
#: the two files of the ROS-SAM authors' training folder
AUTHORS_DECODER_FILE = "model.safetensors"
AUTHORS_SAM_FILE = "model_1.safetensors"

_HQ_KEY = "mask_decoder.hf_token.weight"
_ENC = "image_encoder."

#: the official encoders: (embed_dim, depth, num_heads, global_attn_indexes)
OFFICIAL_ARCHS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


@dataclass(frozen=True)
class EncoderArch:
    """The shape of a SAM ViT image encoder, as read from its tensors.

    Attributes:
        embed_dim: ViT width ``D`` (768 / 1024 / 1280 for B / L / H).
        depth: number of blocks.
        num_heads: attention heads per block (``D / head_dim``).
        global_attn_indexes: blocks with global (not windowed) attention.
        window_size: side of the attention windows of the other blocks (14 in SAM).
        patch_size: ViT patch side in pixels (16).
        img_size: model input side in pixels (1024).
        mlp_dim: hidden width of the block MLPs (``4 D`` in SAM).
        out_chans: channels of the image embedding (256).
    """

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    patch_size: int = 16
    img_size: int = 1024
    mlp_dim: int = 3072
    out_chans: int = 256

    @property
    def name(self) -> str:
        """``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or ``"custom"``."""
        for name, (dim, depth, heads, glob) in OFFICIAL_ARCHS.items():
            if (self.embed_dim, self.depth, self.num_heads, self.global_attn_indexes) == (
                dim,
                depth,
                heads,
                glob,
            ) and (self.window_size, self.patch_size, self.img_size) == (14, 16, 1024):
                return name
        return "custom"


#: MobileSAM's TinyViT-5M (``build_sam_vit_t``), also Light HQ-SAM's encoder
TINYVIT_5M: dict[str, tuple[int, ...]] = {
    "embed_dims": (64, 128, 160, 320),
    "depths": (2, 2, 6, 2),
    "num_heads": (2, 4, 5, 10),
    "window_sizes": (7, 7, 14, 7),
}
_TINYVIT_KEY = _ENC + "patch_embed.seq.0.c.weight"
#: last-stage widths whose final patch merging keeps the 64×64 grid (stride 1), as
#: the original TinyViT decides it (``out_dim in (320, 448, 576)``)
STRIDE1_WIDTHS = (320, 448, 576)


@dataclass(frozen=True)
class TinyViTArch:
    """The shape of a TinyViT image encoder (MobileSAM, Light HQ-SAM), read from its tensors.

    Stage 0 is convolutional (MBConv), stages 1.. are windowed-attention blocks;
    each stage but the last ends in a patch merging to the next width.

    Attributes:
        embed_dims: width of each stage.
        depths: blocks per stage.
        num_heads: attention heads per stage (stage 0 has no attention: 1 is recorded).
        window_sizes: attention window side per stage (stage 0: 7 is recorded, unused).
        mlp_ratio: block MLP hidden width over the stage width.
        mbconv_expand_ratio: stage 0's MBConv hidden width over its width.
        local_conv_size: kernel of the depthwise conv between attention and MLP.
        num_classes: outputs of the stored (unused) ImageNet classifier head; 0 if none.
        in_chans, img_size, out_chans: 3, 1024, 256 in SAM.
    """

    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_sizes: tuple[int, ...]
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    num_classes: int = 1000
    in_chans: int = 3
    img_size: int = 1024
    out_chans: int = 256

    @property
    def name(self) -> str:
        """``"vit_t"`` (MobileSAM's TinyViT-5M) or ``"tinyvit"`` (another TinyViT)."""
        ref = TINYVIT_5M
        five_m = (self.embed_dims, self.depths, self.num_heads[1:], self.window_sizes[1:]) == (
            ref["embed_dims"], ref["depths"], ref["num_heads"][1:], ref["window_sizes"][1:]
        )  # fmt: skip
        return "vit_t" if five_m and (self.img_size, self.mlp_ratio) == (1024, 4.0) else "tinyvit"

    @property
    def grid(self) -> int:
        """Side of the token grid of the output (64)."""
        return self.img_size // 16

    @property
    def interm_dim(self) -> int:
        """Width of stage 1's output (after its merging), the HQ decoder's early feature (160)."""
        return self.embed_dims[2]


def is_tinyvit(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the image encoder in ``state_dict`` is a TinyViT (MobileSAM's layout)."""
    return _TINYVIT_KEY in state_dict


def infer_tinyvit_arch(state_dict: Mapping[str, torch.Tensor], source: str = "") -> TinyViTArch:
    """Read a TinyViT encoder's shape from its tensors (``image_encoder.`` prefix).

    Widths from the stem and the patch mergings' convs, depths from the block
    count per stage, heads from ``attention_biases`` ``(heads, window²)``, the
    window from its offsets (``window²``), the MLP and MBConv ratios from
    ``fc1`` / ``conv1``, the classifier size from ``head.weight``.
    """
    where = f" in {source}" if source else ""
    sd = state_dict

    def get(key: str) -> torch.Tensor:
        t = sd.get(_ENC + key)
        if t is None:
            raise CheckpointError(f"TinyViT encoder{where}: {_ENC + key} missing")
        return t

    stages = sorted(
        {int(m.group(1)) for k in sd if (m := re.match(r"image_encoder\.layers\.(\d+)\.", k))}
    )
    if len(stages) < 4 or stages != list(range(len(stages))):
        raise CheckpointError(
            f"TinyViT encoder{where}: stages are not numbered 0..3 (found {stages[:8]})"
        )
    dims: list[int] = [int(get("patch_embed.seq.2.c.weight").shape[0])]
    depths, heads, windows = [], [], []
    for i in stages:
        blocks = sorted(
            {
                int(m.group(1))
                for k in sd
                if (m := re.match(rf"image_encoder\.layers\.{i}\.blocks\.(\d+)\.", k))
            }
        )
        if not blocks or blocks != list(range(len(blocks))):
            raise CheckpointError(
                f"TinyViT encoder{where}: blocks of stage {i} are not numbered 0..N-1: {blocks[:8]}"
            )
        depths.append(len(blocks))
        if i == 0:
            heads.append(1)
            windows.append(7)
        else:
            bias = get(f"layers.{i}.blocks.0.attn.attention_biases")
            side = round(int(bias.shape[1]) ** 0.5)
            if side * side != int(bias.shape[1]):
                raise CheckpointError(
                    f"TinyViT encoder{where}: layers.{i} attention_biases {tuple(bias.shape)} "
                    "is not (heads, window²)"
                )
            heads.append(int(bias.shape[0]))
            windows.append(side)
        if i < len(stages) - 1:
            dims.append(int(get(f"layers.{i}.downsample.conv1.c.weight").shape[0]))
    dim1 = dims[1]
    fc1 = get("layers.1.blocks.0.mlp.fc1.weight")
    conv1 = get("layers.0.blocks.0.conv1.c.weight")
    local = get("layers.1.blocks.0.local_conv.c.weight")
    head = sd.get(_ENC + "head.weight")
    neck = get("neck.0.weight")
    arch = TinyViTArch(
        embed_dims=tuple(dims),
        depths=tuple(depths),
        num_heads=tuple(heads),
        window_sizes=tuple(windows),
        mlp_ratio=int(fc1.shape[0]) / dim1,
        mbconv_expand_ratio=int(conv1.shape[0]) / dims[0],
        local_conv_size=int(local.shape[-1]),
        num_classes=int(head.shape[0]) if head is not None else 0,
        in_chans=int(get("patch_embed.seq.0.c.weight").shape[1]),
        out_chans=int(neck.shape[0]),
    )
    # The original keeps a 64x64 grid only when the last merging has stride 1,
    # which it decides by width (320 / 448 / 576) and hard-codes the 64x64 view.
    if len(dims) != 4 or dims[-1] not in STRIDE1_WIDTHS or set(dims[1:3]) & set(STRIDE1_WIDTHS):
        raise CheckpointError(
            f"TinyViT encoder{where} has stage widths {dims}: MobileSAM's TinyViT needs 4 "
            f"stages, the last {' / '.join(map(str, STRIDE1_WIDTHS))} wide (64x64 output grid)"
        )
    return arch


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`inspect_checkpoint` finds in a checkpoint.

    Attributes:
        path: the file or folder.
        kind: ``"sam"``, ``"hq-sam"``, ``"ros-sam"`` (box2mask's file) or
            ``"ros-sam-folder"`` (the authors' training folder).
        arch: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, ``"custom"``; ``"vit_t"``
            (MobileSAM's TinyViT-5M) or ``"tinyvit"`` (another TinyViT).
        embed_dim, depth, num_heads, global_attn_indexes: the encoder's shape.
        lora_rank: LoRA rank for ROS-SAM checkpoints (``None`` otherwise, and for
            a box2mask file whose LoRA is folded and whose metadata gives none).
        lora_folded: whether LoRA is already folded into the qkv weights.
        num_params: number of stored parameters (elements), LoRA included.
        encoder: the full shape (:class:`EncoderArch` or :class:`TinyViTArch`).
            For a TinyViT (``arch`` ``"vit_t"``), ``embed_dim`` / ``num_heads`` are
            the last stage's, ``depth`` the number of blocks of all stages and
            ``global_attn_indexes`` empty.
        model: the ``--model`` name that loads it.
    """

    path: Path
    kind: CheckpointKind
    arch: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    lora_rank: int | None
    lora_folded: bool
    num_params: int
    encoder: EncoderArch | TinyViTArch | None = None

    @property
    def model(self) -> str:
        return "ros-sam" if self.kind.startswith("ros-sam") else self.kind


# ---------------------------------------------------------------------------
# reading files


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a flat ``name -> tensor`` file.

    Args:
        path: a ``.safetensors`` file, or anything else ``torch.save`` wrote
            (``.pth``, ``.pt``, ``.bin``); read onto the CPU.

    Returns:
        ``(tensors, metadata)``; metadata is the safetensors header's
        ``__metadata__`` (empty for torch files).

    Raises:
        CheckpointError: the file is missing, empty, corrupt or truncated, or
            holds something other than a flat dict of tensors.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, expected a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); download it again")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            tensors = {}
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    tensors[key] = f.get_tensor(key)
        except Exception as exc:  # safetensors raises its own untyped errors
            raise CheckpointError(
                f"could not read checkpoint {path} ({size:,} bytes) as safetensors: {exc}. "
                "The file is corrupt or truncated; download or copy it again."
            ) from exc
        return tensors, metadata
    try:
        try:
            # mmap: inspecting a 2.5 GB ViT-H file should not read it all into memory.
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # legacy (non-zip) files cannot be mapped
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
        inner = obj.get("model") if isinstance(obj, Mapping) else None
        if isinstance(inner, Mapping) and "image_encoder.trunk.patch_embed.proj.weight" in inner:
            obj = inner  # SAM 2's layout: torch.save({"model": state_dict})
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if reason.startswith("Weights only load failed"):
            # torch's advice (retry with weights_only=False) is the wrong one for a
            # file of unknown origin; name what it found instead
            detail = next(
                (
                    ln.strip()
                    for ln in str(exc).splitlines()
                    if ln.strip().startswith(("Unsupported", "WeightsUnpickler"))
                ),
                "",
            )
            reason = "not a tensor-only PyTorch file" + (f" ({detail})" if detail else "")
        raise CheckpointError(
            f"could not read checkpoint {path} ({size:,} bytes): {reason}. "
            "The file is corrupt or truncated, or not a PyTorch checkpoint; "
            "download it again (box2mask weights verify checks official files)."
        ) from exc
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        what = type(obj).__name__
        if isinstance(obj, Mapping):
            bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)][:3]
            what = f"a dict with non-tensor entries ({', '.join(bad)})"
        raise CheckpointError(
            f"checkpoint {path} is not a flat state dict of tensors (found {what}); "
            "box2mask reads the official SAM / HQ-SAM files and its own ROS-SAM files"
        )
    return dict(obj), metadata


def _strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if tensors and all(k.startswith(prefix) for k in tensors):
        return {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def read_authors_folder(folder: Path) -> dict[str, torch.Tensor]:
    """Read the ROS-SAM authors' training folder into one HQ-SAM-named state dict.

    ``model.safetensors`` (the HQ decoder) gets the ``mask_decoder.`` prefix;
    the image and prompt encoders come from ``model_1.safetensors`` (its last
    block and prompt encoder were trained, so not from a SAM file); LoRA stays
    unfolded. ``model_1``'s own ``mask_decoder.*`` (SAM's plain decoder) is
    dropped: ROS-SAM's output is the HQ token of the decoder in
    ``model.safetensors``, which holds its own copy of SAM's decoder.
    A ``module.`` prefix (multi-GPU training) is removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    missing = [n for n in (AUTHORS_DECODER_FILE, AUTHORS_SAM_FILE) if not (folder / n).is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir())[:8]
        raise CheckpointError(
            f"{folder} is not a ROS-SAM training folder: {', '.join(missing)} missing "
            f"(found: {', '.join(present) or 'nothing'}). The authors' training saves "
            f"{AUTHORS_DECODER_FILE} (HQ decoder) and {AUTHORS_SAM_FILE} (SAM + LoRA) per epoch."
        )
    decoder, _ = read_tensors(folder / AUTHORS_DECODER_FILE)
    sam, _ = read_tensors(folder / AUTHORS_SAM_FILE)
    decoder = _strip_prefix(decoder, "module.")
    sam = _strip_prefix(sam, "module.")
    if "hf_token.weight" not in decoder:
        raise CheckpointError(
            f"{folder / AUTHORS_DECODER_FILE} is not an HQ decoder: hf_token.weight missing "
            f"(keys start: {', '.join(sorted(decoder)[:3])})"
        )
    if lora_rank_of(sam) is None:
        raise CheckpointError(
            f"{folder / AUTHORS_SAM_FILE} has no LoRA tensors "
            "(image_encoder.blocks.N.attn.qkv.linear_a_q.weight); it is not ROS-SAM's SAM + LoRA"
        )
    out = {k: v for k, v in sam.items() if not k.startswith("mask_decoder.")}
    out.update({"mask_decoder." + k: v for k, v in decoder.items()})
    return out


# ---------------------------------------------------------------------------
# what a state dict is


def infer_encoder_arch(state_dict: Mapping[str, torch.Tensor], source: str = "") -> EncoderArch:
    """Read the encoder's shape from its tensors.

    Embed dim from ``patch_embed.proj.weight`` ``(D, 3, p, p)``; depth from the
    block count; head dim from ``rel_pos_h`` ``(2 * side - 1, head_dim)``; a
    block whose ``rel_pos_h`` spans the whole token grid (``2 * 64 - 1`` rows)
    has global attention, the others give the window size.

    Args:
        state_dict: keys with the ``image_encoder.`` prefix.
        source: the file, for messages.
    """
    where = f" in {source}" if source else ""
    key = _ENC + "patch_embed.proj.weight"
    if key not in state_dict and is_tinyvit(state_dict):
        raise CheckpointError(
            f"the image encoder{where} is a TinyViT (MobileSAM / Light HQ-SAM), not a ViT: "
            "it loads with --model sam / hq-sam; ROS-SAM's LoRA (q/v of the ViT blocks) "
            "needs a ViT-B/L/H checkpoint"
        )
    if key not in state_dict:
        raise CheckpointError(
            f"no SAM image encoder{where}: {key} missing "
            f"(keys start: {', '.join(sorted(state_dict)[:3]) or 'none'})"
        )
    proj = state_dict[key]
    embed_dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    pos = state_dict.get(_ENC + "pos_embed")
    grid = int(pos.shape[1]) if pos is not None else 1024 // patch
    blocks = sorted(
        {
            int(m.group(1))
            for k in state_dict
            if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))
        }
    )
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"encoder blocks{where} are not numbered 0..N-1: {blocks[:8]}")
    head_dim = None
    glob: list[int] = []
    windows: set[int] = set()
    for i in blocks:
        rel = state_dict.get(f"{_ENC}blocks.{i}.attn.rel_pos_h")
        if rel is None:
            raise CheckpointError(
                f"encoder block {i}{where} has no attn.rel_pos_h; "
                "box2mask loads SAM encoders with relative positions"
            )
        head_dim = int(rel.shape[1])
        side = (int(rel.shape[0]) + 1) // 2
        if side == grid:
            glob.append(i)
        else:
            windows.add(side)
    if head_dim is None or embed_dim % head_dim:
        raise CheckpointError(f"head dim {head_dim}{where} does not divide embed dim {embed_dim}")
    if len(windows) > 1:
        raise CheckpointError(f"encoder blocks{where} use several window sizes: {sorted(windows)}")
    lin1 = state_dict.get(f"{_ENC}blocks.0.mlp.lin1.weight")
    neck = state_dict.get(_ENC + "neck.0.weight")
    return EncoderArch(
        embed_dim=embed_dim,
        depth=len(blocks),
        num_heads=embed_dim // head_dim,
        global_attn_indexes=tuple(glob),
        window_size=windows.pop() if windows else 0,
        patch_size=patch,
        img_size=grid * patch,
        mlp_dim=int(lin1.shape[0]) if lin1 is not None else 4 * embed_dim,
        out_chans=int(neck.shape[0]) if neck is not None else 256,
    )


def infer_arch(
    state_dict: Mapping[str, torch.Tensor], source: str = ""
) -> EncoderArch | TinyViTArch:
    """The encoder's shape, ViT (:func:`infer_encoder_arch`) or TinyViT (:func:`infer_tinyvit_arch`)."""
    if is_tinyvit(state_dict):
        return infer_tinyvit_arch(state_dict, source)
    return infer_encoder_arch(state_dict, source)


def detect_kind(
    state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str], source: str = ""
) -> CheckpointKind:
    """``"sam"``, ``"hq-sam"`` or ``"ros-sam"`` for a single-file state dict.

    Also recognises the two halves of the authors' folder given alone and
    says to pass the folder instead.
    """
    where = source or "checkpoint"
    if metadata.get("format") == ROS_SAM_FORMAT:
        return "ros-sam"
    keys = set(state_dict)
    from box2mask.models.sam2_arch import SAM2_KEY

    if SAM2_KEY in keys:
        return "sam2"
    has_lora = lora_rank_of(state_dict) is not None
    if "hf_token.weight" in keys or "module.hf_token.weight" in keys:
        raise CheckpointError(
            f"{where} is the HQ-decoder half ({AUTHORS_DECODER_FILE}) of a ROS-SAM training "
            f"folder; pass the folder that holds {AUTHORS_DECODER_FILE} and {AUTHORS_SAM_FILE}"
        )
    if has_lora and _HQ_KEY not in keys and "module." + _HQ_KEY not in keys:
        raise CheckpointError(
            f"{where} looks like the SAM + LoRA half ({AUTHORS_SAM_FILE}) of a ROS-SAM training "
            f"folder; pass the folder that holds {AUTHORS_DECODER_FILE} and {AUTHORS_SAM_FILE}"
        )
    if has_lora:
        raise CheckpointError(
            f"{where} has HQ-SAM tensors and LoRA but no box2mask ROS-SAM metadata "
            f"(format = {ROS_SAM_FORMAT}); write ROS-SAM files with box2mask.models.checkpoint.save_ros_sam"
        )
    return "hq-sam" if _HQ_KEY in keys else "sam"


def _meta_int(metadata: Mapping[str, str], key: str, source: str) -> int | None:
    if key not in metadata or metadata[key] in ("", "none", "null"):
        return None
    try:
        return int(metadata[key])
    except ValueError:
        raise CheckpointError(
            f"{source}: metadata {key}={metadata[key]!r} is not an integer"
        ) from None


def check_ros_sam_metadata(
    state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str], source: str
) -> tuple[EncoderArch, int | None, bool]:
    """Check box2mask ROS-SAM metadata against the tensors.

    Returns:
        ``(arch, lora_rank, lora_folded)``.
    """
    version = metadata.get("format_version")
    if version != ROS_SAM_FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: ROS-SAM format version {version!r} is not supported "
            f"(this box2mask reads version {ROS_SAM_FORMAT_VERSION})"
        )
    arch = infer_encoder_arch(state_dict, source)
    try:
        meta_arch = json.loads(metadata.get("encoder", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{source}: metadata 'encoder' is not JSON") from None
    for field in ("embed_dim", "depth", "num_heads", "global_attn_indexes"):
        if field in meta_arch:
            want = meta_arch[field]
            got = getattr(arch, field)
            if (tuple(want) if isinstance(want, list) else want) != got:
                raise CheckpointError(
                    f"{source}: metadata says encoder {field}={want} but the tensors give {got}"
                )
    rank_tensors = lora_rank_of(state_dict)
    folded = rank_tensors is None
    if metadata.get("lora_folded", "").lower() not in ("true", "false"):
        raise CheckpointError(f"{source}: metadata lora_folded must be 'true' or 'false'")
    if (metadata["lora_folded"].lower() == "true") != folded:
        raise CheckpointError(
            f"{source}: metadata says lora_folded={metadata['lora_folded']} but the file "
            f"{'has no' if folded else 'has'} unfolded LoRA tensors"
        )
    rank_meta = _meta_int(metadata, "lora_rank", source)
    if rank_tensors is not None and rank_meta is not None and rank_tensors != rank_meta:
        raise CheckpointError(
            f"{source}: metadata says lora_rank={rank_meta} but the LoRA tensors have rank {rank_tensors}"
        )
    if _HQ_KEY not in state_dict:
        raise CheckpointError(
            f"{source}: a ROS-SAM file must hold the HQ decoder ({_HQ_KEY} missing)"
        )
    return arch, rank_tensors if rank_tensors is not None else rank_meta, folded


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read any supported checkpoint into HQ-SAM / SAM key names.

    Args:
        path: a SAM / HQ-SAM ``.pth``, a box2mask ROS-SAM ``.safetensors``, or
            the authors' ROS-SAM training folder.

    Returns:
        ``(state_dict, info)``; unfolded LoRA keys (``…attn.qkv.qkv.weight``,
        ``…attn.qkv.linear_a_q.weight``, …) are kept as they are.
    """
    path = Path(path)
    if path.is_dir():
        state = read_authors_folder(path)
        kind: CheckpointKind = "ros-sam-folder"
        arch = infer_encoder_arch(state, str(path))
        rank, folded = lora_rank_of(state), False
    else:
        state, metadata = read_tensors(path)
        kind = detect_kind(state, metadata, str(path))
        if kind == "ros-sam":
            arch, rank, folded = check_ros_sam_metadata(state, metadata, str(path))
        elif kind == "sam2":
            from box2mask.models.sam2_arch import infer_sam2_arch

            a2 = infer_sam2_arch(state, str(path))
            info = CheckpointInfo(
                path=path, kind=kind, arch=a2.name, embed_dim=a2.embed_dim, depth=a2.depth,
                num_heads=a2.num_heads, global_attn_indexes=a2.global_att_blocks, lora_rank=None,
                lora_folded=True, num_params=sum(int(t.numel()) for t in state.values()),
            )  # fmt: skip
            return state, info
        else:
            arch, rank, folded = infer_arch(state, str(path)), None, True
    if isinstance(arch, TinyViTArch):
        dim, depth, heads, glob = arch.embed_dims[-1], sum(arch.depths), arch.num_heads[-1], ()
    else:
        dim, depth, heads = arch.embed_dim, arch.depth, arch.num_heads
        glob = arch.global_attn_indexes
    info = CheckpointInfo(
        path=path,
        kind=kind,
        arch=arch.name,
        embed_dim=dim,
        depth=depth,
        num_params=sum(int(t.numel()) for t in state.values()),
        num_heads=heads,
        global_attn_indexes=glob,
        lora_rank=rank,
        lora_folded=folded,
        encoder=arch,
    )
    return state, info


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    """What a checkpoint is: kind, architecture, LoRA rank, parameter count.

    Raises:
        CheckpointError: missing, corrupt or unrecognised file.
    """
    return load_checkpoint(path)[1]


# ---------------------------------------------------------------------------
# strict key check


def _some(keys: Iterable[str], n: int = 4) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def kind_mismatch_message(model: str, kind: CheckpointKind, path: Path) -> str | None:
    """The message for a checkpoint of another model, or ``None`` if ``kind`` fits ``model``."""
    if model == "ros-sam" and kind in ("ros-sam", "ros-sam-folder"):
        return None
    if model == kind:
        return None
    if kind == "sam2":
        return f"{path} is a SAM 2 checkpoint (Hiera encoder, memory modules); use --model sam2"
    if model == "sam2":
        return (
            f"{path} is a {kind} checkpoint, not SAM 2 (image_encoder.trunk.* missing); use "
            f"--model {'ros-sam' if kind.startswith('ros-sam') else kind}, or an official SAM 2.1 "
            "checkpoint (sam2.1-hiera-tiny, -small, -base-plus, -large)"
        )
    if kind in ("ros-sam", "ros-sam-folder"):
        return f"{path} is a ROS-SAM checkpoint (SAM + LoRA + HQ decoder); use --model ros-sam"
    if kind == "hq-sam":
        hint = " (add --hq-token-only for the HQ-token mask alone)" if model == "ros-sam" else ""
        extra = (
            "; ROS-SAM needs weights trained with 'box2mask train' or the authors' training folder"
            if model == "ros-sam"
            else ""
        )
        return (
            f"{path} is an HQ-SAM checkpoint (it has the HQ decoder, {_HQ_KEY}); "
            f"use --model hq-sam{hint}{extra}"
        )
    # kind == "sam"
    if model == "hq-sam":
        return (
            f"{path} is a plain SAM checkpoint, it has no HQ decoder ({_HQ_KEY}, "
            "mask_decoder.hf_mlp.*, mask_decoder.compress_vit_feat.* missing); "
            "use --model sam, or an official HQ-SAM checkpoint (hq-sam-vit-b, hq-sam-vit-l, "
            "hq-sam-vit-h, hq-sam-vit-t)"
        )
    return (
        f"{path} is a plain SAM checkpoint, it has no HQ decoder and no LoRA; use --model sam, "
        "or train ROS-SAM with 'box2mask train'"
    )


def check_keys(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    model: str,
    path: Path,
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the ``expected`` keys and shapes."""
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_some(unexpected)}")
        raise CheckpointError(
            f"checkpoint {path} does not fit --model {model}: " + "; ".join(parts)
        )
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(s)})"
        for k, s in expected.items()
        if tuple(state_dict[k].shape) != tuple(s)
    ]
    if wrong:
        raise CheckpointError(
            f"checkpoint {path} does not fit --model {model}: wrong shapes: {'; '.join(wrong[:3])}"
        )


# ---------------------------------------------------------------------------
# writing box2mask's ROS-SAM file


def save_ros_sam(
    path: Path,
    state_dict: Mapping[str, torch.Tensor],
    lora_rank: int | None = None,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write box2mask's ROS-SAM file.

    Args:
        path: destination ``.safetensors``.
        state_dict: HQ-SAM key names (``image_encoder.*``, ``prompt_encoder.*``,
            ``mask_decoder.*`` with the HQ decoder); LoRA either unfolded
            (``…attn.qkv.qkv.weight`` + ``…attn.qkv.linear_{a,b}_{q,v}.weight``)
            or already folded into ``…attn.qkv.weight``.
        lora_rank: the rank, recorded for folded files (read from the tensors
            when unfolded).
        extra_metadata: more string entries (training options, source files).

    Returns:
        ``path``. The file is written to a temporary name and renamed, so a
        crash never leaves a half-written checkpoint under ``path``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    arch = infer_encoder_arch(tensors, str(path))
    if _HQ_KEY not in tensors:
        raise CheckpointError(f"a ROS-SAM state dict must hold the HQ decoder ({_HQ_KEY} missing)")
    rank = lora_rank_of(tensors)
    folded = rank is None
    if rank is not None and lora_rank is not None and rank != lora_rank:
        raise ValueError(f"lora_rank={lora_rank} but the LoRA tensors have rank {rank}")
    metadata = {
        "format": ROS_SAM_FORMAT,
        "format_version": ROS_SAM_FORMAT_VERSION,
        "arch": arch.name,
        "encoder": json.dumps(
            {
                "embed_dim": arch.embed_dim,
                "depth": arch.depth,
                "num_heads": arch.num_heads,
                "global_attn_indexes": list(arch.global_attn_indexes),
                "window_size": arch.window_size,
            }
        ),
        "lora_rank": str(rank if rank is not None else (lora_rank or "")),
        "lora_folded": "true" if folded else "false",
        "lora_targets": "q,v",
    }
    metadata.update(dict(extra_metadata or {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


__all__ = [
    "AUTHORS_DECODER_FILE",
    "AUTHORS_SAM_FILE",
    "LORA_SUFFIXES",
    "ROS_SAM_FORMAT",
    "CheckpointInfo",
    "EncoderArch",
    "TinyViTArch",
    "check_keys",
    "detect_kind",
    "infer_arch",
    "infer_encoder_arch",
    "infer_tinyvit_arch",
    "inspect_checkpoint",
    "is_tinyvit",
    "kind_mismatch_message",
    "load_checkpoint",
    "read_tensors",
    "save_ros_sam",
]
