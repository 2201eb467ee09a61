"""Where a job's files are: the output folder's names, one place for ``job``, ``merge`` and writers.

::

    <out>/annotations.json                COCO (the coco writer)
    <out>/<sequence>/<stem>.png, .json    per-frame outputs (the png writer), stem: output_stem
    <out>/.box2mask/job.json              identity, category table, sequence order
    <out>/.box2mask/ledger.jsonl          one line per finished frame
    <out>/.box2mask/finished.json         the job went through every frame
    <out>/.box2mask/parts/<sequence>/<frame_stem>.json   a frame's COCO part
    <out>/.box2mask/lock                  held while a run owns the job
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from box2mask.types import Frame

STATE_DIR = ".box2mask"
COCO_NAME = "annotations.json"
JOB_FILE = "job.json"
LEDGER_FILE = "ledger.jsonl"
FINISHED_FILE = "finished.json"
PARTS_DIR = "parts"
LOCK_FILE = "lock"


def state_dir(out: Path) -> Path:
    """``<out>/.box2mask``: the job's own state."""
    return Path(out) / STATE_DIR


def part_path(state: Path, sequence: str, frame_index: int) -> Path:
    """``<state>/parts/<sequence>/<frame_stem>.json``."""
    return Path(state) / PARTS_DIR / sequence / f"{frame_stem(frame_index)}.json"


def part_frame_index(path: Path) -> int | None:
    """The frame number of a part file's name, ``None`` for anything else in ``parts/``."""
    return int(path.stem) if path.suffix == ".json" and path.stem.isdigit() else None


def frame_stem(frame_index: int) -> str:
    """Zero-padded stem of a frame number: ``000042`` (part files; the fallback output name)."""
    return f"{frame_index:06d}"


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def output_stem(frame: Frame) -> str:
    """File stem of a frame's per-frame outputs (PNG and sidecar).

    The stem of the frame's own image file (``0001.jpg`` -> ``0001``,
    ``img_0001.png`` -> ``img_0001``) when its last number is the frame's
    number: frame numbers are unique within a sequence, so such stems are
    too, and never equal another frame's fallback. Otherwise (no number, a
    number that is not the frame's, a hidden name) :func:`frame_stem`.

    >>> from box2mask.types import Frame
    >>> output_stem(Frame("s", 1, "img/0001.jpg", (4, 4), [], [], []))
    '0001'
    >>> output_stem(Frame("s", 3, "img/left.jpg", (4, 4), [], [], []))
    '000003'
    """
    stem = PurePath(frame.file_name or frame.image_path.name).stem
    if not stem:
        stem = frame.image_path.stem
    m = _LAST_NUMBER.search(stem)
    if m is None or stem.startswith(".") or int(m.group(1)) != int(frame.frame_index):
        return frame_stem(frame.frame_index)
    return stem
