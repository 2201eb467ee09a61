"""Writes tiny YOLO-seg fixtures in the two published layouts, and the truth they encode.

- Roboflow (``<split>/images``, ``<split>/labels``, ``data.yaml`` with ``names`` as a
  list; image names such as ``tile_000002_jpg.rf.<hash>.jpg``, one number repeated);
- Ultralytics (``images/<split>``, ``labels/<split>``, ``data.yaml`` with ``names`` as
  a mapping, ``path``/``train``/``val`` keys).

Each image holds textured objects on a noisy background: an axis-aligned
rectangle (a car), a rotated rectangle (a ship) and a plane-like cross, each
written as a polygon label line (normalised coordinates), plus one box-only line
(``class cx cy w h``) without a mask. The truth masks are the polygons rasterised
by the rule box2mask uses for every shape (a pixel is inside when its centre
is), so a model can be trained on the fixture and scored against it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HW = (96, 128)
NAMES = ["small_vehicle", "ship", "plane"]


def _objects(rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """``(class, (K, 2) polygon in pixels)`` of one image's objects."""
    h, w = HW
    out = []
    cx, cy = rng.uniform(20, 50), rng.uniform(20, 70)
    out.append(
        (0, np.array([[cx - 6, cy - 3], [cx + 6, cy - 3], [cx + 6, cy + 3], [cx - 6, cy + 3]]))
    )
    cx, cy, a = rng.uniform(60, 100), rng.uniform(20, 70), rng.uniform(0, np.pi)
    c, s = np.cos(a), np.sin(a)
    rect = np.array([[-14, -4], [14, -4], [14, 4], [-14, 4]], dtype=np.float64)
    out.append((1, rect @ np.array([[c, s], [-s, c]]) + (cx, cy)))
    cx, cy = rng.uniform(30, w - 30), rng.uniform(30, h - 30)
    cross = np.array([[-3, -14], [3, -14], [3, -3], [14, -3], [14, 3], [3, 3], [3, 14], [-3, 14],
                      [-3, 3], [-14, 3], [-14, -3], [-3, -3]], dtype=np.float64)  # fmt: skip
    out.append((2, cross + (cx, cy)))
    return out


def _image(
    rng: np.random.Generator, objects: list[tuple[int, np.ndarray]]
) -> tuple[np.ndarray, list[np.ndarray]]:
    h, w = HW
    img = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
    masks = []
    ys, xs = np.mgrid[0:h, 0:w]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    for k, (cls, poly) in enumerate(objects):
        contour = poly.astype(np.float32).reshape(-1, 1, 2)
        inside = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0
                           for x, y in centres])  # fmt: skip
        m = inside.reshape(h, w)
        colour = np.array([200, 60 + 60 * cls, 40 + 50 * k], np.uint8)
        img[m] = colour
        masks.append(m)
    return img, masks


def _label_lines(objects: list[tuple[int, np.ndarray]], rng: np.random.Generator) -> list[str]:
    h, w = HW
    lines = []
    for cls, poly in objects:
        norm = (poly / (w, h)).reshape(-1)
        lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in norm))
    bw, bh = 10 / w, 8 / h  # a box-only object (detection label): no mask
    lines.append(f"0 {0.9:.6f} {0.1:.6f} {bw:.6f} {bh:.6f}")
    return lines


def make_yolo(
    root: Path, layout: str = "roboflow", images: int = 4, seed: int = 0
) -> dict[str, list[list[np.ndarray]]]:
    """Write a fixture under ``root`` (``layout``: ``roboflow`` or ``ultralytics``).

    Returns:
        ``{split: [per image (natural name order): its truth masks, label-line order]}``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    truth: dict[str, list[list[np.ndarray]]] = {}
    splits = {"train": images, "valid" if layout == "roboflow" else "val": 2}
    for split, n in splits.items():
        if layout == "roboflow":
            img_dir, lab_dir = root / split / "images", root / split / "labels"
        else:
            img_dir, lab_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        truth[split] = []
        for k in range(n):
            objects = _objects(rng)
            img, masks = _image(rng, objects)
            stem = f"tile_{k // 2:06d}_jpg.rf.{k:032x}" if layout == "roboflow" else f"{k:06d}"
            cv2.imwrite(str(img_dir / f"{stem}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            (lab_dir / f"{stem}.txt").write_text("\n".join(_label_lines(objects, rng)) + "\n")
            truth[split].append(masks)
    if layout == "roboflow":
        yaml = "train: ./train/images\nval: ./valid/images\n\nnc: 3\nnames: ['small_vehicle', 'ship', 'plane']\n"
    else:
        yaml = "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: small_vehicle\n  1: ship\n  2: plane\n"
    (root / "data.yaml").write_text(yaml)
    return truth
