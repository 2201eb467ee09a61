"""box2mask's one mask codec: the block type, COCO RLE encode and decode, and paint.

Where a mask is kept, read and drawn (docs/engine.md, "Masks"):

- :class:`MaskBlock` (:mod:`.block`): a mask as the rectangle that holds its
  pixels. The engine's masks are blocks in crop-window pixels
  (:attr:`box2mask.types.ObjectMask.block`); :meth:`MaskBlock.to_frame`
  places one in the frame.
- :mod:`.rle`: COCO RLE. :func:`encode_object_mask` and friends write the
  COCO output's ``segmentation`` at the cost of the crop;
  :func:`decode` reads any COCO ``segmentation`` (compressed or uncompressed
  RLE, polygons) back into a block in frame pixels at the cost of the
  object. Every reader of masks in box2mask (the track formats, ``qa``,
  ``qa apply``, the consistency measure, the COCO adapter) decodes with it.
- :func:`paint` (:mod:`.paint`): a frame's objects into one index map, with
  the one overlap rule, *the smaller object stays on top* (fewest pixels
  inside the frame; ties to the later object): png, davis, mots and
  ``qa apply`` paint with it.

This package imports nothing else of box2mask: :mod:`box2mask.types` builds
on it.
"""

from box2mask.masks.block import MaskBlock, union
from box2mask.masks.paint import paint, paint_order
from box2mask.masks.rle import (
    EncodedMask,
    compress,
    decode,
    encode_block,
    encode_frame_block,
    encode_object_mask,
    encode_window_mask,
    rle_runs,
)

__all__ = [
    "EncodedMask",
    "MaskBlock",
    "compress",
    "decode",
    "encode_block",
    "encode_frame_block",
    "encode_object_mask",
    "encode_window_mask",
    "paint",
    "paint_order",
    "rle_runs",
    "union",
]
