"""The logit thresholds of the lite model, chosen on training objects by object size.

A small network that is unsure where a 10-px car ends gives its edge pixels
logits below 0, and the smaller the object, the lower: cutting every mask at
0 drew small objects too small (on the iSAID tiles the best cut for objects
under 8 px was a logit of -3, for 8-12 px -2, for large ones -1.25).
:func:`calibrate` picks one threshold per range of the box's long side (the
bins of :data:`~box2mask.models.lite.crops.THRESHOLD_EDGES`): the one that gives
the best mean IoU on a fixed sample of *training* objects, cut without
disturbance exactly as inference cuts them and scored in window pixels as
inference pastes them, so that no development tile is used to choose it. The
thresholds are written into the checkpoint (:mod:`box2mask.models.lite.checkpoint`).
"""

from __future__ import annotations

import cv2
import numpy as np

from box2mask.models.lite.crops import (
    THRESHOLD_EDGES,
    inside_box,
    resize,
    threshold_bin,
    window_for_box,
)
from box2mask.models.lite.model import LiteModel
from box2mask.train.lite.cache import ObjectCache
from box2mask.train.lite.samples import cut_window

#: the thresholds tried (logits; 0 is probability 0.5)
CANDIDATES = tuple(float(t) for t in np.round(np.arange(-6.0, 1.01, 0.25), 2))


def calibrate(
    model: LiteModel, cache: ObjectCache, per_bin: int = 800, seed: int = 0
) -> list[float]:
    """One threshold per long-side bin (``len(THRESHOLD_EDGES) + 1`` values; 0 for a bin
    without training objects): the best mean IoU of up to ``per_bin`` objects of the bin."""
    rng = np.random.default_rng([seed, 7919])
    n_bins = len(THRESHOLD_EDGES) + 1
    long_side = np.maximum(cache.box[:, 2] - cache.box[:, 0], cache.box[:, 3] - cache.box[:, 1])
    bins = np.array([threshold_bin(float(x)) for x in long_side])
    out = [0.0] * n_bins
    for b in range(n_bins):
        members = np.flatnonzero(bins == b)
        if members.size == 0:
            continue
        chosen = rng.choice(members, size=min(per_bin, members.size), replace=False)
        inputs, truths, boxes = [], [], []
        for i in sorted(chosen.tolist()):
            box = cache.box[i]
            window = window_for_box(box, model.context, model.min_side)
            cut = cut_window(cache, i, window)
            per_px = cut.mask.shape[0] / cut.size  # cut pixels per frame pixel
            boxes.append((box - np.array([cut.x0, cut.y0, cut.x0, cut.y0])) * per_px)
            inputs.append(cut.planes(resize(cut.image, model.side_for(window)), box))
            truths.append(cut.mask > 127)
        logits, _ = model.predict(inputs)
        scores = np.zeros(len(CANDIDATES))
        for lg, truth, box in zip(logits, truths, boxes, strict=True):
            m = truth.shape[0]
            full = (
                lg if lg.shape[0] == m else cv2.resize(lg, (m, m), interpolation=cv2.INTER_LINEAR)
            )
            full = np.where(inside_box(np.ones((m, m), bool), box), full, -np.inf)
            for k, t in enumerate(CANDIDATES):
                pred = full > t
                union = np.count_nonzero(pred | truth)
                scores[k] += np.count_nonzero(pred & truth) / union if union else 1.0
        out[b] = CANDIDATES[int(np.argmax(scores))]
    return out
