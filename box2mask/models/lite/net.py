"""The ``lite`` network: a small box-prompted U-Net with a mask-IoU head.

Input ``(B, 5, R, R)`` float32: the crop's RGB normalised by :data:`PIXEL_MEAN`
and :data:`PIXEL_STD`, the box (soft coverage of each input pixel by the box,
0..1), and the image (coverage by the frame: 0 where the window extends past the
frame edge). ``R`` is any multiple of 16; the engine uses a few sizes (see
:mod:`box2mask.models.lite.crops`), so the network is fully convolutional and
its global context comes from pooling.

Output: ``(logits, iou)``: ``(B, R, R)`` mask logits over the input and ``(B,)``
the predicted IoU of the mask ``logits > 0`` with the object's true mask (a
logit; ``sigmoid`` gives the IoU estimate).

The architecture is data (:class:`LiteArch`), recorded in the checkpoint, so a
file rebuilds its own network.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: RGB mean / std (0..255 scale) the crops are normalised with (ImageNet's)
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
IN_CHANNELS = 5


@dataclass(frozen=True)
class LiteArch:
    """The network's shape.

    Attributes:
        widths: channels of the encoder stages; stage ``k`` works at ``R / 2**(k+1)``.
        full: channels of the full-resolution branch (input resolution).
        iou_hidden: width of the IoU head's hidden layer.
    """

    widths: tuple[int, ...] = (16, 24, 40, 64, 96)
    full: int = 12
    iou_hidden: int = 64

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LiteArch:
        d = json.loads(text)
        return cls(widths=tuple(int(w) for w in d["widths"]), full=int(d["full"]),
                   iou_hidden=int(d["iou_hidden"]))  # fmt: skip


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class LiteNet(nn.Module):
    """See the module docstring."""

    def __init__(self, arch: LiteArch = LiteArch()) -> None:
        super().__init__()
        w = arch.widths
        self.arch = arch
        self.full = _cbr(IN_CHANNELS, arch.full)
        self.stem = nn.Sequential(_cbr(IN_CHANNELS, w[0], 2), _cbr(w[0], w[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_cbr(a, b, 2), _cbr(b, b)) for a, b in zip(w[:-1], w[1:], strict=True)
        )
        self.context = nn.Sequential(nn.Linear(w[-1], w[-1]), nn.ReLU(inplace=True))
        self.up = nn.ModuleList(
            nn.Sequential(_cbr(a + b, b), _cbr(b, b))
            for a, b in zip(reversed(w[1:]), reversed(w[:-1]), strict=True)
        )
        self.fuse = _cbr(w[0] + arch.full, arch.full)
        self.mask_head = nn.Conv2d(arch.full, 1, 1)
        self.iou_head = nn.Sequential(
            nn.Linear(w[-1] + 3, arch.iou_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(arch.iou_hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = self.full(x)
        h = self.stem(x)
        skips = [h]
        for stage in self.down:
            h = stage(h)
            skips.append(h)
        g = h.mean((2, 3))
        h = h + self.context(g)[:, :, None, None]
        for stage, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = stage(torch.cat([h, skip], 1))
        h = F.interpolate(h, size=full.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.mask_head(self.fuse(torch.cat([h, full], 1)))[:, 0]
        # the IoU head sees the context vector and how sure / how large the mask is
        # against the box: a blurry or box-sized mask is a likely miss
        p = torch.sigmoid(logits)
        box = x[:, 3]
        area = p.mean((1, 2))
        stats = torch.stack(
            [area, (p * (1 - p)).mean((1, 2)) * 4, area / box.mean((1, 2)).clamp_min(1e-3)], 1
        )
        iou = self.iou_head(torch.cat([g, stats], 1))[:, 0]
        return logits, iou
