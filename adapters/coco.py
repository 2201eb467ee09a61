"""COCO JSON with boxes, and masks as ground truth where present.

Layout::

    <root>/annotations.json        (option annotations; default: annotations.json or the only *.json)
    <root>/<images>/<file_name>    (option images; default: the root, or <root>/images when
                                    the files are there)

Each COCO image is a frame. Its sequence is the image's ``sequence`` field,
else the first folder of its ``file_name``, else one sequence named after the
JSON file; its frame index is the image's ``frame_index``, else its id. Each
annotation is an object: ``bbox`` ``[x, y, w, h]`` becomes ``xyxy``; the track
id is ``track_id``, else the annotation id; ``segmentation`` (polygons,
uncompressed or compressed RLE) is the object's ground-truth mask, decoded on
demand by box2mask's mask codec (:func:`box2mask.masks.decode`: pycocotools'
rasterisation of polygons, its pixels for RLE). ``iscrowd = 1`` annotations are skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from box2mask.adapters._files import error_reason, image_hw
from box2mask.adapters._objects import Obj, checked, fmt_box, frame_arrays
from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.ids import whole_id
from box2mask.masks import MaskBlock, decode
from box2mask.types import Frame, GtMaskProvider

log = logging.getLogger("box2mask")

#: Category names mapped onto the shared ones; every other name is kept as it is.
CATEGORY_ALIASES = {"plane": "airplane", "aeroplane": "airplane", "aircraft": "airplane"}


def image_key(value: Any) -> int | str | None:
    """An image id usable as a key: an integer (a float with no fraction counts) or a
    string; ``None`` for anything else (a list, an object, a bool, null, 1.5)."""
    if isinstance(value, str):
        return value
    return whole_id(value)


def category_name(name: str) -> str:
    """The shared name for an obvious synonym (``plane`` → ``airplane``), else ``name`` unchanged."""
    return CATEGORY_ALIASES.get(name.strip().lower(), name)


def decode_segmentation(seg: Any, image_hw: tuple[int, int]) -> np.ndarray:
    """A COCO ``segmentation`` as an ``(H, W)`` bool mask (:func:`decode_segmentation_block`)."""
    return decode_segmentation_block(seg, image_hw).to_array(tuple(image_hw))


def decode_segmentation_block(seg: Any, image_hw: tuple[int, int]) -> MaskBlock:
    """A COCO ``segmentation`` as a block in frame pixels, clipped to the image, at the cost
    of the object (:func:`box2mask.masks.decode`).

    Args:
        seg: polygons (list of flat ``[x0, y0, ...]`` lists), uncompressed RLE
            (``counts`` a list of ints) or compressed RLE (``counts`` a string).
        image_hw: ``(H, W)`` of the image.

    Raises:
        ValueError: the value is none of these, or an RLE's size is not ``image_hw``.
    """
    h, w = image_hw
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
        if not polys or not all(isinstance(v, int | float) for p in polys for v in p):
            raise ValueError("polygon segmentation needs lists of at least 3 x, y pairs")
        block = decode(polys, (h, w))
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if [int(v) for v in seg["size"]] != [h, w]:
            raise ValueError(f"RLE size {list(seg['size'])} is not the image's {[h, w]}")
        block = decode(seg)
    else:
        raise ValueError("segmentation is neither polygons nor RLE")
    return block.clip(0, 0, h, w)


@ADAPTERS.register("coco")
class COCO(Adapter):
    """COCO JSON reader; see the module docstring for sequences and frame indices."""

    layout = "<root>/annotations.json (or the only *.json) + images under <root> or <root>/images"
    options = {
        "annotations": Option(
            "", "the COCO JSON, relative to the root; default annotations.json or the only *.json"
        ),
        "images": Option(
            "",
            "image folder relative to the root; default the root, or images/ when the files are there",
        ),
    }

    def check_root(self) -> None:
        self.json_path = self._find_json()
        try:
            data = json.loads(self.json_path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise AnnotationError(f"cannot read COCO JSON: {exc}", self.json_path) from exc
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise AnnotationError("not a COCO JSON: no 'images' list", self.json_path)
        self._index(data)

    def _find_json(self) -> Path:
        opt = str(self.opts["annotations"])
        if opt:
            p = Path(opt) if Path(opt).is_absolute() else self.root / opt
            if not p.is_file():
                raise DatasetNotFound(f"coco: annotation file {p} does not exist")
            return p
        if (self.root / "annotations.json").is_file():
            return self.root / "annotations.json"
        found = sorted(self.root.glob("*.json"))
        if len(found) == 1:
            return found[0]
        if not found:
            raise DatasetNotFound(f"coco: no *.json in {self.root}; pass the annotations option")
        raise UsageError(
            f"coco: {len(found)} JSON files in {self.root} ({', '.join(p.name for p in found[:5])}); "
            "choose one with the annotations option"
        )

    def _index(self, data: dict[str, Any]) -> None:
        path = self.json_path
        self._cats: dict[Any, tuple[str, str]] = {}
        for c in data.get("categories", []) or []:
            cid = image_key(c.get("id")) if isinstance(c, dict) else None
            if cid is None or not isinstance(c.get("name"), str):
                self.report(f"category {c!r} has no id (an integer) or name; skipped", path)
                continue
            name = category_name(c["name"])
            self._cats[cid] = (name, str(c.get("supercategory") or name))
        images: dict[Any, dict[str, Any]] = {}
        position: dict[Any, int] = {}
        twice: set[Any] = set()
        for n, im in enumerate(data["images"]):
            key = image_key(im.get("id")) if isinstance(im, dict) else None
            if key is None or not isinstance(im.get("file_name"), str):
                self.report(
                    f"images[{n}] has no id (an integer or a string) or no file_name; skipped", path
                )
                continue
            if key in images:
                # annotations name images by id: which of the two an annotation meant is unknown
                twice.add(key)
                self.report(
                    f"images[{n}] has id {key!r}, already the id of images[{position[key]}]; "
                    "both skipped (their annotations cannot be told apart)",
                    path,
                )
                continue
            images[key] = {**im, "id": key}
            position[key] = n
        for key in twice:
            del images[key]
        self._anns: dict[Any, list[dict[str, Any]]] = {}
        crowd = 0
        for n, ann in enumerate(data.get("annotations", []) or []):
            key = image_key(ann.get("image_id")) if isinstance(ann, dict) else None
            if key not in images:
                aid = ann.get("id") if isinstance(ann, dict) else None
                why = "its image id was used twice" if key in twice else "no such image_id"
                self.report(f"annotation id {aid!r} (annotations[{n}]): {why}; skipped", path)
                continue
            if ann.get("iscrowd", 0) == 1:
                crowd += 1
                continue
            self._anns.setdefault(key, []).append(ann)
        if crowd:
            # crowd regions are valid COCO but not objects with a box prompt: counted, not errors
            log.info("coco: %d iscrowd=1 annotations in %s skipped", crowd, path)
        self.skipped_crowd = crowd
        self._images_dir = self._image_folder(list(images.values()))
        stem = self.json_path.stem
        seqs: dict[str, dict[int, dict[str, Any]]] = {}
        for im in images.values():
            parts = PurePosixPath(im["file_name"].replace("\\", "/")).parts
            seq = (
                str(im["sequence"]) if "sequence" in im else (parts[0] if len(parts) > 1 else stem)
            )
            k = whole_id(im.get("frame_index", im["id"]))
            if k is None:
                what = "frame_index" if "frame_index" in im else "id (standing in for frame_index)"
                self.report(
                    f"image id {im['id']!r}: {what} {im.get('frame_index', im['id'])!r} is not a "
                    "whole number within 2**53 - 1; skipped",
                    path,
                )
                continue
            frames = seqs.setdefault(seq, {})
            if k in frames:
                self.report(
                    f"image id {im['id']}: sequence {seq!r} frame {k} already taken by image id "
                    f"{frames[k]['id']}; skipped",
                    path,
                )
                continue
            frames[k] = im
        self._seqs = {s: dict(sorted(f.items())) for s, f in sorted(seqs.items())}

    def _image_folder(self, images: list[dict[str, Any]]) -> Path:
        opt = str(self.opts["images"])
        if opt:
            folder = self.root / opt
            if not folder.is_dir():
                raise DatasetNotFound(f"coco: image folder {folder} does not exist")
            return folder
        if (
            images
            and not _file_kind(self.root / images[0]["file_name"])[0]
            and (self.root / "images").is_dir()
        ):
            return self.root / "images"
        return self.root

    def list_sequences(self) -> list[SequenceInfo]:
        return [SequenceInfo(s, len(f)) for s, f in self._seqs.items()]

    def categories(self) -> list[tuple[str, str]]:
        """The JSON's categories in the JSON's order, synonyms merged (``plane`` → ``airplane``)."""
        return list(dict.fromkeys(self._cats.values()))

    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """Frames of ``sequence`` ordered by frame index; missing or unreadable images are reported and skipped."""
        if sequence not in self._seqs:
            raise UsageError(
                f"coco has no sequence {sequence!r}; sequences: {', '.join(list(self._seqs)[:10])}"
            )
        first = True
        for k, im in self._seqs[sequence].items():
            path = self._images_dir / im["file_name"]
            regular, what = _file_kind(path)
            if not regular:
                self.report(
                    f"frame {k}: image {im['file_name']} (id {im['id']}) {what}; skipped",
                    path,
                    kind="image",
                )
                continue
            hw = self._size(im, path, k, check=first)
            if hw is None:
                continue
            first = False
            objs, segs = self._objects(im, k)
            keep = checked(objs, hw, k, self.report)
            kept_segs = [segs[objs.index(o)] for o in keep]
            gt = (
                _provider(kept_segs, hw, self, path)
                if any(s is not None for s in kept_segs)
                else None
            )
            yield self.frame(sequence, k, path, hw, gt_mask=gt, **frame_arrays(keep))

    def _size(self, im: dict[str, Any], path: Path, k: int, check: bool) -> tuple[int, int] | None:
        """The JSON's size when given (the first frame of a sequence is checked against its header)."""
        given = None
        try:
            if im.get("height") and im.get("width"):
                given = (int(im["height"]), int(im["width"]))
        except (TypeError, ValueError):
            given = None
        if given is not None and not check:
            return given
        try:
            real = image_hw(path)
        except (AnnotationError, OSError) as exc:
            self.report(
                f"frame {k}: unreadable image ({error_reason(exc)}); skipped",
                path,
                kind="image",
            )
            return None
        if given is not None and given != real:
            self.report(
                f"image id {im['id']}: JSON says {given[1]}x{given[0]} but the file is {real[1]}x{real[0]}; "
                "using the file's size",
                self.json_path,
            )
        return real

    def _objects(self, im: dict[str, Any], k: int) -> tuple[list[Obj], list[Any]]:
        objs: list[Obj] = []
        segs: list[Any] = []
        for ann in self._anns.get(im["id"], []):
            aid = ann.get("id")
            cat = self._cats.get(image_key(ann.get("category_id")))
            if cat is None:
                self.report(
                    f"annotation id {aid!r}: unknown category_id {ann.get('category_id')!r}; skipped",
                    self.json_path,
                )
                continue
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                self.report(
                    f"annotation id {aid!r}: bbox must be 4 numbers [x, y, w, h]; skipped",
                    self.json_path,
                )
                continue
            tid = whole_id(ann.get("track_id", aid))
            if tid is None:
                what = "track_id" if "track_id" in ann else "id (the track id without a track_id)"
                self.report(
                    f"annotation id {aid!r}: {what} {ann.get('track_id', aid)!r} is not a whole "
                    "number within 2**53 - 1; skipped",
                    self.json_path,
                )
                continue
            xyxy = np.array([x, y, x + w, y + h])
            if not np.isfinite(xyxy).all() or w <= 0 or h <= 0:
                self.report(
                    f"annotation id {aid!r}: empty or invalid bbox {fmt_box(xyxy)}; skipped",
                    self.json_path,
                )
                continue
            objs.append(Obj(xyxy, tid, cat[0], self.json_path, None, extra={"ann_id": aid}))
            segs.append(ann.get("segmentation") or None)
        return objs, segs


def _file_kind(path: Path) -> tuple[bool, str]:
    """``(is a regular file, why not)`` for an image named by the JSON.

    ``Path.is_file`` raises on a name the file system cannot look up (a part over
    255 bytes: ENAMETOOLONG), which a dataset's own ``file_name`` can hold: that
    is a missing image, reported, not an internal error.
    """
    try:
        if path.is_file():
            return True, ""
        return False, "not found" if not path.exists() else "not a regular file (not read)"
    except OSError as exc:
        return False, f"cannot be looked up ({exc.strerror or exc})"


def _provider(segs: list[Any], hw: tuple[int, int], adapter: COCO, path: Path) -> GtMaskProvider:
    def provider(i: int) -> np.ndarray | None:
        if segs[i] is None:
            return None
        try:
            return decode_segmentation(segs[i], hw)
        except (ValueError, TypeError) as exc:
            adapter.report(
                f"object {i} of {path.name}: bad segmentation ({exc})", adapter.json_path
            )
            return None

    return provider
