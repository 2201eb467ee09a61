"""Writes a tiny COCO fixture and returns the masks it encodes.

``annotations.json`` with images under ``images/``:

- images ``clipA/000001.png`` .. ``clipA/000002.png`` (sequence from the first
  folder, frame index from ``frame_index``) and ``single.png`` with a
  ``sequence`` field ``"other"`` and no frame index (the id stands in);
- categories ``plane`` (→ ``airplane``) and ``small_vehicle`` (kept);
- per frame one polygon object with two parts, one uncompressed-RLE object
  and one compressed-RLE object with ``track_id``; one ``iscrowd`` annotation;
  one annotation without segmentation.

Truth masks are built with numpy directly (rectangles, so the polygon
rasterisation of pycocotools is unambiguous), not with the adapter's decoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

HW = (24, 40)


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*HW, 3), dtype=np.uint8)).save(path)


def _uncompressed_rle(m: np.ndarray) -> dict:
    flat = m.T.ravel()  # column-major, as COCO RLE runs
    counts, cur, run = [], False, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"size": list(m.shape), "counts": counts}


def make_coco(root: Path) -> tuple[dict, dict[int, np.ndarray | None]]:
    """Write the fixture under ``root``.

    Returns:
        ``(json_data, masks)``: the JSON as written, and each annotation id's
        ``(H, W)`` bool truth mask (``None`` without segmentation).
    """
    images = [
        {
            "id": 11,
            "file_name": "clipA/000001.png",
            "width": HW[1],
            "height": HW[0],
            "frame_index": 1,
        },
        {
            "id": 12,
            "file_name": "clipA/000002.png",
            "width": HW[1],
            "height": HW[0],
            "frame_index": 2,
        },
        {"id": 30, "file_name": "single.png", "width": HW[1], "height": HW[0], "sequence": "other"},
    ]
    anns: list[dict] = []
    masks: dict[int, np.ndarray | None] = {}

    def add(image_id: int, category_id: int, bbox: list[int], mask: np.ndarray | None, **rest):
        """One annotation (id in order), with ``rest`` (segmentation, track_id) in place."""
        aid = len(anns) + 1
        ann = {"id": aid, "image_id": image_id, "category_id": category_id, "bbox": bbox}
        seg = rest.pop("segmentation", None)
        if seg is not None:
            ann["segmentation"] = seg
        area = int(mask.sum()) if mask is not None else bbox[2] * bbox[3]
        anns.append({**ann, "area": area, "iscrowd": 0, **rest})
        masks[aid] = mask

    for im in images:
        _png(root / "images" / im["file_name"], seed=im["id"])
        k = im["id"] % 10
        # two-part polygon: rectangles [2+k, 2) .. [8+k, 6) and [10+k, 3) .. [12+k, 9)
        parts = [(2 + k, 2, 8 + k, 6), (10 + k, 3, 12 + k, 9)]
        m = np.zeros(HW, bool)
        for x1, y1, x2, y2 in parts:
            m[y1:y2, x1:x2] = True
        seg = [[x1, y1, x2, y1, x2, y2, x1, y2] for x1, y1, x2, y2 in parts]
        add(im["id"], 1, [2 + k, 2, 10, 7], m, segmentation=seg)
        m = np.zeros(HW, bool)
        m[12:20, 20:26] = True
        m[14, 26] = True
        add(im["id"], 2, [20, 12, 7, 8], m, segmentation=_uncompressed_rle(m))
        m = np.zeros(HW, bool)
        m[1:5, 30:38] = True
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode()
        add(im["id"], 2, [30, 1, 8, 4], m, segmentation=rle, track_id=77)
        add(im["id"], 2, [0, 15, 5, 5], None)  # no segmentation: no ground truth
    anns.append(
        {
            "id": 99,
            "image_id": 11,
            "category_id": 2,
            "bbox": [0, 0, 40, 24],
            "segmentation": {"size": list(HW), "counts": [960]},
            "area": 0,
            "iscrowd": 1,
        }
    )
    data = {
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "plane", "supercategory": "vehicle"},
            {"id": 2, "name": "small_vehicle"},
        ],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return data, masks
