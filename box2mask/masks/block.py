"""The one block type: a mask kept as the rectangle that holds its pixels.

Every mask of box2mask that is not a whole-frame array is a :class:`MaskBlock`:
the engine's masks (in crop-window pixels), decoded RLE
(:func:`box2mask.masks.decode`, in frame pixels), what the writers paint
(:func:`box2mask.masks.paint`) and what ``qa`` and the consistency measure
read. Making, storing, encoding and painting one costs in proportion to the
object, not to the window or the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class MaskBlock:
    """The rectangle of a mask that holds all its pixels, and those pixels.

    A small object's mask is a few hundred pixels of a 512×512 window: kept as
    its block, making, storing and encoding it costs in proportion to the
    object, not the window. Coordinates are those of the enclosing array (a
    crop window for :attr:`box2mask.types.ObjectMask.block`; the frame for
    :meth:`to_frame`, for what :func:`box2mask.masks.decode` returns and for
    what :func:`box2mask.masks.paint` takes): block pixel ``(r, c)`` is pixel
    ``(top + r, left + c)`` (row, column) of that array.

    Attributes:
        top, left: the block's first row and column (>= 0).
        height, width: its size (>= 0; 0 for an empty mask).
        data: ``(height, width)`` bool, the mask's pixels in the block; ``None``
            when every pixel of the block is set (a filled box).

    Every set pixel of the mask lies in the block, but the block need not be
    tight: :meth:`tight` shrinks it to the set pixels.

    >>> MaskBlock(1, 2, 2, 3).to_array(4).astype(int)
    array([[0, 0, 0, 0],
           [0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 0, 0, 0]])
    """

    top: int
    left: int
    height: int
    width: int
    data: np.ndarray | None = None

    def __post_init__(self) -> None:
        t, lf, h, w = self.top, self.left, self.height, self.width
        # fast path (one per small object): plain ints >= 0 need no conversion
        if not (
            type(t) is int and type(lf) is int and type(h) is int and type(w) is int
            and t >= 0 and lf >= 0 and h >= 0 and w >= 0
        ):  # fmt: skip
            for name in ("top", "left", "height", "width"):
                v = getattr(self, name)
                if int(v) != v or v < 0:
                    raise ValueError(f"MaskBlock.{name} must be an integer >= 0, got {v!r}")
                object.__setattr__(self, name, int(v))
        if self.data is not None:
            d = np.asarray(self.data)
            if d.shape != (self.height, self.width):
                raise ValueError(
                    f"MaskBlock.data must have shape ({self.height}, {self.width}), got {d.shape}"
                )
            object.__setattr__(self, "data", d.astype(bool, copy=False))

    @classmethod
    def empty(cls) -> MaskBlock:
        """The block of a mask without any pixel."""
        return cls(0, 0, 0, 0)

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> MaskBlock:
        """The tight block of a 2-D bool array (``data`` is ``None`` when the block is full).

        >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True; m[1, 2] = False
        >>> b = MaskBlock.from_mask(m); (b.top, b.left, b.height, b.width, b.area)
        (1, 2, 2, 3, 5)
        """
        m = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            return cls.empty()
        cols = np.flatnonzero(m[rows[0] : rows[-1] + 1].any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        data = m[r0:r1, c0:c1]
        full = data.size == np.count_nonzero(data)
        return cls(r0, c0, r1 - r0, c1 - c0, None if full else data.copy())

    @property
    def area(self) -> int:
        """Number of set pixels."""
        if self.data is None:
            return self.height * self.width
        return int(np.count_nonzero(self.data))

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    def pixels(self) -> np.ndarray:
        """``(height, width)`` bool: :attr:`data`, or all ``True``."""
        if self.data is None:
            return np.ones((self.height, self.width), dtype=bool)
        return self.data

    def tight(self) -> MaskBlock:
        """The same mask with the block shrunk to its set pixels (empty: :meth:`empty`)."""
        if self.data is None:
            return self if self.height and self.width else self.empty()
        inner = MaskBlock.from_mask(self.data)
        if inner.height == 0:
            return inner
        return MaskBlock(self.top + inner.top, self.left + inner.left, inner.height,
                         inner.width, inner.data)  # fmt: skip

    def clip(self, top: int, left: int, bottom: int, right: int) -> MaskBlock:
        """The part of the mask inside rows ``top:bottom``, columns ``left:right`` (not tightened)."""
        r0, r1 = max(self.top, top), min(self.bottom, bottom)
        c0, c1 = max(self.left, left), min(self.right, right)
        if r1 <= r0 or c1 <= c0:
            return self.empty()
        if r0 == self.top and c0 == self.left and r1 == self.bottom and c1 == self.right:
            return self
        data = None
        if self.data is not None:
            data = self.data[r0 - self.top : r1 - self.top, c0 - self.left : c1 - self.left]
        return MaskBlock(r0, c0, r1 - r0, c1 - c0, data)

    def to_array(self, size: int | tuple[int, int]) -> np.ndarray:
        """The mask as an ``(S, S)`` (or ``(H, W)``) bool array; pixels past its edges are dropped."""
        hw = (size, size) if isinstance(size, int) else tuple(size)
        out = np.zeros(hw, dtype=bool)
        part = self.clip(0, 0, hw[0], hw[1])
        if part.height:
            out[part.top : part.bottom, part.left : part.right] = part.pixels()
        return out

    def xyxy(self) -> tuple[int, int, int, int]:
        """The block as a box ``(x1, y1, x2, y2)``, exclusive ends; zeros when it is empty.

        >>> MaskBlock(1, 2, 2, 3).xyxy()
        (2, 1, 5, 3)
        """
        if self.height == 0 or self.width == 0:
            return (0, 0, 0, 0)
        return (self.left, self.top, self.right, self.bottom)

    def to_frame(self, origin: tuple[int, int], frame_hw: tuple[int, int]) -> MaskBlock:
        """This block, in an array whose pixel ``(0, 0)`` is frame pixel ``origin``, seen in the frame.

        Shifted by ``origin = (y0, x0)`` (a crop window's top-left corner, which
        may lie outside the frame), cut to the ``frame_hw = (H, W)`` frame and
        tightened. Costs in proportion to the block.

        Returns:
            The block in frame pixels (:meth:`empty` when nothing is inside the frame).

        >>> MaskBlock(0, 0, 4, 6).to_frame((5, -2), (20, 30))
        MaskBlock(top=5, left=0, height=4, width=4, data=None)
        """
        y0, x0 = origin
        h, w = frame_hw
        part = self.clip(-y0, -x0, h - y0, w - x0)
        if part.height == 0:
            return part
        return MaskBlock(part.top + y0, part.left + x0, part.height, part.width, part.data).tight()


def union(blocks: Sequence[MaskBlock]) -> MaskBlock:
    """The pixels set in any of ``blocks`` (one coordinate frame), as one tight block.

    >>> union([MaskBlock(0, 0, 1, 2), MaskBlock(1, 1, 1, 2)]).pixels().astype(int)
    array([[1, 1, 0],
           [0, 1, 1]])
    """
    parts = [b for b in blocks if b.height and b.width]
    if len(parts) <= 1:
        return parts[0].tight() if parts else MaskBlock.empty()
    top, left = min(b.top for b in parts), min(b.left for b in parts)
    bottom, right = max(b.bottom for b in parts), max(b.right for b in parts)
    out = np.zeros((bottom - top, right - left), dtype=bool)
    for b in parts:
        region = out[b.top - top : b.bottom - top, b.left - left : b.right - left]
        if b.data is None:
            region[...] = True
        else:
            region |= b.data
    inner = MaskBlock.from_mask(out)
    if inner.height == 0:
        return inner
    return MaskBlock(top + inner.top, left + inner.left, inner.height, inner.width, inner.data)
