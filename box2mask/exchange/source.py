"""What the exchange reads of a job: its COCO output, its dataset root, its qa ranking.

This module is the exchange's one seam to the job folder: ``export`` and
``import`` read a job only through :func:`read_job`. When one module owns the
job folder (issue 25), this is where the exchange switches to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.exchange.model import FrameKey, ObjectKey
from box2mask.layout import COCO_NAME, JOB_FILE, state_dir

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
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise UsageError(f"--job {coco_path}: not a COCO file (images, annotations, categories)")
    ident: dict[str, Any] = {}
    jf = state_dir(job) / JOB_FILE
    if jf.is_file():
        ident = dict(_read_json(jf, "--job").get("identity") or {})
    data = JobData(job, coco, Path(ident["root"]) if ident.get("root") else None)
    for c in coco["categories"]:
        data.categories[int(c["id"])] = c
    by_id = data.images
    for n, img in enumerate(coco["images"]):
        missing = [k for k in ("id", "sequence", "frame_index", "width", "height") if k not in img]
        if missing:
            raise UsageError(
                f"--job {coco_path}: images[{n}] has no {', '.join(missing)}; export and "
                "import match objects by (sequence, frame_index, track_id), which box2mask's "
                "own COCO output has"
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
    for n, ann in enumerate(coco["annotations"]):
        if "track_id" not in ann or ann.get("image_id") not in by_id:
            what = "no track_id" if "track_id" not in ann else "an image_id no image has"
            raise UsageError(f"--job {coco_path}: annotations[{n}] has {what}")
        img = by_id[ann["image_id"]]
        key = ObjectKey(img["sequence"], int(img["frame_index"]), int(ann["track_id"]))
        data.objects.setdefault(key, []).append(ann)
    return data


def _read_json(path: Path, option: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{option} {path}: not readable JSON ({exc})") from None
