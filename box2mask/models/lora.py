"""LoRA on the query and value projections of SAM's image encoder (ROS-SAM).

ROS-SAM adds a low-rank update to the ``q`` and ``v`` parts of every encoder
block's fused ``qkv`` projection, with no scaling factor (the authors' code):

    q = W_q x + b_q + B_q (A_q x)        A: (r, D), B: (D, r)
    v = W_v x + b_v + B_v (A_v x)

:class:`LoRAQKV` is the unfolded form used for training; its attribute names
(``qkv``, ``linear_a_q``, ``linear_b_q``, ``linear_a_v``, ``linear_b_v``) give
the authors' state-dict keys ``blocks.N.attn.qkv.qkv.weight``,
``blocks.N.attn.qkv.linear_a_q.weight`` and so on. For inference the update is
folded into the ``qkv`` weight (``W_q += B_q A_q``, ``W_v += B_v A_v``), which
is exact and makes ROS-SAM cost the same as SAM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

#: suffixes of the unfolded LoRA tensors inside ``blocks.N.attn.qkv.``
LORA_SUFFIXES = ("linear_a_q.weight", "linear_b_q.weight", "linear_a_v.weight", "linear_b_v.weight")


class LoRAQKV(nn.Module):
    """A fused ``qkv`` linear layer with LoRA on ``q`` and ``v``.

    Args:
        qkv: the frozen ``nn.Linear(D, 3 * D)`` of a SAM attention block.
        rank: the LoRA rank ``r``.

    ``forward`` maps ``(..., D)`` to ``(..., 3 * D)`` like the wrapped layer.
    ``A`` is initialised as in LoRA (Kaiming uniform) and ``B`` with zeros, so a
    fresh wrapper computes exactly what ``qkv`` computes.
    """

    def __init__(self, qkv: nn.Linear, rank: int) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        dim = qkv.in_features
        if qkv.out_features != 3 * dim:
            raise ValueError(
                f"expected a fused qkv layer D -> 3D, got {qkv.in_features} -> {qkv.out_features}"
            )
        factory = {"device": qkv.weight.device, "dtype": qkv.weight.dtype}
        self.qkv = qkv
        self.dim = dim
        self.rank = rank
        self.linear_a_q = nn.Linear(dim, rank, bias=False, **factory)
        self.linear_b_q = nn.Linear(rank, dim, bias=False, **factory)
        self.linear_a_v = nn.Linear(dim, rank, bias=False, **factory)
        self.linear_b_v = nn.Linear(rank, dim, bias=False, **factory)
        if qkv.weight.device.type != "meta":
            for a in (self.linear_a_q, self.linear_a_v):
                nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(self.linear_b_q.weight)
            nn.init.zeros_(self.linear_b_v.weight)

    @property
    def in_features(self) -> int:
        return self.dim

    @property
    def out_features(self) -> int:
        return 3 * self.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.qkv(x)
        new_q = self.linear_b_q(self.linear_a_q(x))
        new_v = self.linear_b_v(self.linear_a_v(x))
        # Out-of-place so autograd through ``out`` stays valid during training.
        return torch.cat(
            [
                out[..., : self.dim] + new_q,
                out[..., self.dim : 2 * self.dim],
                out[..., 2 * self.dim :] + new_v,
            ],
            dim=-1,
        )

    def folded(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function (``W + BA`` on q and v)."""
        dim = self.dim
        layer = nn.Linear(
            dim,
            3 * dim,
            bias=self.qkv.bias is not None,
            device=self.qkv.weight.device,
            dtype=self.qkv.weight.dtype,
        )
        with torch.no_grad():
            layer.weight.copy_(
                fold_qkv_weight(
                    self.qkv.weight,
                    self.linear_a_q.weight,
                    self.linear_b_q.weight,
                    self.linear_a_v.weight,
                    self.linear_b_v.weight,
                )
            )
            if self.qkv.bias is not None:
                layer.bias.copy_(self.qkv.bias)
        return layer


