"""Training samples for ``lite``: cached patches cut and augmented as the model sees frames.

A sample is made from one cached object (:mod:`box2mask.train.lite.cache`) as
inference makes an input (:mod:`box2mask.models.lite.crops`), with the box and
the window disturbed:

- the box: each edge moved by a normal step of ``box_jitter`` × the box's side
  (the boxes of tracking datasets are loose or tight by a pixel or two). The
  shipped file was fine-tuned at 1.5 %, after 4 % from random weights: 4 %
  taught the network to distrust the edges of tight boxes (docs/lite.md has
  the figures, on tight and on loosened boxes);
- the context: the window side is ``context × U`` (log-uniform ``U`` in
  ``context_range``), so the model does not depend on one exact margin;
- the view: one of the 8 rotations/flips;
- the colours: brightness, contrast and saturation, grey (panchromatic and SAR
  images), blur and noise.

The target is the object's true mask on the input grid (soft: the share of each
input pixel inside the mask). Everything is drawn from a
``numpy.random.Generator`` the caller seeds per step, so a batch is a function
of ``(seed, step)`` alone: a resumed run draws the same batches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from box2mask.models.lite.crops import input_planes, input_side, resize, window_for_box
from box2mask.train.lite.cache import ObjectCache
from box2mask.types import CropWindow


@dataclass(frozen=True)
class AugmentConfig:
    """How samples are disturbed (see the module docstring)."""

    box_jitter: float = 0.015
    context_range: tuple[float, float] = (0.85, 1.25)
    dihedral: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.4
    grey: float = 0.1
    blur: float = 0.1
    noise: float = 0.03

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Batch:
    """Samples of one input side ``R``.

    Attributes:
        inputs: ``(n, 5, R, R)`` float32 network inputs.
        targets: ``(n, R, R)`` float32 soft masks, 0..1.
        index: ``(n,)`` the cache rows they come from.
    """

    inputs: np.ndarray
    targets: np.ndarray
    index: np.ndarray


@dataclass
class Cut:
    """A window cut from an object's cached patch.

    Attributes:
        image: ``(m, m, 3)`` uint8, the window's pixels as stored (``m`` is the window side,
            times the patch's scale when a large patch was stored shrunk).
        mask: ``(m, m)`` uint8 0..255, the true mask on the same grid.
        x0, y0, size: the crop in frame pixels (the window, up to rounding at the patch edge).
        frame_hw: the frame's ``(H, W)``.
    """

    image: np.ndarray
    mask: np.ndarray
    x0: float
    y0: float
    size: float
    frame_hw: tuple[int, int]

    def planes(self, pixels: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The network input of these pixels (the cut resized to ``R``) for a box in frame pixels."""
        fx0, fy0, fsize = self.x0, self.y0, self.size
        fh, fw = self.frame_hw
        return input_planes(
            pixels,
            box - np.array([fx0, fy0, fx0, fy0]),
            np.array([-fx0, -fy0, fw - fx0, fh - fy0]),
            fsize,
        )


def cut_window(cache: ObjectCache, i: int, window: CropWindow) -> Cut:
    """Cut ``window`` (frame pixels) out of object ``i``'s cached patch."""
    image, mask = cache.patch(i)
    p = image.shape[0]
    k = p / float(cache.side[i])  # stored pixels per frame pixel (1 unless the patch was shrunk)
    ox, oy = cache.origin[i]
    m = min(p, max(1, round(window.size * k)))
    ax = min(max(round((window.x0 - ox) * k), 0), p - m)
    ay = min(max(round((window.y0 - oy) * k), 0), p - m)
    fh, fw = cache.frame_hw[i]
    return Cut(
        np.ascontiguousarray(image[ay : ay + m, ax : ax + m]),
        np.ascontiguousarray(mask[ay : ay + m, ax : ax + m]),
        ox + ax / k,
        oy + ay / k,
        m / k,
        (int(fh), int(fw)),
    )


