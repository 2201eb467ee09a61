"""YouTube-VIS (2019/2021) JSON: one track per annotation, a mask per frame (docs/formats.md).

``--format ytvis`` writes ``<out>/ytvis.json``, the file VIS trainers
(Mask2Former-VIS, MinVIS, DVIS, the ``youtubevos/cocoapi`` ``YTVOS`` API)
read:

- ``videos``: ``id`` (1..), ``name`` (the sequence), ``width``, ``height``,
  ``length``, ``file_names`` (each frame's image, relative to the dataset
  root as in the COCO output: register the file with ``image_root`` = the
  dataset root), in frame order;
- ``annotations``: one per track (the dataset's track id, in ``track_id``;
  ``id`` 1.. in order of first appearance), ``video_id``, ``category_id``,
  ``iscrowd`` 0, ``height``, ``width``, and per frame of the video
  ``segmentations`` (uncompressed RLE, ``counts`` a list of ints, as the
  published YouTube-VIS files), ``areas``, ``bboxes`` (xywh) and box2mask's
  ``scores``, each ``null`` where the track is absent or its mask is empty
  (a ``score`` is also ``null`` where the model's was not finite: the COCO
  output's ``score``);
- ``categories``: the job's category table (the COCO output's).

Uncompressed RLE because TrackEval's ``YouTubeVIS`` class reads ground
truth with ``frPyObjects``, which takes only that form; the ``YTVOS`` API and
the Mask2Former loaders take either. Frames are the converted frames of each
sequence; all frames of a video must have one size. A track id seen with
two categories is two tracks; seen twice in one frame, its masks are united.

With ``--split`` it also writes ``ytvis_<split>.json`` per split, with the
ids of ``ytvis.json``: the split's videos (by sequence), or (by track) each
video where one of the split's tracks appears, the other splits' tracks in it
with ``iscrowd: 1``, which TrackEval's TrackMAP and the ``YTVOS`` evaluation
ignore (docs/formats.md, "Splits").

Memory: one sequence's parts and tracks at a time; annotations are spooled
to a temporary file beside the output, as the COCO writer does.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import Box2MaskError
from box2mask.masks import compress, decode, encode_frame_block, rle_runs, union
from box2mask.split import Split
from box2mask.writers._json import split_arrays, to_splits
from box2mask.writers.base import WRITERS, AssembledWriter, Assembly
from box2mask.writers.davis import (
    by_sequence,
    check_video_names,
    part_hw,
    track_key,
    track_order,
)

YTVIS_NAME = "ytvis.json"


def split_output(split: str) -> str:
    """The YouTube-VIS file of one split: ``ytvis_val.json``."""
    return f"ytvis_{split}.json"


def uncompressed(seg: dict[str, Any]) -> dict[str, Any]:
    """A COCO RLE as uncompressed RLE: ``{"size": [H, W], "counts": [int, ...]}``.

    >>> from pycocotools import mask as m
    >>> import numpy as np
    >>> a = np.zeros((4, 3), np.uint8, order="F"); a[1:3, 1] = 1
    >>> r = m.encode(a); r["counts"] = r["counts"].decode()
    >>> uncompressed(r)
    {'size': [4, 3], 'counts': [5, 2, 5]}
    """
    return {"size": [int(v) for v in seg["size"]], "counts": rle_runs(seg).tolist()}


def _united(segs: list[dict[str, Any]], hw: tuple[int, int]) -> tuple[dict, int, list[float]]:
    """One track's masks in one frame (a duplicate track id) united: RLE, area, bbox."""
    enc = encode_frame_block(union([decode(s, hw) for s in segs]), hw)
    return enc.rle, enc.area, enc.bbox


