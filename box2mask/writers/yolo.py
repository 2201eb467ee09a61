"""Ultralytics YOLO-seg: one label file per frame, a normalised polygon per object (docs/formats.md).

``--format yolo`` writes, under ``<out>/yolo/``::

    images/<sequence>/<stem><ext>    symbolic links (relative) to the dataset's frame images
    labels/<sequence>/<stem>.txt     one line per object: class x1 y1 x2 y2 ... (normalised)
    data.yaml                        train/val: images; names: class index -> category

Ultralytics finds a label by replacing the last ``images`` folder of the
image's path with ``labels``, hence the links (relative: the output moves
together with the dataset, see :func:`box2mask.writers.davis.link`). ``data.yaml``
has no ``path``: ultralytics then takes the folder the YAML is in.

Each line is what ultralytics' own ``convert_coco(..., use_segments=True)``
writes for the object's mask:

- the class index is the category id minus one in the job's category table
  (``airplane`` 0, ``ship`` 1, ``train`` 2, ``car`` 3, ...; ``data.yaml``
  ``names`` lists them);
- the polygon is the outer contour of the mask (OpenCV ``findContours``,
  ``RETR_EXTERNAL``, ``CHAIN_APPROX_SIMPLE``), through the centres of the
  boundary pixels, so that ``cv2.fillPoly`` (ultralytics' ``polygon2mask``)
  paints the mask back. Holes are filled: a YOLO-seg polygon has none;
- a mask in several parts gives one polygon whose parts are joined by
  zero-width bridges between their closest points (ultralytics'
  ``merge_multi_segment``, reproduced here: ultralytics is not a dependency of
  box2mask); parts with fewer than three contour points are dropped, and an
  object left with none (one or two pixels) gets its mask's bounding box as a
  four-point polygon; an empty mask gets no line;
- coordinates are ``x / W`` and ``y / H`` written with ``%g``; a frame
  without objects has an empty label file (a background image).

Masks may overlap (YOLO-seg instances are independent).

With ``--split`` (by sequence), ``data.yaml`` lists each split's sequence
folders (``train: [images/car/001, ...]``, ``val: [...]``, ``test: [...]``),
disjoint, instead of ``images`` for both train and val. YOLO has one label
file per image and no ignore region, so it cannot hold a split by track.

Assembled at the end from the job's COCO parts, like the other track
formats, not written per frame: the image links must be made at the end
anyway (a frame file is bytes, not a link), and ``box2mask merge`` copies
per-frame outputs folder by folder, which would copy every linked image.
Contours cost ~60 µs per small object (benchmarks/write_cost.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.errors import Box2MaskError
from box2mask.io import atomic_write_bytes
from box2mask.layout import image_suffix, sequence_dir
from box2mask.masks import decode
from box2mask.split import Split
from box2mask.writers.base import WRITERS, AssembledWriter, Assembly
from box2mask.writers.davis import link, part_hw, part_stem

YOLO_DIR = "yolo"


def label_path(sequence: str, stem: str) -> str:
    """``yolo/labels/<sequence>/<stem>.txt`` (posix, relative to ``--out``; ``<sequence>``
    the safe folder name, :func:`box2mask.layout.sequence_dir`)."""
    return f"{YOLO_DIR}/labels/{sequence_dir(sequence)}/{stem}.txt"


def image_link_path(sequence: str, stem: str, file_name: str) -> str:
    """``yolo/images/<sequence>/<stem><ext of the image>``."""
    return f"{YOLO_DIR}/images/{sequence_dir(sequence)}/{stem}{image_suffix(file_name)}"


def min_index(arr1: np.ndarray, arr2: np.ndarray) -> tuple[int, int]:
    """Indices ``(i, j)`` of the closest pair ``arr1[i]``, ``arr2[j]`` (first in row-major order)."""
    dis = ((arr1[:, None, :] - arr2[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(dis, axis=None), dis.shape)
    return int(i), int(j)


def merge_multi_segment(segments: list[np.ndarray]) -> list[np.ndarray]:
    """Join polygons into one outline with zero-width bridges at their closest points.

    Ultralytics' ``ultralytics.data.converter.merge_multi_segment``, step for
    step: the same input gives the same points. ``segments`` are ``(K, 2)``
    point arrays; the result's pieces, concatenated, are the joined polygon.
    """
    s: list[np.ndarray] = []
    segs = [np.asarray(x).reshape(-1, 2) for x in segments]
    idx_list: list[list[int]] = [[] for _ in range(len(segs))]
    for i in range(1, len(segs)):
        idx1, idx2 = min_index(segs[i - 1], segs[i])
        idx_list[i - 1].append(idx1)
        idx_list[i].append(idx2)
    for k in range(2):
        if k == 0:
            for i, idx in enumerate(idx_list):
                if len(idx) == 2 and idx[0] > idx[1]:
                    idx = [len(segs[i]) - 1 - x for x in idx]
                    segs[i] = segs[i][::-1, :]
                segs[i] = np.roll(segs[i], -idx[0], axis=0)
                segs[i] = np.concatenate([segs[i], segs[i][:1]])
                if i in {0, len(idx_list) - 1}:
                    s.append(segs[i])
                else:
                    idx = [0, idx[1] - idx[0]]
                    s.append(segs[i][idx[0] : idx[1] + 1])
        else:
            for i in range(len(idx_list) - 1, -1, -1):
                if i not in {0, len(idx_list) - 1}:
                    idx = idx_list[i]
                    nidx = abs(idx[1] - idx[0])
                    s.append(segs[i][nidx:])
    return s


def mask_polygon(block: np.ndarray, top: int, left: int) -> np.ndarray | None:
    """The YOLO-seg outline of a mask given as its tight block at ``(top, left)``.

    Returns:
        ``(K, 2)`` float64 frame pixel ``(x, y)`` points, or ``None`` for an empty mask.
    """
    if block.size == 0 or not block.any():
        return None
    contours = cv2.findContours(
        np.ascontiguousarray(block, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )[0]
    polys = [c.reshape(-1, 2) + (left, top) for c in contours if len(c) >= 3]
    if not polys:
        bh, bw = block.shape
        x1, y1, x2, y2 = left, top, left + bw, top + bh
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    if len(polys) > 1:
        return np.concatenate(merge_multi_segment(polys), axis=0).astype(np.float64)
    return polys[0].astype(np.float64)


def part_label_text(part: dict[str, Any], class_index: dict[str, int]) -> str:
    """A frame's YOLO-seg label file from its COCO part: one ``cls x1 y1 ...`` line per object."""
    h, w = part_hw(part)
    scale = np.array([w, h], dtype=np.float64)
    rows: dict[str, None] = {}
    for ann in part["annotations"]:
        block = decode(ann["segmentation"], (h, w))
        if block.height == 0:
            continue  # an empty mask: no line, as ultralytics' converter
        poly = mask_polygon(block.pixels(), block.top, block.left)
        if poly is None:  # pragma: no cover - the block has a pixel
            continue
        if ann["category"] not in class_index:
            raise Box2MaskError(
                f"category {ann['category']!r} of a part is not in the category table"
            )
        vals = (class_index[ann["category"]], *(poly / scale).reshape(-1).tolist())
        rows.setdefault(("%g " * len(vals)).rstrip() % vals)  # duplicates once, as ultralytics
    return "".join(r + "\n" for r in rows)


