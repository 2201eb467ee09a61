"""The part format: a frame's COCO image and annotations, as the job keeps them.

A *part* is the one record of a converted frame that every format assembled
at the end is built from (``<out>/.box2mask/parts/<sequence>/<frame>.json``,
:func:`box2mask.layout.part_path`)::

    {"image": {"file_name", "width", "height", "sequence", "frame_index"},
     "annotations": [{"category", "segmentation", "area", "bbox", "iscrowd",
                      "track_id", "score", "prompt_box", "mask_source"}, ...]}

- no ids: they are given when the parts are assembled (COCO ids 1.. in dataset
  order), so a resumed run, an uninterrupted one and the merge of shards write
  identical files;
- ``category`` is the category's name (the job's table gives its id);
- ``segmentation`` is compressed COCO RLE of the frame (``counts`` a str),
  ``area`` and ``bbox`` (xywh) are the mask's, ``prompt_box`` the input box
  (xywh), ``score`` :func:`box2mask.writers.coco.output_score` of the model's.

A corrected annotation (the corrections layer, :mod:`box2mask.job.corrections`)
has the same fields plus ``review``, ``review_tool`` and ``review_time``.

Written here (:func:`frame_part`, :func:`encode_part`: one compact JSON line, the
bytes a worker process sends to the driver), read here (:func:`read_part`); a
part is never rewritten after its frame is recorded: corrections live beside
it, in the layer. :func:`frame_masks` turns a part back into the
:class:`~box2mask.types.FrameMasks` a per-frame format encodes, so that every
format can be re-derived from parts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import Box2MaskError
from box2mask.layout import STATE_DIR, part_path
from box2mask.masks import MaskBlock, decode, encode_object_mask
from box2mask.types import CropWindow, Frame, FrameMasks, ObjectMask
from box2mask.writers.coco import output_score, xyxy_to_xywh
from box2mask.writers.davis import part_hw

Part = dict[str, Any]


def frame_part(fm: FrameMasks) -> Part:
    """The COCO image record and annotations (without ids) of one converted frame."""
    frame = fm.frame
    h, w = frame.image_hw
    anns = []
    for om in fm.masks:
        enc = encode_object_mask(om, frame.image_hw)  # from the mask's block: O(object)
        anns.append(
            {
                "category": om.category,
                "segmentation": enc.rle,
                "area": enc.area,
                "bbox": enc.bbox,
                "iscrowd": 0,
                "track_id": int(om.track_id),
                "score": output_score(om.score),
                "prompt_box": [round(v, 3) for v in xyxy_to_xywh(om.prompt_xyxy)],
                "mask_source": om.source,
            }
        )
    return {
        "image": {
            "file_name": frame.file_name,
            "width": w,
            "height": h,
            "sequence": frame.sequence,
            "frame_index": int(frame.frame_index),
        },
        "annotations": anns,
    }


def encode_part(part: Part) -> bytes:
    """A part as stored in ``parts/``: compact JSON (as :func:`atomic_write_json` writes it)."""
    return json.dumps(part, separators=(",", ":")).encode("utf-8")


def part_relpath(sequence: str, frame_index: int) -> str:
    """``.box2mask/parts/<sequence_dir>/<frame_stem>.json``, relative to ``--out`` (posix)."""
    return part_path(Path(STATE_DIR), sequence, frame_index).as_posix()


def read_part(path: Path) -> Part:
    """Load one part file.

    Raises:
        Box2MaskError: the file is not a part (a damaged job folder), naming it.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            part = json.load(fh)
    except (OSError, ValueError) as exc:
        raise Box2MaskError(f"{path}: the job's part of this frame is unreadable ({exc})") from None
    if not isinstance(part, dict) or not isinstance(part.get("annotations"), list):
        raise Box2MaskError(f"{path}: not a part of a box2mask job (no annotations list)")
    return part


def part_key(part: Part) -> tuple[str, int]:
    """``(sequence, frame_index)`` of a part's frame."""
    return (str(part["image"]["sequence"]), int(part["image"]["frame_index"]))


def frame_masks(part: Part, root: Path) -> FrameMasks:
    """A part as the :class:`~box2mask.types.FrameMasks` a writer's ``encode_frame`` takes.

    What a part keeps comes back exactly: the frame (sequence, number, ``file_name``,
    ``(H, W)``, image path ``root / file_name``), and per object its track id,
    category, prompt box (xyxy), score (``null`` as NaN, so that
    :func:`~box2mask.writers.coco.output_score` writes ``null`` again), mask source
    and the mask's pixels inside the frame. What it does not keep cannot: the crop
    window the model used (each mask's window here is its tight box in the frame),
    pixels of a window outside the frame, oriented boxes and ground truth. A
    per-frame format whose files depend only on what a part keeps gives the same
    bytes from this as from the conversion (docs/extending.md).
    """
    img = part["image"]
    hw = part_hw(part)
    anns = part["annotations"]
    masks = []
    boxes = np.zeros((len(anns), 4), dtype=np.float64)
    for i, ann in enumerate(anns):
        block = decode(ann["segmentation"], hw)  # frame pixels, tight
        x, y, bw, bh = (float(v) for v in (ann.get("prompt_box") or ann["bbox"]))
        boxes[i] = (x, y, x + bw, y + bh)
        if block.height == 0:
            window, local = CropWindow(0, 0, 1), MaskBlock.empty()
        else:
            window = CropWindow(block.left, block.top, max(block.height, block.width))
            local = MaskBlock(0, 0, block.height, block.width, block.data)
        score = ann.get("score")
        masks.append(
            ObjectMask.from_block(
                int(ann["track_id"]),
                str(ann["category"]),
                window,
                local,
                boxes[i],
                math.nan if score is None else float(score),
                str(ann.get("mask_source", "model")),
            )
        )
    name = str(img["file_name"])
    frame = Frame(
        str(img["sequence"]),
        int(img["frame_index"]),
        Path(root) / name,
        hw,
        boxes,
        [int(a["track_id"]) for a in anns],
        [str(a["category"]) for a in anns],
        file_name=name,
    )
    return FrameMasks(frame, tuple(masks))
