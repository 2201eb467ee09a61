"""The three kinds of mask model the engine drives.

- :class:`PromptModel` (``sam``, ``hq-sam``, ``ros-sam``): a torch module that
  encodes batches of 1024×1024 crops and decodes one box prompt per mask.
- :class:`CropModel` (``lite``): a network with its own window rule and small
  inputs (one per object), run in large batches across objects and frames.
- :class:`ShapeModel` (``box``, ``ellipse``, ``obb``, ``grabcut``, ``classical``): a
  plain function of one crop window, no weights. The built-in ones derive from
  :class:`BlockShapeModel`: they make a mask as its block, and ``segment`` is
  built from that.

Both work in crop coordinates; the engine owns the crop geometry
(:mod:`box2mask.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # only prompt models need torch; a weight-free job never imports it
    import torch

    from box2mask.geometry import WindowPixels
    from box2mask.types import CropWindow, MaskBlock

    #: a shape model's ``crop``: the window's pixels (an array, or cut on demand), or none
    Pixels: TypeAlias = np.ndarray | WindowPixels | None
    #: optional ``(4, 2)`` oriented-box corners in window pixels
    Corners: TypeAlias = np.ndarray | None


@dataclass
class ImageFeatures:
    """What the image encoder gives the decoder, for ``B`` crops.

    Attributes:
        embeddings: ``(B, 256, 64, 64)`` image embeddings.
        interm: ``(B, 64, 64, vit_dim)`` output of the first global-attention
            block (HQ decoder input), or ``None`` for plain SAM.
    """

    embeddings: torch.Tensor
    interm: torch.Tensor | None = None


@runtime_checkable
class PromptModel(Protocol):
    """A SAM-family model. Lives on one device; all tensors are on it."""

    name: str
    #: side of the square model input (1024 for SAM)
    image_size: int

    def encode(self, images: torch.Tensor) -> ImageFeatures:
        """Encode crops.

        Args:
            images: ``(B, H, W, 3)`` uint8 RGB, ``H == W == image_size``
                (normalisation happens inside, with SAM's pixel mean/std).
        """
        ...

    def decode(
        self, features: ImageFeatures, boxes: torch.Tensor, image_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict one mask per box.

        Args:
            features: output of :meth:`encode` for ``B`` crops.
            boxes: ``(M, 4)`` float xyxy in model-input pixels (0..image_size).
            image_index: ``(M,)`` long, which crop each box belongs to.

        Returns:
            ``(logits, iou)``: ``(M, 256, 256)`` float32 low-res mask logits
            over the whole model input, and ``(M,)`` float32 predicted IoU.
        """
        ...


@runtime_checkable
class CropModel(Protocol):
    """A box-prompted model that cuts its own small inputs (``lite``).

    The engine calls :meth:`window` and :meth:`make_input` for each object on
    its worker threads, :meth:`predict` on batches of inputs gathered across
    objects and frames, and :meth:`mask_block` to turn an object's output into
    its mask in window pixels.
    """

    name: str

    def window(self, xyxy: np.ndarray | list[float]) -> CropWindow:
        """The object's window (frame pixels) for a box ``xyxy`` (frame pixels)."""
        ...

    def make_input(
        self, image: np.ndarray, xyxy: np.ndarray | list[float], window: CropWindow
    ) -> np.ndarray:
        """The network input of one object (any array the model's :meth:`predict` takes).

        Args:
            image: ``(H, W, 3)`` uint8 RGB frame.
            xyxy: the box, frame pixels.
            window: :meth:`window`'s window for it.
        """
        ...

    def predict(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """``(outputs, iou)``: one output per input, and ``(n,)`` float32 predicted IoUs."""
        ...

    def mask_block(
        self, output: np.ndarray, window: CropWindow, xyxy: np.ndarray | list[float]
    ) -> MaskBlock:
        """The object's mask in window pixels from its output (``xyxy``: its box, frame pixels)."""
        ...


@runtime_checkable
class ShapeModel(Protocol):
    """A weight-free mask maker working on one crop window."""

    name: str
    #: whether :meth:`segment` needs the crop's pixels (GrabCut does, box fill doesn't)
    needs_image: bool

    def segment(
        self,
        crop: np.ndarray | None,
        box: np.ndarray,
        size: int,
        obb: np.ndarray | None = None,
        category: str = "",
    ) -> tuple[np.ndarray, float | None, str]:
        """Make one mask.

        Args:
            crop: ``(S, S, 3)`` uint8 RGB window pixels (``None`` if not needed).
            box: ``(4,)`` xyxy in window pixels.
            size: the window side ``S``.
            obb: optional ``(4, 2)`` oriented-box corners in window pixels.
            category: the object's category name.

        Returns:
            ``(mask, score, source)``: ``(S, S)`` bool, a score or ``None``,
            and the mask source (``"box"``, ``"ellipse"``, ``"obb"``, ``"grabcut"``).

        A model may also have ``segment_block(pixels, box, size, obb=None,
        category="")``, which returns the same mask as a
        :class:`~box2mask.types.MaskBlock` in window pixels and takes the
        window's pixels as a :class:`~box2mask.geometry.WindowPixels` (cut
        on demand by slicing). The engine then calls it instead, so a small
        object costs its box, not its window (the built-in shape models all
        have it: they derive from :class:`BlockShapeModel`). It is optional:
        it is not part of this protocol's ``isinstance`` check.
        """
        ...


class BlockShapeModel:
    """Base of the shape models that make a mask as its block (every built-in one).

    A subclass defines :meth:`segment_block`, the call the engine makes;
    :meth:`segment`, the full-window form of :class:`ShapeModel`, is built from
    it, so the two give the same mask.
    """

    def segment_block(
        self, crop: Pixels, box: np.ndarray, size: int, obb: Corners = None, category: str = ""
    ) -> tuple[MaskBlock, float | None, str]:
        """:meth:`ShapeModel.segment` with the mask as a :class:`~box2mask.types.MaskBlock`
        in window pixels; ``crop`` may be a :class:`~box2mask.geometry.WindowPixels`
        (cut on demand, so only the pixels the model looks at are read)."""
        raise NotImplementedError(f"{type(self).__name__} must define segment_block")

    def segment(
        self, crop: Pixels, box: np.ndarray, size: int, obb: Corners = None, category: str = ""
    ) -> tuple[np.ndarray, float | None, str]:
        """See :class:`ShapeModel`: :meth:`segment_block`'s mask as an ``(S, S)`` array."""
        block, score, source = self.segment_block(crop, box, size, obb, category)
        return block.to_array(size), score, source
