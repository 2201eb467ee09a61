"""Per-frame object checks shared by the satmtb, mot and coco adapters.

Each adapter gathers a frame's objects as :class:`Obj` records (with the file
and line each came from), then :func:`checked` drops what cannot be used and
reports it: boxes entirely outside the image and repeated track ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from box2mask.adapters._files import error_reason, first_image_hw

#: ``report(message, path, line)``: an adapter's :meth:`Adapter.report`.
Reporter = Callable[[str, "Path | str | None", "int | None"], None]


@dataclass(eq=False)  # identity: objects are found again by list.index
class Obj:
    """One annotated object before it becomes a row of a :class:`Frame`.

    Attributes:
        xyxy: ``(4,)`` float box in frame pixels (x2/y2 exclusive).
        track_id: the object's track id.
        category: category name.
        path: the file it was read from.
        line: 1-based line in ``path`` (``None`` for XML/JSON files).
        obb: optional ``(4, 2)`` oriented-box corners.
        extra: per-object attributes (``fine_class``) and adapter data.
    """

    xyxy: np.ndarray
    track_id: int
    category: str
    path: Path
    line: int | None = None
    obb: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fmt_box(xyxy: np.ndarray) -> str:
    """``[x1, y1, x2, y2]`` with integers printed without a decimal point."""
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(xyxy, dtype=float).tolist()) + "]"


def checked(
    objs: Iterable[Obj], image_hw: tuple[int, int], frame_index: int, report: Reporter
) -> list[Obj]:
    """Drop (and report) boxes entirely outside the image and repeated track ids.

    A box partly outside the image is kept as is: the crop pipeline handles
    windows past the border. Of two objects with the same track id in one
    frame the first (in file order) is kept.
    """
    h, w = image_hw
    kept: list[Obj] = []
    first_line: dict[int, int | None] = {}
    for o in objs:
        x1, y1, x2, y2 = (float(v) for v in o.xyxy)
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            report(
                f"frame {frame_index}: box {fmt_box(o.xyxy)} of track {o.track_id} lies entirely "
                f"outside the {w}x{h} image; dropped",
                o.path,
                o.line,
            )
            continue
        if o.track_id in first_line:
            where = first_line[o.track_id]
            at = f" (first at line {where})" if where is not None else ""
            report(
                f"frame {frame_index}: track id {o.track_id} appears twice{at}; kept the first",
                o.path,
                o.line,
            )
            continue
        first_line[o.track_id] = o.line
        kept.append(o)
    return kept


def frame_arrays(objs: list[Obj]) -> dict[str, Any]:
    """``xyxy``, ``track_id``, ``category`` (and ``obb`` when every object has one) for a Frame."""
    out: dict[str, Any] = {
        "xyxy": np.array([o.xyxy for o in objs], dtype=np.float64).reshape(-1, 4),
        "track_id": np.array([o.track_id for o in objs], dtype=np.int64),
        "category": np.array([o.category for o in objs], dtype=object),
    }
    if objs and all(o.obb is not None for o in objs):
        out["obb"] = np.array([o.obb for o in objs], dtype=np.float64)
    return out


def report_missing(report: Reporter, path: Path, missing: dict[int, int], last_image: int) -> None:
    """Report annotated frames that have no image.

    Args:
        report: the adapter's reporter.
        path: the annotation file.
        missing: ``{frame number: first line annotating it}`` for frames without an image.
        last_image: the last frame number that has an image (0 if none).

    Frames before the last image get one report each; frames after it (the
    annotation runs longer than the video) one report together, at the line
    of the first.
    """
    for k in sorted(k for k in missing if k <= last_image):
        report(
            f"frame {k}: no image for this annotated frame; its boxes are skipped", path, missing[k]
        )
    after = sorted(k for k in missing if k > last_image)
    if after:
        report(
            f"annotations run to frame {after[-1]} but the images stop at frame {last_image}: "
            f"{len(after)} annotated frame(s) {after[0]}..{after[-1]} skipped",
            path,
            missing[after[0]],
        )


def first_size(
    folder: Path, images: dict[int, str | None], report: Callable[..., None]
) -> tuple[int, int] | None:
    """Size of the first readable image; unreadable ones before it are reported and dropped.

    ``report`` is the adapter's :meth:`Adapter.report` (kind ``image``); a
    dropped frame's name becomes ``None`` in ``images`` (it is not yielded).
    """

    def unreadable(k: int, path: Path, exc: Exception) -> None:
        report(f"frame {k}: unreadable image ({error_reason(exc)}); skipped", path, kind="image")
        images[k] = None

    return first_image_hw(folder, images.items(), unreadable)
