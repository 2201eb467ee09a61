"""The ROS-SAM model under training, its parameter parts and the alternating steps.

Built from an official SAM checkpoint (image encoder, prompt encoder, SAM's
mask decoder) and an official HQ-SAM checkpoint of the same architecture (the
HQ-specific decoder parameters), as the ROS-SAM authors initialise it. The
encoder's ``qkv`` layers get LoRA on ``q`` and ``v`` (``A`` random, ``B`` zero,
so the untrained model computes exactly SAM + HQ-SAM's HQ token).

Parameter parts (:data:`PARTS`):

- ``lora``: ``image_encoder.blocks.*.attn.qkv.linear_{a,b}_{q,v}.weight``;
- ``last_block``: every other parameter of the last encoder block;
- ``hq_decoder``: the HQ-only decoder parameters (``hf_token``, ``hf_mlp``,
  ``compress_vit_feat``, ``embedding_encoder``, ``embedding_maskfeature``);
- ``sam_decoder``: the rest of the mask decoder (two-way transformer, tokens,
  upscaling, hypernetwork MLPs, IoU head);
- ``frozen``: the rest of the encoder (patch embedding, positions, blocks
  0..N-2 except their LoRA, neck) and the whole prompt encoder.

Alternating updates (:data:`PHASE_PARTS`): optimizer step ``k`` is an ``hq``
step when ``k`` is even (loss on the HQ-token mask; updates ``lora``,
``last_block``, ``hq_decoder``) and a ``sam`` step when ``k`` is odd (loss on
SAM's single-mask output; updates ``sam_decoder``; the encoder runs without
gradients). Parameters outside the step's parts get no gradient, so AdamW
leaves them bit-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from box2mask.errors import CheckpointError, UsageError
from box2mask.models.checkpoint import (
    check_keys,
    infer_encoder_arch,
    kind_mismatch_message,
    load_checkpoint,
)
from box2mask.models.hq_decoder import MaskDecoderHQ, decode_single_mask
from box2mask.models.sam import SamModel, build_modules, encoder_forward

log = logging.getLogger("box2mask")

Phase = Literal["hq", "sam"]
PARTS = ("lora", "last_block", "hq_decoder", "sam_decoder", "frozen")
PHASE_PARTS: dict[str, tuple[str, ...]] = {
    "hq": ("lora", "last_block", "hq_decoder"),
    "sam": ("sam_decoder",),
}
HQ_ONLY_PREFIXES = (
    "mask_decoder.hf_token.",
    "mask_decoder.hf_mlp.",
    "mask_decoder.compress_vit_feat.",
    "mask_decoder.embedding_encoder.",
    "mask_decoder.embedding_maskfeature.",
)
_LORA_MARK = ".attn.qkv.linear_"


def phase_of_step(step: int) -> Phase:
    """``"hq"`` for even optimizer steps, ``"sam"`` for odd ones."""
    return "hq" if step % 2 == 0 else "sam"


def part_of(name: str, depth: int) -> str:
    """The part (:data:`PARTS`) a parameter of a :class:`SamModel` with unfolded LoRA belongs to."""
    if name.startswith("image_encoder."):
        if _LORA_MARK in name:
            return "lora"
        if name.startswith(f"image_encoder.blocks.{depth - 1}."):
            return "last_block"
        return "frozen"
    if name.startswith(HQ_ONLY_PREFIXES):
        return "hq_decoder"
    if name.startswith("mask_decoder."):
        return "sam_decoder"
    return "frozen"


def build_training_model(
    sam_checkpoint: Path,
    hq_checkpoint: Path,
    lora_rank: int = 512,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> tuple[SamModel, int]:
    """ROS-SAM initialised from official SAM + HQ-SAM checkpoints, LoRA unfolded.

    Args:
        sam_checkpoint: an official SAM ``.pth`` (``sam_vit_{b,l,h}_*.pth``).
        hq_checkpoint: the official HQ-SAM ``.pth`` of the same ViT.
        lora_rank: requested LoRA rank; more than the encoder width is clamped
            to the width (a rank-``D`` update already spans every ``D × D``
            matrix), with a warning.
        device: where the model goes.
        seed: seeds LoRA's ``A`` initialisation.

    Returns:
        ``(model, rank)``: a :class:`SamModel` named ``ros-sam`` whose output is
        the HQ-token mask, in train mode, ``requires_grad`` set by
        :func:`set_trainable`; and the LoRA rank used.

    Raises:
        CheckpointError: a file of the wrong kind, or architectures that differ.
        UsageError: a rank below 1.
    """
    if lora_rank < 1:
        raise UsageError(f"--lora-rank must be at least 1, got {lora_rank}")
    sam_state, sam_info = load_checkpoint(Path(sam_checkpoint))
    msg = kind_mismatch_message("sam", sam_info.kind, Path(sam_checkpoint))
    if msg is not None:
        raise CheckpointError(f"--sam: {msg}")
    hq_state, hq_info = load_checkpoint(Path(hq_checkpoint))
    msg = kind_mismatch_message("hq-sam", hq_info.kind, Path(hq_checkpoint))
    if msg is not None:
        raise CheckpointError(f"--hq: {msg}")
    arch = infer_encoder_arch(sam_state, str(sam_checkpoint))
    hq_arch = infer_encoder_arch(hq_state, str(hq_checkpoint))
    if arch != hq_arch:
        raise CheckpointError(
            f"--sam {sam_checkpoint} is {arch.name} (width {arch.embed_dim}, depth {arch.depth}) "
            f"but --hq {hq_checkpoint} is {hq_arch.name} (width {hq_arch.embed_dim}, depth "
            f"{hq_arch.depth}); use the SAM and HQ-SAM checkpoints of the same ViT"
        )
    rank = lora_rank
    if rank > arch.embed_dim:
        log.warning(
            "LoRA rank %d is more than the encoder width %d; using rank %d",
            rank,
            arch.embed_dim,
            arch.embed_dim,
        )
        rank = arch.embed_dim
    state = {k: v for k, v in sam_state.items()}
    state.update({k: v for k, v in hq_state.items() if k.startswith(HQ_ONLY_PREFIXES)})
    encoder, prompt, decoder = build_modules(arch, hq=True, lora_rank=None)
    model = SamModel("ros-sam", encoder, prompt, decoder, output="hq", attention="sdpa")
    check_keys(
        state, {k: v.shape for k, v in model.state_dict().items()}, "ros-sam", Path(hq_checkpoint)
    )
    model.load_state_dict(state, strict=True)
    # LoRA after loading: the official qkv weights land in the wrapped layer.
    from box2mask.models.lora import add_lora

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        add_lora(model.image_encoder, rank)
    set_trainable(model)
    return model.to(device).train(), rank


def named_parts(model: SamModel) -> Iterator[tuple[str, str, nn.Parameter]]:
    """``(part, name, parameter)`` for every parameter."""
    depth = len(model.image_encoder.blocks)
    for name, p in model.named_parameters():
        yield part_of(name, depth), name, p


def set_trainable(model: SamModel) -> None:
    """``requires_grad`` on every part except ``frozen``."""
    for part, _, p in named_parts(model):
        p.requires_grad_(part != "frozen")


def parameter_counts(model: SamModel) -> dict[str, int]:
    """Number of parameters per part (:data:`PARTS`), plus ``trainable`` and ``total``."""
    out = dict.fromkeys(PARTS, 0)
    for part, _, p in named_parts(model):
        out[part] += p.numel()
    out["trainable"] = sum(v for k, v in out.items() if k != "frozen")
    out["total"] = sum(out[k] for k in PARTS)
    return out


def training_forward(
    model: SamModel,
    images: torch.Tensor,
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    phase: Phase,
) -> torch.Tensor:
    """Mask logits with gradients, for one alternating step.

    Args:
        model: from :func:`build_training_model`.
        images: ``(B, 1024, 1024, 3)`` uint8 RGB.
        boxes: ``(M, 4)`` float xyxy in model pixels.
        image_index: ``(M,)`` long, the image of each box.
        phase: ``"hq"`` → the HQ-token logits (gradients reach the encoder's
            LoRA and last block and the HQ parameters); ``"sam"`` → SAM's
            single-mask logits (the encoder runs without gradients).

    Returns:
        ``(M, 256, 256)`` low-res mask logits.
    """
    x = images.permute(0, 3, 1, 2).float()
    x = (x - model.pixel_mean) / model.pixel_std
    decoder = model.mask_decoder
    if not isinstance(decoder, MaskDecoderHQ):
        raise ValueError("training needs the HQ decoder")
    if phase == "hq":
        emb, interm = encoder_forward(model.image_encoder, x, model.attention, True)
    else:
        with torch.no_grad():
            emb, interm = encoder_forward(model.image_encoder, x, model.attention, False)
    with torch.no_grad():  # the prompt encoder is frozen
        sparse, dense = model.prompt_encoder(points=None, boxes=boxes.float(), masks=None)
    hq = None
    if phase == "hq":
        if interm is None:
            raise ValueError("the encoder has no global-attention block (HQ features need one)")
        hq = decoder.hq_features(emb, interm)[image_index]
    logits, _ = decode_single_mask(
        decoder,
        emb[image_index],
        model.prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        output="hq" if phase == "hq" else "sam",
        hq_features=hq,
    )
    return logits


class TrainingModule(nn.Module):
    """A thin ``nn.Module`` around :func:`training_forward`, so DDP can wrap it."""

    def __init__(self, model: SamModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        phase: Phase,
    ) -> torch.Tensor:
        return training_forward(self.model, images, boxes, image_index, phase)


def mask_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE + Dice, averaged over masks.

    Args:
        logits: ``(M, h, w)`` mask logits.
        targets: ``(M, h, w)`` float in ``[0, 1]`` (soft ground truth at the
            logits' resolution).

    Returns:
        Scalar: mean per-pixel BCE plus mean ``1 - dice`` (soft Dice with +1
        smoothing, as HQ-SAM's ``dice_loss``).
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1)
    prob = logits.sigmoid().flatten(1)
    t = targets.flatten(1)
    dice = 1 - (2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)
    return (bce + dice).mean()
