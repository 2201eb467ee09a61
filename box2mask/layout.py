"""Where a job's files are: the output folder's names, one place for ``job``, ``merge`` and writers.

::

    <out>/annotations.json                COCO (the coco writer)
    <out>/<sequence>/<stem>.png, .json    per-frame outputs (the png writer), stem: output_stem
    <out>/.box2mask/job.json              identity, category table, sequence order
    <out>/.box2mask/ledger.jsonl          one line per finished frame
    <out>/.box2mask/finished.json         the job went through every frame
    <out>/.box2mask/parts/<sequence>/<frame_stem>.json   a frame's COCO part
    <out>/.box2mask/outputs.jsonl         per-frame output files, recorded before they are written
    <out>/.box2mask/corrections/<sequence>/<frame_stem>.json   a frame's corrections (people's)
    <out>/.box2mask/corrections.pending.json   the journal of a change being applied
    <out>/.box2mask/lock                  held while a run (or a change) owns the job

Who reads and writes these is :mod:`box2mask.job` (docs/jobs.md).

``<sequence>`` is :func:`sequence_dir` of the sequence's name and ``<stem>``
:func:`output_stem` of the frame: names from the data reach a path only
through these (and :mod:`box2mask.safe_paths`), so nothing is written
outside ``<out>`` whatever the dataset calls its sequences and files.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from box2mask.safe_paths import RESERVED, check_unique, safe_component, safe_relpath
from box2mask.types import Frame

STATE_DIR = ".box2mask"
COCO_NAME = "annotations.json"
JOB_FILE = "job.json"
LEDGER_FILE = "ledger.jsonl"
FINISHED_FILE = "finished.json"
PARTS_DIR = "parts"
LOCK_FILE = "lock"
OUTPUTS_FILE = "outputs.jsonl"
CORRECTIONS_DIR = "corrections"
#: the journal of a change being applied (:mod:`box2mask.job.changes`)
PENDING_FILE = "corrections.pending.json"


def state_dir(out: Path) -> Path:
    """``<out>/.box2mask``: the job's own state."""
    return Path(out) / STATE_DIR


def sequence_dir(sequence: str) -> str:
    """The folder (posix, relative) of a sequence's files, under ``--out`` and under ``parts/``.

    The name made safe (:func:`box2mask.safe_paths.safe_relpath`): ``car/001`` stays
    ``car/001``; ``..``, ``""``, an absolute or a 300-byte name become folders inside,
    and a top-level name box2mask uses itself (``.box2mask``, ``davis``) is escaped.

    >>> sequence_dir("car/001"), sequence_dir("../x"), sequence_dir(".box2mask")
    ('car/001', '%2E%2E/x', '%2Ebox2mask')
    """
    return safe_relpath(sequence, RESERVED)


def sequence_dirs(sequences: list[str]) -> dict[str, str]:
    """``{sequence: folder}`` for a job's sequences; two sequences in one folder are refused.

    Raises:
        UsageError: names both sequences and the folder.
    """
    dirs = {s: sequence_dir(s) for s in sequences}
    check_unique(dirs, "sequences")
    return dirs


def renamed(dirs: dict[str, str]) -> dict[str, str]:
    """The entries of :func:`sequence_dirs` whose folder is not the name itself (job.json)."""
    return {s: d for s, d in dirs.items() if s != d}


def part_path(state: Path, sequence: str, frame_index: int) -> Path:
    """``<state>/parts/<sequence_dir>/<frame_stem>.json``."""
    return Path(state) / PARTS_DIR / sequence_dir(sequence) / f"{frame_stem(frame_index)}.json"


def video_name(sequence: str) -> str:
    """A flat, safe folder name for a sequence (DAVIS, MOTS): ``/`` becomes ``_``.

    >>> video_name("car/001"), video_name("../x"), video_name("")
    ('car_001', '.._x', '%')
    """
    return safe_component(sequence.replace("/", "_"))


def image_suffix(file_name: str) -> str:
    """The extension of a frame's image for a link to it (``.jpg``), ``""`` when it is not a
    short plain one (a name's tail after a dot may be anything)."""
    suffix = PurePath(file_name.replace("\\", "/")).suffix
    plain = suffix[1:].isascii() and suffix[1:].isalnum() and len(suffix) <= 16
    return suffix if plain else ""


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
    number that is not the frame's, a hidden name, a name that is not safe
    as it is: see :func:`box2mask.safe_paths.safe_component`) :func:`frame_stem`.

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
    if safe_component(stem) != stem:  # a control character, "\\", 200+ bytes: unsafe as is
        return frame_stem(frame.frame_index)
    return stem
