"""COCO RLE, both ways: encode at a cost that follows the crop, decode at one that follows the object.

COCO's RLE runs over the whole ``H×W`` frame in column-major order. Both
directions here work from the mask's :class:`~box2mask.masks.block.MaskBlock`
and never build the frame.

Encode. Encoding a full-frame mask costs ``O(H·W)`` per object, which for 300
objects on a 4K frame is most of a second. Here the runs come from the mask's
tight block only (``O(h·w)`` for an ``h×w`` object), are shifted to frame
indices, and pycocotools compresses the counts into its string form (its own
C code, a few microseconds: the string is exactly what
``pycocotools.mask.encode`` of the full-frame mask gives).

- :func:`encode_block` / :func:`encode_object_mask`: from a block in crop
  window pixels (what the engine makes): the cost is that of the block; a
  filled box (``data is None``) is a few runs per column, written down
  directly without looking at any pixel, and so is its string
  (:func:`_box_string`): its run lengths repeat, so after the first three
  every character of COCO's delta code is ``"0"``. That is box2mask's own
  copy of pycocotools' ``rleToString`` for this one shape, because the
  pycocotools call (``frPyObjects``: Python-level checks, a numpy array, an
  ``RLEs`` object) costs ~15 µs, most of a box's encoding; it is tested
  against pycocotools on every box of small frames and on random ones.
- :func:`encode_window_mask`: from a full ``(S, S)`` window mask; finding
  its block costs one pass over the window.
- :func:`encode_frame_block`: from a block in frame pixels.

Decode. ``pycocotools.mask.decode`` builds the whole ``(H, W)`` frame for
every object; on a 4K frame with hundreds of objects that is most of the
time of a quality pass or of the track formats' assembly.

- :func:`rle_runs`: the run lengths of a compressed ``counts`` string
  (pycocotools' ``rleFrString``, vectorised: a Python loop per character
  costs more than the rest of a small object's work);
- :func:`decode`: any COCO ``segmentation`` (compressed or uncompressed
  RLE, polygons) as its tight block in frame pixels, filled from the runs
  without a loop over them. This is box2mask's one RLE decoder: writers,
  ``qa``, ``qa apply``, the consistency measure and the COCO adapter all
  read masks through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_utils

from box2mask.masks.block import MaskBlock

if TYPE_CHECKING:  # only for the annotations: box2mask.types imports this package
    from box2mask.types import CropWindow, ObjectMask


@dataclass(frozen=True)
class EncodedMask:
    """A mask ready for COCO.

    Attributes:
        rle: ``{"size": [H, W], "counts": str}`` compressed RLE.
        area: number of mask pixels inside the frame.
        bbox: ``[x, y, w, h]`` tight box of the mask in frame pixels (zeros if empty).
    """

    rle: dict
    area: int
    bbox: list[float]


def encode_window_mask(
    mask: np.ndarray, window: CropWindow, image_hw: tuple[int, int]
) -> EncodedMask:
    """Encode an ``(S, S)`` crop-local bool mask as a frame-level compressed RLE.

    Pixels of the window outside the frame are dropped.

    Args:
        mask: ``(S, S)`` bool, pixel ``(r, c)`` is frame pixel ``(window.y0 + r, window.x0 + c)``.
        window: the mask's window.
        image_hw: ``(H, W)`` of the frame.
    """
    ov = window.overlap(image_hw)
    if ov is None:
        return _empty(image_hw)
    fr, fc, cr, cc = ov
    block = MaskBlock.from_mask(mask[cr, cc])
    return encode_frame_block(block.to_frame((fr.start, fc.start), image_hw), image_hw)


def encode_block(block: MaskBlock, window: CropWindow, image_hw: tuple[int, int]) -> EncodedMask:
    """Encode a mask given by its block in ``window`` pixels; same result as
    :func:`encode_window_mask` of ``block.to_array(window.size)``, at the block's cost."""
    if block.data is None:  # a filled box: cut it to the frame, no pixels to look at
        h_img, w_img = image_hw
        top, left = window.y0 + block.top, window.x0 + block.left
        r0, r1 = max(top, 0), min(top + block.height, h_img)
        c0, c1 = max(left, 0), min(left + block.width, w_img)
        if r1 <= r0 or c1 <= c0:
            return _empty(image_hw)
        return _encode_box(r0, c0, r1 - r0, c1 - c0, h_img, w_img)
    return encode_frame_block(block.to_frame((window.y0, window.x0), image_hw), image_hw)


