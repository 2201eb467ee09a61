"""The suspicion score and the flags of ``box2mask qa`` (method: docs/qa.md).

The score is a log-odds that an object's mask has IoU < 0.5 with the truth:

    z = bias + sum_i w_i * (x_i - mean_i) / sd_i  +  prior(signals)

- the fitted part: a logistic regression on :data:`FITTED` features,
  calibrated on real iSAID tiles with box2mask's default weight-free model
  (:data:`DEFAULT`; ``benchmarks/qa_on_isaid.py --fit`` re-derives it);
- the prior part: fixed log-odds for signals that never vary on that
  calibration data (weight-free masks never leave their box, never break
  into pieces, the tiles are no video): mask outside the box, fragments, a
  mask cut by the crop window, a jump along a track, a low model score, a
  shrunk or empty mask. Their weights are set so that one such failure
  outranks any object the fitted part alone can rank (see docs/qa.md);
  the synthetic tests check that they do.

``suspicion = sigmoid(z)``; objects are ranked by it, largest first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from box2mask.qa.signals import ObjectSignals

#: the fitted features, in order
FITTED = ("log_box_area", "image_disagreement", "nested", "box_overlap", "fallback")


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic model over :data:`FITTED` (standardised features)."""

    bias: float
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    #: value used for a missing image signal (the calibration mean)
    fill: dict[str, float] = field(default_factory=dict)
    source: str = ""


#: calibrated on all 57 tiles of isaid-dev, model classical (docs/qa.md)
DEFAULT = Calibration(
    bias=-2.6114,
    weights=(0.4755, 0.7707, 0.5445, 0.6359, 0.3471),
    mean=(5.8029, 0.2869, 0.1073, 0.0495, 0.0267),
    sd=(1.6434, 0.1202, 0.2101, 0.0913, 0.1613),
    fill={"image_disagreement": 0.2869},
    source="isaid-dev, all 57 tiles, model classical",
)


def feature_vector(s: ObjectSignals, cal: Calibration = DEFAULT) -> list[float]:
    """The :data:`FITTED` features of one object (missing image signal: ``cal.fill``)."""
    dis = s.image_disagreement
    if dis is None:
        dis = cal.fill.get("image_disagreement", 0.0)
    return [
        math.log(s.box_area + 1.0),
        float(dis),
        float(s.nested),
        float(s.box_overlap),
        float(s.fallback),
    ]


def prior(s: ObjectSignals) -> float:
    """The fixed log-odds of the signals the calibration data cannot weigh."""
    z = 0.0
    if s.area == 0:
        return 12.0
    z += 8.0 * min(s.outside, 1.0)
    z += 8.0 * min(s.fragment, 1.0)
    z += 4.0 * max(0.0, 0.7 - s.box_iou) / 0.7
    z += 4.0 * max(0.0, 0.3 - s.area_ratio) / 0.3
    z += 3.0 if s.touches_crop else 0.0
    if s.score is not None and s.mask_source not in ("grabcut",):
        z += 6.0 * max(0.0, 0.8 - s.score)
    t = s.track_iou
    if t is not None:
        z += 10.0 * max(0.0, 0.8 - t)
    return z


def logit(s: ObjectSignals, cal: Calibration = DEFAULT) -> float:
    """The score's log-odds ``z`` for one object."""
    x = feature_vector(s, cal)
    z = cal.bias + sum(
        w * (v - m) / sd for w, v, m, sd in zip(cal.weights, x, cal.mean, cal.sd, strict=True)
    )
    return z + prior(s)


def suspicion(s: ObjectSignals, cal: Calibration = DEFAULT) -> float:
    """``sigmoid(logit)`` in ``(0, 1)``: higher is more suspicious."""
    z = logit(s, cal)
    return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0


#: flag -> what it means (the page's filter list and docs/qa.md)
FLAGS: dict[str, str] = {
    "empty": "the mask is empty",
    "low_score": "the model's own score is below 0.7",
    "large_box": "the prompt box is at least 64x64 px (large objects fail most)",
    "image_disagrees": "the image's colours do not support the mask (disagreement >= 0.6)",
    "nested": "at least half of another prompt box lies inside this one",
    "overlapping_box": "the prompt box has IoU >= 0.3 with another one",
    "mask_overlap": "at least 20% of the mask is claimed by another object's mask too",
    "fallback": "the model fell back to a shape fill",
    "leaks": "at least 10% of the mask lies outside its prompt box",
    "shrunk": "the mask covers less than 30% of its box",
    "loose_fit": "the mask's tight box has IoU < 0.7 with the prompt box",
    "fragments": "at least 5% of the mask lies outside its largest piece",
    "cut_by_crop": "the mask reaches the edge of the crop the model saw",
    "at_image_edge": "the prompt box touches the image border",
    "track_jump": "the mask differs from both track neighbours (aligned IoU < 0.5)",
}


