"""MOTS Challenge / KITTI MOTS text: one line per object and frame, non-overlapping masks.

``--format mots`` writes, under ``<out>/mots/``::

    <video>.txt     time_frame id class_id img_height img_width rle
    tracks.json     class ids -> names; per video its sequence and id -> track id, category
    seqmaps/<split>.txt   with --split: a MOTS Challenge seqmap (``name``, then the videos)

One file per sequence, ``<video>`` its flat name (:func:`box2mask.layout.video_name`,
``car/001`` -> ``car_001``). Lines are in frame order, then id order:

- ``time_frame``: the dataset's own frame number (``frame_index`` of the COCO
  output; 1-based for VISO, SAT-MTB, SatSOT and OOTB, as MOTS Challenge files are);
- ``id = class_id * 1000 + instance``, ``instance`` 1.. per sequence and class
  in order of first appearance (``tracks.json`` maps it back to the dataset's
  track id). More than 999 tracks of one class in one sequence do not fit the
  format and are refused, naming the sequence;
- ``class_id``: ``car`` 1 and ``pedestrian`` 2 as in KITTI MOTS (TrackEval's
  ``KittiMOTS`` scores them as they are); every other category, in the order of
  the job's category table, takes the next id from 3, skipping 10 (the MOTS
  ``ignore`` class): ``airplane`` 3, ``ship`` 4, ``train`` 5, then 6, 7, 8, 9, 11, ...;
- ``rle``: the COCO compressed RLE string of the mask, column-major.

MOTS forbids overlapping masks. Where masks overlap, the pixel goes to the
smaller object by the rule every format shares (:func:`box2mask.masks.paint`:
the fewest pixels inside the frame on top, ties to the later object in the
frame): each object's mask is what shows of it in the painted frame. An
object left with no pixel gets no line. A track id
seen twice in one frame (and category) is one object, its masks united.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import UsageError
from box2mask.io import atomic_write_bytes
from box2mask.masks import MaskBlock, decode, encode_frame_block, paint, union
from box2mask.split import Split
from box2mask.writers._json import write_json_sidecar
from box2mask.writers.base import WRITERS, AssembledWriter, Assembly
from box2mask.writers.davis import (
    TrackKey,
    by_sequence,
    check_video_names,
    part_hw,
    track_key,
    track_order,
)

MOTS_DIR = "mots"


#: instances one class can have in a sequence (``id = class * 1000 + instance``)
MAX_INSTANCES = 999
#: the MOTS class id of ignore regions; never given to a category
IGNORE_CLASS = 10
#: the KITTI MOTS class ids
FIXED_CLASSES = {"car": 1, "pedestrian": 2}


def class_ids(categories: list[dict[str, Any]]) -> dict[str, int]:
    """``{category name: MOTS class id}`` for a job's category table.

    >>> class_ids([{"id": 1, "name": "airplane"}, {"id": 2, "name": "ship"},
    ...            {"id": 3, "name": "train"}, {"id": 4, "name": "car"}])
    {'airplane': 3, 'ship': 4, 'train': 5, 'car': 1}
    """
    out: dict[str, int] = {}
    nxt = 3
    for c in categories:
        name = str(c["name"])
        if name in FIXED_CLASSES:
            out[name] = FIXED_CLASSES[name]
            continue
        if nxt == IGNORE_CLASS:
            nxt += 1
        out[name] = nxt
        nxt += 1
    return out


def frame_lines(
    part: dict[str, Any], ids: dict[TrackKey, int], classes: dict[str, int]
) -> list[tuple[int, str]]:
    """``(id, line)`` of each object of a frame that keeps a pixel, in id order."""
    hw = part_hw(part)
    anns = part["annotations"]
    keys: dict[TrackKey, int] = {}
    mine: dict[int, list[int]] = {}  # value -> its annotations (a track id twice: its masks)
    for i, a in enumerate(anns):
        v = keys.setdefault(track_key(a), len(keys) + 1)
        mine.setdefault(v, []).append(i)
    blocks = [decode(a["segmentation"], hw) for a in anns]
    owner = paint(hw, blocks, [keys[track_key(a)] for a in anns], np.int32)
    frame = int(part["image"]["frame_index"])
    lines = []
    for key, v in keys.items():
        own = mine[v]
        where = blocks[own[0]] if len(own) == 1 else union([blocks[i] for i in own])
        # what shows of the object: its pixels that the paint gave to it
        visible = owner[where.top : where.bottom, where.left : where.right] == v
        shown = int(np.count_nonzero(visible))
        if shown == 0:
            continue  # an empty mask, or wholly under smaller objects
        seg = anns[own[0]]["segmentation"]
        whole = len(own) == 1 and shown == where.area
        if whole and isinstance(seg["counts"], str) and list(seg["size"]) == list(hw):
            counts = seg["counts"]  # nothing covers it: the part's own RLE is the one to write
        else:
            shown_block = MaskBlock(where.top, where.left, where.height, where.width, visible)
            counts = encode_frame_block(shown_block, hw).rle["counts"]
        oid = ids[key]
        lines.append((oid, f"{frame} {oid} {classes[key[1]]} {hw[0]} {hw[1]} {counts}"))
    lines.sort()
    return lines


def write_mots(
    parts: Iterable[dict[str, Any]],
    categories: list[dict[str, Any]],
    dest: Path,
    split: Split | None = None,
) -> tuple[int, int]:
    """Write ``dest/mots/<video>.txt`` and ``tracks.json`` from COCO parts (dataset order),
    and with ``split`` (by sequence) ``seqmaps/<split>.txt``: the header line ``name``, then
    the split's videos, one per line, as MOTS Challenge seqmaps (TrackEval's
    ``SEQMAP_FILE``).

    Returns:
        ``(sequences, lines)``. Files appear atomically; running again writes
        the same bytes.

    Raises:
        UsageError: more than 999 tracks of one class in a sequence, or two
            sequences with one flat name.
    """
    base = Path(dest) / MOTS_DIR
    classes = class_ids(categories)
    names: list[str] = []
    videos = []
    n_lines = 0
    for seq, seq_parts in by_sequence(parts):
        names.append(seq)
        video = check_video_names(names, "mots")[seq]
        ids: dict[TrackKey, int] = {}
        per_class: dict[int, int] = {}
        order = track_order(seq_parts)
        for key in sorted(order, key=order.__getitem__):
            if key[1] not in classes:
                raise UsageError(f"--format mots: category {key[1]!r} is not in the category table")
            cls = classes[key[1]]
            per_class[cls] = per_class.get(cls, 0) + 1
            if per_class[cls] > MAX_INSTANCES:
                raise UsageError(
                    f"--format mots: sequence {seq!r} has more than {MAX_INSTANCES} {key[1]!r} "
                    f"tracks; MOTS ids (class_id * 1000 + instance) hold {MAX_INSTANCES} per class "
                    "and sequence: leave mots out of --format for this dataset"
                )
            ids[key] = cls * 1000 + per_class[cls]
        text = []
        for part in seq_parts:
            text.extend(line for _, line in frame_lines(part, ids, classes))
        n_lines += len(text)
        atomic_write_bytes(base / f"{video}.txt", "".join(t + "\n" for t in text).encode("ascii"))
        videos.append(
            {
                "name": video,
                "sequence": seq,
                "frames": [int(p["image"]["frame_index"]) for p in (seq_parts[0], seq_parts[-1])],
                "objects": [
                    {"id": ids[k], "track_id": k[0], "category": k[1]}
                    for k in sorted(ids, key=ids.__getitem__)
                ],
            }
        )
    table = {
        "classes": {str(v): k for k, v in sorted(classes.items(), key=lambda kv: kv[1])},
        "videos": videos,
    }
    write_json_sidecar(base / "tracks.json", table)
    for name in split.names if split is not None else ():
        mine = [v["name"] for v in videos if split.of_sequence(v["sequence"]) == name]  # type: ignore[union-attr]
        text = "".join(line + "\n" for line in ["name", *mine])
        atomic_write_bytes(base / "seqmaps" / f"{name}.txt", text.encode("utf-8"))
    return len(videos), n_lines


@WRITERS.register("mots")
class MotsWriter(AssembledWriter):
    """MOTS Challenge / KITTI MOTS text (mots/<video>.txt): non-overlapping RLE per object.

    ``<out>/mots/``, assembled at the end from the parts. What the format cannot hold (more
    than 999 tracks of one class in a sequence, two sequences with one flat name) is found only
    then, after every frame is converted: the refusal says how ``merge`` writes the job's other
    formats from them.
    """

    output = MOTS_DIR
    split_units = ("sequence",)

    def assemble(self, assembly: Assembly, path: Path) -> None:
        try:
            write_mots(assembly.parts(), assembly.categories, path.parent, self.ctx.split)
        except UsageError as exc:
            job_formats = list(self.ctx.formats)
            if not job_formats:  # not a convert job (merge): the message as is
                raise
            others = sorted(set(job_formats) - {self.name}) or ["coco"]
            raise UsageError(
                f"{exc}. Every frame is converted and recorded in {self.ctx.out}; "
                f"`box2mask merge {self.ctx.out} --force --out DIR --format {','.join(others)}` "
                "writes them in the other formats"
            ) from None
