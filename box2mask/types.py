"""The central types every part of box2mask speaks.

Conventions (DESIGN §3):

- boxes are ``xyxy`` float pixels, origin at the top-left corner of the
  top-left pixel, ``x2``/``y2`` exclusive: a box covering pixel columns
  10..19 has ``x1 = 10, x2 = 20``;
- sizes are ``(H, W)`` and named ``*_hw``;
- images are RGB ``uint8`` arrays of shape ``(H, W, 3)``.

Masks stay crop-local (:class:`ObjectMask`) until a writer needs them: a
full-frame ``(N, H, W)`` stack for 300 objects on a 4K frame is gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from box2mask.masks.block import MaskBlock

#: Where a mask came from (recorded in every annotation). ``shape``: an inscribed
#: shape fitted to the image by the ``classical`` model.
MASK_SOURCES = ("model", "box", "ellipse", "polygon", "obb", "grabcut", "shape")

#: ``gt_mask(i)`` returns object ``i``'s full-frame ground-truth mask,
#: ``(H, W)`` bool, or ``None`` when that object has none.
GtMaskProvider = Callable[[int], "np.ndarray | None"]


def _as_array(
    name: str, value: Any, dtype: Any, shape_tail: tuple[int, ...], n: int | None
) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.size == 0 and n in (0, None):
        arr = arr.reshape((0, *shape_tail))
    want = ("N", *shape_tail)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        raise ValueError(f"{name} must have shape {want}, got {tuple(arr.shape)}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but xyxy has {n}")
    return arr


@dataclass(frozen=True, eq=False)
class Frame:
    """One video frame and the boxes annotated in it.

    Attributes:
        sequence: sequence name, unique within the dataset (``"car/001"``).
        frame_index: the dataset's own frame number (1-based in most datasets).
        image_path: the frame's image file (absolute, or relative to the cwd).
        image_hw: ``(H, W)`` of the image in pixels.
        xyxy: ``(N, 4)`` float64 boxes in frame pixels (see module docstring).
        track_id: ``(N,)`` int64 track ids.
        category: ``(N,)`` category names (shared across datasets:
            ``airplane``, ``ship``, ``train``, ``car``, ...).
        file_name: path of the image relative to the dataset root, as written
            into COCO ``images[].file_name``.
        obb: optional ``(N, 4, 2)`` float64 oriented-box corners ``(x, y)`` in
            frame pixels, in order around the box.
        gt_mask: optional provider of ground-truth masks (see
            :data:`GtMaskProvider`).
        attributes: per-object extra data, each value a length-``N`` sequence
            (``{"fine_class": [...]}``).
    """

    sequence: str
    frame_index: int
    image_path: Path
    image_hw: tuple[int, int]
    xyxy: np.ndarray
    track_id: np.ndarray
    category: np.ndarray
    file_name: str = ""
    obb: np.ndarray | None = None
    gt_mask: GtMaskProvider | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = _as_array("xyxy", self.xyxy, np.float64, (4,), None)
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "track_id", _as_array("track_id", self.track_id, np.int64, (), n))
        cat = np.asarray(self.category, dtype=object).reshape(-1)
        if cat.shape[0] != n:
            raise ValueError(f"category has {cat.shape[0]} entries but xyxy has {n}")
        object.__setattr__(self, "category", cat)
        if self.obb is not None:
            object.__setattr__(self, "obb", _as_array("obb", self.obb, np.float64, (4, 2), n))
        hw = tuple(int(v) for v in self.image_hw)
        if len(hw) != 2 or hw[0] <= 0 or hw[1] <= 0:
            raise ValueError(f"image_hw must be (H, W) with H, W > 0, got {self.image_hw!r}")
        object.__setattr__(self, "image_hw", hw)
        object.__setattr__(self, "image_path", Path(self.image_path))
        if not self.file_name:
            object.__setattr__(self, "file_name", Path(self.image_path).name)
        for key, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"attribute {key!r} has {len(values)} entries but xyxy has {n}")
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
        if not np.isfinite(xyxy).all():
            raise ValueError(f"{self.sequence} frame {self.frame_index}: boxes must be finite")
        bad = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{self.sequence} frame {self.frame_index}: box {i} has x2 < x1 or y2 < y1: "
                f"{xyxy[i].tolist()}"
            )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def key(self) -> tuple[str, int]:
        """``(sequence, frame_index)``: identifies the frame within a dataset."""
        return (self.sequence, self.frame_index)


@dataclass(frozen=True)
class CropWindow:
    """A square window in frame pixels; may extend past the image.

    Attributes:
        x0, y0: top-left corner of the window in frame pixels (may be negative).
        size: side ``S`` of the window in pixels.
    """

    x0: int
    y0: int
    size: int

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"window size must be > 0, got {self.size}")

    def box_to_crop(self, xyxy: np.ndarray) -> np.ndarray:
        """Frame-pixel ``xyxy`` box(es) to window pixels (same shape)."""
        return np.asarray(xyxy, dtype=np.float64) - np.array(
            [self.x0, self.y0, self.x0, self.y0], dtype=np.float64
        )

    def overlap(self, image_hw: tuple[int, int]) -> tuple[slice, slice, slice, slice] | None:
        """The part of the window inside the image.

        Returns:
            ``(frame_rows, frame_cols, crop_rows, crop_cols)`` slices such that
            ``frame[frame_rows, frame_cols]`` and ``crop[crop_rows, crop_cols]``
            are the same pixels, or ``None`` when the window misses the image.
        """
        h, w = image_hw
        fx0, fy0 = max(self.x0, 0), max(self.y0, 0)
        fx1, fy1 = min(self.x0 + self.size, w), min(self.y0 + self.size, h)
        if fx1 <= fx0 or fy1 <= fy0:
            return None
        return (
            slice(fy0, fy1),
            slice(fx0, fx1),
            slice(fy0 - self.y0, fy1 - self.y0),
            slice(fx0 - self.x0, fx1 - self.x0),
        )


class ObjectMask:
    """One object's mask, kept in its crop window's coordinates.

    Attributes:
        track_id: the object's track id.
        category: category name.
        window: the crop window the mask is expressed in.
        mask: ``(S, S)`` bool, ``S = window.size``; pixel ``(r, c)`` is frame
            pixel ``(window.y0 + r, window.x0 + c)``.
        block: the same mask as a :class:`MaskBlock` in window pixels.
        prompt_xyxy: ``(4,)`` the box prompt in frame pixels.
        score: the model's predicted IoU, or ``None`` where it gives none.
        source: one of :data:`MASK_SOURCES`.

    Made from a full ``(S, S)`` mask (``ObjectMask(..., mask, ...)``) or from
    its block (:meth:`from_block`); each form is derived from the other on
    first use and kept. The engine makes every mask from its block, so a
    small object costs its block, not the window: writers that read
    :attr:`block` and :attr:`area` never build the ``(S, S)`` array.
    Immutable, like a frozen dataclass; compared by identity.
    """

    __slots__ = ("track_id", "category", "window", "prompt_xyxy", "score", "source",
                 "_mask", "_block")  # fmt: skip

    track_id: int
    category: str
    window: CropWindow
    prompt_xyxy: np.ndarray
    score: float | None
    source: str

    def __init__(
        self,
        track_id: int,
        category: str,
        window: CropWindow,
        mask: np.ndarray,
        prompt_xyxy: np.ndarray,
        score: float | None = None,
        source: str = "model",
    ) -> None:
        m = np.asarray(mask)
        s = window.size
        if m.shape != (s, s):
            raise ValueError(f"mask must have the window's shape ({s}, {s}), got {m.shape}")
        self._set(track_id, category, window, prompt_xyxy, score, source)
        object.__setattr__(self, "_mask", m.astype(bool, copy=False))
        object.__setattr__(self, "_block", None)

    @classmethod
    def from_block(
        cls,
        track_id: int,
        category: str,
        window: CropWindow,
        block: MaskBlock,
        prompt_xyxy: np.ndarray,
        score: float | None = None,
        source: str = "model",
    ) -> ObjectMask:
        """An object mask given by its :class:`MaskBlock` in window pixels (inside the window)."""
        if not isinstance(block, MaskBlock):
            raise TypeError(f"block must be a MaskBlock, got {type(block).__name__}")
        s = window.size
        if block.height and (block.bottom > s or block.right > s):
            raise ValueError(
                f"block rows {block.top}:{block.bottom}, columns {block.left}:{block.right} "
                f"go past the ({s}, {s}) window"
            )
        self = cls.__new__(cls)
        self._set(track_id, category, window, prompt_xyxy, score, source)
        object.__setattr__(self, "_mask", None)
        object.__setattr__(self, "_block", block)
        return self

    def _set(
        self,
        track_id: int,
        category: str,
        window: CropWindow,
        prompt_xyxy: np.ndarray,
        score: float | None,
        source: str,
    ) -> None:
        if source not in MASK_SOURCES:
            raise ValueError(f"source must be one of {MASK_SOURCES}, got {source!r}")
        put = object.__setattr__
        put(self, "track_id", track_id)
        put(self, "category", category)
        put(self, "window", window)
        put(self, "prompt_xyxy", np.asarray(prompt_xyxy, dtype=np.float64).reshape(4))
        put(self, "score", score)
        put(self, "source", source)

    @property
    def mask(self) -> np.ndarray:
        """``(S, S)`` bool (built from :attr:`block` on first use)."""
        if self._mask is None:
            object.__setattr__(self, "_mask", self._block.to_array(self.window.size))
        return self._mask

    @property
    def block(self) -> MaskBlock:
        """The mask's :class:`MaskBlock` in window pixels (found in :attr:`mask` on first use)."""
        if self._block is None:
            object.__setattr__(self, "_block", MaskBlock.from_mask(self._mask))
        return self._block

    @property
    def area(self) -> int:
        """Number of mask pixels in the window (those outside the frame included)."""
        return self.block.area

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # the block is what travels between processes (a few hundred bytes for a small object)
        return (
            ObjectMask.from_block,
            (self.track_id, self.category, self.window, self.block, self.prompt_xyxy,
             self.score, self.source),
        )  # fmt: skip

    def __repr__(self) -> str:
        b = self.block
        return (
            f"ObjectMask(track_id={self.track_id!r}, category={self.category!r}, "
            f"window={self.window!r}, block=rows {b.top}:{b.bottom} cols {b.left}:{b.right} "
            f"area {b.area}, score={self.score!r}, source={self.source!r})"
        )


@dataclass(frozen=True, eq=False)
class FrameMasks:
    """A frame and the masks made for its objects, in the frame's object order."""

    frame: Frame
    masks: tuple[ObjectMask, ...]