def flags(s: ObjectSignals) -> list[str]:
    """The flags that fire for one object, in :data:`FLAGS` order."""
    on = {
        "empty": s.area == 0,
        "low_score": s.score is not None and s.score < 0.7,
        "large_box": s.box_area >= 64 * 64,
        "image_disagrees": s.image_disagreement is not None and s.image_disagreement >= 0.6,
        "nested": s.nested >= 0.5,
        "overlapping_box": s.box_overlap >= 0.3,
        "mask_overlap": s.mask_overlap >= 0.2,
        "fallback": s.fallback,
        "leaks": s.outside >= 0.1,
        "shrunk": s.area > 0 and s.area_ratio < 0.3,
        "loose_fit": s.area > 0 and s.box_iou < 0.7,
        "fragments": s.fragment >= 0.05,
        "cut_by_crop": s.touches_crop,
        "at_image_edge": s.at_image_edge,
        "track_jump": s.track_iou is not None and s.track_iou < 0.5,
    }
    return [k for k in FLAGS if on[k]]


# -- calibration ---------------------------------------------------------------
def fit(
    rows: Sequence[ObjectSignals], bad: Sequence[bool], l2: float = 1.0, source: str = ""
) -> Calibration:
    """Fit :data:`FITTED` by L2-regularised logistic regression (Newton steps).

    Args:
        rows: the objects' signals.
        bad: for each, whether its mask has IoU < 0.5 with the ground truth.
        l2: ridge on the standardised weights (not on the bias).
    """
    dis = [s.image_disagreement for s in rows if s.image_disagreement is not None]
    fill = {"image_disagreement": float(np.mean(dis)) if dis else 0.0}
    tmp = Calibration(0.0, (0.0,) * len(FITTED), (0.0,) * len(FITTED), (1.0,) * len(FITTED), fill)
    x = np.array([feature_vector(s, tmp) for s in rows], dtype=np.float64)
    y = np.asarray(bad, dtype=np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    w = np.zeros(z.shape[1])
    w[0] = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))
    ridge = l2 * np.eye(z.shape[1])
    ridge[0, 0] = 0.0

    def loss(v: np.ndarray) -> float:
        t = z @ v
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * v @ ridge @ v)

    cur = loss(w)
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * (z @ w)))
        grad = z.T @ (p - y) + ridge @ w
        hess = z.T @ (z * (p * (1 - p))[:, None]) + ridge + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while loss(w - t * step) > cur and t > 1e-6:  # damped Newton: never uphill
            t /= 2
        w = w - t * step
        new = loss(w)
        if cur - new < 1e-10:
            break
        cur = new
    return Calibration(
        bias=round(float(w[0]), 4),
        weights=tuple(round(float(v), 4) for v in w[1:]),
        mean=tuple(round(float(v), 4) for v in mu),
        sd=tuple(round(float(v), 4) for v in sd),
        fill={k: round(v, 4) for k, v in fill.items()},
        source=source,
    )


# -- scoring the flags ---------------------------------------------------------
def recall_at(scores: Sequence[float], bad: Sequence[bool], share: float) -> float:
    """Share of the bad objects among the top ``share`` of objects ranked by ``scores``.

    Ties at the cut are shared out: a group of ``t`` tied objects of which
    ``b`` are bad, cut so that ``u`` of them are taken, counts ``b * u / t``
    (the expected value under a random order within the tie), so a constant
    signal scores exactly the random baseline ``share``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(bad, dtype=bool)
    n_bad = int(y.sum())
    if n_bad == 0 or s.size == 0:
        return float("nan")
    take = int(round(share * s.size))
    if take <= 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    cut = s[order[take - 1]]
    above = s > cut
    tied = s == cut
    got = y[above].sum() + y[tied].sum() * (take - above.sum()) / tied.sum()
    return float(got / n_bad)
