"""What the exchange reads of a job: its COCO output, its frames, its dataset root, its qa ranking.

This module is the exchange's one seam to the job folder:

- :func:`read_job`: the job's COCO output (``annotations.json``) whole, indexed by
  key: what ``export`` selects from, and what ``import --out FILE.json`` corrects
  (it also reads a folder that holds only a COCO file, such as ``merge``'s output);
- :func:`read_job_frames`: some frames of a ``box2mask convert`` job as the job
  holds them (its parts with the corrections layer,
  :class:`~box2mask.job.JobFolder`): what ``import`` matches a reviewer's file
  against before it writes the changes into the job. Only the frames the file
  covers are read, so an import costs the review, not the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.coco_checks import check_coco
from box2mask.errors import UsageError
from box2mask.exchange.model import FrameKey, ObjectKey
from box2mask.layout import COCO_NAME, JOB_FILE, PARTS_DIR, state_dir

#: where ``box2mask qa`` writes its ranking inside a job (``<job>/qa/qa.json``)
QA_JSON = Path("qa") / "qa.json"


@dataclass
class JobData:
    """A job's COCO output, indexed by key.

    Attributes:
        job_dir: the job folder.
        coco: the COCO dict of ``annotations.json`` as read.
        root: the dataset root the images' ``file_name`` is relative to (the job's
            identity), ``None`` when the job does not record one.
        frames: ``{FrameKey: image}`` (the COCO image dicts).
        images: ``{image id: image}``.
        hw: ``{image id: (H, W)}``.
        objects: ``{ObjectKey: [annotation, ...]}`` in file order; a key held twice
            is ambiguous and never matched.
        categories: ``{id: category}``.
    """

    job_dir: Path
    coco: dict[str, Any]
    root: Path | None
    frames: dict[FrameKey, dict[str, Any]] = field(default_factory=dict)
    images: dict[int, dict[str, Any]] = field(default_factory=dict)
    hw: dict[int, tuple[int, int]] = field(default_factory=dict)
    objects: dict[ObjectKey, list[dict[str, Any]]] = field(default_factory=dict)
    categories: dict[int, dict[str, Any]] = field(default_factory=dict)

    def key_of(self, ann: dict[str, Any]) -> ObjectKey:
        img = self.images[int(ann["image_id"])]
        return ObjectKey(img["sequence"], int(img["frame_index"]), int(ann["track_id"]))


def read_job(job: Path | str) -> JobData:
    """The job at ``job`` (a ``box2mask convert`` folder with ``annotations.json``).

    Raises:
        UsageError: no such job, no COCO output, or a COCO file without the fields the
            exchange matches by (``sequence``, ``frame_index``, ``track_id``), naming
            the first record that lacks one.
    """
    job = Path(job)
    coco_path = job / COCO_NAME
    if not job.is_dir():
        raise UsageError(f"--job {job}: no such job folder")
    if not coco_path.is_file():
        raise UsageError(
            f"--job {job}: no {COCO_NAME} (a `box2mask convert` job with the coco format)"
        )
    coco = _read_json(coco_path, "--job")
    check_coco(
        coco,
        f"--job {coco_path}",
        images=("sequence", "frame_index", "width", "height"),
        annotations=("image_id", "track_id"),
        why="export and import match objects by (sequence, frame_index, track_id), which "
        "box2mask's own COCO output has",
    )
    ident: dict[str, Any] = {}
    jf = state_dir(job) / JOB_FILE
    if jf.is_file():
        ident = dict(_read_json(jf, "--job").get("identity") or {})
    data = JobData(job, coco, Path(ident["root"]) if ident.get("root") else None)
    for c in coco["categories"]:
        data.categories[int(c["id"])] = c
    by_id = data.images
    for n, img in enumerate(coco["images"]):
        if isinstance(img["id"], str):
            raise UsageError(
                f"--job {coco_path}: images[{n}] has id {img['id']!r}, not a whole number (as "
                "COCO and box2mask's output number images)"
            )
        key = FrameKey(img["sequence"], int(img["frame_index"]))
        if key in data.frames:
            raise UsageError(
                f"--job {coco_path}: two images are frame {key.frame_index} of sequence "
                f"{key.sequence!r}"
            )
        data.frames[key] = img
        by_id[int(img["id"])] = img
        data.hw[int(img["id"])] = (int(img["height"]), int(img["width"]))
    for ann in coco["annotations"]:
        img = by_id[ann["image_id"]]
        key = ObjectKey(img["sequence"], int(img["frame_index"]), int(ann["track_id"]))
        data.objects.setdefault(key, []).append(ann)
    return data


def is_job(folder: Path | str) -> bool:
    """``folder`` is a ``box2mask convert`` job that keeps its frames' parts (so changes can
    be written into it), not a folder holding only a COCO file."""
    state = state_dir(Path(folder))
    return (state / JOB_FILE).is_file() and (state / PARTS_DIR).is_dir()


def read_job_frames(job: Path | str, frames: Iterable[FrameKey]) -> JobData:
    """The frames ``frames`` of the job at ``job``, as the job holds them (parts with their
    corrections), as a :class:`JobData` of those frames only.

    Image ids are 1.. over the frames read (in dataset order); annotation ids are
    ``None``: the job's COCO numbers its objects over the whole job, and these frames
    are matched by key, not by id. A frame the job did not convert is left out (the
    diff reports objects of it as unmatched).

    Raises:
        UsageError: not a job folder with parts, or an unreadable part.
    """
    from box2mask.errors import Box2MaskError
    from box2mask.job import JobFileError, JobFolder

    folder = JobFolder(job)
    try:
        ident = folder.identity
    except JobFileError as exc:
        raise UsageError(f"--job {exc.path}: {exc.reason}") from None
    data = JobData(folder.out, {"images": [], "annotations": [], "categories": []},
                   Path(ident["root"]) if ident.get("root") else None)  # fmt: skip
    cats = folder.categories
    data.coco["categories"] = cats
    by_name = {str(c["name"]): int(c["id"]) for c in cats}
    for c in cats:
        data.categories[int(c["id"])] = c
    order = {s: n for n, s in enumerate(folder.order)}
    wanted = sorted(set(frames), key=lambda k: (order.get(k.sequence, len(order)), k))
    for fkey in wanted:
        if not folder.part_path(fkey.sequence, fkey.frame_index).is_file():
            continue
        try:
            part = folder.read_part(fkey.sequence, fkey.frame_index)
        except Box2MaskError as exc:
            raise UsageError(str(exc)) from None
        iid = len(data.images) + 1
        img = {"id": iid, **part["image"]}
        data.coco["images"].append(img)
        data.frames[fkey] = img
        data.images[iid] = img
        data.hw[iid] = (int(img["height"]), int(img["width"]))
        for a in part["annotations"]:
            ann = {"id": None, "image_id": iid, "category_id": by_name.get(str(a["category"])),
                   **{k: v for k, v in a.items() if k != "category"}}  # fmt: skip
            data.coco["annotations"].append(ann)
            key = ObjectKey(fkey.sequence, fkey.frame_index, int(a["track_id"]))
            data.objects.setdefault(key, []).append(ann)
    return data


def _read_json(path: Path, option: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{option} {path}: not readable JSON ({exc})") from None
