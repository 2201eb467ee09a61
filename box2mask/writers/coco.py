"""COCO instance-segmentation JSON (DESIGN §7).

A frame's annotations are first written as a small *part* file (no ids), then
all parts are merged, in (sequence, frame) order, into one JSON by a streaming
writer whose memory does not grow with the dataset. Ids are given in that
order, so the same frames always get the same ids however the job ran.

The result reads as is with pycocotools' ``COCO()``: ``images`` (``id``,
``file_name`` relative to the dataset root, ``width``, ``height``,
``sequence``, ``frame_index``), ``annotations`` (``id``, ``image_id``,
``category_id``, compressed-RLE ``segmentation`` with ``counts`` as str,
``area`` and ``bbox`` (xywh) from the mask, ``iscrowd`` 0, ``track_id``,
``score`` (:func:`output_score`: ``null`` where the model's is not finite),
``prompt_box`` (xywh), ``mask_source``),
``categories``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from box2mask.errors import Box2MaskError
from box2mask.layout import COCO_NAME
from box2mask.masks import encode_object_mask
from box2mask.types import FrameMasks
from box2mask.writers._json import two_arrays
from box2mask.writers.base import WRITERS, AssembledWriter, Assembly


def xyxy_to_xywh(xyxy: Iterable[float]) -> list[float]:
    """``[x1, y1, x2, y2]`` → COCO ``[x, y, w, h]``.

    >>> xyxy_to_xywh([10, 20, 30, 25])
    [10.0, 20.0, 20.0, 5.0]
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def output_score(score: float | None) -> float | None:
    """The ``score`` written for a mask: the model's own, else ``1.0``; ``None`` if not finite.

    SAM, HQ-SAM and ROS-SAM masks carry the model's predicted IoU, GrabCut
    cuts their agreement with the closest box-filling shape; a mask with no
    estimate of its own (a box, ellipse or oriented-box fill, a box-filled
    small object, GrabCut's ellipse fallback) gets ``1.0``: it is what the
    box says. ``COCOeval`` sorts detections by score, so a results file
    must have a number in every annotation (docs/eval.md).

    A model score that is NaN or infinite (a model whose IoU head overflowed)
    is ``None``, written ``null``: ``json.dumps`` would write ``NaN``, which is
    not JSON (strict parsers and pycocotools' loader reject the file), and a
    made-up number would claim an estimate the model did not give.

    >>> output_score(None), output_score(0.912345), output_score(float("nan"))
    (1.0, 0.9123, None)
    """
    if score is None:
        return 1.0
    score = float(score)
    return round(score, 4) if math.isfinite(score) else None


def frame_part(fm: FrameMasks) -> dict[str, Any]:
    """The COCO image record and annotations (without ids) of one frame."""
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


def category_table(categories: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """COCO ``categories`` with ids 1.. in the given order (duplicates dropped)."""
    seen: dict[str, str] = {}
    for name, sup in categories:
        seen.setdefault(name, sup)
    return [
        {"id": i, "name": n, "supercategory": s} for i, (n, s) in enumerate(seen.items(), start=1)
    ]


def write_coco(
    parts: Iterable[dict[str, Any]], categories: list[dict[str, Any]], dest: Path
) -> tuple[int, int]:
    """Stream frame parts (see :func:`frame_part`), in the order given, into one COCO JSON.

    One pass: image records go straight to the output, annotations to a spool
    file beside it that is appended after the images; memory holds one part at
    a time. Ids are 1.. in that order. The file appears atomically at ``dest``.

    Returns:
        ``(number of images, number of annotations)``.
    """
    cat_ids = {c["name"]: c["id"] for c in categories}
    with two_arrays(dest, "images", "annotations", {"categories": categories}) as (image, ann_out):
        for part in parts:
            image({"id": image.count + 1, **part["image"]})
            for ann in part["annotations"]:
                name = ann["category"]
                if name not in cat_ids:
                    raise Box2MaskError(f"category {name!r} of a part is not in the category table")
                # the part is not changed: other formats may read the same parts after this one
                rest = {k: v for k, v in ann.items() if k != "category"}
                ann_out(
                    {"id": ann_out.count + 1, "image_id": image.count, "category_id": cat_ids[name],
                     **rest}
                )  # fmt: skip
    n_img, n_ann = image.count, ann_out.count
    return n_img, n_ann


def read_parts(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Load part files one at a time."""
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            yield json.load(fh)


@WRITERS.register("coco")
class CocoWriter(AssembledWriter):
    """One COCO instance-segmentation JSON (RLE), read by pycocotools, detectron2, mmdet.

    ``<out>/annotations.json``, assembled at the end from the frames' parts (ids in dataset order).
    """

    output = COCO_NAME

    def assemble(self, assembly: Assembly, path: Path) -> None:
        write_coco(assembly.parts(), assembly.categories, path)
