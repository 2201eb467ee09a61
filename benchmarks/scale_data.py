"""The synthetic VISO-layout dataset of ``benchmarks/scale.py`` (issue 28).

``python benchmarks/scale_data.py ROOT --sequences S --frames F`` writes::

    ROOT/mot/car/001/img/000001.jpg ...   every frame a hard link to one 1024x1024 JPEG
    ROOT/mot/car/001/gt/gt.txt            100 boxes per frame (104 tracks, 4 absent per frame)
    ROOT/masks/car/001/000001.png ...     16-bit instance maps (pixel = track id): the ground
                                          truth eval scores against; F distinct maps, each a
                                          hard link in every sequence

Every sequence is the same clip (the boxes of sequence 002 are those of 001), so
the dataset costs one JPEG, F maps and S gt.txt files of disk whatever its size:
``S * F * 100`` objects. The objects are small vehicles (8-40 px boxes) on a
10x10 grid, each drifting inside its cell along the clip; the ground-truth mask
is the ellipse inscribed in a box shrunk by up to 2 px a side, so ``--model box``
masks score IoU about 0.7-0.8. A few tracks of each frame overlap their neighbour
(crowding signals) and the grid's outer cells reach the frame's edge.

Run by scale.py in a child process (numpy and OpenCV stay out of the measuring
parent); its figures are the dataset's, not box2mask's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 1024
OBJECTS = 100
TRACKS = 104
GRID = 10


def _tracks(seed: int = 28) -> np.ndarray:
    """``(TRACKS, 8)``: cell x0, y0, w, h, vx, vy, phase, size jitter of each track."""
    rng = np.random.default_rng(seed)
    cell = SIZE / GRID
    t = np.zeros((TRACKS, 8))
    for k in range(TRACKS):
        c = k % (GRID * GRID)
        t[k, 0] = (c % GRID) * cell + rng.uniform(0, cell * 0.4)
        t[k, 1] = (c // GRID) * cell + rng.uniform(0, cell * 0.4)
        if k >= GRID * GRID:  # the last 4 tracks share a cell: overlapping boxes
            t[k, 0] += 6
            t[k, 1] += 4
        if c % GRID == 0:
            t[k, 0] = 0.0  # touches the frame's left edge
        t[k, 2] = rng.uniform(8, 40)
        t[k, 3] = rng.uniform(8, 24)
        t[k, 4] = rng.uniform(-0.08, 0.08)
        t[k, 5] = rng.uniform(-0.08, 0.08)
        t[k, 6] = rng.uniform(0, 2 * np.pi)
        t[k, 7] = rng.uniform(0.5, 2.0)
    return t


def frame_boxes(f: int, t: np.ndarray) -> list[tuple[int, float, float, float, float]]:
    """``(track id, x, y, w, h)`` of frame ``f`` (1-based): 100 of the 104 tracks."""
    absent = {(f * 4 + j) % TRACKS for j in range(TRACKS - OBJECTS)}
    out = []
    for k in range(TRACKS):
        if k in absent:
            continue
        x = t[k, 0] + t[k, 4] * f * 10 % 30
        y = t[k, 1] + t[k, 5] * f * 10 % 30
        w = t[k, 2] + t[k, 7] * np.sin(f / 9 + t[k, 6])
        h = t[k, 3] + t[k, 7] * np.cos(f / 7 + t[k, 6])
        x, y = max(0.0, x), max(0.0, y)
        w, h = min(w, SIZE - x), min(h, SIZE - y)
        out.append((k + 1, round(x, 2), round(y, 2), round(w, 2), round(h, 2)))
    return out


def instance_map(boxes: list[tuple[int, float, float, float, float]], f: int) -> np.ndarray:
    """``(SIZE, SIZE)`` uint16: each track's ellipse, later tracks drawn over earlier ones."""
    m = np.zeros((SIZE, SIZE), np.uint16)
    for tid, x, y, w, h in boxes:
        shrink = (tid + f) % 3  # 0-2 px a side
        cx, cy = x + w / 2, y + h / 2
        ax, ay = max(1, int(w / 2) - shrink), max(1, int(h / 2) - shrink)
        cv2.ellipse(m, (int(cx), int(cy)), (ax, ay), 0, 0, 360, int(tid), -1)
    return m


def build(root: Path, sequences: int, frames: int) -> int:
    """Write the dataset (see the module docstring); returns its number of objects."""
    root = Path(root)
    base = root / "base"
    base.mkdir(parents=True, exist_ok=True)
    t = _tracks()
    jpg = base / "frame.jpg"
    if not jpg.exists():
        rng = np.random.default_rng(1)
        small = rng.integers(60, 180, (SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        for _k, x, y, w, h in frame_boxes(1, t):
            cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (30, 30, 200), -1)
        cv2.imwrite(str(jpg), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    lines = []
    maps = base / "maps"
    maps.mkdir(exist_ok=True)
    n = 0
    for f in range(1, frames + 1):
        boxes = frame_boxes(f, t)
        n += len(boxes)
        lines += [f"{f},{tid},{x},{y},{w},{h},1,-1,-1,-1" for tid, x, y, w, h in boxes]
        mp = maps / f"{f:06d}.png"
        if not mp.exists():
            ok, buf = cv2.imencode(".png", instance_map(boxes, f))
            assert ok
            mp.write_bytes(buf.tobytes())
    text = "\n".join(lines) + "\n"
    for s in range(1, sequences + 1):
        seq = root / "mot" / "car" / f"{s:03d}"
        (seq / "img").mkdir(parents=True, exist_ok=True)
        (seq / "gt").mkdir(exist_ok=True)
        (seq / "gt" / "gt.txt").write_text(text)
        mdir = root / "masks" / "car" / f"{s:03d}"
        mdir.mkdir(parents=True, exist_ok=True)
        for f in range(1, frames + 1):
            for src, dst in ((jpg, seq / "img" / f"{f:06d}.jpg"),
                             (maps / f"{f:06d}.png", mdir / f"{f:06d}.png")):  # fmt: skip
                if not dst.exists():
                    os.link(src, dst)
    return n * sequences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--sequences", type=int, required=True)
    ap.add_argument("--frames", type=int, required=True)
    a = ap.parse_args()
    print(build(a.root, a.sequences, a.frames))


if __name__ == "__main__":
    main()
