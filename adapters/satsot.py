"""SatSOT (satellite video single object tracking, TGRS 2022).

Layout (FORMATS.md)::

    SatSOT/
      car_01/img/0001.jpg ...
            /groundtruth.txt      one x,y,w,h line per frame; ``none`` = absent

One object per sequence (track id 1); the category comes from the name prefix
(``plane_03`` → ``airplane``). Line ``k`` (counting non-blank lines) belongs
to frame ``k`` (``img/%04d.jpg``).

:class:`SingleTargetAdapter` holds what SatSOT and OOTB share (one
``groundtruth.txt`` line per frame, one object per sequence).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from box2mask.adapters.base import (
    ADAPTERS,
    Adapter,
    SequenceInfo,
    is_absent,
    read_text_lines,
    split_fields,
)
from box2mask.adapters.viso import (
    _Once,
    count_frame_images,
    first_non_numeric,
    first_readable_hw,
    list_frame_images,
    natural_key,
    shared_category,
    to_number,
)

from box2mask.errors import DatasetNotFound
from box2mask.problems import Problems
from box2mask.types import Frame

_PREFIX = re.compile(r"^([A-Za-z]+)")

#: ``(xyxy, obb or None)`` of one parsed ground-truth line.
Parsed = tuple[tuple[float, float, float, float], "np.ndarray | None"]


class SingleTargetAdapter(Adapter):
    """Base of one-object-per-sequence datasets: ``<seq>/img/NNNN.jpg`` + ``<seq>/groundtruth.txt``.

    Subclasses set ``values_per_line`` / ``value_names`` and implement
    :meth:`parse_values`; they may override :meth:`sequence_category` and
    :meth:`object_attributes`.
    """

    gt_name: ClassVar[str] = "groundtruth.txt"
    values_per_line: ClassVar[int] = 4
    value_names: ClassVar[str] = "x,y,w,h"

    def __init__(self, root: Path | str, problems: Problems | None = None, **options: Any) -> None:
        self._once = _Once()
        super().__init__(root, problems, **options)

    # -- layout ---------------------------------------------------------------
    def _sequence_dirs(self) -> list[tuple[str, Path]]:
        out = [
            (e.name, Path(e.path))
            for e in os.scandir(self.root)
            if e.is_dir() and not e.name.startswith(".") and (Path(e.path) / "img").is_dir()
        ]
        out.sort(key=lambda t: natural_key(t[0]))
        return out

    def check_root(self) -> None:
        if not self._sequence_dirs():
            found = sorted(p.name for p in self.root.iterdir())[:10]
            raise DatasetNotFound(
                f"{self.name} root {self.root} has no sequence folders (expected <seq>/img/0001.jpg and "
                f"<seq>/{self.gt_name}; found: {', '.join(found) or 'nothing'})"
            )

    def _report_once(
        self, key: tuple[object, ...], message: str, path: Path, line: int | None = None
    ) -> None:
        if self._once.first(*key):
            self.report(message, path, line)

    def list_sequences(self) -> list[SequenceInfo]:
        """Sequences that have a ground-truth file, with their image counts.

        A sequence without ``groundtruth.txt`` is reported (once) and left out.
        """
        out: list[SequenceInfo] = []
        for name, seq_dir in self._sequence_dirs():
            if not (seq_dir / self.gt_name).is_file():
                self._report_once(
                    ("nogt", name), f"sequence {name} has no {self.gt_name}; skipped", seq_dir
                )
                continue
            out.append(SequenceInfo(name, count_frame_images(seq_dir / "img")))
        return out

    # -- per-dataset hooks ------------------------------------------------------
    def sequence_category(self, sequence: str) -> str:
        """The category of a sequence, from its name prefix (``plane_03`` → ``airplane``)."""
        m = _PREFIX.match(sequence)
        return shared_category(m.group(1) if m else sequence)

    def object_attributes(self, sequence: str) -> Mapping[str, Any]:
        """Per-sequence attributes of the object (each value is the attribute of the one object)."""
        return {}

    def parse_values(
        self, values: list[float], hw: tuple[int, int], path: Path, line: int
    ) -> Parsed | None:
        """Numbers of one line → ``(xyxy, obb)``, or ``None`` for an absent target."""
        raise NotImplementedError

    # -- reading ----------------------------------------------------------------
    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Frames of one sequence, one per image, in frame order.

        Frames whose line is absent (or missing, or malformed) have zero
        objects; the object present has track id 1.
        """
        seq_dir = self.root / sequence
        img_dir = seq_dir / "img"
        if "/" in sequence or not img_dir.is_dir():
            raise DatasetNotFound(f"{self.name} has no sequence {sequence!r} (no folder {img_dir})")
        gt = seq_dir / self.gt_name
        if not gt.is_file():
            self._report_once(
                ("nogt", sequence), f"sequence {sequence} has no {self.gt_name}; skipped", seq_dir
            )
            return
        images = list_frame_images(img_dir)
        if not images:
            return
        hw = first_readable_hw(self, img_dir, images)
        if hw is None:
            return

        boxes: dict[int, Parsed] = {}
        k = 0  # non-blank lines so far: line k <-> frame k
        for lineno, line in enumerate(read_text_lines(gt), 1):
            if not line.strip():
                continue
            k += 1
            parsed = self._parse_line(line, hw, gt, lineno)
            if parsed is not None:
                boxes[k] = parsed
        if k != len(images):
            self._report_once(
                ("count", sequence),
                f"frame-count mismatch: {k} ground-truth lines but {len(images)} images in img/ "
                + (
                    "(frames without a line have no box)"
                    if k < len(images)
                    else "(lines without an image are ignored)"
                ),
                gt,
            )

        category = self.sequence_category(sequence)
        attrs = self.object_attributes(sequence)
        for number, fname in images:
            entry = boxes.get(number)
            n = 0 if entry is None else 1
            path = img_dir / fname
            yield Frame(
                sequence=sequence,
                frame_index=number,
                image_path=path,
                image_hw=hw,
                xyxy=np.array([entry[0]] if entry else [], dtype=np.float64).reshape(-1, 4),
                track_id=np.ones(n, dtype=np.int64),
                category=[category] * n,
                file_name=path.relative_to(self.root).as_posix(),
                obb=None if entry is None or entry[1] is None else entry[1][None],
                attributes={key: [value] * n for key, value in attrs.items()},
            )

    def _parse_line(self, line: str, hw: tuple[int, int], path: Path, lineno: int) -> Parsed | None:
        """Common rules (FORMATS.md) for one line; reports and returns ``None`` when bad."""
        want = self.values_per_line
        fields, lead = split_fields(line)
        if lead:
            if len(fields) != want:
                self.report(
                    f"line starts with an empty field and has {len(fields)} values left, "
                    f"expected {want} ({self.value_names}); skipped",
                    path,
                    lineno,
                )
                return None
            self.report(
                f"line starts with an empty field; read the remaining {want} values as {self.value_names}",
                path,
                lineno,
            )
        if is_absent(fields):
            return None
        if len(fields) != want:
            self.report(
                f"expected {want} values ({self.value_names}), got {len(fields)}: {line.strip()!r}",
                path,
                lineno,
            )
            return None
        try:
            values = [to_number(v) for v in fields]
        except ValueError:
            col, text = first_non_numeric(fields) or (0, "")
            self.report(f"non-numeric value {text!r} in column {col}", path, lineno)
            return None
        return self.parse_values(values, hw, path, lineno)


@ADAPTERS.register("satsot")
class SatSOT(SingleTargetAdapter):
    """SatSOT: one axis-aligned ``x,y,w,h`` box per frame, track id 1."""

    name = "satsot"
    layout = "<seq>/img/0001.jpg + <seq>/groundtruth.txt (x,y,w,h per frame; 'none' = absent), seq = car_01, plane_01, ..."
    options = {}

    def parse_values(
        self, values: list[float], hw: tuple[int, int], path: Path, line: int
    ) -> Parsed | None:
        x, y, w, h = values
        if w <= 0 or h <= 0:  # absent target (FORMATS.md)
            return None
        return (x, y, x + w, y + h), None
