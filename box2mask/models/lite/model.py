"""``--model lite``: the trained light model at inference.

:class:`LiteModel` takes network inputs made by
:func:`box2mask.models.lite.crops.frame_input` (on the engine's worker
threads), runs them in batches of one input side, and gives back each
object's logits and predicted IoU. BatchNorm is folded into the convolutions
and the network runs channels-last under ``torch.inference_mode``: the same
numbers as the training network in eval mode, up to float rounding.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from box2mask.masks import MaskBlock
from box2mask.models.lite.checkpoint import LiteCheckpoint, load
from box2mask.models.lite.crops import (
    frame_input,
    input_side,
    mask_block,
    threshold_bin,
    window_for_box,
)
from box2mask.models.lite.net import LiteNet
from box2mask.types import CropWindow

#: objects per network call, by input side (about the same memory per call)
MAX_BATCH = {32: 512, 48: 256, 64: 128, 96: 64, 128: 32}
#: the smallest padded batch
MIN_BATCH = 8
#: inputs of this side and more (windows over 64 px at the shipped input scale: planes,
#: harbours, large ships) are run under the four flips of the square and their logits and
#: IoUs averaged. The network is trained on all eight rotations and flips, and a large
#: object's edge is where its answers vary most; on the development tiles this added 0.2
#: points of IoU per object (docs/lite.md). A dense clip of 10x20 px cars never reaches it.
FLIP_MIN_SIDE = 96
#: the flips averaged, as the input dims flipped (batch, channel, rows, columns)
FLIPS = ((), (3,), (2,), (2, 3))


def flushing_denormals_now() -> bool:
    """Whether this thread's float unit flushes subnormal floats to zero (torch has no getter)."""
    return torch.tensor([1e-40], dtype=torch.float32).mul_(1.0).item() == 0.0


@contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block, and put the setting back after.

    Subnormal activations (|x| < 1e-38) make x86 float units 10x slower and
    change no mask. The flag is processor state for the whole thread: left on,
    it changes what other code computes (hypothesis refuses to run with it).
    """
    was = flushing_denormals_now()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


def padded_size(n: int, cap: int) -> int:
    """The batch a call of ``n`` inputs runs at: the next power of two (at least
    :data:`MIN_BATCH`, at most ``cap``).

    oneDNN builds (JIT-compiles) its convolution kernels for each input shape it
    meets; calls of every size from 1 to 512 would compile hundreds of them and
    run at a tenth of the speed. With padding there are a few shapes per input
    side, compiled once; the padding costs at most half a call.

    >>> [padded_size(n, 512) for n in (1, 8, 9, 100, 512)]
    [8, 8, 16, 128, 512]
    """
    size = MIN_BATCH
    while size < n:
        size *= 2
    return min(size, max(cap, n))


def fold_batchnorm(net: LiteNet) -> LiteNet:
    """A copy of ``net`` (in eval mode) with every Conv2d + BatchNorm2d pair fused."""
    net = copy.deepcopy(net).eval()

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Sequential):
                layers = list(child)
                fused: list[nn.Module] = []
                i = 0
                while i < len(layers):
                    a = layers[i]
                    b = layers[i + 1] if i + 1 < len(layers) else None
                    if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                        fused.append(fuse_conv_bn_eval(a, b))
                        i += 2
                    else:
                        visit(a)
                        fused.append(a)
                        i += 1
                setattr(module, name, nn.Sequential(*fused))
            else:
                visit(child)

    visit(net)
    return net


class LiteModel:
    """The lite network ready for inference on one device.

    Args:
        checkpoint: a loaded :class:`LiteCheckpoint`.
        device: where the network runs.
    """

    name = "lite"

    def __init__(self, checkpoint: LiteCheckpoint, device: torch.device | str = "cpu") -> None:
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.context = checkpoint.context
        self.min_side = checkpoint.min_side
        self.input_scale = checkpoint.input_scale
        self.thresholds = tuple(checkpoint.thresholds)
        net = fold_batchnorm(checkpoint.net).to(self.device)
        self.net = net.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path, device: torch.device | str = "cpu") -> LiteModel:
        return cls(load(path), device)

    def window(self, xyxy: np.ndarray | list[float]) -> CropWindow:
        """The object's window (:func:`~box2mask.models.lite.crops.window_for_box`)."""
        return window_for_box(xyxy, self.context, self.min_side)

    def make_input(
        self, image: np.ndarray, xyxy: np.ndarray | list[float], window: CropWindow
    ) -> np.ndarray:
        """The ``(5, R, R)`` input of one object (:func:`~box2mask.models.lite.crops.frame_input`)."""
        return frame_input(image, xyxy, window, self.input_scale)

    def threshold(self, xyxy: np.ndarray | list[float]) -> float:
        """The checkpoint's logit threshold for a box (by its long side, frame pixels)."""
        if not self.thresholds:
            return 0.0
        long_side = max(float(xyxy[2]) - float(xyxy[0]), float(xyxy[3]) - float(xyxy[1]))
        return self.thresholds[threshold_bin(long_side)]

    def mask_block(
        self, output: np.ndarray, window: CropWindow, xyxy: np.ndarray | list[float]
    ) -> MaskBlock:
        """The mask in window pixels (:func:`~box2mask.models.lite.crops.mask_block`) at the
        checkpoint's threshold for the box ``xyxy`` (frame pixels), inside the box."""
        box = [float(xyxy[0]) - window.x0, float(xyxy[1]) - window.y0,
               float(xyxy[2]) - window.x0, float(xyxy[3]) - window.y0]  # fmt: skip
        return mask_block(output, window.size, self.threshold(xyxy), box)

    def predict(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Logits and predicted IoU of each input.

        Args:
            inputs: ``(5, R, R)`` float32 arrays (any mix of input sides).

        Returns:
            ``(logits, iou)``: ``(R, R)`` float32 arrays in input order, and
            ``(n,)`` float32 predicted IoUs in 0..1.
        """
        logits: list[np.ndarray | None] = [None] * len(inputs)
        iou = np.zeros(len(inputs), dtype=np.float32)
        by_side: dict[int, list[int]] = {}
        for k, x in enumerate(inputs):
            by_side.setdefault(int(x.shape[-1]), []).append(k)
        with self._lock, torch.inference_mode(), flushing_denormals():
            for side, ks in sorted(by_side.items()):
                step = MAX_BATCH.get(side, 32)
                for start in range(0, len(ks), step):
                    part = ks[start : start + step]
                    batch = np.zeros(
                        (padded_size(len(part), step), *inputs[part[0]].shape), np.float32
                    )
                    for j, k in enumerate(part):
                        batch[j] = inputs[k]
                    x = torch.from_numpy(batch).to(self.device)
                    out, score = self._run(x, flips=side >= FLIP_MIN_SIDE)
                    out_np = out.float().cpu().numpy()
                    score_np = torch.sigmoid(score.float()).cpu().numpy()
                    for j, k in enumerate(part):
                        logits[k] = out_np[j]
                        iou[k] = score_np[j]
        return logits, iou  # type: ignore[return-value]

    def _run(self, x: torch.Tensor, flips: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(n, R, R)`` and IoU logits ``(n,)`` of a batch ``(n, 5, R, R)``; with
        ``flips``, the mean over :data:`FLIPS` (each answer flipped back first)."""
        if not flips:
            return self.net(x.contiguous(memory_format=torch.channels_last))
        outs, scores = [], []
        for dims in FLIPS:
            xf = torch.flip(x, dims) if dims else x
            out, score = self.net(xf.contiguous(memory_format=torch.channels_last))
            # the logits (n, R, R) have no channel dim: rows and columns are dims 1 and 2
            outs.append(torch.flip(out, [d - 1 for d in dims]) if dims else out)
            scores.append(score)
        return torch.stack(outs).mean(0), torch.stack(scores).mean(0)

    def side_for(self, window: CropWindow) -> int:
        return input_side(window.size, self.input_scale)
