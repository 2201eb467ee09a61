"""A job's frames as training data: its objects, with the masks the job holds as ground truth.

A ``box2mask convert`` job whose masks people reviewed (``qa apply``, an
annotation tool's ``import``: the corrections layer) is training data for the
models that made them. :func:`training_frames` reads it through
:class:`~box2mask.job.folder.JobFolder` (the parts with their corrections), a
sequence at a time, and gives each frame as a :class:`~box2mask.types.Frame`
over the images of the dataset the job converted, whose ``gt_mask`` is the
job's mask of each object.

Memory holds the frames' boxes, never the masks: ``gt_mask(i)`` reads the
frame's part again (the last few parts are cached) and decodes object ``i``'s
mask when a sample asks for it, so a training run over a large job costs its
boxes, not its masks.

What counts as ground truth:

- an object a person reviewed (``review`` in :data:`~box2mask.job.corrections.REVIEWED`:
  ``manual`` for a corrected or added mask, ``accepted`` for one kept as it
  was), always; ``attributes["reviewed"]`` marks them, so that a trainer can
  take them first;
- an object no person reviewed, the model's own mask, unless ``reviewed_only``;
  but not a shape filled from its box (``mask_source`` ``box``, ``ellipse``,
  ``obb``): that is no segmentation to learn from, unless a person kept it.

The light model's trainer (``box2mask train lite --data JOB``) reads a job by the
same rule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import DatasetNotFound, UsageError
from box2mask.job.corrections import REVIEWED
from box2mask.job.folder import JobFolder
from box2mask.job.state import JobFileError
from box2mask.masks import decode
from box2mask.types import Frame

#: mask sources that are shapes filled from the box, not segmentations
FILLS = frozenset({"box", "ellipse", "obb"})


def is_reviewed(ann: dict[str, Any]) -> bool:
    """A person vouches for the annotation's mask (it was corrected, drawn or kept)."""
    return ann.get("review") in REVIEWED


def is_ground_truth(ann: dict[str, Any], reviewed_only: bool = False) -> bool:
    """The annotation's mask is training data (see the module docstring)."""
    if is_reviewed(ann):
        return True
    return not reviewed_only and ann.get("mask_source") not in FILLS


def training_frames(
    job: Path | str, *, reviewed_only: bool = False, option: str = "--data"
) -> Iterator[tuple[str, list[Frame]]]:
    """The job's frames with ground-truth masks, per sequence, in dataset order.

    Args:
        job: a ``box2mask convert`` job folder.
        reviewed_only: keep only the objects a person reviewed (and the frames that
            hold one).
        option: the option that named the job, in messages.

    Yields:
        ``(sequence, frames)``: each frame holds the objects that are ground truth
        (:func:`is_ground_truth`), with ``gt_mask`` reading the job's mask and
        ``attributes["reviewed"]`` a bool per object; frames left without an object
        are left out.

    Raises:
        UsageError: not a job folder, or a job with no converted frame.
        DatasetNotFound: the dataset the job converted is not where the job says.
    """
    folder = JobFolder(job)
    try:
        folder.saved  # noqa: B018  (not a job folder: one message, first)
    except JobFileError as exc:
        raise UsageError(f"{option} {job}: {exc.reason}") from None
    if not folder.sequences:
        raise UsageError(f"{option} {job}: the job has no converted frame (no parts)")
    root = folder.root
    if not root.is_dir():
        raise DatasetNotFound(
            f"{option} {job}: the images of the dataset the job converted are not at {root}"
        )
    for seq in folder.sequences:
        frames = []
        for part in folder.iter_sequence(seq):
            frame = _frame(folder, part, root, reviewed_only)
            if frame is not None:
                frames.append(frame)
        yield seq, frames


def _frame(
    folder: JobFolder, part: dict[str, Any], root: Path, reviewed_only: bool
) -> Frame | None:
    im = part["image"]
    anns = [a for a in part["annotations"] if is_ground_truth(a, reviewed_only)]
    if not anns:
        return None
    seq, fi = str(im["sequence"]), int(im["frame_index"])
    hw = (int(im["height"]), int(im["width"]))
    tracks = [int(a["track_id"]) for a in anns]
    boxes = np.array([_xyxy(a.get("prompt_box") or a["bbox"]) for a in anns], dtype=np.float64)

    def gt(i: int) -> np.ndarray | None:
        held = [a for a in _part(str(folder.out), seq, fi)["annotations"]
                if int(a["track_id"]) == tracks[i]]  # fmt: skip
        if len(held) != 1:  # changed since it was listed (an import during training)
            return None
        return decode(held[0]["segmentation"], hw).to_array(hw)

    return Frame(
        sequence=seq,
        frame_index=fi,
        image_path=root / im["file_name"],
        image_hw=hw,
        xyxy=boxes.reshape(-1, 4),
        track_id=np.array(tracks, dtype=np.int64),
        category=np.array([str(a["category"]) for a in anns], dtype=object),
        file_name=str(im["file_name"]),
        gt_mask=gt,
        attributes={"reviewed": [is_reviewed(a) for a in anns]},
    )


@functools.lru_cache(maxsize=4)
def _part(out: str, sequence: str, frame_index: int) -> dict[str, Any]:
    """A frame's part with its corrections; the few last read are kept (a sample asks for
    several objects of one frame in a row)."""
    return JobFolder(out).read_part(sequence, frame_index)


def _xyxy(box: list[float]) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


__all__ = ["FILLS", "is_ground_truth", "is_reviewed", "training_frames"]
