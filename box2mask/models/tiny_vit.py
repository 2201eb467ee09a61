"""TinyViT image encoder of MobileSAM and Light HQ-SAM, for inference.

A re-written copy of ``tiny_vit_sam.py`` (Microsoft's TinyViT, adapted by
MobileSAM; the same file ships in ``segment_anything_hq``; Apache-2.0). Module
and parameter names are the originals', so the official ``mobile_sam.pt`` and
``sam_hq_vit_tiny.pth`` load strictly. What differs, none of it changing the
computation (``docs/models.md``, "TinyViT"):

- no ``timm`` (drop path, lr decay, ``register_model``: training only);
- the attention bias table ``attention_biases[:, idxs]`` is gathered at every
  call instead of being cached by ``train(False)``; the original's cache goes
  stale when weights are loaded after ``eval()`` (its own builders do that);
- attention through ``scaled_dot_product_attention`` with the bias as
  ``attn_mask`` (``attention="reference"``: the original softmax(QKᵀ));
- :meth:`TinyViT.forward_features` returns the output of stage 1 (``(B, 64,
  64, C₂)``, HQ-SAM's ``interm_embeddings[0]``) only when asked.

The shape is a :class:`~box2mask.models.checkpoint.TinyViTArch`, read from the
checkpoint's tensors.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from box2mask.models.checkpoint import STRIDE1_WIDTHS, TinyViTArch


class Conv2d_BN(nn.Sequential):  # noqa: N801 (the original's name: checkpoint keys)
    """Conv (no bias) + BatchNorm, keys ``c.*`` and ``bn.*``.

    In eval mode the BatchNorm is folded into the conv at each call (one conv,
    no normalisation pass over the activations; the weights are tiny), which
    equals conv-then-BN up to float rounding; the stored tensors stay as they are.
    """

    def __init__(
        self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, 1, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, bn = self.c, self.bn
        if self.training or bn.running_var is None or bn.running_mean is None:
            return bn(c(x))
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = c.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        n = embed_dim
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, n // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(n // 2, n, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, in_chans: int, out_chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(in_chans * expand_ratio)
        self.conv1 = Conv2d_BN(in_chans, hidden, ks=1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2d_BN(hidden, hidden, ks=3, stride=1, pad=1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2d_BN(hidden, out_chans, ks=1)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.act3(self.conv3(y) + x)


class PatchMerging(nn.Module):
    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.act = nn.GELU()
        self.conv1 = Conv2d_BN(dim, out_dim, 1, 1, 0)
        stride = 1 if out_dim in STRIDE1_WIDTHS else 2
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.input_resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    def __init__(
        self, dim: int, depth: int, input_resolution: tuple[int, int], out_dim: int,
        expand_ratio: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(input_resolution, dim, out_dim)

    def forward(self, x: torch.Tensor, attention: str = "sdpa") -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x)


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """Windowed attention with LeViT's learned per-offset bias (``attn_ratio = 1``)."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        # On the CPU even when the module is built on "meta" (not in the state dict).
        idx = torch.tensor(idxs, dtype=torch.long, device="cpu").view(len(points), len(points))
        self.register_buffer("attention_bias_idxs", idx, persistent=False)

    def forward(self, x: torch.Tensor, attention: str = "sdpa") -> torch.Tensor:
        b, n, _ = x.shape
        x = self.norm(x)
        qkv = self.qkv(x).view(b, n, self.num_heads, 3 * self.key_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.key_dim, dim=3)  # (B, nH, N, d)
        # (1, nH, N, N): a 4-D mask takes SDPA's fused CPU kernel (a 3-D one its slow
        # math path, about 6x slower for the 14x14 windows)
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)[None]
        if attention == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        else:
            attn = ((q @ k.transpose(-2, -1)) * self.scale + bias).softmax(dim=-1)
            out = attn @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    def __init__(
        self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int,
        mlp_ratio: float, local_conv_size: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        pad = local_conv_size // 2
        self.local_conv = Conv2d_BN(dim, dim, ks=local_conv_size, stride=1, pad=pad, groups=dim)

    def forward(self, x: torch.Tensor, attention: str = "sdpa") -> torch.Tensor:
        h, w = self.input_resolution
        b, n, c = x.shape
        ws = self.window_size
        res = x
        if h == ws and w == ws:
            x = self.attn(x, attention)
        else:
            x = x.view(b, h, w, c)
            pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
            if pad_b or pad_r:
                x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            nh, nw = ph // ws, pw // ws
            x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            x = self.attn(x, attention)
            x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
            if pad_b or pad_r:
                x = x[:, :h, :w].contiguous()
            x = x.view(b, n, c)
        x = res + x
        # (B, N, C) tokens seen as a channels-last image, no copy (the original
        # transposes to NCHW and back, copying twice); same conv, same values
        x = self.local_conv(x.view(b, h, w, c).permute(0, 3, 1, 2))
        x = x.permute(0, 2, 3, 1).reshape(b, n, c)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    def __init__(
        self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int,
        window_size: int, mlp_ratio: float, local_conv_size: int, out_dim: int | None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, input_resolution, num_heads, window_size, mlp_ratio, local_conv_size)
            for _ in range(depth)
        )
        self.downsample = (
            PatchMerging(input_resolution, dim, out_dim) if out_dim is not None else None
        )

    def forward(self, x: torch.Tensor, attention: str = "sdpa") -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, attention)
        return self.downsample(x) if self.downsample is not None else x


