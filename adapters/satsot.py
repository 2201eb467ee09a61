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

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from box2mask.adapters._files import (
    count_frame_images,
    folder_listing,
    shared_category,
    subfolders,
    with_shared,
)
from box2mask.adapters.base import (
    ADAPTERS,
    Adapter,
    SequenceInfo,
    read_text_lines,
    read_values,
)

from box2mask.errors import DatasetNotFound
from box2mask.types import Frame

#: the class part of a sequence name: ``car_01``, ``plane3``, ``1_Car_01`` (a
#: circulating copy's numbered class prefix), ``bus-2``
_PREFIX = re.compile(r"^(?:\d+[_-])?([A-Za-z]+)")

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

    # -- layout ---------------------------------------------------------------
    #: image-folder names accepted, the layout's own first (copies in
    #: circulation use ``imgs/``; FORMATS.md)
    img_names: ClassVar[tuple[str, ...]] = ("img", "imgs")

    def _img_dir(self, seq_dir: Path) -> Path | None:
        for name in self.img_names:
            if (seq_dir / name).is_dir():
                return seq_dir / name
        return None

    def _gt_path(self, seq_dir: Path) -> Path | None:
        """``groundtruth.txt``, or ``groundtruth`` without extension (a circulating copy's)."""
        for name in (self.gt_name, Path(self.gt_name).stem):
            if (seq_dir / name).is_file():
                return seq_dir / name
        return None

    def _sequence_dirs(self) -> list[tuple[str, Path]]:
        return [
            (e.name, Path(e.path))
            for e in subfolders(self.root, hidden=False)
            if self._img_dir(Path(e.path)) is not None
        ]

    def check_root(self) -> None:
        if self._sequence_dirs():
            return
        expected = f"expected <seq>/img/0001.jpg and <seq>/{self.gt_name}"
        if self._img_dir(self.root) is not None or self._gt_path(self.root) is not None:
            hint = f"{self.root} looks like one sequence folder: pass its parent, --root {self.root.parent}"
        else:
            below = [p.name for p in sorted(self.root.iterdir()) if self._holds_sequences(p)]
            hint = (
                f"the sequence folders are one level down, in {below[0]!r}: pass --root {self.root / below[0]}"
                if below
                else "point --root at the folder that holds the sequence folders (car_01/, plane_01/, ...)"
            )
        raise DatasetNotFound(
            f"{self.name} root {self.root} has no sequence folders ({expected}; "
            f"found: {folder_listing(self.root)}). {hint}"
        )

    def _holds_sequences(self, folder: Path) -> bool:
        """Whether ``folder`` holds sequence folders (for the "--root one level too high" hint)."""
        try:
            return folder.is_dir() and any(
                q.is_dir() and self._img_dir(q) is not None for q in folder.iterdir()
            )
        except OSError:  # unreadable: not the dataset
            return False

    def _note_variants(self, name: str, seq_dir: Path, img_dir: Path, gt: Path | None) -> None:
        """Say (once per adapter and variant) which layout variant was accepted."""
        if img_dir.name != "img" and self.first_time("variant-img", img_dir.name):
            self.note(
                f"images read from {img_dir.name}/ (the layout says img/), first in sequence {name}",
                seq_dir,
                kind="assumed",
            )
        if gt is not None and gt.name != self.gt_name and self.first_time("variant-gt", gt.name):
            self.note(
                f"ground truth read from {gt.name!r} without extension (the layout says "
                f"{self.gt_name}), first in sequence {name}",
                gt,
                kind="assumed",
            )

    def list_sequences(self) -> list[SequenceInfo]:
        """Sequences that have a ground-truth file, with their image counts.

        A sequence without ``groundtruth.txt`` (or ``groundtruth``) is reported
        (once) and left out.
        """
        out: list[SequenceInfo] = []
        for name, seq_dir in self._sequence_dirs():
            img_dir = self._img_dir(seq_dir)
            gt = self._gt_path(seq_dir)
            if gt is None:
                self.report_once(
                    ("nogt", name), f"sequence {name} has no {self.gt_name}; skipped", seq_dir
                )
                continue
            assert img_dir is not None
            self._note_variants(name, seq_dir, img_dir, gt)
            out.append(SequenceInfo(name, count_frame_images(img_dir)))
        return out

    def categories(self) -> list[tuple[str, str]]:
        """The shared categories, then those of the sequences found (``bus_01`` → ``bus``)."""
        return with_shared(self.sequence_category(name) for name, _ in self._sequence_dirs())

    # -- per-dataset hooks ------------------------------------------------------
    def sequence_category(self, sequence: str) -> str:
        """The category of a sequence, from its name prefix (``plane_03`` → ``airplane``, ``1_Car_01`` → ``car``)."""
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
        img_dir = self._img_dir(seq_dir) if "/" not in sequence else None
        if img_dir is None:
            raise DatasetNotFound(
                f"{self.name} has no sequence {sequence!r} (no folder {seq_dir / 'img'})"
            )
        gt = self._gt_path(seq_dir)
        if gt is None:
            self.report_once(
                ("nogt", sequence), f"sequence {sequence} has no {self.gt_name}; skipped", seq_dir
            )
            return
        self._note_variants(sequence, seq_dir, img_dir, gt)
        found = self.frame_images(img_dir)
        if found is None:
            return
        images, hw = found

        boxes: dict[int, Parsed] = {}
        k = 0  # non-blank lines so far: line k <-> frame k
        for lineno, line in enumerate(read_text_lines(gt), 1):
            if not line.strip():
                continue
            k += 1
            parsed = self._parse_line(line, hw, gt, lineno)
            if parsed is not None:
                boxes[k] = parsed
        if k < len(images) and k and self.first_time("count", sequence):
            # a circulating SatSOT copy has 705 lines for 750 images (FORMATS.md): accepted
            # and said in the summary (kind "assumed"), not an error under --strict
            self.note(
                f"frame-count mismatch: {k} ground-truth lines but {len(images)} images in "
                f"{img_dir.name}/ (frames without a line have no box)",
                gt,
                kind="assumed",
            )
        elif k != len(images):
            self.report_once(
                ("count", sequence),
                f"frame-count mismatch: {k} ground-truth lines but {len(images)} images in {img_dir.name}/ "
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
            yield self.frame(
                sequence,
                number,
                path,
                hw,
                xyxy=np.array([entry[0]] if entry else [], dtype=np.float64).reshape(-1, 4),
                track_id=np.ones(n, dtype=np.int64),
                category=[category] * n,
                obb=None if entry is None or entry[1] is None else entry[1][None],
                attributes={key: [value] * n for key, value in attrs.items()},
            )

    def _parse_line(self, line: str, hw: tuple[int, int], path: Path, lineno: int) -> Parsed | None:
        """Common rules (FORMATS.md) for one line; reports and returns ``None`` when bad."""
        values = read_values(
            line, self.values_per_line, self.value_names, path, lineno, self.report
        )
        return None if values is None else self.parse_values(values, hw, path, lineno)


@ADAPTERS.register("satsot")
class SatSOT(SingleTargetAdapter):
    """SatSOT: one axis-aligned ``x,y,w,h`` box per frame, track id 1."""

    layout = "<seq>/img/0001.jpg + <seq>/groundtruth.txt (x,y,w,h per frame; 'none' = absent), seq = car_01, plane_01, ..."
    options = {}

    def parse_values(
        self, values: list[float], hw: tuple[int, int], path: Path, line: int
    ) -> Parsed | None:
        x, y, w, h = values
        if w <= 0 or h <= 0:  # absent target (FORMATS.md)
            return None
        return (x, y, x + w, y + h), None
