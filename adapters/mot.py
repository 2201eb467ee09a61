"""Generic MOTChallenge-style data (users' own datasets).

Layout::

    <root>/<seq>/img1/000001.jpg ...      images (option images, pattern)
    <root>/<seq>/gt/gt.txt                frame,id,x,y,w,h,conf,class,... (option gt)

or ``<root>`` is itself one sequence (``<root>/img1``, ``<root>/gt/gt.txt``).

Annotation lines follow FORMATS.md's common rules: comma or whitespace
separated, ``x, y, w, h`` top-left in pixels, frames numbered as the image
files are; a box with ``w <= 0`` or ``h <= 0`` (or ``none``/NaN/all zeros) is
an absent target. The class comes from column ``class_column`` through the
``classes`` mapping; without a mapping every object is ``object``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from box2mask.adapters._files import printf_regex, scan_frames
from box2mask.adapters._mot_rows import MotRows, mot_objects
from box2mask.adapters._objects import Obj, checked, first_size, frame_arrays
from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo, number_text

from box2mask.errors import DatasetNotFound, UsageError
from box2mask.types import Frame

#: Category of every object when no ``classes`` mapping is given.
DEFAULT_CATEGORY = "object"


def parse_classes(text: str | dict | None) -> dict[str, str]:
    """``"1:car,2:airplane"`` (or a dict) → ``{"1": "car", "2": "airplane"}``.

    Keys are compared as written in the file after number normalisation
    (``"1.0"`` and ``"1"`` are the same key).

    >>> parse_classes("1:car, 2:airplane")
    {'1': 'car', '2': 'airplane'}

    Raises:
        UsageError: an entry is not ``value:name``.
    """
    if not text:
        return {}
    if isinstance(text, dict):
        return {number_text(str(k)): str(v) for k, v in text.items()}
    out: dict[str, str] = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        key, sep, name = item.partition(":")
        if not sep or not key.strip() or not name.strip():
            raise UsageError(
                f"mot option classes: {item.strip()!r} is not VALUE:NAME (such as 1:car,2:airplane)"
            )
        out[number_text(key.strip())] = name.strip()
    return out


@ADAPTERS.register("mot")
class MOT(Adapter):
    """MOTChallenge-style reader; sequences are the folder names under the root."""

    layout = "<root>/<seq>/img1/000001.jpg ... <seq>/gt/gt.txt (frame,id,x,y,w,h,conf,class,...); or <root> is one sequence"
    options = {
        "gt": Option(
            "gt/gt.txt",
            "annotation file relative to a sequence folder; {seq} is replaced by the sequence name",
        ),
        "images": Option("img1", "image folder relative to a sequence folder"),
        "pattern": Option("%06d.jpg", "printf-style image file name of a frame number"),
        "classes": Option(
            "",
            "class column value to category, e.g. 1:car,2:airplane; objects of other values are "
            "skipped, lines without the column are 'object'. Empty: every object is 'object'",
        ),
        "class_column": Option(
            8, "1-based column of the class value (ignored where a line is shorter)"
        ),
    }

    def check_root(self) -> None:
        try:
            self._regex = printf_regex(str(self.opts["pattern"]))
        except ValueError as exc:
            raise UsageError(f"mot option pattern: {exc}") from None
        self._classes = parse_classes(self.opts["classes"])
        try:
            self._class_col = int(self.opts["class_column"])
        except (TypeError, ValueError):
            raise UsageError(
                f"mot option class_column must be a column number, got {self.opts['class_column']!r}"
            ) from None
        if self._class_col < 1:
            raise UsageError(f"mot option class_column is 1-based, got {self._class_col}")
        images = str(self.opts["images"])
        if (self.root / images).is_dir():
            self._seqs = {self.root.name: self.root}
        else:
            self._seqs = {
                d.name: d
                for d in sorted(self.root.iterdir())
                if d.is_dir() and (d / images).is_dir()
            }
        if not self._seqs:
            raise DatasetNotFound(
                f"mot: no sequence under {self.root}: expected {self.root}/<seq>/{images}/ "
                f"(or {self.root}/{images}/ for a single sequence); set the images option if your folder is named differently"
            )

    def _gt_path(self, name: str) -> Path:
        return self._seqs[name] / str(self.opts["gt"]).replace("{seq}", name).replace(
            "{sequence}", name
        )

    def list_sequences(self) -> list[SequenceInfo]:
        """Every sequence with an images folder (counted, not opened)."""
        img = str(self.opts["images"])
        return [
            SequenceInfo(n, len(scan_frames(d / img, self._regex))) for n, d in self._seqs.items()
        ]

    def categories(self) -> list[tuple[str, str]]:
        if not self._classes:
            return [(DEFAULT_CATEGORY, DEFAULT_CATEGORY)]
        # lines too short to hold the class column keep the default category
        names = list(dict.fromkeys([*self._classes.values(), DEFAULT_CATEGORY]))
        return [(n, n) for n in names]

    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Every image frame of ``sequence`` in frame order, with its boxes.

        A sequence without an annotation file is reported once and yields
        nothing.
        """
        if sequence not in self._seqs:
            raise UsageError(
                f"mot has no sequence {sequence!r}; sequences: {', '.join(self._seqs)}"
            )
        folder = self._seqs[sequence] / str(self.opts["images"])
        images: dict[int, str | None] = dict(scan_frames(folder, self._regex))
        gt = self._gt_path(sequence)
        if not gt.is_file():
            self.report("annotation file not found; sequence skipped", gt, kind="missing")
            return
        hw = first_size(folder, images, self.report)
        if hw is None:
            return
        per_frame = self._read_gt(gt, images)
        for k, name in images.items():
            if name is None:
                continue
            keep = checked(per_frame.get(k, []), hw, k, self.report)
            path = folder / name
            yield self.frame(sequence, k, path, hw, **frame_arrays(keep))

    def _read_gt(self, path: Path, images: dict[int, str | None]) -> dict[int, list[Obj]]:
        col = self._class_col - 1

        def category(rows: MotRows, i: int) -> str | None:
            if not self._classes:
                return DEFAULT_CATEGORY
            fields = rows.fields(i)
            if col >= len(fields):
                return DEFAULT_CATEGORY  # a line too short to hold the class column
            return self._classes.get(number_text(fields[col]))  # None: a class not asked for

        return mot_objects(path, images, category, self.report, self.note)
