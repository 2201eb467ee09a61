"""Writes tiny VISO fixtures in the real layout and returns the truth they encode.

MOT part (``make_viso_mot``):

- ``mot/car/001``: comma-separated, 10 columns ``frame,id,x,y,w,h,1,-1,-1,-1``,
  one row with ``w = 0`` (absent), frame 3 without rows;
- ``mot/plane/001``: space-separated ``x,y,w,h``;
- ``mot/ship/001``: space-separated corners ``x1 y1 x2 y2`` (objects in the
  right half, so that reading them as ``x,y,w,h`` overflows the image).

SOT part (``make_viso_sot``): ``sot/car/001`` with tracks ``1_1_6.txt`` (one
``0,0,0,0`` absent line) and ``2_2_4.txt``; ``sot/plane/002`` without gt.

Truth: ``{sequence: {frame: [(track_id, category, (x1, y1, x2, y2)), ...]}}``
with boxes in ``xyxy`` (x2/y2 exclusive), objects in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HW = (64, 96)  # (H, W) of every fixture image

Truth = dict[str, dict[int, list[tuple[int, str, tuple[float, float, float, float]]]]]


def write_image(path: Path, hw: tuple[int, int] = HW, seed: int = 0) -> None:
    """A small seeded noise JPEG of size ``hw`` (H, W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(path, quality=80)


def write_images(img_dir: Path, frames: range, digits: int = 6, hw: tuple[int, int] = HW) -> None:
    """One image per frame number, named ``%0{digits}d.jpg`` (bytes copied: only headers are read)."""
    first = img_dir / f"{frames[0]:0{digits}d}.jpg"
    write_image(first, hw)
    data = first.read_bytes()
    for n in frames[1:]:
        (img_dir / f"{n:0{digits}d}.jpg").write_bytes(data)


def write_mot_gt(
    root: Path, sequence: str, frames: int, lines: list[str], hw: tuple[int, int] = HW
) -> Path:
    """``mot/<sequence>``: images of frames 1..``frames``, ``gt/gt.txt`` holding ``lines``; returns
    the sequence folder."""
    seq = root / "mot" / sequence
    write_images(seq / "img", range(1, frames + 1), hw=hw)
    (seq / "gt").mkdir(parents=True, exist_ok=True)
    (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    return seq


def _mot_sequence(
    root: Path,
    cat: str,
    category: str,
    sep: str,
    tail: tuple[int, ...],
    corners: bool,
    frames: int,
    rows: list[tuple[int, int, float, float, float, float]],
    truth: Truth,
) -> None:
    lines = [sep.join(str(v) for v in (*row, *tail)) for row in rows]
    name = f"{cat}/001"
    write_mot_gt(root, name, frames, lines)
    truth[name] = {n: [] for n in range(1, frames + 1)}
    for f, tid, a, b, c, d in rows:
        box = (a, b, c, d) if corners else (a, b, a + c, b + d)
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        truth[name][f].append((tid, category, tuple(float(v) for v in box)))


def make_viso_mot(root: Path) -> Truth:
    """Write the MOT fixture under ``root`` (see module docstring); return its truth."""
    truth: Truth = {}
    car_rows = [
        (1, 1, 10, 12, 8, 6),
        (1, 2, 40, 30, 10, 5),
        (2, 1, 12, 12, 8, 6),
        (2, 2, 42, 31, 0, 5),  # w = 0: absent
        (4, 2, 50, 33, 10, 5),
        (4, 1, 16, 13, 8, 6),
        (5, 3, 80, 50, 14, 12),  # runs past the right edge (x + w = 94 < 96)
    ]
    plane_rows = [
        (1, 7, 5, 5, 20, 18),
        (2, 7, 8, 6, 20, 18),
        (3, 7, 11, 7, 20, 18),
        (3, 8, 30, 20, 25, 22),
    ]
    # corners: x1 y1 x2 y2, all in the right half (x + x2 > 96 as xywh)
    ship_rows = [
        (1, 1, 60, 10, 75, 16),
        (1, 2, 55, 40, 90, 50),
        (2, 1, 62, 11, 77, 17),
        (2, 2, 56, 41, 91, 51),
    ]
    # folder, category, separator, columns after x,y,w,h, boxes as corners, frames, rows
    for cat, category, sep, tail, corners, frames, rows in [
        ("car", "car", ",", (1, -1, -1, -1), False, 5, car_rows),
        ("plane", "airplane", " ", (), False, 3, plane_rows),
        ("ship", "ship", " ", (), True, 2, ship_rows),
    ]:
        _mot_sequence(root, cat, category, sep, tail, corners, frames, rows, truth)
    return truth


def make_viso_sot(root: Path) -> Truth:
    """Write the SOT fixture under ``root`` (see module docstring); return its truth."""
    seq = root / "sot" / "car" / "001"
    write_images(seq / "img", range(1, 7))
    gt = seq / "gt"
    gt.mkdir(parents=True)
    track1 = [
        (10, 10, 6, 4),
        (11, 10, 6, 4),
        (0, 0, 0, 0),
        (13, 11, 6, 4),
        (14, 11, 6, 4),
        (15, 12, 6, 4),
    ]
    track2 = [(40, 20, 9, 5), (41, 21, 9, 5), (42, 22, 9, 5)]
    (gt / "1_1_6.txt").write_text("\n".join(",".join(map(str, r)) for r in track1) + "\n")
    (gt / "2_2_4.txt").write_text("\n".join(",".join(map(str, r)) for r in track2) + "\n")
    write_images(root / "sot" / "plane" / "002" / "img", range(1, 3))  # no gt at all
    frames: dict[int, list[tuple[int, str, tuple[float, float, float, float]]]] = {
        n: [] for n in range(1, 7)
    }
    for k, (x, y, w, h) in enumerate(track1):
        if w > 0:
            frames[1 + k].append((1, "car", (x, y, x + w, y + h)))
    for k, (x, y, w, h) in enumerate(track2):
        frames[2 + k].append((2, "car", (x, y, x + w, y + h)))
    return {"car/001": frames}


def write_big_mot(root: Path, frames: int = 300, per_frame: int = 100, seed: int = 0) -> int:
    """A ``mot/car/001`` with ``frames × per_frame`` gt lines; returns the line count."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 1000, (frames, per_frame, 2))
    lines = [
        f"{f + 1},{i + 1},{xy[f, i, 0]},{xy[f, i, 1]},9,7,1,-1,-1,-1"
        for f in range(frames)
        for i in range(per_frame)
    ]
    write_mot_gt(root, "car/001", frames, lines, hw=(1024, 1024))
    return len(lines)


def make_viso_quirks(root: Path) -> Truth:
    """VISO MOT as a real download has it, quirks included (FORMATS.md); return its truth.

    - ``mot/car/001``: the confirmed 10-column comma format with
      ``gt_centroid.txt`` beside it, rows with ``w <= 0`` / ``h <= 0`` (as
      the real car/001 has), a line that lost its first field (``,``);
    - ``mot/plane/001``: space-separated corners ``x1 y1 x2 y2`` (one
      loader's reading of plane files), objects in the right half;
    - ``mot/ship/001``: comma-separated ``x,y,w,h`` with trailing columns and
      a blank line;
    - ``mot/train/001``: images but no ``gt/`` (some sequences have none).
    """
    truth: Truth = {}
    car_lines = [
        "1,1,10,12,8,6,1,-1,-1,-1",
        "1,2,40,30,0,5,1,-1,-1,-1",  # w = 0: absent
        "2,1,12,12,8,6,1,-1,-1,-1",
        "2,2,40,30,10,-2,1,-1,-1,-1",  # h < 0: absent
        ",3,1,14,13,8,6,1,-1,-1",  # lost its first field: dropped, read as 3,1,14,13,8,6
    ]
    car = write_mot_gt(root, "car/001", 3, car_lines)
    (car / "gt" / "gt_centroid.txt").write_text("1,1,14,15,8,6,1,-1,-1,-1\n")
    truth["car/001"] = {
        1: [(1, "car", (10.0, 12.0, 18.0, 18.0))],
        2: [(1, "car", (12.0, 12.0, 20.0, 18.0))],
        3: [(1, "car", (14.0, 13.0, 22.0, 19.0))],
    }
    write_mot_gt(root, "plane/001", 2, ["1 7 60 10 75 16", "1 8 55 40 90 50", "2 7 62 11 77 17"])
    truth["plane/001"] = {
        1: [(7, "airplane", (60.0, 10.0, 75.0, 16.0)), (8, "airplane", (55.0, 40.0, 90.0, 50.0))],
        2: [(7, "airplane", (62.0, 11.0, 77.0, 17.0))],
    }
    write_mot_gt(root, "ship/001", 2, ["1,1,5,5,20,10,1,1", "", "2,1,6,5,20,10,1,1"])
    truth["ship/001"] = {
        1: [(1, "ship", (5.0, 5.0, 25.0, 15.0))],
        2: [(1, "ship", (6.0, 5.0, 26.0, 15.0))],
    }
    write_images(root / "mot" / "train" / "001" / "img", range(1, 3))  # no gt/
    return truth
