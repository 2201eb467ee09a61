"""The HQ-SAM mask decoder, and a batched single-mask decoder pass for SAM and HQ-SAM.

:class:`MaskDecoderHQ` is ``segment_anything``'s ``MaskDecoder`` plus the HQ
output token of HQ-SAM (Ke et al. 2023): an extra token whose mask is predicted
from the decoder's upscaled features fused with early ViT features (the output
of the first global-attention encoder block). Its parameter names are those of
the official ``sam_hq_vit_*.pth`` checkpoints (``hf_token``, ``hf_mlp``,
``compress_vit_feat``, ``embedding_encoder``, ``embedding_maskfeature``), so
those files load strictly.

:func:`decode_single_mask` runs either decoder for ``M`` box prompts spread over
``B`` images in one batch (the reference code decodes one image at a time) and
returns only what box2mask uses: the single-mask output (SAM's token 0, the HQ
token, or their sum) and SAM's predicted IoU for it.
"""

from __future__ import annotations

from typing import Literal

import torch
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MLP, MaskDecoder
from torch import nn

#: which mask the decoder returns: SAM's token 0, the HQ token, or their sum (HQ-SAM's default)
MaskOutput = Literal["sam", "hq", "sum"]


class MaskDecoderHQ(MaskDecoder):
    """SAM's mask decoder with HQ-SAM's output token.

    Args:
        transformer_dim: channel dimension of the decoder (256 in SAM).
        transformer: the two-way transformer (``segment_anything``'s ``TwoWayTransformer``).
        vit_dim: channel dimension of the image encoder's ViT (768 / 1024 / 1280 for B / L / H).
        num_multimask_outputs, iou_head_depth, iou_head_hidden_dim: as in ``MaskDecoder``.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        vit_dim: int,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__(
            transformer_dim=transformer_dim,
            transformer=transformer,
            num_multimask_outputs=num_multimask_outputs,
            activation=nn.GELU,
            iou_head_depth=iou_head_depth,
            iou_head_hidden_dim=iou_head_hidden_dim,
        )
        self.vit_dim = vit_dim
        # The HQ output token and its hypernetwork MLP.
        self.hf_token = nn.Embedding(1, transformer_dim)
        self.hf_mlp = MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
        # Early ViT features (B, vit_dim, 64, 64) -> (B, C/8, 256, 256).
        self.compress_vit_feat = nn.Sequential(
            nn.ConvTranspose2d(vit_dim, transformer_dim, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 8, kernel_size=2, stride=2),
        )
        # Final image embeddings (B, C, 64, 64) -> (B, C/8, 256, 256).
        self.embedding_encoder = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
        )
        # Refines SAM's upscaled mask features before the HQ features are added.
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(transformer_dim // 8, transformer_dim // 4, 3, 1, 1),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.Conv2d(transformer_dim // 4, transformer_dim // 8, 3, 1, 1),
        )

    def hq_features(self, image_embeddings: torch.Tensor, interm: torch.Tensor) -> torch.Tensor:
        """HQ features of ``B`` images.

        Args:
            image_embeddings: ``(B, C, 64, 64)`` encoder output.
            interm: ``(B, 64, 64, vit_dim)`` output of the first global-attention block.

        Returns:
            ``(B, C/8, 256, 256)``.
        """
        vit_features = interm.permute(0, 3, 1, 2)
        return self.embedding_encoder(image_embeddings) + self.compress_vit_feat(vit_features)


def decode_single_mask(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    output: MaskOutput = "sam",
    hq_features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask per prompt, batched over prompts of different images.

    Equal, prompt by prompt, to the reference ``MaskDecoder`` /
    ``MaskDecoderHQ`` with ``multimask_output=False`` (and ``hq_token_only``
    ``output == "hq"``).

    Args:
        decoder: a ``MaskDecoder`` (``output="sam"`` only) or :class:`MaskDecoderHQ`.
        image_embeddings: ``(M, C, 64, 64)`` the embedding of each prompt's image.
        image_pe: ``(1, C, 64, 64)`` dense positional encoding.
        sparse_prompt_embeddings: ``(M, T, C)``.
        dense_prompt_embeddings: ``(M, C, 64, 64)``.
        output: ``"sam"`` (SAM's single-mask token), ``"hq"`` (HQ token) or
            ``"sum"`` (both logits summed, HQ-SAM's default).
        hq_features: ``(M, C/8, 256, 256)`` from :meth:`MaskDecoderHQ.hq_features`
            of each prompt's image; required unless ``output == "sam"``.

    Returns:
        ``(logits, iou)``: ``(M, 256, 256)`` low-res mask logits and ``(M,)``
        SAM's predicted IoU of its single-mask output.
    """
    hq_decoder = decoder if isinstance(decoder, MaskDecoderHQ) else None
    use_hq = output != "sam"
    if use_hq and (hq_decoder is None or hq_features is None):
        raise ValueError(f"output {output!r} needs an HQ decoder and hq_features")
    m = sparse_prompt_embeddings.shape[0]
    token_list = [decoder.iou_token.weight, decoder.mask_tokens.weight]
    if use_hq and hq_decoder is not None:
        token_list.append(hq_decoder.hf_token.weight)
    output_tokens = torch.cat(token_list, dim=0)
    n_out = output_tokens.shape[0]
    output_tokens = output_tokens.unsqueeze(0).expand(m, -1, -1)
    tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

    src = image_embeddings + dense_prompt_embeddings
    pos_src = image_pe.expand(m, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1:n_out, :]

    src = src.transpose(1, 2).reshape(b, c, h, w)
    upscaled_sam = decoder.output_upscaling(src)
    _, c_up, h_up, w_up = upscaled_sam.shape

    logits = torch.zeros((b, h_up, w_up), dtype=upscaled_sam.dtype, device=upscaled_sam.device)
    if output in ("sam", "sum"):
        hyper_sam = decoder.output_hypernetworks_mlps[0](mask_tokens_out[:, 0, :])
        flat = upscaled_sam.reshape(b, c_up, h_up * w_up)
        logits = logits + (hyper_sam.unsqueeze(1) @ flat).reshape(b, h_up, w_up)
    if use_hq and hq_decoder is not None and hq_features is not None:
        upscaled_hq = hq_decoder.embedding_maskfeature(upscaled_sam) + hq_features
        hyper_hq = hq_decoder.hf_mlp(mask_tokens_out[:, -1, :])
        flat = upscaled_hq.reshape(b, c_up, h_up * w_up)
        logits = logits + (hyper_hq.unsqueeze(1) @ flat).reshape(b, h_up, w_up)
    iou = decoder.iou_prediction_head(iou_token_out)[:, 0]
    return logits, iou