def fold_qkv_weight(
    w_qkv: torch.Tensor,
    a_q: torch.Tensor,
    b_q: torch.Tensor,
    a_v: torch.Tensor,
    b_v: torch.Tensor,
) -> torch.Tensor:
    """Fold LoRA into a fused qkv weight.

    Args:
        w_qkv: ``(3D, D)`` weight (rows: q, then k, then v).
        a_q, a_v: ``(r, D)``; b_q, b_v: ``(D, r)``.

    Returns:
        A new ``(3D, D)`` tensor of ``w_qkv``'s dtype with ``B_q A_q`` added to
        the q rows and ``B_v A_v`` to the v rows (products taken in float64, so
        folding a rank-512 update adds no error beyond the final rounding).
    """
    dim = w_qkv.shape[1]
    if w_qkv.shape != (3 * dim, dim):
        raise ValueError(f"qkv weight must be (3D, D), got {tuple(w_qkv.shape)}")
    for name, a, b in (("q", a_q, b_q), ("v", a_v, b_v)):
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != dim or b.shape != (dim, a.shape[0]):
            raise ValueError(
                f"LoRA {name} shapes do not fit a qkv weight of dim {dim}: "
                f"A {tuple(a.shape)} (expected (r, {dim})), B {tuple(b.shape)} (expected ({dim}, r))"
            )
    out = w_qkv.detach().to(torch.float64).clone()
    out[:dim] += b_q.detach().to(torch.float64) @ a_q.detach().to(torch.float64)
    out[2 * dim :] += b_v.detach().to(torch.float64) @ a_v.detach().to(torch.float64)
    return out.to(w_qkv.dtype)


def add_lora(encoder: nn.Module, rank: int) -> None:
    """Wrap the ``attn.qkv`` of every block of a SAM ``ImageEncoderViT`` in :class:`LoRAQKV`.

    In place; blocks already wrapped are left alone.
    """
    for blk in encoder.blocks:  # type: ignore[union-attr]
        if not isinstance(blk.attn.qkv, LoRAQKV):
            blk.attn.qkv = LoRAQKV(blk.attn.qkv, rank)


def fold_lora(encoder: nn.Module) -> None:
    """Replace every :class:`LoRAQKV` in a SAM ``ImageEncoderViT`` by its folded ``nn.Linear``. In place."""
    for blk in encoder.blocks:  # type: ignore[union-attr]
        if isinstance(blk.attn.qkv, LoRAQKV):
            blk.attn.qkv = blk.attn.qkv.folded()


def lora_rank_of(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """The LoRA rank of a state dict with unfolded LoRA keys, or ``None`` if it has none."""
    for key, value in state_dict.items():
        if key.endswith(".attn.qkv.linear_a_q.weight"):
            return int(value.shape[0])
    return None


def fold_lora_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold unfolded LoRA keys of a SAM state dict into plain qkv keys.

    ``…attn.qkv.qkv.{weight,bias}`` plus ``…attn.qkv.linear_{a,b}_{q,v}.weight``
    become ``…attn.qkv.{weight,bias}``; every other key is passed through.
    Raises ``KeyError`` naming the block whose LoRA tensors are incomplete.
    """
    out: dict[str, torch.Tensor] = {}
    prefixes = sorted(
        {k[: -len("qkv.weight")] for k in state_dict if k.endswith(".attn.qkv.qkv.weight")}
    )
    consumed: set[str] = set()
    for p in prefixes:  # p ends with "attn.qkv."
        names = ["qkv.weight", *LORA_SUFFIXES]
        missing = [p + n for n in names if p + n not in state_dict]
        if missing:
            raise KeyError(f"incomplete LoRA tensors: missing {', '.join(missing)}")
        w, a_q, b_q, a_v, b_v = (state_dict[p + n] for n in names)
        out[p + "weight"] = fold_qkv_weight(w, a_q, b_q, a_v, b_v)
        consumed.update(p + n for n in names)
        if p + "qkv.bias" in state_dict:
            out[p + "bias"] = state_dict[p + "qkv.bias"]
            consumed.add(p + "qkv.bias")
    for k, v in state_dict.items():
        if k not in consumed:
            out[k] = v
    return out
