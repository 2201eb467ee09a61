"""Writes a tiny MOTChallenge-style fixture and returns the truth it encodes.

- ``seqA``: ``img1/000001.jpg .. 000004.jpg``, ``gt/gt.txt`` comma-separated,
  9 columns ``frame,id,x,y,w,h,conf,class,vis`` with classes 1 and 2, one row
  with ``w = 0`` (absent); frame 3 has no rows.
- ``seqB``: ``img1/000001.jpg .. 000002.jpg``, ``gt/gt.txt`` space-separated,
  6 columns (no class column).

Truth: ``{sequence: {frame: [(track_id, class value or None, (x1, y1, x2, y2)), ...]}}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HW = (40, 64)


def _jpg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*HW, 3), dtype=np.uint8)).save(path, quality=80)


def make_mot(root: Path) -> dict[str, dict[int, list[tuple[int, int | None, tuple[float, ...]]]]]:
    """Write the fixture under ``root`` (one folder per sequence)."""
    truth: dict[str, dict[int, list]] = {"seqA": {}, "seqB": {}}
    lines = []
    for k in range(1, 5):
        _jpg(root / "seqA" / "img1" / f"{k:06d}.jpg", seed=k)
        truth["seqA"][k] = []
        if k == 3:
            continue
        for tid, cls, x, y, w, h in ((1, 1, 2 + k, 3, 10, 6), (2, 2, 30, 10 + k, 8.5, 12)):
            lines.append(f"{k},{tid},{x:g},{y:g},{w:g},{h:g},1,{cls},1.0")
            truth["seqA"][k].append((tid, cls, (x, y, x + w, y + h)))
        lines.append(f"{k},5,1,1,0,4,1,1,1.0")  # w = 0: absent target
    (root / "seqA" / "gt").mkdir(parents=True)
    (root / "seqA" / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    lines = []
    for k in (1, 2):
        _jpg(root / "seqB" / "img1" / f"{k:06d}.jpg", seed=10 + k)
        x, y, w, h = 40 - 3 * k, 20, 7, 5
        lines.append(f"{k} 9 {x} {y} {w} {h}")
        truth["seqB"][k] = [(9, None, (x, y, x + w, y + h))]
    (root / "seqB" / "gt").mkdir(parents=True)
    (root / "seqB" / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    return truth
