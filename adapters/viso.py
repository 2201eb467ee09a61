"""VISO (small and dense moving objects in satellite videos, TGRS 2022).

Layout (FORMATS.md)::

    VISO/
      mot/<cat>/<NNN>/img/000001.jpg ...      <cat> car|plane|ship|train
                     /gt/gt.txt               frame,id,x,y,w,h,... (1-based frames)
      sot/<cat>/<NNN>/img/*.jpg
                     /gt/<track>_<start>_<end>.txt   one x,y,w,h line per frame

Sequences are named ``<cat>/<NNN>`` (``car/001``); the category comes from the
folder (``plane`` → ``airplane``). Boxes arrive as top-left ``x,y,w,h`` (or, in
some plane/ship/train MOT files, as corners ``x1,y1,x2,y2``, detected per file)
and leave as ``xyxy`` float frame pixels.

box2mask's own extension: when ``<root>/masks/<cat>/<NNN>/<frame>.png`` exists
(a 16-bit map whose pixel value is the track id, 0 = background, as the bundled
``examples/viso-mini`` clip has), frames carry a ground-truth mask provider.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from box2mask.adapters._files import (
    count_frame_images,
    folder_listing,
    natural_key,
    shared_category,
    subfolders,
    with_shared,
)
from box2mask.adapters._mot_rows import VISO, absent_rows_note, read_mot_rows
from box2mask.adapters.base import (
    ADAPTERS,
    Adapter,
    Option,
    SequenceInfo,
    read_text_lines,
    read_values,
)

from box2mask.errors import AnnotationError, DatasetNotFound
from box2mask.masks import MaskBlock
from box2mask.types import Frame

log = logging.getLogger("box2mask")

_SOT_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)\.txt$")


def instance_map_provider(path: Path, track_ids: np.ndarray) -> Callable[[int], np.ndarray | None]:
    """A ground-truth mask provider for a 16-bit instance map (pixel = track id).

    The PNG is decoded on the first call and kept while the frame lives.
    ``provider(i)`` is ``(H, W)`` bool, True where the map equals
    ``track_ids[i]``. ``provider.block(i)`` is the same mask as a
    :class:`~box2mask.masks.MaskBlock` in frame pixels, at the cost of the object:
    every id's box is found in one pass over the map's set pixels (``eval`` scores
    a frame's objects without a frame-sized array each).
    """
    cache: dict[str, Any] = {}

    def load() -> np.ndarray:
        if "map" not in cache:
            import cv2

            from box2mask.io import imread  # cv2.imread crashes on names that are not UTF-8

            arr = imread(path, cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise AnnotationError("cannot read ground-truth instance map", path)
            if arr.ndim == 3:  # a colour PNG: take its first channel
                arr = arr[..., 0]
            cache["map"] = arr
        return cache["map"]

    def provider(i: int) -> np.ndarray | None:
        return load() == int(track_ids[i])

    def boxes() -> dict[int, tuple[int, int, int, int]]:
        """``{id: (r0, r1, c0, c1)}`` of every id in the map (exclusive ends)."""
        if "boxes" not in cache:
            arr = load()
            flat = np.flatnonzero(arr)
            vals = arr.reshape(-1)[flat]
            order = np.argsort(vals, kind="stable")
            flat, vals = flat[order], vals[order]
            starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]]) if vals.size else flat
            rows, cols = np.divmod(flat, arr.shape[1])
            out: dict[int, tuple[int, int, int, int]] = {}
            if vals.size:
                r0 = np.minimum.reduceat(rows, starts)
                r1 = np.maximum.reduceat(rows, starts) + 1
                c0 = np.minimum.reduceat(cols, starts)
                c1 = np.maximum.reduceat(cols, starts) + 1
                for k, v in enumerate(vals[starts].tolist()):
                    out[int(v)] = (int(r0[k]), int(r1[k]), int(c0[k]), int(c1[k]))
            cache["boxes"] = out
        return cache["boxes"]

    def block(i: int) -> MaskBlock:
        tid = int(track_ids[i])
        box = boxes().get(tid) if tid else None
        if tid == 0:  # the background's "mask" (a track id 0): every unset pixel
            return MaskBlock.from_mask(load() == 0)
        if box is None:
            return MaskBlock.empty()
        r0, r1, c0, c1 = box
        return MaskBlock(r0, c0, r1 - r0, c1 - c0, load()[r0:r1, c0:c1] == tid)

    provider.block = block  # type: ignore[attr-defined]
    return provider


@dataclass
class _Box:
    track_id: int
    xyxy: tuple[float, float, float, float]
    line: int


def _pair_key(frame: np.ndarray, tid: np.ndarray) -> np.ndarray:
    """``(N,)`` int64, equal for two rows exactly when their (frame, track id) pairs are.

    The pair packed into one number when the ranges allow (``frame * span + id``,
    offsets removed); ids run to 2**53 (see ``_mot_rows.MAX_ID``), and for ranges
    too wide to pack, the number of the pair among the distinct pairs.
    """
    if len(frame) == 0:
        return np.zeros(0, np.int64)
    f0, t0 = int(frame.min()), int(tid.min())
    span = int(tid.max()) - t0 + 1
    if (int(frame.max()) - f0 + 1) * span < 2**62:
        return (frame - f0) * span + (tid - t0)
    pairs = np.stack([frame, tid], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


@ADAPTERS.register("viso")
class Viso(Adapter):
    """VISO: MOT part (default) or SOT part, with option ``part``."""

    layout = (
        "mot/<cat>/<NNN>/img/000001.jpg + mot/<cat>/<NNN>/gt/gt.txt (frame,id,x,y,w,h,...); "
        "sot/<cat>/<NNN>/img/*.jpg + sot/<cat>/<NNN>/gt/<track>_<start>_<end>.txt (x,y,w,h per frame)"
    )
    options = {
        "part": Option("mot", "which part of VISO to read", choices=("mot", "sot")),
    }

    #: A plane/ship/train MOT file is read as corners x1,y1,x2,y2 when at least
    #: this share of its rows overflow the image as x,y,w,h (and fewer rows are
    #: invalid as corners).
    CORNER_OVERFLOW_SHARE = 0.05

    # -- layout ---------------------------------------------------------------
    @property
    def part_dir(self) -> Path:
        return self.root / str(self.opts["part"])

    def check_root(self) -> None:
        part = self.opts["part"]
        if not self.part_dir.is_dir():
            raise DatasetNotFound(
                f"viso root {self.root} has no {part}/ folder (expected {part}/<cat>/<NNN>/img/...; "
                f"found: {folder_listing(self.root)}). Point --root at the folder that holds mot/ and sot/."
            )

    def _sequence_dirs(self) -> list[tuple[str, Path]]:
        return [
            (f"{cat.name}/{seq.name}", Path(seq.path))
            for cat in subfolders(self.part_dir, hidden=False)
            for seq in subfolders(cat.path)
            if (Path(seq.path) / "img").is_dir()
        ]

    def _gt_files(self, seq_dir: Path) -> list[Path]:
        gt_dir = seq_dir / "gt"
        if self.opts["part"] == "mot":
            gt = gt_dir / "gt.txt"
            return [gt] if gt.is_file() else []
        if not gt_dir.is_dir():
            return []
        return sorted(
            (p for p in gt_dir.iterdir() if p.suffix == ".txt"), key=lambda p: natural_key(p.name)
        )

    def list_sequences(self) -> list[SequenceInfo]:
        """Sequences with annotations, with their image counts.

        A sequence without any gt file is reported (once) and left out: there
        is nothing to convert, and listing its frames as empty would claim they
        hold no objects.
        """
        out: list[SequenceInfo] = []
        for name, seq_dir in self._sequence_dirs():
            if not self._gt_files(seq_dir):
                want = "gt/gt.txt" if self.opts["part"] == "mot" else "gt/<track>_<start>_<end>.txt"
                self.report_once(("nogt", name), f"sequence {name} has no {want}; skipped", seq_dir)
                continue
            out.append(SequenceInfo(name, count_frame_images(seq_dir / "img")))
        return out

    def categories(self) -> list[tuple[str, str]]:
        folders = subfolders(self.part_dir, hidden=False, key=str)
        return with_shared(shared_category(e.name) for e in folders)

    # -- reading ----------------------------------------------------------------
    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Frames of ``<cat>/<NNN>``, one per image, in frame order.

        Every image yields a :class:`Frame`; a frame without boxes has zero
        objects. Raises :class:`DatasetNotFound` for an unknown sequence.
        """
        seq_dir = self.part_dir / sequence
        img_dir = seq_dir / "img"
        if not img_dir.is_dir() or len(Path(sequence).parts) != 2:
            raise DatasetNotFound(f"viso has no sequence {sequence!r} (no folder {img_dir})")
        cat_folder = Path(sequence).parts[0]
        category = shared_category(cat_folder)
        gt_files = self._gt_files(seq_dir)
        if not gt_files:
            self.report_once(
                ("nogt", sequence), f"sequence {sequence} has no annotations; skipped", seq_dir
            )
            return
        found = self.frame_images(img_dir)
        if found is None:
            return
        images, hw = found
        frame_numbers = {n for n, _ in images}
        if self.opts["part"] == "mot":
            mot = self._read_mot(gt_files[0], cat_folder, hw, frame_numbers)
            if mot is None:  # nothing readable in gt.txt: reported, nothing to convert
                return
            by_frame = mot
        else:
            by_frame = self._read_sot(gt_files, frame_numbers)

        empty = (np.zeros((0, 4)), np.zeros(0, np.int64))
        mask_dir = self.root / "masks" / sequence
        has_masks = mask_dir.is_dir()
        for number, fname in images:
            xyxy, tids = by_frame.get(number, empty)
            path = img_dir / fname
            provider = None
            if has_masks:
                mpath = mask_dir / (Path(fname).stem + ".png")
                if mpath.is_file():
                    provider = instance_map_provider(mpath, tids)
            yield self.frame(
                sequence,
                number,
                path,
                hw,
                xyxy=xyxy,
                track_id=tids,
                category=[category] * len(tids),
                gt_mask=provider,
            )

    def _read_mot(
        self, gt: Path, cat_folder: str, hw: tuple[int, int], frame_numbers: set[int]
    ) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
        """Parse a MOT ``gt.txt`` into ``{frame: (xyxy (N, 4) float64, track ids (N,) int64)}``.

        Objects keep their file order within a frame. Bad rows are reported
        with their line and skipped (see module docstring); absent rows
        (``w <= 0``, ``h <= 0``, NaN) are counted as skipped inputs of kind
        ``absent`` with their lines. ``None`` (reported) when the file has no
        readable row at all: empty, or not one line parses.
        """
        rows = read_mot_rows(gt, self.report, VISO)
        values, linenos, delim = rows.values, rows.line, rows.delimiter
        if len(values) == 0:
            empty = not any(line.strip() for line in rows.lines)
            what = "is empty" if empty else "has no readable row"
            self.report(f"gt.txt {what}; sequence skipped (no boxes to convert)", gt)
            return None
        frame, tid = values[:, 0].astype(np.int64), values[:, 1].astype(np.int64)
        box = values[:, 2:6]
        # NaN anywhere in the box: an absent target
        finite = np.isfinite(box).all(axis=1)
        corners = cat_folder.lower() != "car" and self._looks_like_corners(
            box[finite], hw, gt, delim
        )
        xyxy = box.copy()
        if not corners:
            xyxy[:, 2:] += xyxy[:, :2]
        with np.errstate(invalid="ignore"):
            # w<=0 or h<=0 (x2<=x1, y2<=y1 as corners): an absent target (FORMATS.md)
            keep = finite & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        absent = np.flatnonzero(~keep)
        if len(absent) and self.first_time("absent", gt):
            self.note(
                absent_rows_note(linenos[absent].tolist(), all_rows=len(absent) == len(keep)),
                gt,
                int(linenos[absent[0]]),
                count=len(absent),
            )

        has_image = np.isin(frame, np.fromiter(frame_numbers, np.int64, len(frame_numbers)))
        missing = keep & ~has_image
        if missing.any():
            reported: set[int] = set()
            for i in np.flatnonzero(missing):
                f = int(frame[i])
                if f not in reported:
                    reported.add(f)
                    self.report(
                        f"annotations for frame {f}, which has no image in img/",
                        gt,
                        int(linenos[i]),
                    )
            keep &= has_image

        idx = np.flatnonzero(keep)
        # duplicate (frame, id) pairs: keep the first, report the others
        key = _pair_key(frame[idx], tid[idx])
        _, first = np.unique(key, return_index=True)
        if len(first) < len(idx):
            first_line: dict[int, int] = {}
            dup = np.ones(len(idx), bool)
            dup[first] = False
            for j, i in enumerate(idx):
                k = int(key[j])
                if not dup[j]:
                    first_line.setdefault(k, int(linenos[i]))
            for j in np.flatnonzero(dup):
                i = idx[j]
                self.report(
                    f"duplicate track id {int(tid[i])} in frame {int(frame[i])} "
                    f"(first on line {first_line[int(key[j])]}); kept the first",
                    gt,
                    int(linenos[i]),
                )
            idx = np.sort(idx[first])

        if len(idx) == 0:
            return {}
        order = idx[np.argsort(frame[idx], kind="stable")]
        frames_sorted = frame[order]
        starts = np.flatnonzero(np.r_[True, frames_sorted[1:] != frames_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        return {
            int(frames_sorted[s]): (xyxy[order[s:e]], tid[order[s:e]])
            for s, e in zip(starts, ends, strict=True)
        }

    def _looks_like_corners(
        self, box: np.ndarray, hw: tuple[int, int], gt: Path, delim: str
    ) -> bool:
        """Decide whether a file's ``(M, 4)`` box values are corners ``x1,y1,x2,y2``, not ``x,y,w,h``.

        Read as ``x,y,w,h``, a corner file puts ``x + w`` (about ``2·x``) past
        the image edge for every object in the right or bottom half; read as
        corners, an ``x,y,w,h`` file has ``x2 < x1`` for every small object.
        Corners win when at least :attr:`CORNER_OVERFLOW_SHARE` of the rows
        overflow as ``x,y,w,h`` and fewer rows are invalid as corners. One
        pixel of slack allows boxes that touch the border.
        """
        h_img, w_img = hw
        n = len(box)
        if n == 0:
            return False
        a, b, c, d = box.T
        over_xywh = int(((c > 0) & (d > 0) & ((a + c > w_img + 1) | (b + d > h_img + 1))).sum())
        bad_corner = int(((c <= a) | (d <= b) | (c > w_img + 1) | (d > h_img + 1)).sum())
        corners = over_xywh >= max(1, self.CORNER_OVERFLOW_SHARE * n) and bad_corner < over_xywh
        reading = "corners x1,y1,x2,y2" if corners else "x,y,w,h"
        log.info(
            "viso: %s (%s-separated): reading boxes as %s (%d of %d rows overflow the %dx%d image "
            "as x,y,w,h; %d are invalid as corners)",
            gt, delim, reading, over_xywh, n, w_img, h_img, bad_corner,
        )  # fmt: skip
        return corners

    def _read_sot(
        self, gt_files: list[Path], frame_numbers: set[int]
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Parse the ``<track>_<start>_<end>.txt`` files of one SOT sequence."""
        by_frame: dict[int, list[_Box]] = {}
        for gt in gt_files:
            m = _SOT_NAME.match(gt.name)
            if m is None:
                self.report_once(
                    ("sotname", gt),
                    "SOT gt file name is not <track>_<start>_<end>.txt; file skipped",
                    gt,
                )
                continue
            tid, start, end = (int(g) for g in m.groups())
            expected = end - start + 1
            k = 0  # non-blank lines read: line k <-> frame start + k - 1
            last_line = 0
            for lineno, line in enumerate(read_text_lines(gt), 1):
                if not line.strip():
                    continue
                k += 1
                if k > expected:
                    self.report(
                        f"file has more lines than its name says (frames {start}..{end}, "
                        f"{expected} lines); the rest is ignored",
                        gt,
                        lineno,
                    )
                    break
                last_line = k
                frame = start + k - 1
                box = self._sot_box(line, gt, lineno)
                if box is None:
                    continue
                if frame not in frame_numbers:
                    self.report(
                        f"annotation for frame {frame}, which has no image in img/", gt, lineno
                    )
                    continue
                by_frame.setdefault(frame, []).append(_Box(tid, box, lineno))
            if last_line < expected:
                self.report(
                    f"file has {last_line} lines but its name says frames {start}..{end} "
                    f"({expected} lines); frames {start + last_line}..{end} have no box for track {tid}",
                    gt,
                )
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for frame, boxes in by_frame.items():
            boxes.sort(key=lambda b: b.track_id)
            out[frame] = (
                np.array([b.xyxy for b in boxes], dtype=np.float64).reshape(-1, 4),
                np.array([b.track_id for b in boxes], dtype=np.int64),
            )
        return out

    def _sot_box(
        self, line: str, gt: Path, lineno: int
    ) -> tuple[float, float, float, float] | None:
        """One SOT ``x,y,w,h`` line → ``xyxy``, or ``None`` (absent or reported)."""
        values = read_values(
            line,
            4,
            "x,y,w,h",
            gt,
            lineno,
            self.report,
            lead_warning="line starts with an empty field (known VISO corruption)",
            absent_first=False,
        )
        if values is None:
            return None
        x, y, w, h = values
        if w <= 0 or h <= 0:
            return None
        return (x, y, x + w, y + h)