def class_indices(categories: list[dict[str, Any]]) -> dict[str, int]:
    """``{category name: class index}``: the category id minus one."""
    return {str(c["name"]): int(c["id"]) - 1 for c in categories}


def data_yaml(categories: list[dict[str, Any]], splits: dict[str, list[str]] | None = None) -> str:
    """``data.yaml`` text: ``train``/``val`` the linked images, ``names`` by class index.

    Args:
        categories: the job's category table.
        splits: ``{split: [sequence, ...]}`` (``--split``): each split lists its sequences'
            image folders; without it ``train`` and ``val`` are both ``images``.
    """
    lines = [
        "# written by box2mask (--format yolo): images/ links to the dataset's frames,",
        "# labels/ holds one polygon per object; no 'path', so ultralytics uses this folder",
    ]
    if splits is None:
        lines += ["train: images", "val: images"]
    else:
        lines.append("# --split: each split's sequences (docs/formats.md, 'Splits')")
        for name, seqs in splits.items():
            folders = [json.dumps(f"images/{sequence_dir(q)}") for q in seqs]
            lines.append(f"{name}: [{', '.join(folders)}]")
    lines.append("names:")
    for name, idx in sorted(class_indices(categories).items(), key=lambda kv: kv[1]):
        lines.append(f"  {idx}: {json.dumps(name)}")
    return "\n".join(lines) + "\n"


def write_yolo(
    parts: Iterable[dict[str, Any]],
    categories: list[dict[str, Any]],
    root: Path,
    dest: Path,
    split: Split | None = None,
) -> int:
    """Write ``dest/yolo``: each frame's label file and image link, then ``data.yaml``
    (with ``split``, the sequences of each split listed apart).

    Idempotent: files are rewritten atomically with the same bytes, and a link
    already pointing at its image is left alone. Returns the frames written.
    """
    classes = class_indices(categories)
    n = 0
    splits: dict[str, list[str]] | None = None
    if split is not None:
        splits = {name: [] for name in split.names}
    seen: set[str] = set()
    for part in parts:
        img = part["image"]
        seq, stem = str(img["sequence"]), part_stem(part)
        if split is not None and splits is not None and seq not in seen:
            seen.add(seq)
            splits[split.of_sequence(seq)].append(seq)
        text = part_label_text(part, classes)
        atomic_write_bytes(Path(dest) / label_path(seq, stem), text.encode("ascii"))
        link(Path(root) / str(img["file_name"]), Path(dest) / image_link_path(seq, stem, str(img["file_name"])))  # fmt: skip
        n += 1
    text = data_yaml(categories, splits)
    atomic_write_bytes(Path(dest) / YOLO_DIR / "data.yaml", text.encode("utf-8"))
    return n


@WRITERS.register("yolo")
class YoloWriter(AssembledWriter):
    """Ultralytics YOLO-seg: yolo/labels (a polygon per object), yolo/images links, data.yaml.

    ``<out>/yolo/``, assembled at the end from the parts.
    """

    output = YOLO_DIR
    split_units = ("sequence",)

    def assemble(self, assembly: Assembly, path: Path) -> None:
        write_yolo(
            assembly.parts(), assembly.categories, self.ctx.root, path.parent, self.ctx.split
        )
