"""COCO instance-segmentation JSON (DESIGN §7).

A frame's annotations are first written as a small *part* file (no ids; the
job's part format, :mod:`box2mask.job.parts`), then all parts are merged, in
(sequence, frame) order, into one JSON by a streaming writer whose memory
does not grow with the dataset. Ids are given in that
order, so the same frames always get the same ids however the job ran.

The result reads as is with pycocotools' ``COCO()``: ``images`` (``id``,
``file_name`` relative to the dataset root, ``width``, ``height``,
``sequence``, ``frame_index``), ``annotations`` (``id``, ``image_id``,
``category_id``, compressed-RLE ``segmentation`` with ``counts`` as str,
``area`` and ``bbox`` (xywh) from the mask, ``iscrowd`` 0, ``track_id``,
``score`` (:func:`output_score`: ``null`` where the model's is not finite),
``prompt_box`` (xywh), ``mask_source``),
``categories``.

With ``--split`` it also writes ``annotations_<split>.json`` for each split
(``train``, ``val``, ``test``): the images of that split and their
annotations, with the ids ``annotations.json`` gives them, so an object has
one id in every file. Split by track, a frame holds tracks of several splits:
each split's file has the frames where one of its tracks appears, with the
other splits' objects there as ``iscrowd: 1`` (ignored) regions, so that
COCOeval and mmdet neither score nor learn them as background
(docs/formats.md, "Splits").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from box2mask.errors import Box2MaskError
from box2mask.layout import COCO_NAME
from box2mask.split import Split
from box2mask.writers._json import split_arrays, to_splits
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


def category_table(categories: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """COCO ``categories`` with ids 1.. in the given order (duplicates dropped)."""
    seen: dict[str, str] = {}
    for name, sup in categories:
        seen.setdefault(name, sup)
    return [
        {"id": i, "name": n, "supercategory": s} for i, (n, s) in enumerate(seen.items(), start=1)
    ]


def split_output(split: str) -> str:
    """The COCO file of one split: ``annotations_val.json``."""
    return f"annotations_{split}.json"




def write_coco(
    parts: Iterable[dict[str, Any]],
    categories: list[dict[str, Any]],
    dest: Path,
    split: Split | None = None,
) -> tuple[int, int]:
    """Stream frame parts (:mod:`box2mask.job.parts`), in the order given, into one COCO JSON.

    One pass: image records go straight to the output, annotations to a spool
    file beside it that is appended after the images; memory holds one part at
    a time. Ids are 1.. in that order. The file appears atomically at ``dest``.
    With ``split``, the same pass writes each split's file beside ``dest``
    (:func:`split_output`), with the same ids.

    Returns:
        ``(number of images, number of annotations)`` of ``dest``.
    """
    cat_ids = {c["name"]: c["id"] for c in categories}
    tail = {"categories": categories}
    with contextlib.ExitStack() as stack:
        files = {n: split_output(n) for n in split.names} if split is not None else {}
        (image, ann_out), sinks = split_arrays(stack, dest, "images", "annotations", tail, files)
        for part in parts:
            img = {"id": image.count + 1, **part["image"]}
            image(img)
            records = []
            for ann in part["annotations"]:
                name = ann["category"]
                if name not in cat_ids:
                    raise Box2MaskError(f"category {name!r} of a part is not in the category table")
                # the part is not changed: other formats may read the same parts after this one
                rest = {k: v for k, v in ann.items() if k != "category"}
                rec = {"id": ann_out.count + 1, "image_id": image.count,
                       "category_id": cat_ids[name], **rest}  # fmt: skip
                ann_out(rec)
                records.append((ann, rec))
            if split is not None:
                to_splits(split, sinks, str(img.get("sequence", "")), img,
                          [(_track(ann), rec) for ann, rec in records])  # fmt: skip
    n_img, n_ann = image.count, ann_out.count
    return n_img, n_ann


def _track(ann: dict[str, Any]) -> tuple[int, str]:
    """A track: its id and category (as :func:`box2mask.writers.davis.track_key`)."""
    return (int(ann["track_id"]), str(ann["category"]))


@WRITERS.register("coco")
class CocoWriter(AssembledWriter):
    """One COCO instance-segmentation JSON (RLE), read by pycocotools, detectron2, mmdet.

    ``<out>/annotations.json``, assembled at the end from the frames' parts (ids in dataset order).
    """

    output = COCO_NAME
    split_units = ("sequence", "track")

    def assemble(self, assembly: Assembly, path: Path) -> None:
        write_coco(assembly.parts(), assembly.categories, path, self.ctx.split)

    def split_files(self) -> list[str]:
        split = self.ctx.split
        return [split_output(s) for s in split.names] if split else []
