"""Each output object's IoU with its ground truth, to score the flags (``box2mask qa --gt-dataset``).

The output's annotations are matched to a dataset's frames and objects the
way ``box2mask eval --predictions`` matches them (image ``sequence`` +
``frame_index``, else ``file_name``; then ``track_id``, taken in order when a
track id repeats in a frame): :class:`box2mask.evaluate.PredictionIndex`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.adapters import open_dataset
from box2mask.cocofile import CocoFile
from box2mask.errors import UsageError
from box2mask.evaluate import PredictionIndex
from box2mask.masks import decode
from box2mask.metrics import mask_iou


def gt_ious(
    coco: CocoFile,
    dataset: str,
    root: Path | str | None,
    adapter_options: Mapping[str, Any] | None = None,
) -> dict[int, float]:
    """``{annotation id: IoU with its ground-truth mask}`` for the annotations that have one.

    Args:
        coco: the output, indexed on disk (:class:`~box2mask.cocofile.CocoFile`): read a
            frame at a time.
        dataset, root, adapter_options: the dataset holding the ground truth
            (an adapter whose frames carry ground-truth masks).
    """
    adapter = open_dataset(dataset, root, adapter_options)
    root_path = adapter.root
    index = PredictionIndex(coco)
    out: dict[int, float] = {}
    frames_with_gt = 0
    for frame in adapter.frames([s.name for s in adapter.list_sequences()]):
        if frame.gt_mask is None:
            continue
        frames_with_gt += 1
        pool: dict[int, list[Mapping[str, Any]]] = {}
        for a in index.annotations(frame):
            pool.setdefault(int(a.get("track_id", a.get("id", -1))), []).append(a)
        for i in range(len(frame)):
            cands = pool.get(int(frame.track_id[i]))
            if not cands:
                continue
            ann = cands.pop(0)
            gt = frame.gt_mask(i)
            if gt is None:
                continue
            pred = decode(ann.get("segmentation"), frame.image_hw).to_array(frame.image_hw)
            out[int(ann["id"])] = mask_iou(pred, np.asarray(gt, dtype=bool))
    if frames_with_gt == 0:
        raise UsageError(f"--gt-dataset {dataset}: no frame at {root_path} has ground-truth masks")
    return out
