"""How well a ranking finds the bad masks: recall of IoU < 0.5 objects among the top k% (docs/qa.md).

Compared with random picks (recall = the share itself) and with each single
signal ranked alone in its suspicious direction (:data:`SINGLE`). Ties are
shared out fairly (:func:`box2mask.qa.score.recall_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from box2mask.qa.score import recall_at
from box2mask.qa.signals import ObjectSignals

SHARES = (0.05, 0.10, 0.20)
BAD_IOU = 0.5


def _neg(v: float | None) -> float:
    return -np.inf if v is None else -v


def _or_low(v: float | None) -> float:
    return -np.inf if v is None else v


#: single signals, each in its suspicious direction (higher = more suspicious)
SINGLE: dict[str, Callable[[ObjectSignals], float]] = {
    "box area": lambda s: s.box_area,
    "low model score": lambda s: _neg(s.score),
    "image disagreement": lambda s: _or_low(s.image_disagreement),
    "nested box": lambda s: s.nested,
    "box overlap": lambda s: s.box_overlap,
    "mask overlap": lambda s: s.mask_overlap,
    "fallback": lambda s: float(s.fallback),
    "at image edge": lambda s: float(s.at_image_edge),
    "box aspect": lambda s: s.aspect,
    "small area ratio": lambda s: -s.area_ratio,
    "large area ratio": lambda s: s.area_ratio,
    "loose tight box": lambda s: 1 - s.box_iou,
    "outside box": lambda s: s.outside,
    "fragments": lambda s: s.fragment,
    "cut by crop": lambda s: float(s.touches_crop),
    "track jump": lambda s: _neg(s.track_iou),
}


def score_flags(
    objects: Sequence[ObjectSignals],
    scores: Sequence[float],
    ious: Mapping[int, float],
    shares: Sequence[float] = SHARES,
) -> dict[str, Any]:
    """Recall at each share for the suspicion ``scores``, random, and each single signal.

    Args:
        objects: the objects' signals.
        scores: the suspicion (or its log-odds) of each object, higher = more suspicious.
        ious: ``{annotation id: IoU with ground truth}``; objects without one are left out.

    Returns:
        ``{"objects", "bad", "bad_iou", "shares", "suspicion": [...], "random": [...],
        "single": {name: [...]}, "best_single": [...]}`` (recalls in ``[0, 1]``).
    """
    keep = [k for k, s in enumerate(objects) if s.id in ious]
    sig = [objects[k] for k in keep]
    sc = np.asarray([scores[k] for k in keep], dtype=np.float64)
    bad = np.array([ious[s.id] < BAD_IOU for s in sig], dtype=bool)
    single = {
        name: [
            recall_at(np.array([fn(s) for s in sig], dtype=np.float64), bad, sh) for sh in shares
        ]
        for name, fn in SINGLE.items()
    }
    return {
        "objects": len(sig),
        "bad": int(bad.sum()),
        "bad_iou": BAD_IOU,
        "shares": list(shares),
        "suspicion": [recall_at(sc, bad, sh) for sh in shares],
        "random": list(shares),
        "single": single,
        "best_single": [max(v[i] for v in single.values()) for i in range(len(shares))],
    }
