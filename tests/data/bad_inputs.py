"""Builders of broken or quirky datasets, one function per case, for CLI bad-input tests.

Each ``build_*(base)`` writes a small dataset under the folder ``base`` (made
if needed) and returns the path to pass as ``--root`` (for the "root one level
off" cases, deliberately the wrong one). The datasets are in each dataset's
published layout (FORMATS.md); only the named defect is added. The rows that
use them (arguments, exit code, message) are listed in
tests/test_convert_quirks.py's ``BAD_INPUTS``.
"""

from __future__ import annotations

from pathlib import Path

from data.make_satsot import make_satsot_quirks
from data.make_viso import write_images

#: ``plane/001``: a good sequence that converts alongside the broken one
_GOOD_PLANE = ["1 7 5 5 20 18", "2 7 8 6 20 18"]


def _viso(base: Path, car_gt: bytes | str | None, car_frames: int = 3) -> Path:
    """VISO MOT with ``mot/car/001`` (gt.txt = ``car_gt``; none if ``None``) and a good ``mot/plane/001``."""
    root = Path(base) / "VISO"
    car = root / "mot" / "car" / "001"
    write_images(car / "img", range(1, car_frames + 1))
    if car_gt is not None:
        (car / "gt").mkdir(parents=True, exist_ok=True)
        data = car_gt.encode() if isinstance(car_gt, str) else car_gt
        (car / "gt" / "gt.txt").write_bytes(data)
    plane = root / "mot" / "plane" / "001"
    write_images(plane / "img", range(1, 3))
    (plane / "gt").mkdir(parents=True, exist_ok=True)
    (plane / "gt" / "gt.txt").write_text("\n".join(_GOOD_PLANE) + "\n")
    return root


# -- VISO gt.txt with nothing usable (issue 16 item 3) ----------------------------------------


def build_viso_gt_empty(base: Path) -> Path:
    """``mot/car/001/gt/gt.txt`` is an empty file."""
    return _viso(base, b"")


def build_viso_gt_binary(base: Path) -> Path:
    """``mot/car/001/gt/gt.txt`` is binary garbage (no line parses)."""
    return _viso(base, bytes(range(256)) * 4)


def build_viso_gt_absent_only(base: Path) -> Path:
    """``mot/car/001/gt/gt.txt`` holds only absent rows (w = 0, h = 0, NaN)."""
    return _viso(
        base, "1,1,10,12,0,6,1,-1,-1,-1\n2,1,10,12,8,0,1,-1,-1,-1\n3,1,NaN,NaN,NaN,NaN,1,-1,-1,-1\n"
    )


# -- silent data loss (issue 16 item 7) ---------------------------------------------------------


def build_viso_absent_rows(base: Path) -> Path:
    """``mot/car/001``: two good rows, and rows with w = 0 (line 2), h < 0 (line 3), NaN (line 4)."""
    return _viso(
        base,
        "1,1,10,12,8,6,1,-1,-1,-1\n"
        "1,2,40,30,0,5,1,-1,-1,-1\n"
        "2,2,40,30,10,-1,1,-1,-1,-1\n"
        "2,3,NaN,30,10,5,1,-1,-1,-1\n"
        "3,1,12,12,8,6,1,-1,-1,-1\n",
    )


def build_viso_truncated_jpeg(base: Path) -> Path:
    """``mot/plane/001/img/000002.jpg`` is cut in half (no EOI marker); the other frames are good.

    (A plane frame: car frames are box-filled by default and never decoded.)
    """
    from data.make_viso import write_image

    root = _viso(base, "1,1,10,12,8,6,1,-1,-1,-1\n")
    frame = root / "mot" / "plane" / "001" / "img" / "000002.jpg"
    write_image(frame, seed=2)
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) // 2])
    return root


def build_viso_truncated_png(base: Path) -> Path:
    """PNG frames in ``mot/plane/001/img/``; ``000002.png`` lacks its last third (no IEND chunk)."""
    import numpy as np
    from PIL import Image

    root = _viso(base, "1,1,10,12,8,6,1,-1,-1,-1\n")
    img = root / "mot" / "plane" / "001" / "img"
    rng = np.random.default_rng(0)
    for n in (1, 2):
        (img / f"{n:06d}.jpg").unlink()
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(
            img / f"{n:06d}.png"
        )
    frame = img / "000002.png"
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) * 2 // 3])
    return root


def build_viso_sequence_without_gt(base: Path) -> Path:
    """``mot/car/001`` has images but no ``gt/gt.txt``; ``mot/plane/001`` is good."""
    return _viso(base, None)


def build_viso_only_sequence_without_gt(base: Path) -> Path:
    """The only sequence, ``mot/car/001``, has no ``gt/gt.txt``: nothing to convert."""
    root = Path(base) / "VISO"
    write_images(root / "mot" / "car" / "001" / "img", range(1, 3))
    return root


def build_viso_good(base: Path) -> Path:
    """A good VISO MOT dataset (car, plane), for ``--classes`` that match nothing."""
    return _viso(base, "1,1,10,12,8,6,1,-1,-1,-1\n2,1,11,12,8,6,1,-1,-1,-1\n")


# -- SatSOT as shipped (issue 16 item 2) --------------------------------------------------------


def build_satsot_quirks(base: Path) -> Path:
    """SatSOT with ``1_Car_01`` (``imgs/``, ``groundtruth``), ``2_Plane_01``, ``bus_01``."""
    root = Path(base) / "SatSOT"
    make_satsot_quirks(root)
    return root


def build_satsot_unknown_category(base: Path) -> Path:
    """SatSOT with only ``bus_01``, a class outside airplane/ship/train/car."""
    root = Path(base) / "SatSOT"
    write_images(root / "bus_01" / "img", range(1, 3), digits=4)
    (root / "bus_01" / "groundtruth.txt").write_text("30,20,12,8\n31,20,12,8\n")
    return root


def build_satsot_root_too_high(base: Path) -> Path:
    """A good SatSOT under ``base/SatSOT``; returns ``base`` (one level too high)."""
    build_satsot_quirks(base)
    return Path(base)


def build_satsot_root_too_low(base: Path) -> Path:
    """A good SatSOT under ``base/SatSOT``; returns ``base/SatSOT/bus_01`` (one sequence folder)."""
    return build_satsot_quirks(base) / "bus_01"


def build_viso_empty_frame_file(base: Path) -> Path:
    """``mot/plane/001/img/000002.jpg`` is a 0-byte file (an interrupted copy)."""
    root = _viso(base, "1,1,10,12,8,6,1,-1,-1,-1\n")
    (root / "mot" / "plane" / "001" / "img" / "000002.jpg").write_bytes(b"")
    return root
