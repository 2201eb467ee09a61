"""Measurable signals per object of a COCO output (``box2mask qa``, docs/qa.md).

Everything is read from the output and its inputs (the prompt box, the crop
geometry of the job): no image, no ground truth. Per annotation:

=================  ==========================================================
``score``          the model's own score (predicted IoU, GrabCut's shape
                   agreement, the colour split's explained variance); ``None``
                   for fills that have none (box, ellipse, obb)
``box_area``       prompt box area, px²
``aspect``         prompt box long side / short side
``area_ratio``     mask area / prompt box area
``box_iou``        IoU of the mask's tight box with the prompt box
``outside``        share of the mask's pixels outside the prompt box
``components``     8-connected components of the mask
``fragment``       share of the mask's pixels outside its largest component
``touches_crop``   the mask reaches the edge of its crop window (inside the
                   frame): the model saw only part of what it segmented
``at_image_edge``  the prompt box touches the image border (a cut object)
``nested``         the largest share of another prompt box of the frame that
                   lies inside this one (a harbour holding ships, a box
                   drawn around a group): whose pixels are they?
``box_overlap``    the largest IoU of the prompt box with another one
``mask_overlap``   share of the mask's pixels that another object's mask
                   also claims (a leak onto a neighbour)
``fallback``       the model gave up on its own method and filled a shape
                   (``classical``/``grabcut``: an ellipse where GrabCut ran)
``image_disagreement``  :mod:`box2mask.qa.image`; ``None`` without the image
``prev_iou``,      aligned IoU (:mod:`box2mask.consistency`) with the previous
``next_iou``       / next annotated frame of the same track; ``None`` if none
``track_iou``      the larger of the two: a bad frame is far from both
                   neighbours, its good neighbours are close to their other one
=================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.consistency import aligned_iou, annotation_box
from box2mask.geometry import window_for_box
from box2mask.masks import MaskBlock, decode
from box2mask.qa.image import image_disagreement, read_image

#: mask sources whose ``score`` is a constant 1.0, not an estimate (writers/coco.output_score)
UNSCORED_SOURCES = frozenset({"box", "ellipse", "obb"})


@dataclass(frozen=True)
class CropGeometry:
    """The crop geometry of the job that made the masks (its job.json identity).

    The SAM family's window (:func:`box2mask.geometry.window_for_box`: ``crop_size``,
    ``context``, ``window``), or, for a model with its own window rule (``lite``: the
    identity's ``model_window``), that rule
    (:func:`box2mask.models.lite.crops.window_for_box`: ``model_context`` times the
    box's long side, at least ``model_min_side`` px, centred on the box).
    """

    crop_size: int = 512
    context: float = 1.25
    window: str = "centred"
    model_context: float | None = None
    model_min_side: int = 16

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any] | None) -> CropGeometry:
        ident = identity or {}
        own = ident.get("model_window") if isinstance(ident.get("model_window"), dict) else {}
        return cls(
            crop_size=int(ident.get("crop_size") or 512),
            context=float(ident.get("context") if ident.get("context") is not None else 1.25),
            window=str(ident.get("window") or "centred"),
            model_context=float(own["context"]) if own.get("context") else None,
            model_min_side=int(own.get("min_side") or 16),
        )

    def window_for(self, box: list[float], frame_hw: tuple[int, int]) -> Any:
        """The crop window (frame pixels) the model saw for the prompt box ``box`` (xyxy)."""
        if self.model_context is not None:
            from box2mask.models.lite.crops import window_for_box as own_window

            return own_window(box, self.model_context, self.model_min_side)
        mode = self.window  # "centred" | "clamped"
        return window_for_box(np.asarray(box), frame_hw, self.crop_size, self.context, mode)  # type: ignore[arg-type]


@dataclass
class ObjectSignals:
    """The signals of one annotation (see the module docstring)."""

    id: int
    image_id: int
    file_name: str
    sequence: str
    frame_index: int
    track_id: int | None
    category: str
    mask_source: str
    prompt_box: list[float]  # xywh
    score: float | None
    box_area: float
    aspect: float
    area: int
    area_ratio: float
    box_iou: float
    outside: float
    components: int
    fragment: float
    touches_crop: bool
    at_image_edge: bool
    nested: float = 0.0
    box_overlap: float = 0.0
    mask_overlap: float = 0.0
    fallback: bool = False
    image_disagreement: float | None = None
    prev_iou: float | None = None
    next_iou: float | None = None

    @property
    def track_iou(self) -> float | None:
        vals = [v for v in (self.prev_iou, self.next_iou) if v is not None]
        return max(vals) if vals else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["track_iou"] = self.track_iou
        return d


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _pixels_in_box(blk: MaskBlock, box: tuple[float, float, float, float]) -> int:
    """Mask pixels whose centre lies in ``box`` (xyxy): the rasterisation rule of the fills."""
    h, w = blk.height, blk.width
    c0 = max(0, math.ceil(box[0] - 0.5) - blk.left)
    c1 = min(w, math.ceil(box[2] - 0.5) - blk.left)
    r0 = max(0, math.ceil(box[1] - 0.5) - blk.top)
    r1 = min(h, math.ceil(box[3] - 0.5) - blk.top)
    if c1 <= c0 or r1 <= r0:
        return 0
    return blk.clip(blk.top + r0, blk.left + c0, blk.top + r1, blk.left + c1).area


def _touches_window(
    blk: MaskBlock, frame_hw: tuple[int, int], box: list[float], geom: CropGeometry
) -> bool:
    """Whether a mask pixel lies on the border of the prompt's crop window (inside the frame)."""
    fh, fw = frame_hw
    win = geom.window_for(box, (fh, fw))
    x1, y1, x2, y2 = blk.xyxy()
    wx0, wy0, wx1, wy1 = win.x0, win.y0, win.x0 + win.size, win.y0 + win.size
    # the window's border lines that lie inside the frame
    edges_x = [x for x in (wx0, wx1 - 1) if 0 <= x < fw]
    edges_y = [y for y in (wy0, wy1 - 1) if 0 <= y < fh]
    if blk.data is None:  # a filled rectangle: every row and column inside it is set
        return any(x1 <= x < x2 for x in edges_x) or any(y1 <= y < y2 for y in edges_y)
    px = blk.data
    on_x = any(x1 <= x < x2 and px[:, x - blk.left].any() for x in edges_x)
    return on_x or any(y1 <= y < y2 and px[y - blk.top, :].any() for y in edges_y)


def object_signals(
    ann: Mapping[str, Any],
    image: Mapping[str, Any],
    category: str,
    geom: CropGeometry,
    block: MaskBlock | None = None,
) -> ObjectSignals:
    """The frame-local signals of one annotation (track signals are filled by :func:`signals`)."""
    hw = (int(image["height"]), int(image["width"]))
    blk = block if block is not None else decode(ann.get("segmentation"), hw)
    box = annotation_box(ann)
    bw, bh = max(box[2] - box[0], 0.0), max(box[3] - box[1], 0.0)
    box_area = bw * bh
    area = blk.area
    source = str(ann.get("mask_source", "unknown"))
    raw_score = ann.get("score")
    score = None if raw_score is None or source in UNSCORED_SOURCES else float(raw_score)
    if area and blk.data is None:  # a filled rectangle (a box fill): one piece
        components, fragment = 1, 0.0
    if area and blk.data is not None:
        n, labels = cv2.connectedComponents(blk.pixels().astype(np.uint8), connectivity=8)
        sizes = np.bincount(labels.ravel())[1:]
        components, fragment = int(n - 1), float(1.0 - sizes.max() / area)
    if area:
        inside = _pixels_in_box(blk, tuple(box))  # type: ignore[arg-type]
        tight = tuple(float(v) for v in blk.xyxy())
        box_iou = _box_iou(tight, tuple(box))  # type: ignore[arg-type]
        touches = _touches_window(blk, hw, box, geom)
    else:
        components, fragment, inside, box_iou, touches = 0, 0.0, 0, 0.0, False
    h, w = hw
    return ObjectSignals(
        id=int(ann["id"]),
        image_id=int(ann["image_id"]),
        file_name=str(image.get("file_name", "")),
        sequence=str(image.get("sequence", "")),
        frame_index=int(image.get("frame_index", image["id"])),
        track_id=None if ann.get("track_id") is None else int(ann["track_id"]),
        category=category,
        mask_source=source,
        prompt_box=[round(box[0], 3), round(box[1], 3), round(bw, 3), round(bh, 3)],
        score=score,
        box_area=box_area,
        aspect=max(bw, bh) / max(min(bw, bh), 1.0),
        area=area,
        area_ratio=area / box_area if box_area > 0 else (math.inf if area else 0.0),
        box_iou=box_iou,
        outside=(area - inside) / area if area else 0.0,
        components=components,
        fragment=fragment,
        touches_crop=touches,
        at_image_edge=box[0] <= 0.5 or box[1] <= 0.5 or box[2] >= w - 0.5 or box[3] >= h - 0.5,
    )


def _fallback(model: str | None, source: str, box_xywh: list[float]) -> bool:
    """An ellipse where the job's GrabCut-based model should have cut (docs/weight-free.md)."""
    if source != "ellipse" or model not in ("classical", "grabcut"):
        return False
    if model == "grabcut":
        return True
    from box2mask.models.classical import ClassicalModel

    return min(box_xywh[2], box_xywh[3]) >= ClassicalModel.grabcut_min_side


def _crowding(frame: list[ObjectSignals], blocks: list[MaskBlock]) -> None:
    """Fill ``nested``, ``box_overlap`` and ``mask_overlap`` of one frame's objects."""
    if len(frame) < 2:
        return
    b = np.array([s.prompt_box for s in frame], dtype=np.float64)
    b[:, 2:] += b[:, :2]
    areas = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    iw = np.clip(
        np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = iw * ih
    np.fill_diagonal(inter, 0.0)
    nested = np.clip(inter / areas[None, :], 0, 1).max(axis=1)  # share of box j inside box i
    iou = (inter / np.maximum(areas[:, None] + areas[None, :] - inter, 1e-9)).max(axis=1)
    tb = np.array([blk.xyxy() for blk in blocks], dtype=np.int64)
    for i, s in enumerate(frame):
        s.nested, s.box_overlap = float(nested[i]), float(iou[i])
        if blocks[i].area == 0:
            continue
        x1, y1, x2, y2 = tb[i]
        cand = np.flatnonzero((tb[:, 0] < x2) & (tb[:, 2] > x1) & (tb[:, 1] < y2) & (tb[:, 3] > y1))
        claimed = np.zeros((y2 - y1, x2 - x1), dtype=bool)
        for j in cand:
            if j == i or blocks[j].area == 0:
                continue
            part = blocks[j].clip(y1, x1, y2, x2)  # what of j lies in i's block
            if part.height:
                region = claimed[part.top - y1 : part.bottom - y1, part.left - x1 : part.right - x1]
                region |= part.pixels()
        mine = blocks[i].pixels()
        s.mask_overlap = int(np.count_nonzero(claimed & mine)) / max(blocks[i].area, 1)


def frame_signals(
    image: Mapping[str, Any],
    anns: Sequence[Mapping[str, Any]],
    categories: Sequence[str],
    geom: CropGeometry,
    *,
    model: str | None = None,
    bgr: np.ndarray | None = None,
) -> tuple[list[ObjectSignals], list[MaskBlock]]:
    """The frame-local signals of one frame's objects (no track signals), and their masks.

    Args:
        image: the frame's COCO image (``id``, ``height``, ``width``, ``file_name``,
            ``sequence``, ``frame_index``).
        anns: its annotations (``id``, ``image_id``, ``segmentation``, ``prompt_box`` or
            ``bbox``, ``score``, ``mask_source``, ``track_id``).
        categories: each annotation's category name.
        geom: the crop geometry of the job.
        model: the job's model name (for ``fallback``).
        bgr: the frame's image (``(H, W, 3)`` uint8 BGR) for the image signal; ``None``:
            none.

    Returns:
        The signals in annotation order, and each one's mask (frame pixels, tight).
    """
    hw = (int(image["height"]), int(image["width"]))
    out: list[ObjectSignals] = []
    blocks: list[MaskBlock] = []
    for ann, cat in zip(anns, categories, strict=True):
        blk = decode(ann.get("segmentation"), hw)
        sig = object_signals(ann, image, cat, geom, blk)
        sig.fallback = _fallback(model, sig.mask_source, sig.prompt_box)
        out.append(sig)
        blocks.append(blk)
    _crowding(out, blocks)
    if bgr is not None:
        for k, ann in enumerate(anns):
            if blocks[k].area:
                out[k].image_disagreement = image_disagreement(bgr, blocks[k], annotation_box(ann))
    return out, blocks


class TrackLinks:
    """The track signals of one sequence, frame by frame: ``prev_iou`` / ``next_iou``.

    Holds the last mask of each live track (the previous annotated frame of the
    track, whatever the gap), never more: an object is *done* when its track's
    next annotated frame has given its ``next_iou``, or when the sequence ends.
    Objects without a track id are done at once.
    """

    def __init__(self) -> None:
        self.live: dict[int, tuple[MaskBlock, list[float], ObjectSignals]] = {}

    def add(
        self,
        sig: ObjectSignals,
        block: MaskBlock,
        box_xyxy: list[float],
        frame_hw: tuple[int, int],
    ) -> list[ObjectSignals]:
        """Add the next object of the sequence (frames in order, objects in frame order);
        returns the objects that are done."""
        if sig.track_id is None:
            return [sig]
        done = []
        prev = self.live.get(sig.track_id)
        if prev is not None:
            pblk, pbox, psig = prev
            iou = aligned_iou(pblk, pbox, block, box_xyxy, frame_hw)
            sig.prev_iou = iou
            psig.next_iou = iou
            done.append(psig)
        self.live[sig.track_id] = (block, box_xyxy, sig)
        return done

    def close(self) -> list[ObjectSignals]:
        """The sequence ended: every live track's last object is done."""
        done = [v[2] for v in self.live.values()]
        self.live.clear()
        return done


def signals(
    coco: Mapping[str, Any],
    geom: CropGeometry | None = None,
    *,
    model: str | None = None,
    image_root: Path | None = None,
) -> tuple[list[ObjectSignals], int]:
    """The signals of every annotation of a COCO dict held in memory, in annotation order.

    For small files (the calibration benchmark, tests); ``box2mask qa`` streams a job
    frame by frame instead (:mod:`box2mask.qa.stream`) with the same functions
    (:func:`frame_signals`, :class:`TrackLinks`), so both give the same signals.

    Args:
        coco: ``images``, ``annotations``, ``categories`` (a ``box2mask convert`` output
            or any COCO JSON with RLE/polygon masks; ``track_id`` enables track signals).
        geom: the crop geometry of the job (default: box2mask's defaults).
        model: the job's model name (for ``fallback``).
        image_root: the dataset root the images' ``file_name`` is relative to;
            ``None``: no image signal.

    Returns:
        The signals, and the number of frames whose image could not be read.
    """
    geom = geom or CropGeometry()
    images = {im["id"]: im for im in coco.get("images", [])}
    cats = {c["id"]: str(c["name"]) for c in coco.get("categories", [])}
    anns = list(coco.get("annotations", []))
    by_image: dict[Any, list[int]] = {}
    for k, ann in enumerate(anns):
        if ann.get("image_id") not in images:
            raise ValueError(
                f"annotation id {ann.get('id')}: no image with id {ann.get('image_id')}"
            )
        by_image.setdefault(ann["image_id"], []).append(k)
    out: list[ObjectSignals | None] = [None] * len(anns)
    placed: dict[int, tuple[MaskBlock, list[float], tuple[int, int]]] = {}
    unread = 0
    for iid, ks in by_image.items():
        im = images[iid]
        bgr = None
        if image_root is not None:
            bgr = read_image(Path(image_root) / str(im.get("file_name", "")))
            if bgr is None:
                unread += 1
        frame_anns = [anns[k] for k in ks]
        names = [cats.get(a.get("category_id"), str(a.get("category_id"))) for a in frame_anns]
        sig, blocks = frame_signals(im, frame_anns, names, geom, model=model, bgr=bgr)
        hw = (int(im["height"]), int(im["width"]))
        for j, k in enumerate(ks):
            out[k] = sig[j]
            placed[k] = (blocks[j], annotation_box(anns[k]), hw)
    # tracks: each (sequence, track id) in frame order (stable: annotation order)
    tracks: dict[tuple[str, int], list[int]] = {}
    for k, s in enumerate(out):
        assert s is not None
        if s.track_id is not None:
            tracks.setdefault((s.sequence, s.track_id), []).append(k)
    for ks in tracks.values():
        ks.sort(key=lambda k: out[k].frame_index)  # type: ignore[union-attr]
        links = TrackLinks()
        for k in ks:
            blk, box, hw = placed[k]
            links.add(out[k], blk, box, hw)  # type: ignore[arg-type]
    return out, unread  # type: ignore[return-value]
