"""Writes a tiny COCO dataset whose ground-truth masks are known shapes, for ``box2mask eval``.

``annotations.json`` + ``images/<seq>/<frame>.png`` (64×96 noise), two
sequences ``s1``, ``s2`` of two frames each, every image with ``sequence``
and ``frame_index``. Per frame:

- an ``airplane`` whose mask is a horizontal band filling the middle half of
  its box (box-fill IoU 0.5);
- a ``ship`` whose mask is the box's inscribed disc, drawn with numpy
  (pixel centres inside the circle), shifted by the frame number so frames
  differ;
- a ``car`` whose mask is its box without its top-left quarter;
- a ``ship`` without segmentation (no ground truth: skipped and counted);
- a ``ship`` whose mask reaches 12 px past its box on the right (the ground
  truth leaves a small crop window).

Sequence ``s3`` has one frame whose objects carry no segmentation at all
(a frame without ground truth). The masks are returned, keyed by
``(sequence, frame_index, track_id)``, so tests compute expected scores
with numpy, independently of box2mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

HW = (64, 96)


def _rle(m: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _objects(frame: int) -> list[tuple[int, str, list[float], np.ndarray | None]]:
    """``(track_id, category, xyxy, mask or None)`` of one frame."""
    h, w = HW
    rr, cc = np.mgrid[0:h, 0:w]
    out = []
    # airplane: box 20x20, mask = middle band rows y1+5 .. y1+15
    x1, y1 = 4 + frame, 6
    band = np.zeros(HW, bool)
    band[y1 + 5 : y1 + 15, x1 : x1 + 20] = True
    out.append((1, "airplane", [x1, y1, x1 + 20, y1 + 20], band))
    # ship: inscribed disc of a 16x16 box
    x1, y1 = 40, 30 + frame
    cx, cy, r = x1 + 8, y1 + 8, 8
    disc = (cc + 0.5 - cx) ** 2 + (rr + 0.5 - cy) ** 2 < r * r
    out.append((2, "ship", [x1, y1, x1 + 16, y1 + 16], disc))
    # car: 8x8 box without its top-left 4x4 quarter
    x1, y1 = 70, 10 + frame
    car = np.zeros(HW, bool)
    car[y1 : y1 + 8, x1 : x1 + 8] = True
    car[y1 : y1 + 4, x1 : x1 + 4] = False
    out.append((3, "car", [x1, y1, x1 + 8, y1 + 8], car))
    # ship without a mask
    out.append((4, "ship", [60, 50, 70, 58], None))
    # ship whose mask leaves its box by 12 px on the right
    x1, y1 = 20, 44
    long = np.zeros(HW, bool)
    long[y1 : y1 + 6, x1 : x1 + 22] = True
    out.append((5, "ship", [x1, y1, x1 + 10, y1 + 6], long))
    return out


def make_eval_coco(root: Path, with_masks: bool = True) -> dict[tuple[str, int, int], np.ndarray]:
    """Write the dataset under ``root``.

    Args:
        with_masks: ``False`` writes no segmentation at all (a dataset without ground truth).

    Returns:
        ``{(sequence, frame_index, track_id): (H, W) bool mask}`` for every
        object that has ground truth.
    """
    rng = np.random.default_rng(7)
    images, anns, truth = [], [], {}
    frames = [("s1", 1), ("s1", 2), ("s2", 1), ("s2", 2), ("s3", 1)]
    for image_id, (seq, k) in enumerate(frames, start=1):
        name = f"{seq}/{k:06d}.png"
        path = root / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*HW, 3), dtype=np.uint8)).save(path)
        images.append(
            {
                "id": image_id,
                "file_name": name,
                "width": HW[1],
                "height": HW[0],
                "sequence": seq,
                "frame_index": k,
            }
        )
        shift = k + (2 if seq == "s2" else 0)
        for tid, cat, (x1, y1, x2, y2), mask in _objects(shift):
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": {"airplane": 1, "ship": 2, "car": 3}[cat],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0,
                "track_id": tid,
            }
            if mask is not None and with_masks and seq != "s3":
                ann["segmentation"] = _rle(mask)
                truth[(seq, k, tid)] = mask
            anns.append(ann)
    data = {
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "airplane", "supercategory": "vehicle"},
            {"id": 2, "name": "ship", "supercategory": "vessel"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ],
    }
    (root / "annotations.json").write_text(json.dumps(data), encoding="utf-8")
    return truth
