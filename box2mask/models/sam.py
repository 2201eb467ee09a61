"""The SAM-family prompt models: ``sam``, ``hq-sam`` and ``ros-sam``.

All three are one :class:`SamModel` built from ``segment_anything``'s modules
(``ImageEncoderViT``, ``PromptEncoder``, ``MaskDecoder``, ``TwoWayTransformer``)
and, for ``hq-sam`` / ``ros-sam``, box2mask's :class:`MaskDecoderHQ`. They
differ in the checkpoint they load and the mask they return:

- ``sam``: SAM's single-mask output;
- ``hq-sam``: SAM's mask logits plus the HQ token's (HQ-SAM's default), or the
  HQ token's alone with ``hq_token_only=True``;
- ``ros-sam``: the HQ token's mask, from an encoder whose q/v projections carry
  LoRA (folded into the weights at load).

The architecture is read from the checkpoint tensors, so ViT-B/L/H and tiny
test models go through the same code (:func:`load_prompt_model`); so do
MobileSAM (``sam``) and Light HQ-SAM (``hq-sam``), whose image encoder is a
TinyViT (:mod:`box2mask.models.tiny_vit`) in place of the ViT.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    TwoWayTransformer,
)
from segment_anything.modeling.image_encoder import (
    Attention,
    Block,
    get_rel_pos,
)
from torch import nn

from box2mask.errors import CheckpointError, UsageError
from box2mask.models.base import ImageFeatures
from box2mask.models.checkpoint import (
    EncoderArch,
    TinyViTArch,
    check_keys,
    infer_arch,
    kind_mismatch_message,
    load_checkpoint,
)
from box2mask.models.hq_decoder import MaskDecoderHQ, MaskOutput, decode_single_mask
from box2mask.models.lora import add_lora, fold_lora_state_dict
from box2mask.models.tiny_vit import TinyViT

#: SAM's pixel normalisation (RGB, 0..255)
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)

AttentionImpl = Literal["sdpa", "reference"]


# ---------------------------------------------------------------------------
# encoder forward with the first global block's output and an SDPA attention path


def _rel_pos_mask(attn: Attention, q: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The decomposed relative-position term of ``q`` ``(B, nH, h·w, hd)`` as ``(B, nH, N, N)``."""
    b, nh = q.shape[:2]
    rh = get_rel_pos(h, h, attn.rel_pos_h).to(q.dtype)
    rw = get_rel_pos(w, w, attn.rel_pos_w).to(q.dtype)
    r_q = q.reshape(b, nh, h, w, -1)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw)
    # einsum's outputs are strided; a sum of them inherits that layout and the
    # reshape to (B, nH, N, N) then copies the whole mask again (0.8 GB per
    # global block of a ViT-B crop). Contiguous operands (B·nH·N·64 floats,
    # small) give a contiguous sum, so the reshape is a view; autograd-safe.
    return (rel_h.contiguous().unsqueeze(-1) + rel_w.contiguous().unsqueeze(-2)).reshape(
        b, nh, h * w, h * w
    )