class LayerNorm2d(nn.Module):
    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """MobileSAM's TinyViT encoder: ``(B, 3, 1024, 1024)`` → ``(B, 256, 64, 64)``.

    Args:
        arch: the shape, as read from a checkpoint.
    """

    def __init__(self, arch: TinyViTArch) -> None:
        super().__init__()
        self.arch = arch
        self.img_size = arch.img_size
        dims, depths = arch.embed_dims, arch.depths
        self.patch_embed = PatchEmbed(arch.in_chans, dims[0])
        res = arch.img_size // 4
        self.layers = nn.ModuleList()
        for i in range(len(depths)):
            # the original's resolutions: /4 /8 /16 /16 (the last merging has stride 1)
            side = res // (2 ** (i - 1 if i == 3 else i))
            out_dim = dims[min(i + 1, len(dims) - 1)] if i < len(depths) - 1 else None
            if i == 0:
                assert out_dim is not None
                layer: nn.Module = ConvLayer(
                    dims[0], depths[0], (side, side), out_dim, arch.mbconv_expand_ratio
                )
            else:
                layer = BasicLayer(
                    dims[i], (side, side), depths[i], arch.num_heads[i], arch.window_sizes[i],
                    arch.mlp_ratio, arch.local_conv_size, out_dim,
                )  # fmt: skip
            self.layers.append(layer)
        # ImageNet classifier of the distilled TinyViT: stored in the official files, never run
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], arch.num_classes) if arch.num_classes > 0 else nn.Identity()
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], arch.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(arch.out_chans),
            nn.Conv2d(arch.out_chans, arch.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(arch.out_chans),
        )

    def forward_features(
        self, x: torch.Tensor, attention: str = "sdpa", return_interm: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(embeddings (B, 256, 64, 64), stage-1 output (B, 64, 64, C₂) or None)``."""
        grid = self.arch.grid
        # channels-last convolutions: about 1.6x faster on CPU for the stem and the
        # MBConv stage (oneDNN's depthwise kernels), and the patch mergings' outputs
        # then flatten to (B, N, C) tokens without a copy
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        x = self.layers[0](x)
        interm = None
        for i in range(1, len(self.layers)):
            x = self.layers[i](x, attention)
            if i == 1 and return_interm:
                interm = x.view(x.shape[0], grid, grid, -1)
        b, _, c = x.shape
        x = x.view(b, grid, grid, c).permute(0, 3, 1, 2)
        return self.neck(x), interm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
