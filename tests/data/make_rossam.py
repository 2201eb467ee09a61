"""Writes a tiny copy of the ROS-SAM training layout and returns its truth.

``data/train``: ``airplane3.png`` (2 objects), ``airplane12.png`` (1 object,
another image size), ``ship7.png`` (0 objects); ``data/val``: ``ship1.png``
(1 object). Masks are random blobs inside their boxes, stored 0/255.

Truth: ``{(split, name): (hw, boxes (N, 4) float64, masks (N, H, W) bool)}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

Truth = dict[tuple[str, str], tuple[tuple[int, int], np.ndarray, np.ndarray]]

SPEC = {
    ("train", "airplane3"): ((40, 60), [(5, 6, 20, 18), (30, 10, 55, 30)]),
    ("train", "airplane12"): ((50, 50), [(10, 10, 30, 25)]),
    ("train", "ship7"): ((40, 60), []),
    ("val", "ship1"): ((40, 60), [(2, 3, 12, 9)]),
}


def make_rossam(root: Path, seed: int = 0) -> Truth:
    """Write ``root/data/{train,val}/...``; return the truth."""
    rng = np.random.default_rng(seed)
    truth: Truth = {}
    for (split, name), (hw, boxes) in SPEC.items():
        base = root / "data" / split
        for sub in ("img", "boxes", "onehotmask"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(
            base / "img" / f"{name}.png"
        )
        b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        masks = np.zeros((len(boxes), *hw), dtype=bool)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            masks[i, y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < 0.7
        np.save(base / "boxes" / f"{name}.npy", b)
        np.save(base / "onehotmask" / f"{name}.npy", masks.astype(np.uint8) * 255)
        truth[(split, name)] = (hw, b, masks)
    return truth
