"""SAT-MTB (satellite video multi-task benchmark, TGRS 2023).

Layout (FORMATS.md)::

    SAT-MTB/
      data_split.xlsx                 train/test per task (sheets det_HBB, det_OBB, seg, mot)
      <class>/<NN>/img/000001.png     class: airplane | car | ship | train
                  /det/HBB/000001.xml /det/OBB/000001.xml
                  /mot/<NN>           (or mot/<NN>.txt; both accepted for every class)
                  /seg/000001.json

Boxes come from one source (option ``source``): ``mot`` (moving objects, track
ids, from the MOT text file), ``det`` (all objects, from the per-frame XML;
horizontal boxes from ``det/HBB``, oriented boxes from ``det/OBB`` matched by
``objectID``), or ``seg`` (boxes rebuilt from the polygons). Wherever a frame
has ``seg/<frame>.json``, its polygons are the ground-truth masks
(:attr:`Frame.gt_mask`), rasterised lazily by the pixel-centre rule of
:mod:`box2mask.adapters._polygons`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
from box2mask.adapters._files import FRAME_IMAGE, folder_listing, scan_frames
from box2mask.adapters._mot_rows import MotRows, mot_objects
from box2mask.adapters._objects import Obj, checked, first_size, frame_arrays
from box2mask.adapters._polygons import (
    greedy_match,
    polygon_parts,
    polygons_xyxy,
    rasterize_polygons,
)
from box2mask.adapters._xlsx import read_xlsx
from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.types import Frame, GtMaskProvider

CLASSES = ("airplane", "car", "ship", "train")

#: MOT ``cls`` column → category.
MOT_CLASSES = {0: "car", 1: "airplane", 2: "ship", 3: "train"}

#: Fine classes (XML ``<subname>``, seg ``categories[].name``) → coarse category.
FINE_TO_COARSE = {
    "wide_bodied_aircraft": "airplane",
    "narrow_bodied_aircraft": "airplane",
    "rear_engine_aircraft": "airplane",
    "four_engine_aircraft": "airplane",
    "corporate_aircraft": "airplane",
    "speed_boat": "ship",
    "yacht": "ship",
    "cruise": "ship",
    "freighter": "ship",
    "naval_vessels": "ship",
    "other_ship": "ship",
    "train": "train",
    "car": "car",
}

#: Other spellings of the coarse classes.
_ALIASES = {
    "plane": "airplane",
    "aircraft": "airplane",
    "aeroplane": "airplane",
    "airplanes": "airplane",
}

_XML = re.compile(r"(\d+)\.xml", re.IGNORECASE)
_JSON = re.compile(r"(\d+)\.json", re.IGNORECASE)
#: Seg-JSON annotation keys that may carry the object's track id.
_TRACK_KEYS = ("track_id", "objectID", "object_id", "trackID")
_SEQ_CELL = re.compile(r"(airplane|plane|car|ship|train)s?[\s/_\-]*0*(\d+)", re.IGNORECASE)
_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "trainset": "train",
    "train set": "train",
    "test": "test",
    "testing": "test",
    "testset": "test",
    "test set": "test",
}
_SHEETS = {"mot": ("mot",), "det": ("det_hbb", "det_obb", "det"), "seg": ("seg",)}


def coarse_of(name: str) -> str | None:
    """The coarse category of a coarse or fine SAT-MTB class name, ``None`` if unknown.

    >>> coarse_of("narrow_bodied_aircraft"), coarse_of("Ship"), coarse_of("plane")
    ('airplane', 'ship', 'airplane')
    """
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key in CLASSES:
        return key
    return _ALIASES.get(key) or FINE_TO_COARSE.get(key)


def _seq_id(cls: str, num: str | int) -> str:
    return f"{coarse_of(cls)}/{int(num):02d}"


def parse_split(rows: list[list[str]]) -> dict[str, set[str]]:
    """Read one split sheet into ``{"train": {"airplane/01", ...}, "test": {...}}``.

    The sheet's layout is not published; three are understood:

    - split columns: a cell ``train`` or ``test`` (also ``training``,
      ``testing``, ``train set``), with sequence cells below it in the same
      column (``airplane/01``, ``airplane_01``, ``airplane-1``, ``airplane 01``,
      ``airplane01``);
    - one sequence per row with its split in another cell of the row: the
      sequence as one cell as above, or as a class cell followed by a number
      cell (``ship | 3 | test``);
    - blocks: a row holding only ``train`` (or ``test``) names the split of the
      sequence rows below it, up to the next such row.

    Raises:
        ValueError: no sequence with a split could be found.
    """
    out: dict[str, set[str]] = {"train": set(), "test": set()}
    # split columns
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            split = _SPLIT_WORDS.get(cell.lower())
            if split is None:
                continue
            below = []
            for rr in rows[r + 1 :]:
                v = rr[c] if c < len(rr) else ""
                if v.lower() in _SPLIT_WORDS:
                    break  # the next split's header in the same column
                below.append(v)
            seqs = [m for m in (_SEQ_CELL.fullmatch(v) for v in below) if m]
            if seqs:
                out[split].update(_seq_id(m.group(1), m.group(2)) for m in seqs)
    if out["train"] or out["test"]:
        return out
    # rows and blocks
    current: str | None = None
    for row in rows:
        cells = [v for v in row if v]
        if len(cells) == 1 and cells[0].lower() in _SPLIT_WORDS:
            current = _SPLIT_WORDS[cells[0].lower()]
            continue
        seq, used = None, set()
        for i, v in enumerate(cells):
            m = _SEQ_CELL.fullmatch(v)
            if m:
                seq, used = _seq_id(m.group(1), m.group(2)), {i}
                break
        if seq is None:
            for i in range(len(cells) - 1):
                if coarse_of(cells[i]) in CLASSES and cells[i + 1].isdigit():
                    seq, used = _seq_id(cells[i], cells[i + 1]), {i, i + 1}
                    break
        if seq is None:
            continue
        splits = [
            _SPLIT_WORDS[v.lower()]
            for i, v in enumerate(cells)
            if i not in used and v.lower() in _SPLIT_WORDS
        ]
        split = splits[-1] if splits else current
        if split is not None:
            out[split].add(seq)
    if not (out["train"] or out["test"]):
        raise ValueError(
            "found no sequence with a train/test split; expected a 'train'/'test' header cell with "
            "sequence cells such as 'airplane/01' below it, or rows holding a sequence and its split"
        )
    return out


class _Parsed:
    """Objects of one frame from one per-frame file, or ``None`` objects if the file is bad."""

    __slots__ = ("objs", "parts")

    def __init__(self, objs: list[Obj], parts: list[list[np.ndarray]] | None = None) -> None:
        self.objs = objs
        self.parts = parts


@ADAPTERS.register("satmtb")
class SatMTB(Adapter):
    """SAT-MTB reader; sequences are named ``<class>/<NN>`` (``airplane/01``)."""

    layout = (
        "SAT-MTB/<class>/<NN>/img/000001.png, det/HBB|OBB/000001.xml, mot/<NN>[.txt], "
        "seg/000001.json; data_split.xlsx (class: airplane|car|ship|train)"
    )
    options = {
        "source": Option(
            "mot",
            "box source: mot (moving objects, MOT file), det (all objects, XML), seg (boxes from the masks)",
            ("mot", "det", "seg"),
        ),
        "split": Option(
            "all", "sequences: all, or train/test from data_split.xlsx", ("all", "train", "test")
        ),
    }

    # -- layout ---------------------------------------------------------------
    def check_root(self) -> None:
        base = self.root
        if not any((base / c).is_dir() for c in CLASSES) and (base / "SAT-MTB").is_dir():
            base = base / "SAT-MTB"
        self.base = base
        if not any(self._sequence_dirs()):
            raise DatasetNotFound(
                f"satmtb: no sequence folders <class>/<NN>/img under {base} "
                f"(class one of {', '.join(CLASSES)}); found: {folder_listing(base)}"
            )
        self._split: set[str] | None = None
        if self.opts["split"] != "all":
            self._split = self._read_split(self.opts["split"])

    def _read_split(self, split: str) -> set[str]:
        path = self.base / "data_split.xlsx"
        if not path.is_file():
            raise DatasetNotFound(
                f"satmtb: split={split} needs {path}, which does not exist; use split=all or add the file"
            )
        try:
            sheets = read_xlsx(path)
        except ValueError as exc:
            raise AnnotationError(str(exc), path) from exc
        norm = {re.sub(r"[^a-z]", "_", k.lower()): k for k in sheets}
        for want in _SHEETS[self.opts["source"]]:
            if want in norm:
                sheet = norm[want]
                break
        else:
            raise AnnotationError(
                f"no sheet for source {self.opts['source']} (looked for {', '.join(_SHEETS[self.opts['source']])}); "
                f"sheets: {', '.join(sheets)}",
                path,
            )
        try:
            return parse_split(sheets[sheet])[split]
        except ValueError as exc:
            raise AnnotationError(f"sheet {sheet!r}: {exc}", path) from exc

    def _sequence_dirs(self) -> Iterator[tuple[str, Path]]:
        for cls in CLASSES:
            folder = self.base / cls
            if not folder.is_dir():
                continue
            for d in sorted(folder.iterdir()):
                if d.is_dir() and (d / "img").is_dir():
                    yield f"{cls}/{d.name}", d

    def _mot_file(self, seq_dir: Path) -> Path | None:
        for name in (seq_dir.name, seq_dir.name + ".txt"):
            p = seq_dir / "mot" / name
            if p.is_file():
                return p
        return None

    def _has_source(self, seq_dir: Path) -> bool:
        src = self.opts["source"]
        if src == "mot":
            return self._mot_file(seq_dir) is not None
        if src == "det":
            return (seq_dir / "det" / "HBB").is_dir() or (seq_dir / "det" / "OBB").is_dir()
        return (seq_dir / "seg").is_dir()

    def list_sequences(self) -> list[SequenceInfo]:
        """Sequences that have the chosen source's annotations (cars have no det/seg) and are in the split."""
        out = []
        for name, d in self._sequence_dirs():
            if self._split is not None and name not in self._split:
                continue
            if self._has_source(d):
                out.append(SequenceInfo(name, len(scan_frames(d / "img", FRAME_IMAGE))))
        return out

    # -- reading --------------------------------------------------------------
    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Frames of ``sequence`` (``airplane/01``) in frame order.

        Every image frame is yielded (with no objects where none is annotated),
        except frames whose per-frame annotation file is malformed and
        unreadable images found while reading the size.
        """
        seq_dir = dict(self._sequence_dirs()).get(sequence)
        if seq_dir is None:
            raise UsageError(
                f"satmtb has no sequence {sequence!r}; sequences look like airplane/01"
            )
        cls = sequence.split("/")[0]
        images = scan_frames(seq_dir / "img", FRAME_IMAGE)
        hw = first_size(seq_dir / "img", images, self.report)
        if hw is None:
            return
        seg_files = scan_frames(seq_dir / "seg", _JSON)
        src = self.opts["source"]
        if src == "mot":
            mot = self._mot_file(seq_dir)
            per_frame = self._read_mot(mot, cls, images) if mot else {}
            ann_frames: dict[int, Any] = per_frame
        elif src == "det":
            ann_frames = {}
            for kind in ("OBB", "HBB"):
                files = scan_frames(seq_dir / "det" / kind, _XML)
                self._report_unmatched(seq_dir / "det" / kind, files, images)
                ann_frames.update(files)
        else:
            ann_frames = seg_files
            self._report_unmatched(seq_dir / "seg", ann_frames, images)

        for k, img_name in images.items():
            if img_name is None:  # unreadable, reported
                continue
            img = seq_dir / "img" / img_name
            seg_path = seq_dir / "seg" / seg_files[k] if k in seg_files else None
            parts: list[list[np.ndarray]] | None = None
            if src == "mot":
                objs = per_frame.get(k, [])
            elif src == "det":
                parsed = self._read_det(seq_dir, k, cls, hw) if k in ann_frames else _Parsed([])
                if parsed is None:
                    continue
                objs = parsed.objs
            else:
                if seg_path is None:
                    objs = []
                else:
                    parsed = self._read_seg(seg_path, cls, hw)
                    if parsed is None:
                        continue
                    objs, parts = parsed.objs, parsed.parts
            keep = checked(objs, hw, k, self.report)
            arrays = frame_arrays(keep)
            gt: GtMaskProvider | None = None
            if parts is not None:
                kept_parts = [parts[objs.index(o)] for o in keep]
                gt = _direct_provider(kept_parts, hw)
            elif seg_path is not None:
                gt = self._matched_provider(seg_path, cls, hw, arrays["xyxy"], arrays["track_id"])
            attrs = {}
            if src != "mot":
                attrs["fine_class"] = [o.extra.get("fine_class", o.category) for o in keep]
            yield self.frame(sequence, k, img, hw, gt_mask=gt, attributes=attrs, **arrays)

    def _report_unmatched(self, folder: Path, ann: dict[int, str], images: dict[int, Any]) -> None:
        for k in sorted(set(ann) - set(images)):
            self.report(f"frame {k}: no image for this annotation file; skipped", folder / ann[k])

    def _read_mot(self, path: Path, cls: str, images: dict[int, Any]) -> dict[int, list[Obj]]:
        def category(rows: MotRows, i: int) -> str:
            fields = rows.fields(i)
            if len(fields) >= 8:
                with contextlib.suppress(ValueError):  # a non-numeric cls keeps the folder's class
                    return MOT_CLASSES.get(int(float(fields[7])), cls)
            return cls

        return mot_objects(path, images, category, self.report, self.note)

    # -- det XML ----------------------------------------------------------------
    def _read_det(self, seq_dir: Path, k: int, cls: str, hw: tuple[int, int]) -> _Parsed | None:
        hbb = self._xml_objects(seq_dir / "det" / "HBB", k, cls)
        obb = self._xml_objects(seq_dir / "det" / "OBB", k, cls)
        if hbb is None or obb is None:
            return None  # reported
        if not hbb:
            objs = [o for o in obb if o.obb is not None or o.xyxy is not None]
        else:
            objs = hbb
            if obb:
                self._attach_obb(objs, obb)
        out = []
        for o in objs:
            if o.xyxy is None:
                o.xyxy = np.concatenate([o.obb.min(axis=0), o.obb.max(axis=0)])
            out.append(o)
        if out and any(o.obb is not None for o in out):
            for o in out:
                if o.obb is None:  # an object without an oriented box: its axis-aligned corners
                    x1, y1, x2, y2 = o.xyxy
                    o.obb = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
        return _Parsed(out)

    @staticmethod
    def _attach_obb(objs: list[Obj], obb: list[Obj]) -> None:
        by_id = {o.track_id: o for o in obb if o.obb is not None}
        if all(o.extra.get("has_id") for o in objs) and by_id:
            for o in objs:
                if o.track_id in by_id:
                    o.obb = by_id[o.track_id].obb
            return
        with_obb = [o for o in obb if o.obb is not None]
        hulls = np.array([np.concatenate([o.obb.min(0), o.obb.max(0)]) for o in with_obb]).reshape(
            -1, 4
        )
        for i, j in greedy_match(np.array([o.xyxy for o in objs]).reshape(-1, 4), hulls).items():
            objs[i].obb = with_obb[j].obb

    def _xml_objects(self, folder: Path, k: int, cls: str) -> list[Obj] | None:
        path = None
        for name in (f"{k:06d}.xml", f"{k}.xml"):
            if (folder / name).is_file():
                path = folder / name
                break
        if path is None:
            return []
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as exc:
            self.report(
                f"malformed XML ({exc}); frame {k} skipped",
                path,
                getattr(exc, "position", (None,))[0],
            )
            return None
        out: list[Obj] = []
        for n, obj in enumerate(root.iter("object"), start=1):
            try:
                out.append(self._xml_object(obj, n, path, cls))
            except ValueError as exc:
                self.report(f"object {n}: {exc}; skipped", path)
        return out

    @staticmethod
    def _xml_object(obj: ET.Element, n: int, path: Path, cls: str) -> Obj:
        name = (obj.findtext("name") or "").strip()
        sub = (obj.findtext("subname") or "").strip()
        coarse = coarse_of(name) or coarse_of(sub) or cls
        fine = sub or (name if name.lower() in FINE_TO_COARSE else coarse)
        oid = (obj.findtext("objectID") or obj.findtext("objectid") or "").strip()
        try:
            tid = int(float(oid)) if oid else n
        except ValueError:
            raise ValueError(f"objectID {oid!r} is not a number") from None
        xyxy = corners = None
        bnd = obj.find("bndbox")
        if bnd is not None:
            try:
                xyxy = np.array(
                    [float(bnd.findtext(t) or "") for t in ("xmin", "ymin", "xmax", "ymax")]
                )
            except ValueError:
                raise ValueError("bndbox needs numeric xmin, ymin, xmax, ymax") from None
            if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
                raise ValueError(f"bndbox has xmax < xmin or ymax < ymin: {xyxy.tolist()}")
        rob = obj.find("robndbox")
        if rob is not None:
            try:
                corners = np.array(
                    [
                        [float(rob.findtext(f"x{i}") or ""), float(rob.findtext(f"y{i}") or "")]
                        for i in range(4)
                    ]
                )
            except ValueError:
                raise ValueError("robndbox needs numeric x0, y0 ... x3, y3") from None
        if xyxy is None and corners is None:
            raise ValueError("has neither <bndbox> nor <robndbox>")
        o = Obj(
            xyxy,
            tid,
            coarse,
            path,
            None,
            obb=corners,
            extra={"fine_class": fine, "has_id": bool(oid)},
        )
        return o

    # -- seg JSON -----------------------------------------------------------------
    def _read_seg(self, path: Path, cls: str, hw: tuple[int, int]) -> _Parsed | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            anns = data["annotations"]
            cats = {c["id"]: c for c in data.get("categories", [])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.report(
                f"malformed segmentation JSON ({exc.__class__.__name__}: {exc}); frame skipped",
                path,
            )
            return None
        objs: list[Obj] = []
        parts_all: list[list[np.ndarray]] = []
        for n, ann in enumerate(anns, start=1):
            try:
                parts = polygon_parts(ann["segmentation"])
                if not parts:
                    raise ValueError("no polygon with 3 or more vertices")
                cat = cats.get(ann.get("category_id"), {})
                fine = str(cat.get("name", "")) or cls
                coarse = coarse_of(str(cat.get("supercategory", ""))) or coarse_of(fine) or cls
                key = next((k for k in _TRACK_KEYS if k in ann), None)
                tid = int(ann[key]) if key else int(ann.get("id", n))
            except (KeyError, TypeError, ValueError) as exc:
                self.report(f"annotation {n}: {exc.__class__.__name__}: {exc}; skipped", path)
                continue
            box = polygons_xyxy(parts)
            objs.append(
                Obj(
                    box,
                    tid,
                    coarse,
                    path,
                    None,
                    extra={"fine_class": fine, "has_id": key is not None},
                )
            )
            parts_all.append(parts)
        return _Parsed(objs, parts_all)

    def _matched_provider(
        self, seg_path: Path, cls: str, hw: tuple[int, int], xyxy: np.ndarray, track_id: np.ndarray
    ) -> GtMaskProvider:
        """Masks of the seg JSON matched to this frame's boxes (lazily, on the first call).

        By track id when every seg annotation carries one, else greedily by box
        IoU ≥ 0.5 (best pair first); an unmatched box has no mask (``None``).
        """
        cache: dict[str, Any] = {}

        def load() -> dict[int, list[np.ndarray]]:
            if "map" not in cache:
                parsed = self._read_seg(seg_path, cls, hw)
                mapping: dict[int, list[np.ndarray]] = {}
                if parsed is not None and parsed.objs:
                    if all(o.extra["has_id"] for o in parsed.objs):
                        by_id = {
                            o.track_id: p for o, p in zip(parsed.objs, parsed.parts, strict=True)
                        }
                        mapping = {
                            i: by_id[int(t)] for i, t in enumerate(track_id) if int(t) in by_id
                        }
                    else:
                        boxes = np.array([o.xyxy for o in parsed.objs])
                        mapping = {i: parsed.parts[j] for i, j in greedy_match(xyxy, boxes).items()}
                cache["map"] = mapping
            return cache["map"]

        def provider(i: int) -> np.ndarray | None:
            parts = load().get(i)
            return None if parts is None else rasterize_polygons(parts, hw)

        return provider


def _direct_provider(parts: list[list[np.ndarray]], hw: tuple[int, int]) -> GtMaskProvider:
    def provider(i: int) -> np.ndarray | None:
        return rasterize_polygons(parts[i], hw)

    return provider