def attention_sdpa(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """``segment_anything``'s ``Attention.forward`` through ``scaled_dot_product_attention``.

    The decomposed relative-position term (MViTv2) is added as a float
    ``attn_mask``, as segment-anything-fast does, so fused kernels replace the
    explicit softmax(QKᵀ) of the reference.

    Args:
        attn: an encoder block's ``Attention`` (its ``qkv`` may be a LoRA wrapper).
        x: ``(B, H, W, D)`` tokens (a batch of windows for windowed blocks).

    Returns:
        ``(B, H, W, D)``, equal to ``attn(x)`` up to float rounding.
    """
    b, h, w, _ = x.shape
    nh = attn.num_heads
    qkv = attn.qkv(x).reshape(b, h * w, 3, nh, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, nH, N, hd)
    mask = _rel_pos_mask(attn, q, h, w) if attn.use_rel_pos else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    out = out.reshape(b, nh, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return attn.proj(out)


def windowed_attention_sdpa(attn: Attention, x: torch.Tensor, window: int) -> torch.Tensor:
    """A windowed block's attention without projecting the padding tokens.

    ``segment_anything`` pads the 64×64 token grid to 70×70 (windows of 14) and
    runs ``qkv`` and ``proj`` on all 4,900 tokens; the 804 padding tokens are
    zeros, so their ``qkv`` is the same row (the bias) and their outputs are
    dropped. Here ``qkv`` runs on the 4,096 real tokens and the padding rows are
    filled with that constant row, then ``proj`` runs on the real tokens only:
    16 % less work in those two layers, the same result up to float rounding.

    Args:
        attn: the block's ``Attention``.
        x: ``(B, H, W, D)`` normalised tokens (not partitioned).
        window: the block's window size.

    Returns:
        ``(B, H, W, D)``, equal to ``window_unpartition(attn(window_partition(x)))``.
    """
    b, h, w, d = x.shape
    nh = attn.num_heads
    hd = d // nh
    qkv = attn.qkv(x)  # (B, H, W, 3D)
    hp, wp = h + (-h) % window, w + (-w) % window
    if (hp, wp) != (h, w):
        pad_row = attn.qkv(x.new_zeros(1, 1, 1, d))  # what a zero (padding) token projects to
        padded = pad_row.expand(b, hp, wp, 3 * d).clone()
        padded[:, :h, :w] = qkv
        qkv = padded
    nwh, nww = hp // window, wp // window
    # (B, nWh, ws, nWw, ws, 3, nH, hd) -> (3, B·nW, nH, ws·ws, hd), one copy
    qkv = qkv.view(b, nwh, window, nww, window, 3, nh, hd).permute(5, 0, 1, 3, 6, 2, 4, 7)
    q, k, v = qkv.reshape(3, b * nwh * nww, nh, window * window, hd).unbind(0)
    mask = _rel_pos_mask(attn, q, window, window) if attn.use_rel_pos else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
    out = out.view(b, nwh, nww, nh, window, window, hd).permute(0, 1, 4, 2, 5, 3, 6)
    out = out.reshape(b, hp, wp, d)[:, :h, :w]
    return attn.proj(out)


def _block_sdpa(blk: Block, x: torch.Tensor) -> torch.Tensor:
    """``Block.forward`` with :func:`attention_sdpa` / :func:`windowed_attention_sdpa`."""
    shortcut = x
    x = blk.norm1(x)
    if blk.window_size > 0:
        x = windowed_attention_sdpa(blk.attn, x, blk.window_size)
    else:
        x = attention_sdpa(blk.attn, x)
    x = shortcut + x
    return x + blk.mlp(blk.norm2(x))


def encoder_forward(
    encoder: ImageEncoderViT | TinyViT,
    x: torch.Tensor,
    attention: AttentionImpl = "sdpa",
    return_interm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a SAM image encoder, optionally keeping the first global block's output.

    Args:
        encoder: ``segment_anything``'s ``ImageEncoderViT``, or a
            :class:`~box2mask.models.tiny_vit.TinyViT`.
        x: ``(B, 3, 1024, 1024)`` normalised images.
        attention: ``"sdpa"`` (:func:`attention_sdpa`) or ``"reference"``
            (the module's own attention).
        return_interm: also return the output of the first global-attention
            block (HQ decoder input), as HQ-SAM's encoder does; for a TinyViT,
            the output of its stage 1, as Light HQ-SAM's does.

    Returns:
        ``(embeddings (B, 256, 64, 64), interm (B, 64, 64, D) or None)``.
    """
    if isinstance(encoder, TinyViT):
        return encoder.forward_features(x, attention, return_interm)
    x = encoder.patch_embed(x)
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    interm = None
    for blk in encoder.blocks:
        x = _block_sdpa(blk, x) if attention == "sdpa" else blk(x)
        if return_interm and interm is None and blk.window_size == 0:
            interm = x
    return encoder.neck(x.permute(0, 3, 1, 2)), interm


# ---------------------------------------------------------------------------
# the model


class SamModel(nn.Module):
    """A SAM-family :class:`~box2mask.models.base.PromptModel`.

    Args:
        name: ``"sam"``, ``"hq-sam"`` or ``"ros-sam"``.
        image_encoder, prompt_encoder, mask_decoder: the modules
            (``mask_decoder`` a :class:`MaskDecoderHQ` unless ``output == "sam"``).
        output: the mask returned by :meth:`decode` (see :data:`MaskOutput`).
        attention: encoder attention implementation (``"sdpa"`` by default;
            ``"reference"`` is ``segment_anything``'s own).

    Its state dict has the official SAM / HQ-SAM key names.
    """

    image_size: int = 1024

    def __init__(
        self,
        name: str,
        image_encoder: ImageEncoderViT | TinyViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        output: MaskOutput = "sam",
        attention: AttentionImpl = "sdpa",
    ) -> None:
        super().__init__()
        if output != "sam" and not isinstance(mask_decoder, MaskDecoderHQ):
            raise ValueError(f"output {output!r} needs an HQ decoder")
        self.name = name
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.output: MaskOutput = output
        self.attention: AttentionImpl = attention
        self.image_size = image_encoder.img_size
        self._compiled_forward = None
        self._compiled_sizes: list[int] = []  # batch sizes compiled for (ascending)
        self._encode_per_crop = False  # set by quantize_encoder_int8: see encode()
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def is_hq(self) -> bool:
        return isinstance(self.mask_decoder, MaskDecoderHQ)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> ImageFeatures:
        """Encode crops.

        Args:
            images: ``(B, S, S, 3)`` uint8 RGB on the model's device, ``S == image_size``.

        Returns:
            :class:`ImageFeatures` with ``embeddings`` ``(B, 256, 64, 64)`` and,
            for HQ decoders, ``interm`` ``(B, 64, 64, D)``.
        """
        s = self.image_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != torch.uint8:
            raise ValueError(
                f"encode expects (B, {s}, {s}, 3) uint8 RGB, got {tuple(images.shape)} {images.dtype}"
            )
        x = images.permute(0, 3, 1, 2).float()
        x = (x - self.pixel_mean) / self.pixel_std
        if self._encode_per_crop and x.shape[0] > 1:
            # int8: dynamic quantization takes each activation's range over its whole
            # input, so a batch (or a compiled batch's zero padding) would tie a crop's
            # masks to the crops it was batched with, and a resumed job, batched
            # differently, would differ; one crop at a time keeps them its own. ViT-B
            # crops are big products already: on a 2-core EPYC this was no slower
            # (16.5 vs 18.5 s for 4 objects) and peaked 1 GB lower (docs/engine.md).
            outs = [self._encode_batch(x[i : i + 1]) for i in range(x.shape[0])]
            emb = torch.cat([e for e, _ in outs])
            interm = None if outs[0][1] is None else torch.cat([i for _, i in outs])  # type: ignore[misc]
        else:
            emb, interm = self._encode_batch(x)
        return ImageFeatures(embeddings=emb, interm=interm)

    def _encode_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3, S, S)`` normalised crops through the compiled or the eager encoder."""
        if self._compiled_forward is not None:
            return self._encode_compiled(x)
        return encoder_forward(self.image_encoder, x, self.attention, self.is_hq)

    def _encode_compiled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The compiled encoder on a batch padded to a size it was compiled for.

        A batch is padded (zero images, outputs dropped) up to the smallest
        compiled size that holds it, so a short last batch runs the graph already
        compiled instead of compiling a new one; a larger batch compiles once
        more. Every image goes through the same kernels whatever batch it is
        in (the encoder treats images independently), so masks do not depend on
        where a crop fell. A size that ran out of memory is not padded up to
        again: after the engine halves its batch, the halved size compiles once.
        """
        b = x.shape[0]
        target = next((n for n in self._compiled_sizes if n >= b), None)
        if target is None:
            target = b
            self._compiled_sizes = sorted({*self._compiled_sizes, b})
        if target > b:
            x = torch.cat([x, x.new_zeros((target - b, *x.shape[1:]))])
        x = x.contiguous()  # one memory layout: strides are part of the compiled graph's guards
        forward = self._compiled_forward
        assert forward is not None
        try:
            emb, interm = forward(self.image_encoder, x, self.attention, self.is_hq)
        except Exception as exc:
            from box2mask.device_errors import classify_error

            if classify_error(exc) == "oom":  # as the engine judges it: it halves the batch
                self._compiled_sizes = [n for n in self._compiled_sizes if n < target]
            raise
        if target > b:
            emb = emb[:b]
            interm = None if interm is None else interm[:b]
        return emb, interm

    def compile_encoder(self, **kwargs: object) -> SamModel:
        """Run the encoder through ``torch.compile`` (static shapes, one compile per run).

        Kernels are fused, masks unchanged up to float rounding. The first batch
        compiles; smaller batches (the last partial one, an out-of-memory
        retry's halves) are padded up to a compiled size instead of compiling
        again (see :meth:`_encode_compiled`). ``kwargs`` go to ``torch.compile``
        (e.g. ``mode="max-autotune"``, or ``backend=`` for tests). Returns ``self``.
        """
        self._compiled_forward = torch.compile(encoder_forward, dynamic=False, **kwargs)  # type: ignore[arg-type]
        self._compiled_sizes = []
        return self

    def quantize_encoder_int8(self) -> SamModel:
        """CPU only: dynamic int8 quantization of the encoder's linear layers (qkv, proj, MLP).

        Weights are quantized per output channel, activations on the fly
        (``quantized::linear_dynamic``, fbgemm/x86) over one crop's tokens (crops
        are encoded one at a time, so a crop's masks do not depend on its batch),
        at the price of small mask
        changes (measured by ``benchmarks/speed.py``), with the bits
        :func:`int8_bits` gives this CPU. LoRA must be folded first. Returns ``self``.
        """
        if self.device.type != "cpu":
            raise UsageError("--precision int8 is for CPU; use bf16 on CUDA")
        weight_bits, activation_bits = int8_bits(cpu_has_vnni())
        for parent in list(self.image_encoder.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    setattr(parent, name, Int8DynamicLinear(child, weight_bits, activation_bits))
        self._encode_per_crop = True
        return self

    @torch.no_grad()
    def decode(
        self, features: ImageFeatures, boxes: torch.Tensor, image_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per box prompt.

        Args:
            features: :meth:`encode`'s output for ``B`` crops.
            boxes: ``(M, 4)`` float xyxy in model-input pixels (0..image_size).
            image_index: ``(M,)`` long, the crop of each box (0..B-1).

        Returns:
            ``(logits, iou)``: ``(M, 256, 256)`` float32 low-res mask logits over
            the whole model input, and ``(M,)`` float32 SAM-predicted IoU.
        """
        if boxes.ndim != 2 or boxes.shape[1] != 4 or image_index.shape != boxes.shape[:1]:
            raise ValueError(
                f"decode expects boxes (M, 4) and image_index (M,), got "
                f"{tuple(boxes.shape)} and {tuple(image_index.shape)}"
            )
        m = boxes.shape[0]
        emb = features.embeddings
        if emb.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 (--precision bf16): the encoder's matrix products are where bf16
            # pays; the decoder is a small share of the time and stays fp32, which
            # keeps the masks closer to fp32's (ViT-B model-mask IoU 0.982 with a bf16
            # decoder, docs/engine.md "CPU speed")
            interm = features.interm
            fp32 = ImageFeatures(
                embeddings=emb.float(), interm=None if interm is None else interm.float()
            )
            with torch.autocast("cpu", enabled=False):
                return self.decode(fp32, boxes, image_index)
        if m == 0:
            side = 4 * emb.shape[-1]
            return (
                torch.zeros((0, side, side), dtype=torch.float32, device=emb.device),
                torch.zeros((0,), dtype=torch.float32, device=emb.device),
            )
        image_index = image_index.to(device=emb.device, dtype=torch.long)
        sparse, dense = self.prompt_encoder(
            points=None, boxes=boxes.to(device=emb.device, dtype=torch.float32), masks=None
        )
        hq = None
        if self.output != "sam" and isinstance(self.mask_decoder, MaskDecoderHQ):
            if features.interm is None:
                raise ValueError(f"{self.name} needs ImageFeatures.interm from its own encode()")
            # HQ features are per image; compute them once for the images in use.
            used, inverse = torch.unique(image_index, return_inverse=True)
            hq = self.mask_decoder.hq_features(emb[used], features.interm[used])[inverse]
        logits, iou = decode_single_mask(
            self.mask_decoder,
            emb[image_index],
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            output=self.output,
            hq_features=hq,
        )
        return logits.float(), iou.float()


def cpu_has_vnni() -> bool:
    """Whether fbgemm's int8 kernels use VNNI on this CPU: AVX512-VNNI only.

    fbgemm picks its kernels by cpuinfo's ``avx512vnni`` alone, so a CPU with
    AVX-VNNI but no AVX-512 (Alder Lake and later client chips) still runs
    the AVX2 kernel that saturates. torch exposes the same cpuinfo reading;
    ``/proc/cpuinfo`` is the fallback on a torch without it.
    """
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        return bool(caps().get("avx512_vnni", False))
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "avx512_vnni" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def int8_bits(vnni: bool) -> tuple[int, int]:
    """``(weight_bits, activation_bits)`` for ``--precision int8`` on a CPU with or without VNNI.

    fbgemm multiplies uint8 activations by int8 weights. With AVX512-VNNI the
    products accumulate in int32: 8 bits each. Without it (AVX2, e.g. AMD Zen
    2/3, and Intel client chips whose VNNI is AVX-VNNI, which fbgemm does not use)
    ``vpmaddubsw`` adds two products in int16 and saturates (255·127·2 > 32767),
    which wrecks full-range results (relative error 0.11 on a ViT-B MLP layer).
    torch's ``quantize_dynamic`` then gives the activations 7 bits
    (``reduce_range``); here the weights get 7 bits instead (255·63·2 = 32130
    fits). On a ViT-B MLP layer that cuts the relative error from 0.023 to
    0.014 (8 bits each, on VNNI: 0.012): per-channel weights lose less to the
    dropped bit than activations quantized over the whole tensor do
    (``tests/test_encoder_speed.py`` checks that no product saturates).
    """
    return (8, 8) if vnni else (7, 8)


class Int8DynamicLinear(nn.Module):
    """A frozen ``nn.Linear`` as fbgemm dynamic int8: per-channel symmetric weights of
    ``weight_bits``, activations quantized per call (asymmetric uint8 over the whole
    input) to ``activation_bits``.

    ``torch.ao.nn.quantized.dynamic.Linear`` does the same with 8-bit weights and
    always 7-bit activations (``reduce_range``); here both are a choice
    (:func:`int8_bits`). Inference only.
    """

    def __init__(self, linear: nn.Linear, weight_bits: int = 8, activation_bits: int = 8) -> None:
        super().__init__()
        if weight_bits not in (7, 8) or activation_bits not in (7, 8):
            raise ValueError(f"int8 bits must be 7 or 8, got {weight_bits}, {activation_bits}")
        w = linear.weight.detach().float()
        qmax = 2 ** (weight_bits - 1) - 1  # 127 or 63, symmetric
        scale = (w.abs().amax(dim=1) / qmax).clamp_min(1e-12).double()
        bias = None if linear.bias is None else linear.bias.detach().float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor types' deprecation notice
            wq = torch.quantize_per_channel(
                w, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8
            )
            self._packed = torch.ops.quantized.linear_prepack(wq, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_bits, self.activation_bits = weight_bits, activation_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(
            x.float(), self._packed, reduce_range=self.activation_bits == 7
        )
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, "
            f"bits=w{self.weight_bits}a{self.activation_bits}"
        )


def build_modules(
    arch: EncoderArch | TinyViTArch,
    hq: bool,
    lora_rank: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[ImageEncoderViT | TinyViT, PromptEncoder, MaskDecoder]:
    """Fresh (randomly initialised) SAM modules of a given architecture.

    Args:
        arch: the encoder's shape, a ViT or a TinyViT (prompt encoder and
            decoder are always SAM's, 256 channels).
        hq: build a :class:`MaskDecoderHQ` instead of SAM's ``MaskDecoder``
            (its early-feature input is the ViT width, or a TinyViT's stage-1 width).
        lora_rank: wrap every encoder qkv in an unfolded LoRA of this rank (ViT only).
        device: where to create the parameters (``"meta"`` for no memory).
    """
    if isinstance(arch, TinyViTArch):
        if lora_rank is not None:
            raise CheckpointError("LoRA is for ViT encoders; a TinyViT encoder takes none")
        with torch.device(device) if device is not None else nullcontext():
            tiny = TinyViT(arch)
        prompt, decoder = _prompt_and_decoder(arch.out_chans, arch.grid, arch.img_size,
                                              hq, arch.interm_dim, device)  # fmt: skip
        return tiny, prompt, decoder
    with torch.device(device) if device is not None else nullcontext():
        grid = arch.img_size // arch.patch_size
        encoder = ImageEncoderViT(
            img_size=arch.img_size,
            patch_size=arch.patch_size,
            embed_dim=arch.embed_dim,
            depth=arch.depth,
            num_heads=arch.num_heads,
            mlp_ratio=arch.mlp_dim / arch.embed_dim,
            out_chans=arch.out_chans,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size,
        )
        if lora_rank is not None:
            add_lora(encoder, lora_rank)
    prompt, decoder = _prompt_and_decoder(
        arch.out_chans, grid, arch.img_size, hq, arch.embed_dim, device
    )
    return encoder, prompt, decoder


def _prompt_and_decoder(
    chans: int, grid: int, img_size: int, hq: bool, vit_dim: int, device: torch.device | str | None
) -> tuple[PromptEncoder, MaskDecoder]:
    """SAM's prompt encoder and (HQ) mask decoder, the same for every encoder."""
    with torch.device(device) if device is not None else nullcontext():
        prompt = PromptEncoder(
            embed_dim=chans,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        )
        transformer = TwoWayTransformer(depth=2, embedding_dim=chans, mlp_dim=2048, num_heads=8)
        decoder: MaskDecoder
        if hq:
            decoder = MaskDecoderHQ(transformer_dim=chans, transformer=transformer, vit_dim=vit_dim)
        else:
            decoder = MaskDecoder(transformer_dim=chans, transformer=transformer)
    return prompt, decoder


_OUTPUTS: dict[str, MaskOutput] = {"sam": "sam", "hq-sam": "sum", "ros-sam": "hq"}


def load_prompt_model(
    model: str,
    checkpoint: Path,
    device: torch.device | str = "cpu",
    hq_token_only: bool = False,
    fold: bool = True,
    attention: AttentionImpl = "sdpa",
) -> SamModel:
    """Build ``sam``, ``hq-sam`` or ``ros-sam`` from a checkpoint, strictly.

    Args:
        model: ``"sam"``, ``"hq-sam"`` or ``"ros-sam"``.
        checkpoint: a file (SAM / HQ-SAM ``.pth``, box2mask ROS-SAM
            ``.safetensors``) or the ROS-SAM authors' training folder.
        device: where the model lives.
        hq_token_only: ``hq-sam`` only: the HQ token's mask alone instead of
            SAM + HQ logits. (``ros-sam`` always returns the HQ token's mask.)
        fold: fold LoRA into the qkv weights (inference); ``False`` keeps the
            :class:`~box2mask.models.lora.LoRAQKV` modules (training).
        attention: encoder attention implementation.

    Returns:
        A :class:`SamModel` in eval mode on ``device``.

    Raises:
        CheckpointError: missing / corrupt file, a checkpoint of another model,
            or keys that do not match the architecture read from it.
        UsageError: ``hq_token_only`` with ``sam``.
    """
    if model not in _OUTPUTS:
        raise UsageError(f"unknown SAM-family model {model!r}; known: {', '.join(_OUTPUTS)}")
    if hq_token_only and model == "sam":
        raise UsageError("--hq-token-only needs --model hq-sam (plain SAM has no HQ token)")
    checkpoint = Path(checkpoint)
    state, info = load_checkpoint(checkpoint)
    message = kind_mismatch_message(model, info.kind, checkpoint)
    if message is not None:
        raise CheckpointError(message)
    if fold and info.lora_rank is not None and not info.lora_folded:
        try:
            state = fold_lora_state_dict(state)
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {checkpoint}: {exc.args[0]}") from None
    keep_lora = not fold and not info.lora_folded and info.lora_rank is not None
    arch = infer_arch(state, str(checkpoint))
    encoder, prompt, decoder = build_modules(
        arch, hq=model != "sam", lora_rank=info.lora_rank if keep_lora else None, device="meta"
    )
    output = _OUTPUTS[model]
    if model == "hq-sam" and hq_token_only:
        output = "hq"
    net = SamModel(model, encoder, prompt, decoder, output=output, attention=attention)
    expected = {k: v.shape for k, v in net.state_dict().items()}
    check_keys(state, expected, model, checkpoint)
    # The modules were created on "meta" (no memory, no random init: ViT-H has
    # 640M parameters); assign=True puts the loaded tensors in their place.
    net.load_state_dict(state, strict=True, assign=True)
    return net.to(device).eval()


def build_sam(
    checkpoint: Path, device: torch.device | str = "cpu", hq_token_only: bool = False
) -> SamModel:
    """``--model sam``: official SAM (``sam_vit_{b,l,h}_*.pth``) or MobileSAM (``mobile_sam.pt``)."""
    return load_prompt_model("sam", checkpoint, device, hq_token_only)


def build_hq_sam(
    checkpoint: Path, device: torch.device | str = "cpu", hq_token_only: bool = False
) -> SamModel:
    """``--model hq-sam``: official HQ-SAM (``sam_hq_vit_{b,l,h}.pth``) or Light HQ-SAM
    (``sam_hq_vit_tiny.pth``), SAM + HQ logits."""
    return load_prompt_model("hq-sam", checkpoint, device, hq_token_only)


def build_ros_sam(
    checkpoint: Path, device: torch.device | str = "cpu", hq_token_only: bool = False
) -> SamModel:
    """``--model ros-sam``: box2mask's ROS-SAM file or the authors' training folder; HQ-token mask."""
    return load_prompt_model("ros-sam", checkpoint, device, hq_token_only=False)