def encode_object_mask(om: ObjectMask, image_hw: tuple[int, int]) -> EncodedMask:
    """:func:`encode_block` of an :class:`~box2mask.types.ObjectMask`'s block."""
    return encode_block(om.block, om.window, image_hw)


def encode_frame_block(block: MaskBlock, image_hw: tuple[int, int]) -> EncodedMask:
    """Encode a mask given by a block in frame pixels (inside the frame; tightened here)."""
    h_img, w_img = image_hw
    if block.data is not None:
        block = block.tight()
    if block.height == 0 or block.width == 0:
        return _empty(image_hw)
    top, left, bh, bw = block.top, block.left, block.height, block.width
    if block.bottom > h_img or block.right > w_img:
        raise ValueError(f"block {block.top}:{block.bottom}, {block.left}:{block.right} "
                         f"is not inside the {h_img}x{w_img} frame")  # fmt: skip
    if block.data is None:
        return _encode_box(top, left, bh, bw, h_img, w_img)
    counts = _block_counts(block.data, top, left, h_img, w_img)
    area = int(np.count_nonzero(block.data))
    return EncodedMask(
        _compress(counts, image_hw), area, [float(left), float(top), float(bw), float(bh)]
    )


def _empty(image_hw: tuple[int, int]) -> EncodedMask:
    h_img, w_img = image_hw
    return EncodedMask(
        {"size": [h_img, w_img], "counts": _counts_string([h_img * w_img])},
        0,
        [0.0, 0.0, 0.0, 0.0],
    )


def _encode_box(top: int, left: int, bh: int, bw: int, h_img: int, w_img: int) -> EncodedMask:
    """A filled ``bh×bw`` box at ``(top, left)`` inside an ``h_img×w_img`` frame (``bh, bw >= 1``)."""
    return EncodedMask(
        {"size": [h_img, w_img], "counts": _box_string(top, left, bh, bw, h_img, w_img)},
        bh * bw,
        [float(left), float(top), float(bw), float(bh)],
    )


def _box_string(top: int, left: int, bh: int, bw: int, h_img: int, w_img: int) -> str:
    """COCO's compressed counts string of :func:`_box_counts`, written from its pattern.

    COCO codes count ``i > 2`` as its difference from count ``i - 2``; a box's
    runs (``bh``) and gaps (``h_img - bh``) repeat, so those differences are
    0 (one ``"0"`` each) until the trailing zeros.

    >>> from pycocotools import mask as m
    >>> full = np.zeros((6, 5), np.uint8, order="F"); full[1:4, 1:4] = 1
    >>> _box_string(1, 1, 3, 3, 6, 5) == m.encode(full)["counts"].decode()
    True
    """
    if bh == h_img or bw == 1:  # three counts at most: no repeating pattern
        return _counts_string(_box_counts(top, left, bh, bw, h_img, w_img))
    gap = h_img - bh
    rest = h_img * w_img - ((left + bw - 1) * h_img + top + bh)
    # counts: [left*H + top, bh, gap, bh, gap, ..., bh(, rest)]; the rest is count 2*bw
    head = _counts_string([left * h_img + top, bh, gap])
    tail = _code(rest - gap) if rest else ""
    return head + "0" * (2 * bw - 3) + tail


def _code(x: int) -> str:
    """One count (or difference) in COCO's string code: 5-bit groups, low first, + 48."""
    out = []
    more = True
    while more:
        c = x & 0x1F
        x >>= 5
        more = x != -1 if c & 0x10 else x != 0
        if more:
            c |= 0x20
        out.append(chr(c + 48))
    return "".join(out)


def _counts_string(counts: list[int]) -> str:
    """pycocotools' ``rleToString``: count ``i > 2`` coded as its difference from count ``i - 2``."""
    return "".join(_code(c - counts[i - 2] if i > 2 else c) for i, c in enumerate(counts))


