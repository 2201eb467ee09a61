"""An export laid out before anything is written: tasks, frames, objects, and its manifest.

One plan serves both tools: a CVAT task per sequence (:class:`PlanTask`), a
Label Studio task per frame (:class:`PlanFrame`). The manifest
(``box2mask-export.json`` in the export folder) records what was sent where, so
that the way back knows which objects a reviewer deleted: an object the export
sent to a frame and the tool's file no longer holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import UsageError
from box2mask.exchange import _codec
from box2mask.exchange.model import FrameKey, ObjectKey, name_from_json, name_to_json
from box2mask.exchange.select import Selection
from box2mask.exchange.source import JobData
from box2mask.layout import JOB_FILE, state_dir
from box2mask.masks import MaskBlock

MANIFEST = "box2mask-export.json"
MANIFEST_VERSION = 1


@dataclass
class PlanObject:
    """An object to export: its key, the job's annotation, its tool label, its qa rank, and
    whether its mask is empty (then it goes out without a shape: neither tool has an empty
    mask; a shape the reviewer draws with its track id is its fix, and its absence is no
    deletion)."""

    key: ObjectKey
    ann: dict[str, Any]
    label: str
    rank: tuple[int, float] | None = None
    empty: bool = False


@dataclass
class PlanFrame:
    """A frame to export.

    Attributes:
        key: the frame.
        image: the job's COCO image.
        hw: ``(H, W)``.
        source: the frame's image file (dataset root / ``file_name``).
        name: the image's name in the tool (CVAT: the file in the task; Label Studio:
            unused, its URL is the dataset's file).
        objects: the objects sent, in the job's order.
    """

    key: FrameKey
    image: dict[str, Any]
    hw: tuple[int, int]
    source: Path
    name: str = ""
    objects: list[PlanObject] = field(default_factory=list)

    def mask(self, obj: PlanObject) -> np.ndarray:
        """The object's ``(H, W)`` bool mask, decoded from the job's COCO."""
        return _codec.decode(obj.ann["segmentation"], self.hw)

    def block(self, obj: PlanObject) -> MaskBlock:
        """The object's mask as its tight block in frame pixels (the cost of the object)."""
        return _codec.block(obj.ann["segmentation"], self.hw)


@dataclass
class PlanTask:
    """A sequence's frames to export, in frame order; ``number`` counts from 1."""

    number: int
    sequence: str
    frames: list[PlanFrame] = field(default_factory=list)


@dataclass
class Plan:
    """Everything an export writes, decided up front."""

    tool: str
    shape: str
    export_id: str
    created: str
    job: JobData
    selection: Selection
    labels: dict[str, int]
    tasks: list[PlanTask]

    def manifest(self) -> dict[str, Any]:
        """The export's manifest (JSON-ready; names through :func:`name_to_json`)."""
        return {
            "box2mask_export": MANIFEST_VERSION,
            "export_id": self.export_id,
            "tool": self.tool,
            "shape": self.shape,
            "created": self.created,
            "job": {
                "path": str(self.job.job_dir.resolve()),
                "identity_sha256": identity_sha(self.job),
            },
            "selection": self.selection.as_dict(),
            "labels": self.labels,
            "tasks": [
                {
                    "task": t.number,
                    "sequence": name_to_json(t.sequence),
                    "frames": [
                        {
                            "frame_index": f.key.frame_index,
                            "image": f.name,
                            "tracks": [o.key.track_id for o in f.objects if not o.empty],
                            "empty": [o.key.track_id for o in f.objects if o.empty],
                        }
                        for f in t.frames
                    ],
                }
                for t in self.tasks
            ],
        }


def identity_sha(job: JobData | Path | str) -> str | None:
    """SHA-256 of the job's identity (``job.json``), ``None`` for a folder without one: an
    export's file is read back only into the job it came from. ``job``: the job's data or
    its folder."""
    jf = state_dir(job.job_dir if isinstance(job, JobData) else Path(job)) / JOB_FILE
    try:
        ident = json.loads(jf.read_text(encoding="utf-8")).get("identity")
    except (OSError, ValueError, AttributeError):
        return None
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class ManifestTask:
    """A task of a read manifest: its sequence and frames (index, tool image name, the
    tracks sent with a shape, those sent without one)."""

    number: int
    sequence: str
    frames: list[tuple[int, str, list[int], list[int]]]


@dataclass
class Manifest:
    """A manifest as read back (:func:`read_manifest`)."""

    path: Path
    export_id: str
    tool: str
    shape: str
    identity_sha256: str | None
    labels: dict[str, int]
    tasks: list[ManifestTask]


def read_manifest(path: Path) -> Manifest:
    """The manifest an export wrote.

    Raises:
        UsageError: not readable, or not an export manifest, naming the file.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("box2mask_export") != MANIFEST_VERSION:
            raise ValueError(f"not a box2mask export manifest (version {MANIFEST_VERSION})")
        tasks = [
            ManifestTask(
                int(t["task"]),
                name_from_json(t["sequence"]),
                [
                    (
                        int(f["frame_index"]),
                        str(f["image"]),
                        [int(v) for v in f["tracks"]],
                        [int(v) for v in f["empty"]],
                    )
                    for f in t["frames"]
                ],  # fmt: skip
            )
            for t in raw["tasks"]
        ]
        return Manifest(
            Path(path),
            str(raw["export_id"]),
            str(raw["tool"]),
            str(raw["shape"]),
            raw["job"].get("identity_sha256"),
            {str(k): int(v) for k, v in raw["labels"].items()},
            tasks,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--manifest {path}: {exc}") from None
