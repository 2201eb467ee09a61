"""Datasets whose names would make paths outside ``--out`` (tests/test_bad_inputs.py, issue 24).

Each ``build_*(base)`` writes under ``base`` and returns the dataset root. The COCO ones are
the COCO fixture (tests/data/make_coco.py: images ``clipA/000001.png``, ``clipA/000002.png``,
``single.png``) with its images' ``sequence`` or ``file_name`` changed; the folder ones are
the VISO and MOT fixtures with a sequence folder renamed (raw bytes: any name Linux allows).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from data.make_coco import make_coco
from data.make_mot import make_mot
from data.make_viso import make_viso_mot


def _coco(
    base: Path, sequences: list[str | None], file_names: dict[int, str] | None = None
) -> Path:
    """The COCO fixture with image ``k``'s sequence ``sequences[k]`` (``None``: no field) and
    file name ``file_names[k]``."""
    root = Path(base) / "COCO"
    make_coco(root)
    data = json.loads((root / "annotations.json").read_text())
    for k, im in enumerate(data["images"]):
        seq = sequences[min(k, len(sequences) - 1)]
        if seq is None:
            im.pop("sequence", None)
        else:
            im["sequence"] = seq
        im["frame_index"] = k + 1
        if file_names and k in file_names:
            im["file_name"] = file_names[k]
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def build_coco_sequence_escape(base: Path) -> Path:
    """Every image in sequence ``../../ESC1`` (wrote its PNGs two folders above ``--out``)."""
    return _coco(base, ["../../ESC1"])


def build_coco_sequence_empty(base: Path) -> Path:
    """Every image in sequence ``""`` (wrote ``/000002.png`` at the file-system root)."""
    return _coco(base, [""])


def build_coco_sequence_dot(base: Path) -> Path:
    """Every image in sequence ``.`` (its PNGs went into ``--out`` itself, and ``--overwrite``
    deleted the user's files there)."""
    return _coco(base, ["."])


def build_coco_sequence_absolute(base: Path) -> Path:
    """Every image in sequence ``<base>/ESC2``, an absolute path beside the dataset (wrote
    parts there, then crashed with KeyError 'image')."""
    return _coco(base, [str(Path(base).resolve() / "ESC2")])


def build_coco_file_name_dotdot(base: Path) -> Path:
    """Image 2's ``file_name`` is ``../elsewhere/x.png`` (a real image, outside the image
    folder) and no image has a ``sequence``: its sequence is the file name's first folder,
    ``..``."""
    root = _coco(base, [None], {1: "../elsewhere/x.png"})
    (root / "elsewhere").mkdir()
    shutil.copy(root / "images" / "clipA" / "000002.png", root / "elsewhere" / "x.png")
    return root


def build_coco_sequence_300_bytes(base: Path) -> Path:
    """Every image in a sequence of 300 bytes (ENAMETOOLONG, exit 1)."""
    return _coco(base, ["L" * 300])


def build_coco_sequence_lone_surrogate(base: Path) -> Path:
    """Every image in sequence ``a\\ud800b`` (a JSON escape UTF-8 cannot hold;
    UnicodeEncodeError)."""
    return _coco(base, ["a\ud800b"])


def build_coco_sequences_collide(base: Path) -> Path:
    """Image 1 in a sequence of 300 bytes, image 2 in the sequence named as the first one's
    safe folder: two names, one folder."""
    from box2mask.layout import sequence_dir

    long = "L" * 300
    return _coco(base, [long, sequence_dir(long), long])


def build_viso_hostile_folders(base: Path) -> Path:
    """The VISO MOT fixture with ``mot/car/001`` renamed to ``a\\nb<i>`` plus the byte 0xFF
    (not UTF-8) and ``mot/ship/001`` to 255 bytes."""
    root = Path(base) / "VISO"
    make_viso_mot(root)
    car = os.fsencode(root / "mot" / "car")
    os.rename(os.path.join(car, b"001"), os.path.join(car, b"a\nb<i>\xff"))
    ship = root / "mot" / "ship"
    (ship / "001").rename(ship / ("S" * 255))
    return root


def build_mot_sequence_255_bytes(base: Path) -> Path:
    """The MOT fixture with ``seqA`` renamed to a 255-byte name (its DAVIS video name and
    ``<name>@2`` would pass the file-name limit)."""
    root = Path(base) / "MOT"
    make_mot(root)
    (root / "seqA").rename(root / ("Q" * 255))
    return root
