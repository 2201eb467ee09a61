"""Per-frame object checks shared by the satmtb, mot and coco adapters.

Each adapter gathers a frame's objects as :class:`Obj` records (with the file
and line each came from), then :func:`checked` drops what cannot be used and
reports it: boxes entirely outside the image and repeated track ids.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from box2mask.adapters.base import is_absent, read_text_lines, split_fields

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


def printf_regex(pattern: str) -> re.Pattern[str]:
    """A regex for file names made by a printf pattern with one integer field.

    ``%06d.jpg`` matches ``000001.jpg`` (group 1 = the number); ``%d`` and
    ``%0Nd``/``%Nd`` are accepted; ``%%`` is a literal ``%``.

    >>> printf_regex("img%04d.png").fullmatch("img0012.png").group(1)
    '0012'

    Raises:
        ValueError: the pattern has no integer field, or more than one.
    """
    fields = list(re.finditer(r"%(0?)(\d*)d", pattern.replace("%%", "\0")))
    if len(fields) != 1:
        raise ValueError(f"frame pattern {pattern!r} must hold exactly one %d field (such as %06d)")
    f = fields[0]
    text = pattern.replace("%%", "\0")
    width = f.group(2)
    if f.group(1) == "0" and width:
        num = rf"(\d{{{width}}}|\d{{{int(width) + 1},}})"
    else:
        num = r"\s*(\d+)"
    before = re.escape(text[: f.start()].replace("\0", "%"))
    after = re.escape(text[f.end() :].replace("\0", "%"))
    return re.compile(before + num + after)


def scan_frames(folder: Path, regex: re.Pattern[str]) -> dict[int, str]:
    """``{frame number: file name}`` of the files in ``folder`` whose names match ``regex``.

    One directory listing, no per-file stat. A missing folder gives ``{}``.
    """
    try:
        names = [e.name for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[int, str] = {}
    for name in sorted(names):
        m = regex.fullmatch(name)
        if m:
            out.setdefault(int(m.group(1)), name)
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


def absent_rows_note(lines: list[int]) -> str:
    """The message that counts the absent rows (``w <= 0``, ``h <= 0``, NaN) of one file."""
    shown = ", ".join(str(n) for n in lines[:10])
    more = f" and {len(lines) - 10} more" if len(lines) > 10 else ""
    return f"{len(lines)} row(s) with w <= 0, h <= 0 or NaN skipped as absent targets: line(s) {shown}{more}"


def read_mot_rows(
    path: Path, report: Reporter, note: Callable[..., None] | None = None
) -> Iterator[tuple[int, int, int, float, float, float, float, list[str]]]:
    """The present boxes of a MOTChallenge-style file ``frame,id,x,y,w,h,...``.

    Blank and ``#`` lines are skipped; absent targets (``none``, zeros) are
    skipped; rows with ``w <= 0``, ``h <= 0`` or NaN are skipped and, when
    ``note`` is given (an :meth:`Adapter.note`), counted in one note per file
    naming their lines (once the file is read to its end); malformed lines
    are reported with file and line and skipped.

    Yields:
        ``(line_no, frame, track_id, x, y, w, h, fields)`` with ``x, y`` the
        top-left corner in pixels and ``fields`` the whole split line.
    """
    absent: list[int] = []
    for ln, line in enumerate(read_text_lines(path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields, lead = split_fields(line)
        if lead:
            report("line starts with an empty field; dropped it", path, ln)
        if len(fields) < 6:
            report(f"expected at least 6 fields frame,id,x,y,w,h, got {len(fields)}", path, ln)
            continue
        # Numbers first, the absent-target forms only when they fail: a clean
        # 30,000-line file then costs one float() per field and no string tests.
        try:
            box = [float(v) for v in fields[2:6]]
        except ValueError:
            box = None
        if box is None or any(math.isnan(v) for v in box):
            if is_absent(fields[2:6]):
                if box is not None:  # NaN
                    absent.append(ln)
                continue
            box = None
        elif not any(box):
            continue  # all zeros: absent (FORMATS.md)
        try:
            frame, tid = int(float(fields[0])), int(float(fields[1]))
        except ValueError:
            box = None
        if box is None:
            report(f"cannot read numbers from {line.strip()!r}", path, ln)
            continue
        if not all(math.isfinite(v) for v in box):
            report(f"non-finite box in {line.strip()!r}", path, ln)
            continue
        x, y, w, h = box
        if w <= 0 or h <= 0:
            absent.append(ln)
            continue
        yield ln, frame, tid, x, y, w, h, fields
    if absent and note is not None:
        note(absent_rows_note(absent), path, absent[0], count=len(absent))
