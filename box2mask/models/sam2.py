"""``--model sam2``: SAM 2 / 2.1 (Hiera t / s / b+ / l) on the prompt-centred crops.

Meta's own modules (the ``sam2`` package, an optional extra: ``pip install
'box2mask[sam2]'``) do the work; box2mask builds them from the shape read from
the checkpoint (:mod:`box2mask.models.sam2_arch`) with the flags of Meta's
``sam2.1_hiera_*.yaml`` and of ``build_sam2_video_predictor``'s post-processing,
loads the official ``{"model": state_dict}`` strictly, and drives them two ways:

- image mode (:class:`Sam2Model`, a :class:`~box2mask.models.base.PromptModel`):
  batched encoder passes over crops, one box prompt per mask, single-mask output
  with the stability fallback, as ``SAM2ImagePredictor.predict(box=...,
  multimask_output=False)`` does;
- video mode (:meth:`Sam2Model.propagate`): a track's crops in frame order as a
  short video for ``SAM2VideoPredictor`` (used by :mod:`box2mask.temporal`).

This module imports ``sam2`` (and with it hydra); the registry imports it only
when the model is built.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sam2.sam2_video_predictor as _video_module
import torch
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.transformer import RoPEAttention
from sam2.sam2_video_predictor import SAM2VideoPredictor
from torch import nn

from box2mask.errors import CheckpointError, UsageError
from box2mask.models.base import ImageFeatures
from box2mask.models.checkpoint import check_keys, kind_mismatch_message, load_checkpoint
from box2mask.models.sam2_arch import Sam2Arch, infer_sam2_arch


def _no_progress_bar(iterable, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    return iterable


# propagate_in_video draws a tqdm bar per call; box2mask makes one call per track and
# window, under its own progress display
_video_module.tqdm = _no_progress_bar

#: SAM 2's pixel normalisation (ImageNet, on 0..1 values)
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)
#: backbone feature sizes at 1024 px (stride 4, 8, 16)
_FEAT_SIZES = ((256, 256), (128, 128), (64, 64))


def build_sam2_net(arch: Sam2Arch, image_size: int = 1024) -> SAM2VideoPredictor:
    """A fresh SAM 2 of ``arch``'s shape, as Meta's builders make it.

    The flags are those of ``configs/sam2.1/sam2.1_hiera_*.yaml`` (``2.0``:
    ``configs/sam2/``), plus ``build_sam2_video_predictor``'s default
    post-processing: the stability fallback to multimask output, binarised
    prompted masks for the memory encoder, holes up to 8 low-res pixels filled.
    The image path of a ``SAM2VideoPredictor`` is ``SAM2Base``'s, so one net
    serves both modes. Built on the CPU (RoPE tables are made at construction).
    """
    d = arch.d_model
    trunk = Hiera(
        embed_dim=arch.embed_dim,
        num_heads=arch.num_heads,
        stages=arch.stages,
        global_att_blocks=arch.global_att_blocks,
        window_spec=arch.window_spec,
        window_pos_embed_bkg_spatial_size=arch.window_pos_embed_bkg_spatial_size,
    )
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=d, normalize=True, temperature=10000),
        d_model=d,
        backbone_channel_list=list(arch.backbone_channel_list),
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    image_encoder = ImageEncoder(trunk=trunk, neck=neck, scalp=1)
    grid = image_size // 16

    def rope(**kw: object) -> RoPEAttention:
        return RoPEAttention(
            rope_theta=10000.0, feat_sizes=[grid, grid], embedding_dim=d, num_heads=1,
            downsample_rate=1, dropout=0.1, **kw,
        )  # fmt: skip

    layer = MemoryAttentionLayer(
        activation="relu",
        dim_feedforward=arch.memory_ffn,
        dropout=0.1,
        pos_enc_at_attn=False,
        self_attention=rope(),
        d_model=d,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        cross_attention=rope(rope_k_repeat=True, kv_in_dim=arch.mem_dim),
    )
    memory_attention = MemoryAttention(
        d_model=d, pos_enc_at_input=True, layer=layer, num_layers=arch.memory_layers
    )
    memory_encoder = MemoryEncoder(
        out_dim=arch.mem_dim,
        position_encoding=PositionEmbeddingSine(
            num_pos_feats=arch.mem_dim, normalize=True, temperature=10000
        ),
        mask_downsampler=MaskDownSampler(embed_dim=d, kernel_size=3, stride=2, padding=1),
        fuser=Fuser(
            CXBlock(dim=d, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=arch.fuser_layers,
        ),
        in_dim=d,
    )
    v21 = arch.version == "2.1"
    return SAM2VideoPredictor(
        image_encoder=image_encoder,
        memory_attention=memory_attention,
        memory_encoder=memory_encoder,
        num_maskmem=arch.num_maskmem,
        image_size=image_size,
        sigmoid_scale_for_mem_enc=20.0,
        sigmoid_bias_for_mem_enc=-10.0,
        use_mask_input_as_output_without_sam=True,
        directly_add_no_mem_embed=True,
        no_obj_embed_spatial=v21,
        use_high_res_features_in_sam=True,
        multimask_output_in_sam=True,
        iou_prediction_use_sigmoid=True,
        use_obj_ptrs_in_encoder=True,
        add_tpos_enc_to_obj_ptrs=v21,
        proj_tpos_enc_in_obj_ptrs=v21,
        use_signed_tpos_enc_to_obj_ptrs=v21,
        only_obj_ptrs_in_the_past_for_eval=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        fixed_no_obj_ptr=True,
        multimask_output_for_tracking=True,
        use_multimask_token_for_obj_ptr=True,
        multimask_min_pt_num=0,
        multimask_max_pt_num=1,
        use_mlp_for_obj_ptr_proj=True,
        compile_image_encoder=False,
        sam_mask_decoder_extra_args={
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        },
        binarize_mask_from_pts_for_mem_enc=True,
        fill_hole_area=8,
    )


@dataclass
class Sam2Features(ImageFeatures):
    """:class:`ImageFeatures` plus SAM 2's two high-resolution levels.

    Attributes:
        high_res: ``[(B, 32, 256, 256), (B, 64, 128, 128)]`` (already through
            the decoder's ``conv_s0`` / ``conv_s1``).
    """

    high_res: list[torch.Tensor] = field(default_factory=list)


@dataclass
class TrackOutput:
    """One track's masks over a window (:meth:`Sam2Model.propagate`)."""

    logits: torch.Tensor  # (T, 256, 256) float32 low-res logits over the crops
    scores: np.ndarray  # (T,) float32 predicted IoU on prompted frames, object score elsewhere


class Sam2Model(nn.Module):
    """``--model sam2``: a :class:`~box2mask.models.base.PromptModel` around Meta's SAM 2.

    Args:
        net: a ``SAM2VideoPredictor`` (:func:`build_sam2_net`) with weights loaded.
        arch: its shape.
    """

    name = "sam2"
    image_size: int = 1024

    def __init__(self, net: SAM2VideoPredictor, arch: Sam2Arch) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.image_size = int(net.image_size)
        self.register_buffer("pixel_mean", 255 * torch.tensor(IMG_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", 255 * torch.tensor(IMG_STD).view(1, 3, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def compile_encoder(self, **kwargs: object) -> Sam2Model:
        """``torch.compile`` the image encoder (as ``compile_image_encoder: True`` does)."""
        self.net.image_encoder.forward = torch.compile(  # type: ignore[method-assign]
            self.net.image_encoder.forward, dynamic=False, **kwargs
        )
        return self

    def quantize_encoder_int8(self) -> Sam2Model:
        raise UsageError("--precision int8 is not available for --model sam2; use fp32 or bf16")

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != torch.uint8:
            raise ValueError(
                f"encode expects (B, {s}, {s}, 3) uint8 RGB, got {tuple(images.shape)} {images.dtype}"
            )
        x = images.to(self.device).permute(0, 3, 1, 2).float()
        return (x - self.pixel_mean) / self.pixel_std

    @torch.no_grad()
    def backbone(self, images: torch.Tensor) -> dict:
        """``SAM2Base.forward_image`` of ``(B, S, S, 3)`` uint8 crops (normalised here)."""
        return self.net.forward_image(self._normalise(images))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Sam2Features:
        """Encode crops as ``SAM2ImagePredictor.set_image_batch`` does (no-memory embedding added)."""
        backbone_out = self.backbone(images)
        _, feats, _, _ = self.net._prepare_backbone_features(backbone_out)
        if self.net.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + self.net.no_mem_embed
        b = images.shape[0]
        maps = [
            f.permute(1, 2, 0).reshape(b, -1, *size)
            for f, size in zip(feats[::-1], _FEAT_SIZES[::-1], strict=True)
        ][::-1]
        return Sam2Features(embeddings=maps[-1], high_res=maps[:-1])

    @torch.no_grad()
    def decode(
        self, features: ImageFeatures, boxes: torch.Tensor, image_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per box, as ``SAM2ImagePredictor.predict(box=b, multimask_output=False)``.

        Returns:
            ``(logits (M, 256, 256), iou (M,))``, float32.
        """
        if not isinstance(features, Sam2Features):
            raise ValueError("sam2 decodes the features of its own encode()")
        if boxes.ndim != 2 or boxes.shape[1] != 4 or image_index.shape != boxes.shape[:1]:
            raise ValueError(
                f"decode expects boxes (M, 4) and image_index (M,), got "
                f"{tuple(boxes.shape)} and {tuple(image_index.shape)}"
            )
        emb = features.embeddings
        m = boxes.shape[0]
        if m == 0:
            side = 4 * emb.shape[-1]
            return emb.new_zeros((0, side, side), dtype=torch.float32), emb.new_zeros(
                (0,), dtype=torch.float32
            )
        index = image_index.to(device=emb.device, dtype=torch.long)
        coords = boxes.to(device=emb.device, dtype=torch.float32).reshape(-1, 2, 2)
        labels = torch.tensor([[2, 3]], dtype=torch.int, device=emb.device).repeat(m, 1)
        sparse, dense = self.net.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        logits, iou, _, _ = self.net.sam_mask_decoder(
            image_embeddings=emb[index],
            image_pe=self.net.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=False,
            high_res_features=[f[index] for f in features.high_res],
        )
        return logits[:, 0].float(), iou[:, 0].float()

    # -- video mode ---------------------------------------------------------
    @torch.no_grad()
    def propagate(
        self,
        backbone_outs: Sequence[dict],
        boxes: np.ndarray,
        prompted: Sequence[bool],
    ) -> TrackOutput:
        """One track over a window: SAM 2's video predictor on its crops.

        Args:
            backbone_outs: per frame, :meth:`backbone`'s output for the track's
                crop (batch of 1; encoded in batches across tracks beforehand).
            boxes: ``(T, 4)`` xyxy model-input pixels, the track's box per frame.
            prompted: per frame, whether its box is given as a prompt; the
                first frame must be. The others are propagated from the memory
                of the frames before them (and the prompted frames).

        Returns:
            :class:`TrackOutput`, frame by frame.
        """
        t = len(backbone_outs)
        if t == 0:
            raise ValueError("propagate needs at least one frame")
        if not prompted[0]:
            raise ValueError("the first frame of a window must be prompted")
        net = self.net
        state = _video_state(net, t, self.image_size, self.device, backbone_outs)
        for i in range(t):
            if prompted[i]:
                net.add_new_points_or_box(
                    state, frame_idx=i, obj_id=1, box=np.asarray(boxes[i], dtype=np.float32)
                )
        logits = torch.zeros((t, 256, 256), dtype=torch.float32, device=self.device)
        scores = np.zeros(t, dtype=np.float32)
        for i, _ids, _masks in net.propagate_in_video(state):
            out = state["output_dict_per_obj"][0]
            cur = out["cond_frame_outputs"].get(i) or out["non_cond_frame_outputs"][i]
            logits[i] = cur["pred_masks"][0, 0].float()
            scores[i] = float(torch.sigmoid(cur["object_score_logits"].float()).max())
        return TrackOutput(logits=logits, scores=scores)


def _video_state(
    net: SAM2VideoPredictor, n: int, size: int, device: torch.device, backbone_outs: Sequence[dict]
) -> dict:
    """``SAM2VideoPredictor.init_state`` for ``n`` crops whose features are already computed.

    The same dictionary ``init_state`` builds from a JPEG folder, with the
    crops' backbone outputs in ``cached_features`` (looked up by frame) so that
    the predictor never encodes a frame itself; ``images`` is then unused.
    """
    state: dict = {
        "images": _NoImages(n),
        "num_frames": n,
        "offload_video_to_cpu": False,
        "offload_state_to_cpu": False,
        "video_height": size,
        "video_width": size,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {
            i: (torch.zeros((1, 3, 1, 1), device=device), bo) for i, bo in enumerate(backbone_outs)
        },
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }
    return state


class _NoImages:
    """``state["images"]`` when every frame's features are cached: only its length is read."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        raise RuntimeError(f"frame {i}'s features were not cached")


def load_sam2(checkpoint: Path, device: torch.device | str = "cpu") -> Sam2Model:
    """Build ``sam2`` from an official ``sam2.1_hiera_*.pt`` (or any file of that layout), strictly.

    Raises:
        CheckpointError: missing / corrupt file, a checkpoint of another model,
            or tensors that do not fit the architecture read from the file.
    """
    checkpoint = Path(checkpoint)
    state, info = load_checkpoint(checkpoint)
    message = kind_mismatch_message("sam2", info.kind, checkpoint)
    if message is not None:
        raise CheckpointError(message)
    arch = infer_sam2_arch(state, str(checkpoint))
    net = build_sam2_net(arch)
    expected = {k: v.shape for k, v in net.state_dict().items()}
    check_keys(state, expected, "sam2", checkpoint)
    net.load_state_dict(state, strict=True)
    return Sam2Model(net, arch).to(device).eval()


def build_sam2(
    checkpoint: Path, device: torch.device | str = "cpu", hq_token_only: bool = False
) -> Sam2Model:
    """``--model sam2``: official SAM 2.1 (``sam2.1_hiera_{tiny,small,base_plus,large}.pt``)."""
    if hq_token_only:
        raise UsageError("--hq-token-only needs --model hq-sam (SAM 2 has no HQ token)")
    return load_sam2(checkpoint, device)
