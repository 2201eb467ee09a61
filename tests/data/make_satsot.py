"""Writes tiny SatSOT and OOTB fixtures in their real layouts; returns the truth.

SatSOT (``make_satsot``): ``car_01`` (comma, a ``none`` line and a ``NaN``
line), ``plane_02`` (space-separated, an all-zero line), ``ship_03`` without
``groundtruth.txt``.

OOTB (``make_ootb``): ``car_1`` (comma, corners clockwise, one frame with a
non-positive value), ``plane_2`` (space, corners counter-clockwise, one box
running past the right edge), ``ship_3`` (no ``anno`` file), with
``anno/car_1.txt`` and ``anno/plane_2.txt``.

Truth: ``{sequence: {frame: (category, xyxy) or None}}`` (SatSOT) and
``{sequence: {frame: (category, xyxy, corners (4, 2)) or None}}`` (OOTB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.make_viso import write_images

HW = (64, 96)  # (H, W)


def make_satsot(root: Path) -> dict[str, dict[int, tuple[str, tuple[float, ...]] | None]]:
    """Write the SatSOT fixture under ``root``; return its truth."""
    truth: dict[str, dict[int, tuple[str, tuple[float, ...]] | None]] = {}
    car = ["10,12,6,4", "11,12,6,4", "none", "NaN,NaN,NaN,NaN", "14.5,13,6,4"]
    plane = ["5 5 20 18", "0 0 0 0", "8 6 20 18"]
    for name, cat, lines in (("car_01", "car", car), ("plane_02", "airplane", plane)):
        write_images(root / name / "img", range(1, len(lines) + 1), digits=4, hw=HW)
        (root / name / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        frames: dict[int, tuple[str, tuple[float, ...]] | None] = {}
        for k, line in enumerate(lines, 1):
            parts = line.replace(",", " ").split()
            if len(parts) != 4 or not all(p.replace(".", "").isdigit() for p in parts):
                frames[k] = None
                continue
            x, y, w, h = (float(p) for p in parts)
            frames[k] = None if w <= 0 else (cat, (x, y, x + w, y + h))
        truth[name] = frames
    write_images(root / "ship_03" / "img", range(1, 3), digits=4, hw=HW)  # no groundtruth.txt
    return truth


OOTB_CAR = np.array(
    [
        [[10, 10], [20, 12], [19, 17], [9, 15]],  # clockwise (y down)
        [[11, 10], [21, 12], [20, 17], [10, 15]],
        [[0, 10], [20, 12], [19, 17], [9, 15]],  # a zero: absent
        [[12.5, 10.5], [22.5, 12.5], [21.5, 17.5], [11.5, 15.5]],
    ]
)
OOTB_PLANE = np.array(
    [
        [[40, 20], [38, 40], [60, 42], [62, 22]],  # counter-clockwise
        [[80, 20], [78, 40], [100, 42], [102, 22]],  # past the right edge (W = 96)
    ]
)


def make_ootb(root: Path) -> dict[str, dict[int, tuple[str, tuple[float, ...], np.ndarray] | None]]:
    """Write the OOTB fixture under ``root``; return its truth."""
    h, w = HW
    truth: dict[str, dict[int, tuple[str, tuple[float, ...], np.ndarray] | None]] = {}
    seqs = (
        ("car_1", "car", OOTB_CAR, ","),
        ("plane_2", "airplane", OOTB_PLANE, " "),
        ("ship_3", "ship", OOTB_CAR[:2], ","),
    )
    for name, cat, boxes, sep in seqs:
        write_images(root / name / "img", range(1, len(boxes) + 1), digits=4, hw=HW)
        lines = [sep.join(f"{v:g}" for v in b.reshape(-1)) for b in boxes]
        (root / name / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        frames: dict[int, tuple[str, tuple[float, ...], np.ndarray] | None] = {}
        for k, b in enumerate(boxes, 1):
            if (b <= 0).any():
                frames[k] = None
                continue
            x1, y1 = max(b[:, 0].min(), 0), max(b[:, 1].min(), 0)
            x2, y2 = min(b[:, 0].max(), w), min(b[:, 1].max(), h)
            frames[k] = (cat, (float(x1), float(y1), float(x2), float(y2)), b.astype(np.float64))
        truth[name] = frames
    anno = root / "anno"
    anno.mkdir()
    # car,ship,train,plane,DEF,IPR,PO,FO,IV,MB,BC,OON,SA,LT,IM,AM
    (anno / "car_1.txt").write_text("1,0,0,0,0,1,0,0,0,1,0,0,0,0,0,0\n")
    (anno / "plane_2.txt").write_text("0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,1\n")
    return truth


#: the attributes ``make_ootb`` writes per sequence
OOTB_ATTRIBUTES = {"car_1": ["IPR", "MB"], "plane_2": ["DEF", "AM"]}


def make_satsot_quirks(root: Path) -> dict[str, dict[int, tuple[str, tuple[float, ...]] | None]]:
    """SatSOT as circulating copies ship it (FORMATS.md), quirks included; return its truth.

    - ``1_Car_01``: numbered class prefix and a capital, ``imgs/`` instead of
      ``img/``, annotation file ``groundtruth`` without extension, fewer
      ground-truth lines (3) than images (4);
    - ``2_Plane_01``: numbered prefix, ``img/``, ``groundtruth.txt``;
    - ``bus_01``: a class outside airplane/ship/train/car.
    """
    truth: dict[str, dict[int, tuple[str, tuple[float, ...]] | None]] = {}
    seqs = (
        ("1_Car_01", "car", "imgs", "groundtruth", ["10,12,6,4", "none", "12,12,6,4"], 4),
        ("2_Plane_01", "airplane", "img", "groundtruth.txt", ["5 5 20 18", "8 6 20 18"], 2),
        ("bus_01", "bus", "img", "groundtruth.txt", ["30,20,12,8", "31,20,12,8"], 2),
    )
    for name, cat, img, gt, lines, n_images in seqs:
        write_images(root / name / img, range(1, n_images + 1), digits=4, hw=HW)
        (root / name / gt).write_text("\n".join(lines) + "\n")
        frames: dict[int, tuple[str, tuple[float, ...]] | None] = {}
        for k in range(1, n_images + 1):
            line = lines[k - 1] if k <= len(lines) else "none"
            if line == "none":
                frames[k] = None
                continue
            x, y, w, h = (float(p) for p in line.replace(",", " ").split())
            frames[k] = (cat, (x, y, x + w, y + h))
        truth[name] = frames
    return truth


def make_ootb_quirks(root: Path) -> dict[str, dict[int, tuple[str, tuple[float, ...]] | None]]:
    """OOTB with the variants a real copy may show; return ``{seq: {frame: (category, xyxy) or None}}``.

    - ``car_1``: space-separated float corners, ``imgs/`` and ``groundtruth``
      without extension (as circulating SatSOT copies), ``anno/car_1.txt``;
    - ``plane_12``: unpadded number above 9 (natural order: after ``car_1``),
      no ``anno`` file (category from the name), one non-positive line;
    - ``bus_2``: a class outside the shared four (no anno file).
    """
    truth: dict[str, dict[int, tuple[str, tuple[float, ...]] | None]] = {}
    seqs = (
        ("car_1", "car", "imgs", "groundtruth", " ", [OOTB_CAR[0], OOTB_CAR[1]]),
        ("plane_12", "airplane", "img", "groundtruth.txt", ",", [OOTB_PLANE[0], OOTB_CAR[2]]),
        ("bus_2", "bus", "img", "groundtruth.txt", ",", [OOTB_CAR[3]]),
    )
    for name, cat, img, gt, sep, boxes in seqs:
        write_images(root / name / img, range(1, len(boxes) + 1), digits=4, hw=HW)
        (root / name / gt).write_text(
            "\n".join(sep.join(f"{v:g}" for v in b.reshape(-1)) for b in boxes) + "\n"
        )
        frames: dict[int, tuple[str, tuple[float, ...]] | None] = {}
        for k, b in enumerate(boxes, 1):
            if (b <= 0).any():
                frames[k] = None
                continue
            x1, y1 = max(b[:, 0].min(), 0), max(b[:, 1].min(), 0)
            x2, y2 = min(b[:, 0].max(), HW[1]), min(b[:, 1].max(), HW[0])
            frames[k] = (cat, (float(x1), float(y1), float(x2), float(y2)))
        truth[name] = frames
    (root / "anno").mkdir()
    (root / "anno" / "car_1.txt").write_text("1,0,0,0,0,1,0,0,0,1,0,0,0,0,0,0\n")
    return truth