def _box_counts(top: int, left: int, bh: int, bw: int, h_img: int, w_img: int) -> list[int]:
    """Uncompressed COCO counts of a frame that is zero except for a filled ``bh×bw`` box.

    Column-major: the zeros before the box's first pixel, then per column
    ``bh`` ones and the ``h_img - bh`` zeros down to the next column's first
    box pixel, then the zeros after the box (left out when there are none).
    A box the frame's full height is one run (COCO runs join across columns).

    >>> _box_counts(1, 1, 2, 2, 4, 3)
    [5, 2, 2, 2, 1]
    """
    total = h_img * w_img
    if bh == h_img:
        counts = [left * h_img, bh * bw]
    else:
        counts = [left * h_img + top]
        counts += [bh, h_img - bh] * (bw - 1)
        counts.append(bh)
    rest = total - ((left + bw - 1) * h_img + top + bh)
    if rest:
        counts.append(rest)
    return counts


def _block_counts(block: np.ndarray, top: int, left: int, h_img: int, w_img: int) -> list[int]:
    """Uncompressed COCO counts of a frame that is zero except for ``block`` at ``(top, left)``."""
    bh, bw = block.shape
    # One zero row above and below each column, so that runs never join across
    # columns here (they are joined below where the block spans the full height).
    padded = np.zeros((bh + 2, bw), dtype=np.int8)
    padded[1:-1] = block
    flat = padded.ravel(order="F")
    d = np.diff(flat)
    starts = np.flatnonzero(d == 1) + 1  # positions in `flat` of first 1 of each run
    ends = np.flatnonzero(d == -1) + 1  # one past the last 1
    # position in flat -> (column j, padded row i) -> frame index (left + j) * H + top + i - 1
    col_s, row_s = np.divmod(starts, bh + 2)
    col_e, row_e = np.divmod(ends, bh + 2)
    fs = (left + col_s) * h_img + top + row_s - 1
    fe = (left + col_e) * h_img + top + row_e - 1
    if fs.size > 1:
        # a run ending at the bottom of one column and one starting at the top
        # of the next are one run when the block spans the full frame height
        join = fs[1:] == fe[:-1]
        if join.any():
            keep = np.concatenate(([True], ~join))
            fs = fs[keep]
            fe = np.concatenate((fe[:-1][~join], fe[-1:]))
    bounds = np.empty(fs.size * 2 + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = fs
    bounds[2:-1:2] = fe
    bounds[-1] = h_img * w_img
    counts = np.diff(bounds).tolist()
    if counts[-1] == 0:  # the mask reaches the last pixel: no trailing zero run
        counts.pop()
    return counts


def compress(counts: Sequence[int], image_hw: tuple[int, int]) -> str:
    """COCO's compressed ``counts`` string of run lengths over an ``(H, W)`` frame (pycocotools)."""
    h, w = (int(v) for v in image_hw)
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": list(counts)}, h, w)
    return rle["counts"].decode("ascii")


def _compress(counts: list[int], image_hw: tuple[int, int]) -> dict:
    return {"size": [int(image_hw[0]), int(image_hw[1])], "counts": compress(counts, image_hw)}


# ---------------------------------------------------------------------------
# Decode
# ---------------------------------------------------------------------------


def rle_runs(seg: Mapping[str, Any]) -> np.ndarray:
    """The run lengths of a COCO RLE (compressed ``counts`` str/bytes, or a list), ``(K,)`` int64.

    Runs alternate 0s and 1s, starting with 0s, over the frame in column-major
    order. The compressed string is decoded as pycocotools' ``rleFrString``,
    vectorised.

    >>> rle_runs({"size": [4, 3], "counts": "52"}).tolist()
    [5, 2]
    """
    counts = seg["counts"]
    if isinstance(counts, list | tuple | np.ndarray):
        return np.asarray(counts, dtype=np.int64).reshape(-1)
    if not isinstance(counts, str | bytes | bytearray):
        raise TypeError(
            f"RLE counts must be a string or a list of ints, not {type(counts).__name__}"
        )
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    c -= 48
    # each number is 5-bit groups, low first; bit 0x20 says another group follows
    ends = np.flatnonzero((c & 0x20) == 0)  # the last character of each number
    if ends.size == 0 or ends[-1] != c.size - 1:  # a cut string: its last number is unfinished
        ends = np.append(ends, c.size - 1)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    neg = (c[ends] & 0x10) != 0  # sign bit of the last 5-bit group
    if neg.any():
        x[neg] -= np.int64(1) << (5 * (k[ends[neg]] + 1))
    # from the third number on, each is a difference to the one two places back
    if x.size > 3:
        x[3::2] = np.cumsum(x[3::2]) + x[1]
    if x.size > 4:
        x[4::2] = np.cumsum(x[4::2]) + x[2]
    return x


def decode(seg: Any, frame_hw: tuple[int, int] | None = None) -> MaskBlock:
    """A COCO ``segmentation`` as its tight :class:`MaskBlock` in frame pixels.

    Args:
        seg: compressed RLE ``{"size": [H, W], "counts": str | bytes}``,
            uncompressed RLE (``counts`` a list of ints), or polygons (a list
            of flat ``[x0, y0, x1, y1, ...]`` lists, rasterised by
            pycocotools); ``None`` or an empty list: an empty mask.
        frame_hw: ``(H, W)`` of the frame: needed for polygons; an RLE's own
            ``size`` wins, as in pycocotools.

    Returns:
        The mask's block (``data`` ``None`` when every pixel of the block is
        set); runs past the frame's last pixel are dropped. The cost follows
        the object (its runs and its block), never the ``H×W`` frame.

    Raises:
        ValueError: a run length below 0 (not a COCO RLE), ``counts`` a string
            that is not ASCII, or polygons without ``frame_hw``.
        TypeError: ``counts`` neither a string nor a list.

    >>> decode({"size": [4, 3], "counts": [5, 2, 5]})
    MaskBlock(top=1, left=1, height=2, width=1, data=None)
    """
    if isinstance(seg, Mapping) and "counts" in seg:
        h, w = (int(v) for v in seg.get("size", frame_hw or (0, 0)))
        return _runs_block(rle_runs(seg), (h, w))
    if not seg:
        return MaskBlock.empty()
    if frame_hw is None:
        raise ValueError("decoding polygons needs the frame size")
    h, w = (int(v) for v in frame_hw)
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return _runs_block(rle_runs(rle), (h, w))


def _runs_block(runs: np.ndarray, frame_hw: tuple[int, int]) -> MaskBlock:
    """The tight block of the 1-runs of column-major ``runs`` over an ``(H, W)`` frame.

    Each 1-run is a start row and an end row in its column (a run that goes
    on into the next columns is cut at each column's end); the block is then
    filled by summing +1 at each start and -1 at each end down its columns.
    A few numpy calls per mask, none per run.
    """
    h, w = frame_hw
    n_pixels = h * w
    if runs.size < 2 or n_pixels <= 0:
        return MaskBlock.empty()
    lo = int(runs.min())
    if lo < 0:
        raise ValueError(f"RLE run length {lo} is below 0: not a COCO RLE")
    # runs past the frame's last pixel are cut there (each run first, so no sum overflows)
    bounds = np.cumsum(np.minimum(runs, n_pixels) if int(runs.max()) > n_pixels else runs)
    cut = int(bounds[-1]) > n_pixels
    if cut:
        np.minimum(bounds, n_pixels, out=bounds)
    ends = bounds[1::2]  # the 1-runs are the odd runs: [bounds[2i], bounds[2i + 1])
    starts = bounds[0 : 2 * ends.size : 2]
    if lo == 0 or cut:  # a 1-run of no pixel would widen the block
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        if starts.size == 0:
            return MaskBlock.empty()
    cols = starts // h
    r_s = starts - cols * h
    r_e = r_s + (ends - starts)  # past h: the run goes on into the next columns
    r1 = int(r_e.max())
    if r1 > h:
        span = (r_e - 1) // h + 1  # columns each run touches
        k = np.repeat(np.arange(span.size), span)
        step = np.arange(k.size) - np.repeat(np.cumsum(span) - span, span)
        cols = cols[k] + step
        r_s = np.where(step == 0, r_s[k], 0)
        r_e = np.minimum(r_e[k] - step * h, h)
        r1 = int(r_e.max())
    r0 = int(r_s.min())
    c0, c1 = int(cols[0]), int(cols[-1]) + 1  # the runs are in column order
    bh, bw = r1 - r0, c1 - c0
    if int((r_e - r_s).sum()) == bh * bw:  # the runs never overlap: every pixel is set
        return MaskBlock(r0, c0, bh, bw)
    size = (bh + 1) * bw
    at = cols - c0
    edge = np.bincount((r_s - r0) * bw + at, minlength=size)
    edge -= np.bincount((r_e - r0) * bw + at, minlength=size)
    data = np.cumsum(edge.reshape(bh + 1, bw), axis=0)[:-1] > 0
    return MaskBlock(r0, c0, bh, bw, data)  # the runs' extent is the tight block already
