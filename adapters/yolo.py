"""YOLO detection and segmentation labels (Ultralytics and Roboflow layouts).

Layouts (a split is ``train``, ``val``/``valid`` or ``test``)::

    <root>/data.yaml                       names: class index -> name (list or mapping)
    <root>/images/<split>/<name>.jpg       Ultralytics: labels/<split>/<name>.txt
    <root>/<split>/images/<name>.jpg       Roboflow:    <split>/labels/<name>.txt

An image's label file is found as Ultralytics finds it: the last ``images``
folder of its path becomes ``labels`` and the suffix ``.txt``. Each line of a
label file is one object: ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ...``
(a polygon of at least three points, a segmentation label); coordinates are
fractions of the image's width and height. A polygon is the object's
ground-truth mask (rasterised by pycocotools, as COCO polygons are) and its box
is the polygon's extent; an image without a label file has no objects.

Each split is one sequence (named after the split); its frames are its images in
natural name order, numbered from 1 (YOLO datasets are sets of stills; names
such as Roboflow's ``tile_000002_jpg.rf.<hash>.jpg`` may repeat a number). The
track id of an object is its line number.

Class names come from ``data.yaml``, or from the ``names`` option (a
comma-separated list in class-index order, or a text file with one name per
line), which wins: some exports write names in an order that is not their label
files' (the iSAID tiles of docs/models.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from box2mask.adapters._files import image_hw, is_image_name, natural_key
from box2mask.adapters._objects import Obj, checked, frame_arrays
from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo
from box2mask.adapters.coco import category_name

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.types import Frame, GtMaskProvider

#: split folder names, in the order sequences are listed
SPLITS = ("train", "val", "valid", "test")


@ADAPTERS.register("yolo")
class YOLO(Adapter):
    """YOLO-seg / YOLO detection reader; see the module docstring."""

    layout = (
        "<root>/data.yaml + images/<split>/*.jpg with labels/<split>/*.txt (Ultralytics), "
        "or <split>/images + <split>/labels (Roboflow)"
    )
    options = {
        "split": Option("", "read only this split (train, val, valid, test); default all found"),
        "names": Option(
            "",
            "class names in label-index order: comma-separated, or a file with one per line "
            "(overrides data.yaml)",
        ),
    }

    def check_root(self) -> None:
        self._names = self._class_names()
        found: dict[str, Path] = {}
        for split in SPLITS:
            for folder in (self.root / "images" / split, self.root / split / "images"):
                if folder.is_dir():
                    found.setdefault(split, folder)
        wanted = str(self.opts["split"])
        if wanted:
            if wanted not in found:
                raise DatasetNotFound(
                    f"yolo: no split {wanted!r} under {self.root} (looked for images/{wanted}/ "
                    f"and {wanted}/images/); found: {', '.join(found) or 'none'}"
                )
            found = {wanted: found[wanted]}
        if not found:
            raise DatasetNotFound(
                f"yolo: no images/<split>/ or <split>/images/ folder under {self.root} "
                f"(splits looked for: {', '.join(SPLITS)})"
            )
        self._splits = found
        self._images: dict[str, list[Path]] = {}

    def _class_names(self) -> list[str]:
        opt = str(self.opts["names"])
        if opt:
            p = Path(opt) if Path(opt).is_absolute() else self.root / opt
            if "," not in opt and p.is_file():
                names = [n.strip() for n in p.read_text(encoding="utf-8").splitlines() if n.strip()]
            else:
                names = [n.strip() for n in opt.split(",")]
            if not all(names):
                raise UsageError(f"yolo: option names={opt!r} has an empty name")
            return [category_name(n) for n in names]
        path = self.root / "data.yaml"
        if not path.is_file():
            return []
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise AnnotationError(f"cannot read data.yaml: {exc}", path) from exc
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            try:
                by_index = {int(k): str(v) for k, v in names.items()}
            except (TypeError, ValueError) as exc:
                raise AnnotationError("names: keys must be class indices", path) from exc
            return [category_name(by_index.get(i, str(i))) for i in range(max(by_index) + 1)]
        if isinstance(names, list):
            return [category_name(str(n)) for n in names]
        raise AnnotationError("data.yaml has no 'names' list or mapping", path)

    def _split_images(self, split: str) -> list[Path]:
        if split not in self._images:
            folder = self._splits[split]
            files = [p for p in folder.rglob("*") if p.is_file() and is_image_name(p.name)]
            self._images[split] = sorted(
                files, key=lambda p: natural_key(p.relative_to(folder).as_posix())
            )
        return self._images[split]

    def list_sequences(self) -> list[SequenceInfo]:
        return [SequenceInfo(s, len(self._split_images(s))) for s in self._splits]

    def categories(self) -> list[tuple[str, str]]:
        return [(n, n) for n in dict.fromkeys(self._names)]

    def label_path(self, image: Path) -> Path:
        """Ultralytics' rule: the last ``images`` folder becomes ``labels``, suffix ``.txt``."""
        parts = list(image.parts)
        for i in range(len(parts) - 2, -1, -1):
            if parts[i] == "images":
                parts[i] = "labels"
                break
        return Path(*parts).with_suffix(".txt")

    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        if sequence not in self._splits:
            raise UsageError(
                f"yolo has no sequence {sequence!r}; sequences: {', '.join(self._splits)}"
            )
        for k, path in enumerate(self._split_images(sequence), start=1):
            try:
                hw = image_hw(path)
            except (AnnotationError, OSError) as exc:
                self.report(f"frame {k}: unreadable image ({exc.__class__.__name__}); skipped",
                            path, kind="image")  # fmt: skip
                continue
            objs, polys = self._objects(self.label_path(path), hw)
            keep = checked(objs, hw, k, self.report)
            kept = [polys[objs.index(o)] for o in keep]
            gt = _provider(kept, hw) if any(p is not None for p in kept) else None
            yield self.frame(sequence, k, path, hw, gt_mask=gt, **frame_arrays(keep))

    def _objects(self, path: Path, hw: tuple[int, int]) -> tuple[list[Obj], list[Any]]:
        """The objects of one label file and their polygons (pixels, flat ``[x, y, ...]``)."""
        objs: list[Obj] = []
        polys: list[Any] = []
        if not path.is_file():
            return objs, polys
        h, w = hw
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.report(f"cannot read label file: {exc.__class__.__name__}", path)
            return objs, polys
        for line_no, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                cls = int(fields[0])
                vals = [float(v) for v in fields[1:]]
            except ValueError:
                self.report("not a YOLO label line (class x y ...); skipped", path, line_no)
                continue
            if not all(math.isfinite(v) for v in vals):
                self.report("coordinates must be finite; skipped", path, line_no)
                continue
            if cls < 0 or (self._names and cls >= len(self._names)):
                self.report(
                    f"class {cls} is not in the {len(self._names)} names; skipped", path, line_no
                )
                continue
            name = self._names[cls] if self._names else str(cls)
            if len(vals) == 4:
                cx, cy, bw, bh = vals
                xyxy = np.array(
                    [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
                )
                poly = None
            elif len(vals) >= 6 and len(vals) % 2 == 0:
                pts = np.asarray(vals, dtype=np.float64).reshape(-1, 2) * (w, h)
                xyxy = np.array(
                    [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
                )
                poly = pts.reshape(-1).tolist()
            else:
                self.report(f"{len(vals)} coordinates: neither a box (4) nor a polygon (6 or more, even)",
                            path, line_no)  # fmt: skip
                continue
            if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
                self.report("empty box; skipped", path, line_no)
                continue
            objs.append(Obj(xyxy, line_no, name, path, line_no))
            polys.append(poly)
        return objs, polys


def _provider(polys: list[Any], hw: tuple[int, int]) -> GtMaskProvider:
    from pycocotools import mask as mask_utils

    h, w = hw

    def provider(i: int) -> np.ndarray | None:
        if polys[i] is None:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects([polys[i]], h, w))
        return mask_utils.decode(rle).astype(bool)

    return provider