def write_ytvis(
    parts: Iterable[dict[str, Any]],
    categories: list[dict[str, Any]],
    dest: Path,
    split: Split | None = None,
) -> tuple[int, int]:
    """Stream COCO parts (dataset order) into one YouTube-VIS JSON at ``dest`` (atomically),
    and with ``split`` each split's file beside it (:func:`split_output`), same ids.

    Returns:
        ``(videos, annotations)`` of ``dest``.
    """
    cat_ids = {c["name"]: c["id"] for c in categories}
    tail = {"categories": categories}
    with contextlib.ExitStack() as stack:
        files = {n: split_output(n) for n in split.names} if split is not None else {}
        (add_video, add), sinks = split_arrays(stack, dest, "videos", "annotations", tail, files)
        for seq, seq_parts in by_sequence(parts):
            n_vid = add_video.count + 1
            hw = part_hw(seq_parts[0])
            for p in seq_parts:
                if part_hw(p) != hw:
                    raise Box2MaskError(
                        f"--format ytvis: sequence {seq!r} frame {p['image']['frame_index']} is "
                        f"{p['image']['width']}x{p['image']['height']}, its first frame "
                        f"{hw[1]}x{hw[0]}; a YouTube-VIS video has one size"
                    )
            video = {
                "id": n_vid,
                "name": seq,
                "width": hw[1],
                "height": hw[0],
                "length": len(seq_parts),
                "file_names": [str(p["image"]["file_name"]) for p in seq_parts],
            }
            add_video(video)
            order = track_order(seq_parts)
            length = len(seq_parts)
            tracks: list[dict[str, Any]] = []
            for key in sorted(order, key=order.__getitem__):
                if key[1] not in cat_ids:
                    raise Box2MaskError(
                        f"category {key[1]!r} of a part is not in the category table"
                    )
                tracks.append(
                    {
                        "key": key,
                        "segmentations": [None] * length,
                        "areas": [None] * length,
                        "bboxes": [None] * length,
                        "scores": [None] * length,
                    }
                )
            for t, part in enumerate(seq_parts):
                seen: dict[tuple[int, str], list[dict[str, Any]]] = {}  # track key: its masks
                for ann in part["annotations"]:
                    seen.setdefault(track_key(ann), []).append(ann)
                for key, anns in seen.items():
                    tr = tracks[order[key]]
                    if len(anns) == 1:
                        rle, area, bbox = (
                            anns[0]["segmentation"],
                            int(anns[0]["area"]),
                            anns[0]["bbox"],
                        )
                    else:
                        rle, area, bbox = _united([a["segmentation"] for a in anns], hw)
                    if area == 0:
                        continue  # an empty mask: absent in this frame
                    tr["segmentations"][t] = uncompressed(rle)
                    tr["areas"][t] = area
                    tr["bboxes"][t] = [float(v) for v in bbox]
                    scores = [float(a["score"]) for a in anns if a["score"] is not None]
                    tr["scores"][t] = max(scores) if scores else None  # None: not finite
            records = []
            for tr in tracks:
                track_id, cat = key = tr.pop("key")
                rec = {
                    "id": add.count + 1,
                    "video_id": n_vid,
                    "category_id": cat_ids[cat],
                    "iscrowd": 0,
                    "height": hw[0],
                    "width": hw[1],
                    "track_id": track_id,
                    **tr,
                }
                add(rec)
                records.append((key, rec))
            if split is not None:
                to_splits(split, sinks, seq, video, records)
    return add_video.count, add.count


def to_trackeval(
    data: dict[str, Any], score: float | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A YouTube-VIS dict as TrackEval's ``YouTubeVIS`` class reads it: ``(ground truth, results)``.

    TrackEval names each video by the first folder of its first
    ``file_names`` entry, which is the same for every sequence of most
    datasets here (``mot/car/001/img/...``), so the ground truth returned
    has each video's file names under its own flat folder (``car_001/<image>``;
    TrackEval reads no image). The results are the annotations as a VIS model
    writes them: ``video_id``, ``category_id``, ``segmentations`` (compressed
    RLE, ``null`` where absent) and one ``score`` per track (``score``, else
    the mean of the track's ``scores``).
    """
    gt = copy.deepcopy(data)
    names = check_video_names([v.get("name", str(v["id"])) for v in gt["videos"]], "ytvis")
    for v in gt["videos"]:
        folder = names[v.get("name", str(v["id"]))]
        v["file_names"] = [f"{folder}/{Path(f).name}" for f in v["file_names"]]
    results = []
    for ann in data["annotations"]:
        segs = []
        for s in ann["segmentations"]:
            if s is None:
                segs.append(None)
                continue
            segs.append({"size": list(s["size"]), "counts": compress(s["counts"], s["size"])})
        scores = [v for v in ann.get("scores", []) if v is not None]
        results.append(
            {
                "video_id": ann["video_id"],
                "category_id": ann["category_id"],
                "segmentations": segs,
                "score": score
                if score is not None
                else (float(np.mean(scores)) if scores else 1.0),
            }
        )
    return gt, results


@WRITERS.register("ytvis")
class YtvisWriter(AssembledWriter):
    """YouTube-VIS JSON (ytvis.json): a track per annotation, masks per frame, for VIS trainers.

    ``<out>/ytvis.json``, assembled at the end from the parts.
    """

    output = YTVIS_NAME
    split_units = ("sequence", "track")

    def assemble(self, assembly: Assembly, path: Path) -> None:
        write_ytvis(assembly.parts(), assembly.categories, path, self.ctx.split)

    def split_files(self) -> list[str]:
        split = self.ctx.split
        return [split_output(s) for s in split.names] if split else []
