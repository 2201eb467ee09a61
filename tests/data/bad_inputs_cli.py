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


# -- issue 24 item 4: frames that are not files, ids and boxes out of range, resumes ----------


def build_viso_fifo_frame(base: Path, frame: int = 2) -> Path:
    """The good VISO MOT fixture whose ``plane/001/img/00000{frame}.jpg`` is a FIFO (named
    pipe) with no writer: opening it for reading would block forever."""
    import os

    root = build_viso_mot(base)
    path = root / "mot" / "plane" / "001" / "img" / f"{frame:06d}.jpg"
    path.unlink()
    os.mkfifo(path)
    return root


def build_viso_fifo_first_frame(base: Path) -> Path:
    """As :func:`build_viso_fifo_frame`, the FIFO being frame 1 (whose header the
    adapter reads for the sequence's frame size)."""
    return build_viso_fifo_frame(base, frame=1)


def _coco(base: Path, change) -> Path:  # noqa: ANN001
    """The COCO fixture (tests/data/make_coco.py: images 11, 12 of ``clipA``, 30 of
    ``other``; categories 1 plane, 2 small_vehicle) with ``change(data)`` applied to its JSON."""
    import json

    from data.make_coco import make_coco

    root = Path(base) / "COCO"
    data, _ = make_coco(root)
    change(data)
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def build_coco_image_id_twice(base: Path) -> Path:
    """``images[2]`` (``single.png``) has id 12, the id of ``images[1]``."""

    def change(d: dict) -> None:
        d["images"][2]["id"] = 12

    return _coco(base, change)


def build_coco_bbox_1e308(base: Path) -> Path:
    """Annotation 1 (image 11, track 1) has the finite but absurd bbox ``[2, 2, 1e308, 7]``."""

    def change(d: dict) -> None:
        d["annotations"][0]["bbox"] = [2, 2, 1e308, 7]

    return _coco(base, change)


def build_coco_track_id_2_70(base: Path) -> Path:
    """Annotation 3 (image 11) has ``track_id`` 2**70 (past int64, past 2**53)."""

    def change(d: dict) -> None:
        d["annotations"][2]["track_id"] = 2**70

    return _coco(base, change)


def build_coco_track_id_list(base: Path) -> Path:
    """Annotation 3 (image 11) has ``track_id`` ``[77]``."""

    def change(d: dict) -> None:
        d["annotations"][2]["track_id"] = [77]

    return _coco(base, change)


def build_coco_image_id_list(base: Path) -> Path:
    """``images[0]`` has id ``[11]``; its annotations name ``image_id`` 11."""

    def change(d: dict) -> None:
        d["images"][0]["id"] = [11]

    return _coco(base, change)


def build_coco_image_ref_list(base: Path) -> Path:
    """``annotations[0]`` names ``image_id`` ``[11]``."""

    def change(d: dict) -> None:
        d["annotations"][0]["image_id"] = [11]

    return _coco(base, change)


def build_coco_category_id_list(base: Path) -> Path:
    """``categories[1]`` (small_vehicle) has id ``[2]``."""

    def change(d: dict) -> None:
        d["categories"][1]["id"] = [2]

    return _coco(base, change)


def build_mot_text_frame(base: Path) -> Path:
    """The generic MOT fixture whose ``seqA/img1/000002.jpg`` is a text file."""
    from data.make_mot import make_mot

    root = Path(base) / "MOT"
    make_mot(root)
    (root / "seqA" / "img1" / "000002.jpg").write_text("not an image\n")
    return root


def build_mot_all_text_frames(base: Path) -> Path:
    """The generic MOT fixture whose every ``.jpg`` (seqA 1-4, seqB 1-2) is a text file."""
    from data.make_mot import make_mot

    root = Path(base) / "MOT"
    make_mot(root)
    for path in root.glob("*/img1/*.jpg"):
        path.write_text("not an image\n")
    return root


def build_viso_empty_frame_box_filled(base: Path) -> Path:
    """The good VISO MOT fixture whose ``car/001/img/000002.jpg`` (cars: box-filled, never
    decoded) is a 0-byte file."""
    root = build_viso_mot(base)
    (root / "mot" / "car" / "001" / "img" / "000002.jpg").write_bytes(b"")
    return root


def build_viso_job_with_bogus_ledger(base: Path) -> Path:
    """The good VISO MOT fixture (10 frames) converted into ``base/../out`` with
    ``--model box``, whose ledger is then cut to its first 3 records plus lines that are
    not records (``"frame": 4.5``, ``"5"``, ``true``, a list as sequence, not JSON) and
    records of frames that do not exist; the part of the first record is removed."""
    import json

    import box2mask
    from box2mask.layout import part_path

    root = build_viso_mot(base)
    out = Path(base).parent / "out"
    box2mask.convert(dataset="viso", root=root, out=out, model="box")
    ledger = out / ".box2mask" / "ledger.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()][:3]
    seq = records[0]["sequence"]
    bogus = [
        {"sequence": seq, "frame": 4.5},
        {"sequence": seq, "frame": "5"},
        {"sequence": seq, "frame": True},
        {"sequence": [seq], "frame": 1},
        {"sequence": seq, "frame": 999},
        {"sequence": "no/such", "frame": 1},
    ]
    lines = [json.dumps(r) for r in records + bogus] + ["not json at all"]
    ledger.write_text("\n".join(lines) + "\n")
    part_path(out / ".box2mask", seq, records[0]["frame"]).unlink()
    (out / ".box2mask" / "finished.json").unlink()
    return root
