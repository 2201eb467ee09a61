"""OOTB (oriented object tracking benchmark for satellite video, ISPRS 2024).

Layout (FORMATS.md)::

    OOTB/
      car_1/img/0001.jpg ...
           /groundtruth.txt     x1,y1,x2,y2,x3,y3,x4,y4 per frame (comma or space, floats)
      anno/car_1.txt            16 comma-separated 0/1:
                                car,ship,train,plane,DEF,IPR,PO,FO,IV,MB,BC,OON,SA,LT,IM,AM

Each frame's oriented box is kept as ``Frame.obb`` (``(1, 4, 2)``, corners in
the file's order, which may run either way round); the prompt box
``Frame.xyxy`` is the axis-aligned box around the corners, clipped to the
image. A line whose values are not all positive is an absent target. The
category is the one-hot class of ``anno/<seq>.txt`` (fallback: the name
prefix); the 12 challenge attributes set to 1 are kept per object in
``Frame.attributes["attributes"]`` (a list of names such as ``["IPR", "MB"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from box2mask.adapters.base import ADAPTERS, read_text_lines, split_fields
from box2mask.adapters.satsot import Parsed, SingleTargetAdapter

log = logging.getLogger("box2mask")

#: Columns of ``anno/<seq>.txt``: a one-hot class, then 12 challenge attributes.
ANNO_CLASSES: tuple[str, ...] = ("car", "ship", "train", "airplane")
ANNO_ATTRIBUTES: tuple[str, ...] = (
    "DEF", "IPR", "PO", "FO", "IV", "MB", "BC", "OON", "SA", "LT", "IM", "AM",
)  # fmt: skip


@ADAPTERS.register("ootb")
class OOTB(SingleTargetAdapter):
    """OOTB: one oriented box (4 corners) per frame, track id 1."""

    layout = (
        "<seq>/img/0001.jpg + <seq>/groundtruth.txt (x1,y1,...,x4,y4 per frame) + anno/<seq>.txt "
        "(16 0/1 attributes), seq = car_1, plane_1, ..."
    )
    options = {}
    values_per_line = 8
    value_names = "x1,y1,x2,y2,x3,y3,x4,y4"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._anno_cache: dict[str, tuple[str | None, list[str] | None]] = {}
        super().__init__(*args, **kwargs)

    def parse_values(
        self, values: list[float], hw: tuple[int, int], path: Path, line: int
    ) -> Parsed | None:
        """Eight corner values → ``(clipped enclosing xyxy, (4, 2) corners)``; ``None`` if absent."""
        if not all(v > 0 for v in values):  # the authors' rule for an absent target
            return None
        corners = np.asarray(values, dtype=np.float64).reshape(4, 2)
        h, w = hw
        # The prompt is the part of the enclosing box inside the image; the
        # oriented box itself is kept as given (the mask is clipped later).
        x1 = min(max(corners[:, 0].min(), 0.0), w)
        y1 = min(max(corners[:, 1].min(), 0.0), h)
        x2 = min(max(corners[:, 0].max(), 0.0), w)
        y2 = min(max(corners[:, 1].max(), 0.0), h)
        if x2 <= x1 or y2 <= y1:
            self.report(f"oriented box lies outside the {w}x{h} image; skipped", path, line)
            return None
        return (float(x1), float(y1), float(x2), float(y2)), corners

    def _anno(self, sequence: str) -> tuple[str | None, list[str] | None]:
        """``(category from the one-hot or None, attribute names or None)`` for a sequence."""
        if sequence in self._anno_cache:
            return self._anno_cache[sequence]
        result: tuple[str | None, list[str] | None] = (None, None)
        path = self.root / "anno" / f"{sequence}.txt"
        if not path.is_file():
            log.info("ootb: no %s; category from the sequence name, no attributes", path)
        else:
            for lineno, line in enumerate(read_text_lines(path), 1):
                if not line.strip():
                    continue
                fields, _ = split_fields(line)
                names = ",".join(("car", "ship", "train", "plane") + ANNO_ATTRIBUTES)
                if len(fields) != 16 or any(f not in ("0", "1") for f in fields):
                    self.report(
                        f"expected 16 values 0 or 1 ({names}), got {line.strip()!r}", path, lineno
                    )
                    break
                bits = [f == "1" for f in fields]
                onehot = [c for c, b in zip(ANNO_CLASSES, bits[:4], strict=True) if b]
                category = onehot[0] if len(onehot) == 1 else None
                if category is None:
                    self.report(
                        f"class columns car,ship,train,plane are not one-hot ({','.join(fields[:4])}); "
                        "category taken from the sequence name",
                        path,
                        lineno,
                    )
                attrs = [a for a, b in zip(ANNO_ATTRIBUTES, bits[4:], strict=True) if b]
                result = (category, attrs)
                break
        self._anno_cache[sequence] = result
        return result

    def sequence_category(self, sequence: str) -> str:
        category, _ = self._anno(sequence)
        return category if category is not None else super().sequence_category(sequence)

    def object_attributes(self, sequence: str) -> Mapping[str, Any]:
        _, attrs = self._anno(sequence)
        return {} if attrs is None else {"attributes": attrs}
