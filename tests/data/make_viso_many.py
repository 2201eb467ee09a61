"""A VISO MOT layout with many small frames, for job tests and the memory benchmark.

``make_viso_many(root, lengths)`` writes one sequence per entry of ``lengths``
(its frame count), named ``<cat>/<NNN>`` with ``cat`` cycling through
``plane``, ``ship``, ``car`` (so the default box-fill class ``car`` is
exercised too), each frame ``hw`` pixels with ``objects`` boxes moving a little
from frame to frame. Images are one seeded noise JPEG per sequence, copied
(every frame the same bytes). Deterministic for a given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.data.make_viso import write_images

CATS = ("plane", "ship", "car")


def make_viso_many(
    root: Path,
    lengths: list[int] | tuple[int, ...] = (30, 12, 20, 7, 25),
    objects: int = 3,
    hw: tuple[int, int] = (48, 64),
    seed: int = 0,
) -> dict[str, int]:
    """Write the dataset under ``root``; returns ``{sequence: frame count}``."""
    rng = np.random.default_rng(seed)
    h, w = hw
    out: dict[str, int] = {}
    for k, n in enumerate(lengths):
        cat = CATS[k % len(CATS)]
        name = f"{cat}/{k + 1:03d}"
        seq = Path(root) / "mot" / name
        write_images(seq / "img", range(1, n + 1), hw=hw)
        start = rng.integers(0, [w - 16, h - 12], size=(objects, 2))
        size = rng.integers([6, 5], [14, 10], size=(objects, 2))
        lines = []
        for f in range(1, n + 1):
            for i in range(objects):
                x = int((start[i, 0] + f) % (w - size[i, 0]))
                y = int(start[i, 1])
                lines.append(f"{f},{i + 1},{x},{y},{size[i, 0]},{size[i, 1]},1,-1,-1,-1")
        (seq / "gt").mkdir(parents=True, exist_ok=True)
        (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
        out[name] = n
    return out
