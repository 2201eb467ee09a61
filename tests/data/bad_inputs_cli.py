"""Builders for tests/test_bad_inputs.py that tests/data/bad_inputs.py does not have.

Each ``build_*(base)`` writes under ``base`` and returns the path the table
passes on the command line (a dataset root, a config file, a checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from data.make_viso import make_viso_mot, write_images


def build_viso_mot(base: Path) -> Path:
    """The good VISO MOT fixture (car, plane, ship; tests/data/make_viso.py)."""
    root = Path(base) / "VISO"
    make_viso_mot(root)
    return root


def build_viso_boxes_outside(base: Path) -> Path:
    """VISO ``mot/plane/001`` (96 x 64 frames) whose line 2 is a box wholly right of the
    image and line 3 wholly above it; lines 1 and 4 are good."""
    root = Path(base) / "VISO"
    seq = root / "mot" / "plane" / "001"
    write_images(seq / "img", range(1, 3))
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text(
        "1 7 5 5 20 18\n1 8 500 10 20 18\n2 9 10 -300 20 18\n2 7 8 6 20 18\n"
    )
    return root


def build_mot_frame_inf(base: Path) -> Path:
    """The generic MOT fixture (tests/data/make_mot.py) whose ``seqA/gt/gt.txt`` line 10
    has an infinite frame number (``inf,9,3,3,2,2``)."""
    from data.make_mot import make_mot

    root = Path(base) / "MOT"
    make_mot(root)
    gt = root / "seqA" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "inf,9,3,3,2,2\n")
    return root


def build_viso_id_huge(base: Path) -> Path:
    """The good VISO MOT fixture whose ``car/001/gt/gt.txt`` (7 rows) gains line 8, a row
    with track id 1e30."""
    root = build_viso_mot(base)
    gt = root / "mot" / "car" / "001" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "2,1e30,10,10,5,5,1,-1,-1,-1\n")
    return root


def write_text(base: Path, name: str, text: str | bytes) -> Path:
    """A file ``base/name`` holding ``text`` (a config, a checkpoint)."""
    path = Path(base) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def build_garbage_checkpoint(base: Path) -> Path:
    """``garbage.pth``: 4 KiB of pseudo-random bytes, not a torch file."""
    import numpy as np

    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return write_text(base, "garbage.pth", data)
