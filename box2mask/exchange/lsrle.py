"""Label Studio's brush RLE: a mask as the bytes its ``BrushLabels`` regions hold.

Label Studio stores a brush region as ``value.rle``, a list of byte values: the
image's RGBA pixels, row-major (``H × W × 4`` values), packed by thi.ng's
``rle-pack`` (the decoder in Label Studio's editor; ``label_studio_sdk.
converter.brush.decode_rle`` / ``encode_rle`` are its Python copies). The bit
stream, most significant bit first:

- a header: the number of values (32 bits), the word size less one (5 bits),
  and four run-length field widths less one (4 bits each);
- then chunks until that many values are out: a flag bit, a 2-bit index into
  the four widths, and ``length - 1`` in that many bits; a flag of 1 is a run
  of one value (one word follows), 0 is ``length`` literal words.

A mask pixel is ``(255, 255, 255, 255)`` and background ``(0, 0, 0, 0)``, as
the SDK's ``mask2rle`` writes them; reading back, a pixel is in the mask when
its alpha is not 0 (what Label Studio's own COCO and PNG exports take).
:func:`encode` writes only runs, with word size 8 and widths 3, 4, 8 and 16
bits, as the SDK does; :func:`decode` reads any stream the format allows
(the editor writes literal chunks for painted pixels, whose RGBA values
differ).

Both work on whole arrays (numpy), not bit strings: a 4K frame is 33 million
values, but only as many chunks as the mask has runs.
"""

from __future__ import annotations

import numpy as np

#: run-length field widths of the chunks :func:`encode` writes (the SDK's and the editor's)
WIDTHS = (3, 4, 8, 16)
_WORD = 8
_MAX_RUN = 1 << WIDTHS[-1]


def encode(mask: np.ndarray) -> list[int]:
    """An ``(H, W)`` bool mask as Label Studio brush RLE (``value.rle``: bytes as ints).

    >>> decode(encode(np.eye(3, dtype=bool)), (3, 3)).astype(int).tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    n = flat.size
    if n == 0:
        return _pack(_header(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    # runs of pixels, then ×4 values per pixel (RGBA all 0 or all 255)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [n]))).astype(np.int64) * 4
    values = np.where(flat[starts], 255, 0).astype(np.int64)
    # a run longer than the widest field is cut into full chunks and a rest
    full = (lengths - 1) // _MAX_RUN
    reps = full + 1
    chunk_values = np.repeat(values, reps)
    chunk_len = np.full(int(reps.sum()), _MAX_RUN, dtype=np.int64)
    last = np.cumsum(reps) - 1
    chunk_len[last] = lengths - full * _MAX_RUN
    idx = np.searchsorted(np.array([1 << w for w in WIDTHS]), chunk_len)  # smallest width fitting
    widths = np.array(WIDTHS, dtype=np.int64)[idx]
    nbits = 1 + 2 + widths + _WORD
    codes = (
        (np.int64(1) << (nbits - 1))
        | (idx.astype(np.int64) << (widths + _WORD))
        | ((chunk_len - 1) << _WORD)
        | chunk_values
    )
    return _pack(_header(n * 4), codes, nbits)


def _header(num: int) -> np.ndarray:
    """The 53 header bits: value count, word size less one, the four widths less one."""
    bits = [(num >> (31 - i)) & 1 for i in range(32)]
    bits += [((_WORD - 1) >> (4 - i)) & 1 for i in range(5)]
    for w in WIDTHS:
        bits += [((w - 1) >> (3 - i)) & 1 for i in range(4)]
    return np.array(bits, dtype=np.uint8)


def _pack(head: np.ndarray, codes: np.ndarray, nbits: np.ndarray) -> list[int]:
    """``head`` then each code's low ``nbits`` bits, MSB first, as bytes (zero-padded)."""
    offsets = head.size + np.concatenate(([0], np.cumsum(nbits)[:-1])).astype(np.int64)
    bits = np.zeros(head.size + int(nbits.sum()), dtype=np.uint8)
    bits[: head.size] = head
    for b in range(int(nbits.max(initial=0))):
        sel = nbits > b
        bits[offsets[sel] + b] = (codes[sel] >> (nbits[sel] - 1 - b)) & 1
    return np.packbits(bits).tolist()


def decode(rle: list[int] | bytes, hw: tuple[int, int]) -> np.ndarray:
    """Label Studio brush RLE as an ``(H, W)`` bool mask (alpha channel not 0).

    Raises:
        ValueError: the stream is cut short, or does not hold ``H × W × 4`` values.
    """
    h, w = int(hw[0]), int(hw[1])
    values = decode_values(rle)
    if values.size != h * w * 4:
        raise ValueError(
            f"brush RLE holds {values.size} values, not the {h}x{w} image's {h * w * 4} (RGBA)"
        )
    return values.reshape(h, w, 4)[:, :, 3] != 0


def decode_values(rle: list[int] | bytes) -> np.ndarray:
    """The values of an rle-pack stream (any word size up to 32 and any widths)."""
    try:
        raw = bytes(rle)
    except (TypeError, ValueError):
        raise ValueError("brush RLE is not a list of byte values (0..255)") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    end = bits.size
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > end:
            raise ValueError("brush RLE is cut short")
        v = 0
        for bit in bits[pos : pos + n].tolist():
            v = (v << 1) | bit
        pos += n
        return v

    num = read(32)
    word = read(5) + 1
    widths = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32)
    weights = (1 << np.arange(word - 1, -1, -1, dtype=np.int64)).astype(np.int64)
    i = 0
    while i < num:
        run = read(1)
        j = min(num, i + 1 + read(widths[read(2)]))
        if run:
            out[i:j] = read(word)
        else:
            m = j - i
            if pos + m * word > end:
                raise ValueError("brush RLE is cut short")
            words = bits[pos : pos + m * word].reshape(m, word).astype(np.int64)
            out[i:j] = words @ weights
            pos += m * word
        i = j
    return out
