"""The ROS-SAM authors' prepared training layout (a SAT-MTB subset with masks).

Layout (FORMATS.md)::

    data/{train,val}/img/<name>.png
                    /boxes/<name>.npy        float64 [N, 4] xmin, ymin, xmax, ymax
                    /onehotmask/<name>.npy   uint8 [N, H, W], 0/255, channel i <-> box i

``<name>`` is a class and a number (``airplane235``). Frames are independent
images, grouped into one sequence per split and class (``train/airplane``);
``frame_index`` is the number. There are no track ids: object ``i`` (the
``i``-th box) gets track id ``i + 1``. Every frame carries a ground-truth mask
provider that memory-maps the ``onehotmask`` file on demand.

``--root`` may be the ``data`` folder itself or the folder that holds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from box2mask.adapters._files import (
    error_reason,
    folder_listing,
    image_hw,
    is_image_name,
    natural_key,
    shared_category,
    with_shared,
)
from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo

from box2mask.errors import AnnotationError, DatasetNotFound
from box2mask.types import Frame, GtMaskProvider

_NAME = re.compile(r"^([A-Za-z][A-Za-z_-]*?)[_-]?(\d+)$")
SPLITS = ("train", "val")


def npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file, from its header only (no data read)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(int(s) for s in shape), dtype


def onehot_provider(path: Path) -> GtMaskProvider:
    """Provider of object ``i``'s ``(H, W)`` bool mask: channel ``i`` of ``path``, nonzero = object.

    The file is memory-mapped per call, so a frame waiting in a queue holds
    neither the masks nor an open file.
    """

    def provider(i: int) -> np.ndarray | None:
        stack = np.load(path, mmap_mode="r")
        return np.asarray(stack[i]) > 0

    return provider


@ADAPTERS.register("rossam")
class RosSam(Adapter):
    """The ROS-SAM training layout: boxes plus one-hot ground-truth masks per image."""

    layout = "data/{train,val}/img/<class><n>.png + boxes/<class><n>.npy [N,4] xyxy + onehotmask/<class><n>.npy [N,H,W]"
    options = {"split": Option("all", "which split to read", choices=("train", "val", "all"))}

    # -- layout ---------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The folder that holds ``train/`` and ``val/``."""
        if any((self.root / s / "img").is_dir() for s in SPLITS):
            return self.root
        return self.root / "data"

    def _splits(self) -> list[str]:
        wanted = SPLITS if self.opts["split"] == "all" else (self.opts["split"],)
        return [s for s in wanted if (self.base / s / "img").is_dir()]

    def check_root(self) -> None:
        if not self._splits():
            want = (
                "train/img or val/img"
                if self.opts["split"] == "all"
                else f"{self.opts['split']}/img"
            )
            raise DatasetNotFound(
                f"rossam root {self.root} has no {want} (also looked in {self.root / 'data'}); "
                f"found: {folder_listing(self.root)}"
            )

    def _images(self, split: str) -> dict[str, list[tuple[int, str]]]:
        """``{class prefix: [(number, file name), ...]}`` of one split, numbers ascending."""
        img_dir = self.base / split / "img"
        groups: dict[str, list[tuple[int, str]]] = {}
        seen: dict[tuple[str, int], str] = {}
        for entry in sorted(os.scandir(img_dir), key=lambda e: natural_key(e.name)):
            if not is_image_name(entry.name):
                continue
            stem = os.path.splitext(entry.name)[0]
            m = _NAME.match(stem)
            if m is None:
                if self.first_time("name", split, entry.name):
                    self.report(
                        "image name is not <class><number>; skipped", Path(entry.path), kind="image"
                    )
                continue
            cls, num = m.group(1), int(m.group(2))
            other = seen.get((cls, num))
            if other is not None:
                if self.first_time("dup", split, entry.name):
                    self.report(
                        f"frame number {num} of class {cls} is already used by {other}; skipped",
                        Path(entry.path),
                        kind="image",
                    )
                continue
            seen[(cls, num)] = entry.name
            groups.setdefault(cls, []).append((num, entry.name))
        for frames in groups.values():
            frames.sort()
        return groups

    def list_sequences(self) -> list[SequenceInfo]:
        """One sequence per split and class (``train/airplane``), with its image count."""
        out: list[SequenceInfo] = []
        for split in self._splits():
            groups = self._images(split)
            for cls in sorted(groups, key=natural_key):
                out.append(SequenceInfo(f"{split}/{cls}", len(groups[cls])))
        return out

    def categories(self) -> list[tuple[str, str]]:
        return with_shared(
            shared_category(cls) for split in self._splits() for cls in sorted(self._images(split))
        )

    # -- reading ----------------------------------------------------------------
    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Frames of ``<split>/<class>``, by number, each with a ground-truth mask provider.

        A frame whose boxes file is missing or malformed, or whose mask count
        or size does not match its boxes and image, is reported and skipped.
        """
        split, _, cls = sequence.partition("/")
        if split not in self._splits() or not cls:
            raise DatasetNotFound(f"rossam has no sequence {sequence!r} (expected <split>/<class>)")
        frames = self._images(split).get(cls)
        if frames is None:
            raise DatasetNotFound(
                f"rossam has no images of class {cls!r} in {self.base / split / 'img'}"
            )
        category = shared_category(cls)
        for number, fname in frames:
            frame = self._frame(split, sequence, category, number, fname)
            if frame is not None:
                yield frame

    def _frame(
        self, split: str, sequence: str, category: str, number: int, fname: str
    ) -> Frame | None:
        stem = os.path.splitext(fname)[0]
        folder = self.base / split
        img = folder / "img" / fname
        boxes_path = folder / "boxes" / f"{stem}.npy"
        mask_path = folder / "onehotmask" / f"{stem}.npy"
        try:
            hw = image_hw(img)
        except (AnnotationError, OSError) as exc:
            self.report(error_reason(exc), img, kind="image")
            return None
        if not boxes_path.is_file():
            self.report("missing boxes file for this image; frame skipped", boxes_path)
            return None
        try:
            boxes = np.load(boxes_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            self.report(f"cannot read boxes: {exc}; frame skipped", boxes_path)
            return None
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.issubdtype(boxes.dtype, np.number):
            self.report(
                f"boxes must be a numeric [N, 4] array, got {boxes.dtype}{list(boxes.shape)}; frame skipped",
                boxes_path,
            )
            return None
        n = boxes.shape[0]
        provider: GtMaskProvider | None = None
        if mask_path.is_file():
            try:
                mshape, _ = npy_shape(mask_path)
            except (OSError, ValueError) as exc:
                self.report(f"cannot read mask header: {exc}; frame skipped", mask_path)
                return None
            if len(mshape) != 3 or mshape[0] != n:
                self.report(
                    f"mask count does not match the boxes: masks {list(mshape)}, boxes [{n}, 4]; frame skipped",
                    mask_path,
                )
                return None
            if tuple(mshape[1:]) != hw:
                self.report(
                    f"mask size {list(mshape[1:])} (H, W) differs from the image's {list(hw)}; frame skipped",
                    mask_path,
                )
                return None
            provider = onehot_provider(mask_path)
        else:
            self.report("missing onehotmask file: frame read without ground-truth masks", mask_path)

        boxes = boxes.astype(np.float64)
        ok = (
            np.isfinite(boxes).all(axis=1)
            & (boxes[:, 2] >= boxes[:, 0])
            & (boxes[:, 3] >= boxes[:, 1])
        )
        for i in np.flatnonzero(~ok):
            self.report(
                f"box {int(i)} is not a valid xmin,ymin,xmax,ymax box: {boxes[i].tolist()}; dropped",
                boxes_path,
            )
        keep = np.flatnonzero(ok)
        track_ids = keep.astype(np.int64) + 1
        sub_provider: GtMaskProvider | None = None
        if provider is not None:
            base_provider = provider

            def sub_provider(j: int) -> np.ndarray | None:
                return base_provider(int(keep[j]))

        return self.frame(
            sequence,
            number,
            img,
            hw,
            xyxy=boxes[keep],
            track_id=track_ids,
            category=[category] * len(keep),
            gt_mask=sub_provider,
        )
