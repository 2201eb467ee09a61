"""The logit threshold of each input side, chosen on training objects.

A small network that is unsure where a 10-px car ends gives its edge pixels
logits a little under 0; cutting at 0 then draws small objects too small
(on the iSAID tiles, masks of objects with 32-px inputs had 87 % of their true
area). :func:`calibrate` picks, per input side, the threshold that gives the
best mean IoU on a fixed sample of *training* objects, cut without
disturbance exactly as inference cuts them, so that no development tile is
used to choose it. The thresholds are written into the checkpoint
(:mod:`box2mask.models.lite.checkpoint`).
"""

from __future__ import annotations

import numpy as np

from box2mask.models.lite.model import LiteModel
from box2mask.train.lite.cache import ObjectCache
from box2mask.train.lite.samples import sample

#: the thresholds tried (logits; 0 is probability 0.5)
CANDIDATES = tuple(float(t) for t in np.round(np.arange(-2.0, 1.01, 0.25), 2))


def calibrate(
    model: LiteModel, cache: ObjectCache, per_side: int = 1500, seed: int = 0
) -> dict[int, float]:
    """``{input side: threshold}`` maximising the mean IoU of up to ``per_side`` training objects
    of each input side (IoU on the input grid: the mask ``logits > t`` against the
    true mask's pixels over half covered)."""
    rng = np.random.default_rng([seed, 7919])
    order = rng.permutation(len(cache))
    inputs: dict[int, list[np.ndarray]] = {}
    targets: dict[int, list[np.ndarray]] = {}
    for i in order.tolist():
        x, t = sample(cache, i, rng, model.context, model.min_side, None)
        r = x.shape[-1]
        if len(inputs.setdefault(r, [])) >= per_side:
            if all(len(v) >= per_side for v in inputs.values()) and len(inputs) >= 5:
                break
            continue
        inputs[r].append(x)
        targets.setdefault(r, []).append(t > 0.5)
    out: dict[int, float] = {}
    for r, xs in sorted(inputs.items()):
        logits, _ = model.predict(xs)
        lg = np.stack(logits)
        gt = np.stack(targets[r])
        best, best_iou = 0.0, -1.0
        for t in CANDIDATES:
            pred = lg > t
            inter = (pred & gt).sum((1, 2))
            union = (pred | gt).sum((1, 2))
            iou = float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean())
            if iou > best_iou + 1e-9:
                best, best_iou = t, iou
        out[r] = best
    return out