def sample(
    cache: ObjectCache,
    i: int,
    rng: np.random.Generator,
    context: float,
    min_side: int,
    aug: AugmentConfig | None,
    side: int | None = None,
    input_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample of object ``i``: ``(input (5, R, R), target (R, R))``; ``aug=None``: no disturbance.

    ``side``: the input side ``R`` (default: the one inference takes for the window at
    ``input_scale``).
    """
    box = cache.box[i].copy()
    if aug is not None and aug.box_jitter > 0:
        w, h = box[2] - box[0], box[3] - box[1]
        step = rng.normal(0.0, aug.box_jitter, 4) * np.array([w, h, w, h])
        jittered = box + step
        if jittered[2] - jittered[0] >= 1.0 and jittered[3] - jittered[1] >= 1.0:
            box = jittered
    c = context
    if aug is not None:
        lo, hi = aug.context_range
        c = context * math.exp(rng.uniform(math.log(lo), math.log(hi)))
    window = window_for_box(box, c, min_side)
    cut = cut_window(cache, i, window)
    r = input_side(window.size, input_scale) if side is None else side
    pixels = resize(cut.image, r)
    target = resize(cut.mask.astype(np.float32) * (1.0 / 255.0), r)
    if aug is not None and aug.blur > 0 and rng.random() < aug.blur:
        pixels = cv2.GaussianBlur(pixels, (3, 3), float(rng.uniform(0.5, 1.2)))
    planes = cut.planes(pixels, box)
    if aug is not None:
        _colour(planes, rng, aug)
        if aug.dihedral:
            turns = int(rng.integers(4))
            planes = np.rot90(planes, turns, axes=(1, 2))
            target = np.rot90(target, turns)
            if rng.random() < 0.5:
                planes = planes[:, :, ::-1]
                target = target[:, ::-1]
    return np.ascontiguousarray(planes), np.ascontiguousarray(target)


def _colour(planes: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> None:
    """Photometric disturbance of the normalised RGB planes, in place (inside the frame only)."""
    rgb = planes[:3]
    inside = planes[4] > 0
    grey = rgb.mean(axis=0, keepdims=True)
    if aug.grey > 0 and rng.random() < aug.grey:
        sat = 0.0
    else:
        sat = 1.0 + rng.uniform(-aug.saturation, aug.saturation)
    out = grey + (rgb - grey) * sat
    out = out * (1.0 + rng.uniform(-aug.contrast, aug.contrast)) + rng.uniform(
        -aug.brightness, aug.brightness
    )
    if aug.noise > 0:
        out = out + rng.normal(0.0, aug.noise * rng.random(), out.shape).astype(np.float32)
    rgb[:] = np.where(inside, out, rgb)


class Sampler:
    """Draws one step's batch: one input side, objects of that side, a fixed pixel budget.

    Each object belongs to the input side inference gives its window at the
    model's context (its *bucket*). A step picks a bucket, then ``pixels / R²``
    objects of it (``R`` the bucket's side), so that every step costs about the
    same and BatchNorm sees one batch of one size. Within a bucket objects are
    drawn by ``weights``; a bucket is picked with probability in proportion to
    its objects' total weight times ``R / 32``: large objects get more steps
    than their number alone gives them, but not all the compute their pixels
    would take.

    Args:
        cache: the object cache.
        weights: ``(N,)`` drawing weights (class balance, reviewed objects).
        context, min_side: the model's window rule.
        pixels: input pixels per step (e.g. ``128 × 48²``).
        input_scale: the model's input scale (:func:`~box2mask.models.lite.crops.input_side`).
    """

    def __init__(
        self,
        cache: ObjectCache,
        weights: np.ndarray,
        context: float,
        min_side: int,
        pixels: int,
        input_scale: float = 1.0,
    ) -> None:
        self.cache = cache
        self.context = context
        self.min_side = min_side
        long_side = np.maximum(cache.box[:, 2] - cache.box[:, 0], cache.box[:, 3] - cache.box[:, 1])
        sides = np.array([input_side(window_for_box([0, 0, float(x), float(x)], context, min_side).size, input_scale)
                          for x in long_side], dtype=np.int64)  # fmt: skip
        self.sides: list[int] = []
        self.members: list[np.ndarray] = []
        self.cum: list[np.ndarray] = []
        mass = []
        for r in sorted(set(sides.tolist())):
            idx = np.flatnonzero(sides == r)
            w = weights[idx]
            if w.sum() <= 0:
                continue
            self.sides.append(r)
            self.members.append(idx)
            self.cum.append(np.cumsum(w) / w.sum())
            mass.append(w.sum() * r / 32)
        m = np.asarray(mass)
        self.bucket_cum = np.cumsum(m) / m.sum()
        self.per_step = {r: max(1, int(pixels // (r * r))) for r in self.sides}

    def draw(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """``(R, indices)`` of one step."""
        b = min(
            int(np.searchsorted(self.bucket_cum, rng.random(), side="right")), len(self.sides) - 1
        )
        r = self.sides[b]
        pick = np.searchsorted(self.cum[b], rng.random(self.per_step[r]), side="right")
        return r, self.members[b][np.minimum(pick, len(self.members[b]) - 1)]

    def batch(self, rng: np.random.Generator, aug: AugmentConfig | None) -> Batch:
        """One step's samples (see the class docstring)."""
        r, index = self.draw(rng)
        xs, ts = [], []
        for i in index.tolist():
            x, t = sample(self.cache, i, rng, self.context, self.min_side, aug, side=r)
            xs.append(x)
            ts.append(t)
        return Batch(np.stack(xs), np.stack(ts), index)
