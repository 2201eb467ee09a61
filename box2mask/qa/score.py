"""The suspicion score and the flags of ``box2mask qa`` (method: docs/qa.md).

The score is a log-odds that an object's mask has IoU < 0.5 with the truth:

    z = bias + sum_i w_i * (x_i - mean_i) / sd_i  +  prior(signals)

- the fitted part: a logistic regression on the calibration's features,
  fitted on real iSAID tiles with the job's model: :data:`DEFAULT` with the
  weight-free ``classical`` (:data:`FITTED`), :data:`LITE` with ``lite``
  (:data:`LITE_FITTED`: its quality head's predicted IoU too);
  ``benchmarks/qa_on_isaid.py --model M --fit`` re-derives them;
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from box2mask.qa.signals import ObjectSignals

#: what each fitted feature reads of an object's signals (``None``: missing, the
#: calibration's ``fill`` stands in)
FEATURES: dict[str, Callable[[ObjectSignals], float | None]] = {
    "log_box_area": lambda s: math.log(s.box_area + 1.0),
    "image_disagreement": lambda s: s.image_disagreement,
    "nested": lambda s: float(s.nested),
    "box_overlap": lambda s: float(s.box_overlap),
    "fallback": lambda s: float(s.fallback),
    # the model's own estimate of its mask's IoU (lite's quality head, SAM's IoU head)
    "model_score": lambda s: s.score,
    "box_iou": lambda s: float(s.box_iou),
    "area_ratio": lambda s: min(float(s.area_ratio), 3.0),
    "touches_crop": lambda s: float(s.touches_crop),
}
#: features an object may lack: the image signal (no images read), the model's score (a fill)
MAY_BE_MISSING = ("image_disagreement", "model_score")
#: the fitted features of the weight-free models' calibration, in order
FITTED = ("log_box_area", "image_disagreement", "nested", "box_overlap", "fallback")
#: lite's: its quality head and the mask's fit to its box, which vary for a learned model
#: (weight-free masks fill their box by construction, so the prior weighs those there).
#: A mask cut by lite's window never occurs on the tiles: the prior keeps weighing it.
LITE_FITTED = (*FITTED, "model_score", "box_iou", "area_ratio")


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic model over ``features`` (standardised)."""

    bias: float
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    #: value used for a missing feature (the calibration mean): the image signal without
    #: images, the model score of a fill
    fill: dict[str, float] = field(default_factory=dict)
    source: str = ""
    features: tuple[str, ...] = FITTED


#: calibrated on all 57 tiles of isaid-dev, model classical (docs/qa.md)
DEFAULT = Calibration(
    bias=-2.6114,
    weights=(0.4755, 0.7707, 0.5445, 0.6359, 0.3471),
    mean=(5.8029, 0.2869, 0.1073, 0.0495, 0.0267),
    sd=(1.6434, 0.1202, 0.2101, 0.0913, 0.1613),
    fill={"image_disagreement": 0.2869},
    source="isaid-dev, all 57 tiles, model classical",
)
#: lite's, fitted with its quality head (docs/qa.md); refitted whenever the weights change
LITE = Calibration(
    bias=-5.8804,
    weights=(1.043, 0.4839, 0.2798, 0.3674, 0.0, -1.861, -0.3582, 0.1153),
    mean=(5.8029, 0.2828, 0.1073, 0.0495, 0.0, 0.6857, 0.9178, 0.6761),
    sd=(1.6434, 0.1297, 0.2101, 0.0913, 1.0, 0.2097, 0.096, 0.1768),
    fill={"image_disagreement": 0.2828, "model_score": 0.6857},
    source="isaid-dev, all 57 tiles, model lite",
    features=LITE_FITTED,
)

#: the calibration of a job's model (``qa`` picks it from the job's identity); any other
#: model's masks are scored with :data:`DEFAULT`
CALIBRATIONS: dict[str, Calibration] = {"lite": LITE}


def calibration_for(model: str | None) -> Calibration:
    """The calibration ``qa`` uses for masks made by ``model``."""
    return CALIBRATIONS.get(str(model), DEFAULT)


def feature_vector(s: ObjectSignals, cal: Calibration = DEFAULT) -> list[float]:
    """The calibration's features of one object (a missing one: ``cal.fill``)."""
    out = []
    for name in cal.features:
        v = FEATURES[name](s)
        out.append(float(cal.fill.get(name, 0.0) if v is None else v))
    return out


def prior(s: ObjectSignals, fitted: tuple[str, ...] = FITTED) -> float:
    """The fixed log-odds of the signals the calibration data cannot weigh (those the
    calibration fits, ``fitted``, are left to it)."""
    z = 0.0
    if s.area == 0:
        return 12.0
    z += 8.0 * min(s.outside, 1.0)
    z += 8.0 * min(s.fragment, 1.0)
    if "box_iou" not in fitted:
        z += 4.0 * max(0.0, 0.7 - s.box_iou) / 0.7
    if "area_ratio" not in fitted:
        z += 4.0 * max(0.0, 0.3 - s.area_ratio) / 0.3
    if "touches_crop" not in fitted:
        z += 3.0 if s.touches_crop else 0.0
    if "model_score" not in fitted and s.score is not None and s.mask_source not in ("grabcut",):
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
    return z + prior(s, cal.features)


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
    rows: Sequence[ObjectSignals],
    bad: Sequence[bool],
    l2: float = 1.0,
    source: str = "",
    features: tuple[str, ...] = FITTED,
) -> Calibration:
    """Fit ``features`` by L2-regularised logistic regression (Newton steps).

    Args:
        rows: the objects' signals.
        bad: for each, whether its mask has IoU < 0.5 with the ground truth.
        l2: ridge on the standardised weights (not on the bias).
        features: names in :data:`FEATURES`.
    """
    fill = {}
    for name in features:
        if name in MAY_BE_MISSING:  # its mean stands in where another job lacks it
            seen = [v for v in (FEATURES[name](s) for s in rows) if v is not None]
            fill[name] = float(np.mean(seen)) if seen else 0.0
    n = len(features)
    tmp = Calibration(0.0, (0.0,) * n, (0.0,) * n, (1.0,) * n, fill, features=features)
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
        features=tuple(features),
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
