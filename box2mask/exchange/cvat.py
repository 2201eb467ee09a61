"""CVAT: a task package CVAT imports as it is, and CVAT's export read back.

What CVAT reads (its ``cvat/apps/dataset_manager/formats/cvat.py``, importer
"CVAT 1.1", and datumaro's ``plugins/data_formats/cvat/base.py``):

- ``annotations.xml``: ``<annotations><version>1.1</version><meta><task>…`` with
  the labels and their attributes, then one ``<image id name width height>``
  per frame holding its shapes. A ``<mask>`` has ``rle``, ``left``, ``top``,
  ``width``, ``height``: the runs of the mask's tight box, row by row, starting
  with a run of background (``"0, 3, 2, …"``; ``width`` and ``height``
  inclusive of both ends' pixels, as ``right - left + 1``). A ``<polygon>`` has
  ``points="x,y;x,y;…"`` in frame pixels with two decimals.
- each shape's ``<attribute name="track">`` holds the object's track id.

Why shapes on ``<image>`` and not one ``<track>`` per track id (the "CVAT for
video" layout): CVAT has no mask tracks. Its importer keeps only the first
shape of a ``<track>`` of masks ("convert mask tracks to shapes because mask
track are not supported", ``load_anno``), and datumaro's CVAT reader cannot
read a mask inside a ``<track>`` at all (it needs the ``<image>``'s size). A
polygon track holds one polygon per frame (box2mask's masks may have several
parts) and CVAT interpolates between its keyframes, inventing shapes on frames
the export did not hold. Shapes on frames, each with its ``track``
attribute, keep every mask and its id (filtering on the attribute shows a track
across frames). CVAT's "CVAT 1.1" importer reads this layout into
a task made from images or from a video alike.

The way back reads CVAT's export of a task or job, as "CVAT for images 1.1"
(frames by image name) or "CVAT for video 1.1" (frames by number; masks come
back as one-shape tracks), as the XML or the zip CVAT gives. The export's
manifest says which sequence and frame each image is and which objects went
there.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import XMLGenerator

import numpy as np

from box2mask.errors import UsageError
from box2mask.exchange import _codec
from box2mask.exchange.model import Found, FrameKey, ToolFile, tool_text
from box2mask.exchange.plan import Manifest, Plan, PlanTask
from box2mask.exchange.polygons import mask_to_polygons, polygons_to_mask
from box2mask.io import atomic_open, read_image, write_png_file
from box2mask.masks import MaskBlock

#: the shape attribute that carries the track id
TRACK_ATTR = "track"
#: image types CVAT takes as they are; any other frame is written as PNG
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
#: the labels file for CVAT's "Raw" label editor (one for the whole export)
LABELS_JSON = "cvat-labels.json"


# -- CVAT's mask RLE -------------------------------------------------------------------


def mask_to_cvat(mask: np.ndarray | MaskBlock) -> tuple[list[int], int, int, int, int] | None:
    """A mask (an ``(H, W)`` bool array of the frame, or its block in frame pixels) as
    CVAT's ``(rle, left, top, width, height)``, ``None`` if empty.

    ``rle`` alternates background and mask runs over the tight box, row-major,
    starting with background (a mask starting on the box's first pixel has a
    leading 0).

    >>> m = np.zeros((3, 4), bool); m[1, 1:3] = True; m[2, 2] = True
    >>> mask_to_cvat(m)
    ([0, 2, 1, 1], 1, 1, 2, 2)
    """
    b = (mask if isinstance(mask, MaskBlock) else MaskBlock.from_mask(mask)).tight()
    if b.height == 0:
        return None
    box = b.pixels().ravel()
    edges = np.flatnonzero(box[1:] != box[:-1]) + 1
    runs = np.diff(np.concatenate(([0], edges, [box.size]))).tolist()
    if box[0]:
        runs.insert(0, 0)
    return runs, b.left, b.top, b.width, b.height


def cvat_to_block(
    rle: list[int], left: int, top: int, width: int, height: int, hw: tuple[int, int]
) -> MaskBlock:
    """CVAT's mask RLE back to the mask's tight block in frame pixels (``.to_array(hw)``:
    the ``(H, W)`` bool mask of the frame).

    Raises:
        ValueError: runs that do not add up to ``width × height``, or a box outside the frame.
    """
    h, w = hw
    if width < 1 or height < 1 or left < 0 or top < 0 or left + width > w or top + height > h:
        raise ValueError(
            f"mask box left={left} top={top} width={width} height={height} is not inside the "
            f"{w}x{h} frame"
        )
    runs = np.asarray(rle, dtype=np.int64)
    if (runs < 0).any() or int(runs.sum()) != width * height:
        raise ValueError(
            f"mask runs add up to {int(runs.sum())}, not width x height = {width * height}"
        )
    values = np.arange(runs.size) % 2 == 1
    box = np.repeat(values, runs).reshape(height, width)
    return MaskBlock(top, left, height, width, box).tight()


def points_text(polygon: list[tuple[float, float]]) -> str:
    """A polygon as CVAT writes ``points``: ``x,y;x,y`` with two decimals."""
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in polygon)


# -- writing ---------------------------------------------------------------------------


def image_name(task: int, k: int, source: Path) -> str:
    """The name of a task's ``k``-th frame: unique across the export, in frame order under
    CVAT's sorting (lexicographic or natural), the source's type where CVAT takes it."""
    suffix = source.suffix.lower()
    return f"{task:04d}-{k:06d}{suffix if suffix in IMAGE_SUFFIXES else '.png'}"


def task_name(task: PlanTask) -> str:
    """The task's name in CVAT (and in the XML's meta): ``box2mask 0003 <sequence>``."""
    return f"box2mask {task.number:04d} {tool_text(task.sequence)}"[:250]


def label_color(label: str) -> str:
    """A fixed colour per label name (CVAT wants one; a hash keeps it stable)."""
    return "#" + hashlib.sha256(label.encode("utf-8")).hexdigest()[:6]


def labels_json(plan: Plan) -> list[dict[str, Any]]:
    """The labels for CVAT's "Raw" label editor when creating the tasks (or a project)."""
    return [
        {
            "name": label,
            "color": label_color(label),
            "type": "any",
            "attributes": [
                {
                    "name": TRACK_ATTR,
                    "mutable": False,
                    "input_type": "text",
                    "default_value": "",
                    "values": [""],
                }  # fmt: skip
            ],
        }
        for label in plan.labels
    ]


def write_task(plan: Plan, task: PlanTask, folder: Path) -> int:
    """Write ``folder/annotations.xml`` and ``folder/images/`` for one task; returns the
    number of shapes written (an empty mask has no shape in CVAT and goes out without one)."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for frame in task.frames:
        _place_image(frame.source, images / frame.name)
    shapes = 0
    with atomic_open(folder / "annotations.xml", "wb") as fh:
        xml = _Xml(fh)
        xml.open("annotations")
        xml.leaf("version", "1.1")
        _meta(xml, plan, task)
        for k, frame in enumerate(task.frames):
            h, w = frame.hw
            xml.open("image", {"id": str(k), "name": frame.name, "width": str(w), "height": str(h)})
            # larger objects lower: the smaller object stays visible, as in box2mask's PNGs
            areas = [_codec.area_bbox(o.ann["segmentation"], frame.hw)[0] for o in frame.objects]
            order = sorted(range(len(areas)), key=lambda i: -areas[i])
            z = {i: n for n, i in enumerate(order)}
            for i, obj in enumerate(frame.objects):  # one full-frame mask at a time
                if obj.empty:
                    continue
                shapes += _shape(
                    xml, plan.shape, obj.label, obj.key.track_id, frame.block(obj), z[i]
                )
            xml.close("image")
        xml.close("annotations")
        xml.end()
    return shapes


def _shape(xml: _Xml, shape: str, label: str, track: int, mask: MaskBlock, z: int) -> int:
    common = {"label": label, "source": "auto", "occluded": "0"}
    if shape == "polygon":
        polys = mask_to_polygons(mask)
        for poly in polys:
            xml.open("polygon", {**common, "points": points_text(poly), "z_order": str(z)})
            xml.leaf("attribute", str(track), {"name": TRACK_ATTR})
            xml.close("polygon")
        return len(polys)
    enc = mask_to_cvat(mask)
    if enc is None:
        return 0
    rle, left, top, width, height = enc
    attrs = {**common, "rle": ", ".join(map(str, rle)), "left": str(left), "top": str(top),
             "width": str(width), "height": str(height), "z_order": str(z)}  # fmt: skip
    xml.open("mask", attrs)
    xml.leaf("attribute", str(track), {"name": TRACK_ATTR})
    xml.close("mask")
    return 1


def _meta(xml: _Xml, plan: Plan, task: PlanTask) -> None:
    n = len(task.frames)
    xml.open("meta")
    xml.open("task")
    for tag, text in (("name", task_name(task)), ("size", str(n)), ("mode", "annotation"),
                      ("overlap", "0"), ("start_frame", "0"), ("stop_frame", str(max(n - 1, 0))),
                      ("frame_filter", ""), ("z_order", "True")):  # fmt: skip
        xml.leaf(tag, text)
    xml.open("labels")
    for spec in labels_json(plan):
        xml.open("label")
        xml.leaf("name", spec["name"])
        xml.leaf("color", spec["color"])
        xml.leaf("type", spec["type"])
        xml.open("attributes")
        for a in spec["attributes"]:
            xml.open("attribute")
            xml.leaf("name", a["name"])
            xml.leaf("mutable", str(a["mutable"]))
            xml.leaf("input_type", a["input_type"])
            xml.leaf("default_value", a["default_value"])
            xml.leaf("values", "\n".join(a["values"]))
            xml.close("attribute")
        xml.close("attributes")
        xml.close("label")
    xml.close("labels")
    sizes = {f.hw for f in task.frames}
    if len(sizes) == 1:  # datumaro reads a task's frame size from here
        ((h, w),) = sizes
        xml.open("original_size")
        xml.leaf("width", str(w))
        xml.leaf("height", str(h))
        xml.close("original_size")
    xml.close("task")
    xml.leaf("dumped", plan.created)
    xml.close("meta")


class _Xml:
    """An indented XML writer over :class:`XMLGenerator` (which escapes text and attributes)."""

    def __init__(self, fh: Any) -> None:
        self._gen = XMLGenerator(fh, "utf-8", short_empty_elements=True)
        self._gen.startDocument()
        self._depth = 0

    def _indent(self) -> None:
        self._gen.ignorableWhitespace("\n" + "  " * self._depth)

    def open(self, tag: str, attrs: dict[str, str] | None = None) -> None:
        self._indent()
        self._gen.startElement(tag, attrs or {})
        self._depth += 1

    def close(self, tag: str) -> None:
        self._depth -= 1
        self._indent()
        self._gen.endElement(tag)

    def leaf(self, tag: str, text: str, attrs: dict[str, str] | None = None) -> None:
        self._indent()
        self._gen.startElement(tag, attrs or {})
        self._gen.characters(text)
        self._gen.endElement(tag)

    def end(self) -> None:
        self._gen.ignorableWhitespace("\n")
        self._gen.endDocument()


def _place_image(source: Path, dest: Path) -> None:
    """The frame's file in the task: a hard link (no copy) where the file system allows,
    else a copy; a frame of a type CVAT does not take is decoded and written as PNG."""
    if dest.suffix == source.suffix.lower() and source.suffix.lower() in IMAGE_SUFFIXES:
        try:
            dest.hardlink_to(source)
            return
        except OSError:
            shutil.copyfile(source, dest)
            return
    if not write_png_file(dest, read_image(source)):
        raise UsageError(f"cannot write {dest}")


# -- reading ---------------------------------------------------------------------------


def read_export(path: Path, manifest: Manifest, hw: dict[FrameKey, tuple[int, int]]) -> ToolFile:
    """CVAT's export of a task (or job) of this export, as found objects.

    Args:
        path: ``annotations.xml`` or the zip CVAT gives (with one XML in it).
        manifest: the export's manifest (which image is which frame, what went where).
        hw: ``(H, W)`` of each frame of the job.

    Raises:
        UsageError: not a CVAT XML, or frames the manifest cannot place.
    """
    root = _parse(path)
    by_name: dict[str, tuple[FrameKey, list[int]]] = {}
    by_task: dict[str, list[tuple[FrameKey, list[int]]]] = {}
    out = ToolFile("cvat", [], {})
    for t in manifest.tasks:
        frames = [(FrameKey(t.sequence, fi), tracks) for fi, _, tracks, _ in t.frames]
        by_task[task_name(PlanTask(t.number, t.sequence))] = frames
        for (fkey, tracks), (_, name, _, empty) in zip(frames, t.frames, strict=True):
            by_name[name] = (fkey, tracks)
            by_name[PurePosixPath(name).stem] = (fkey, tracks)
            out.empty[fkey] = set(empty)
    if manifest.shape == "polygon":
        out.exported_shapes = exported_polygons
    for el in root.iter("image"):
        name = el.get("name", "")
        placed = by_name.get(PurePosixPath(name).name) or by_name.get(PurePosixPath(name).stem)
        if placed is None:
            out.skipped.append((f"image {name!r}", "not an image of this export"))
            continue
        fkey, tracks = placed
        out.covered[fkey] = set(tracks)
        for shape in el:
            if shape.tag in ("tag",):
                continue
            out.found.append(_found(shape, fkey, hw.get(fkey), f"image {name!r}"))
    tracks_el = list(root.iter("track"))
    if tracks_el:
        frames = _video_frames(root, by_task, manifest, path)
        for tr in tracks_el:
            for shape in tr:
                if shape.get("outside") == "1":
                    continue
                k = int(shape.get("frame", "-1"))
                where = f"track {tr.get('id')} frame {k}"
                if not 0 <= k < len(frames):
                    out.found.append(
                        Found(where, None, None, None, problem="frame number outside the task")
                    )
                    continue
                fkey, tracks = frames[k]
                out.covered[fkey] = set(tracks)
                shape.set("label", tr.get("label", ""))
                out.found.append(_found(shape, fkey, hw.get(fkey), where))
        for fkey, tracks in frames:  # a video export covers all of its task's frames
            out.covered.setdefault(fkey, set(tracks))
    return out


def _video_frames(
    root: ElementTree.Element,
    by_task: dict[str, list[tuple[FrameKey, list[int]]]],
    manifest: Manifest,
    path: Path,
) -> list[tuple[FrameKey, list[int]]]:
    """The frames of the task a "CVAT for video" export is of: by its name in the meta, or
    the manifest's only task."""
    name = root.findtext("meta/task/name") or root.findtext("meta/job/task/name") or ""
    if name in by_task:
        return by_task[name]
    if len(manifest.tasks) == 1:
        return next(iter(by_task.values()))
    raise UsageError(
        f"{path}: a CVAT for video export of a task named {name!r}, which is not one this "
        f"export made ({', '.join(repr(n) for n in list(by_task)[:3])}...): its frame numbers "
        "cannot be placed; export the task as 'CVAT for images 1.1' (frames by image name), "
        "or keep the task's name"
    )


def _found(
    shape: ElementTree.Element, fkey: FrameKey, hw: tuple[int, int] | None, where: str
) -> Found:
    label = shape.get("label")
    track, problem = None, None
    for a in shape.iter("attribute"):
        if a.get("name") == TRACK_ATTR and (a.text or "").strip():
            try:
                track = int((a.text or "").strip())
            except ValueError:
                problem = f"track attribute {a.text!r} is not a whole number"
    where = f"{where} {shape.tag} (label {label!r}, track {track})"
    found = Found(where, fkey, track, label, problem=problem)
    if problem:
        return found
    if hw is None:
        found.problem = "the job has no such frame"
        return found
    try:
        if shape.tag == "mask":
            rle = [int(v) for v in shape.get("rle", "").split(",") if v.strip()]
            box = (int(float(shape.get(k, "-1"))) for k in ("left", "top", "width", "height"))
            found.rle = _codec.encode(cvat_to_block(rle, *box, hw), hw)
        elif shape.tag == "polygon":
            pts = [_xy(p) for p in shape.get("points", "").split(";")]
            found.shape_text = points_text(pts)
            found.rle = _codec.encode(polygons_to_mask([pts], hw))
        else:
            found.problem = f"a {shape.tag} is not a mask: draw a mask or a polygon"
    except ValueError as exc:
        found.problem = str(exc)
    return found


def _xy(text: str) -> tuple[float, float]:
    x, y = text.split(",")
    return float(x), float(y)


def exported_polygons(mask: MaskBlock, hw: tuple[int, int]) -> list[str]:
    """The ``points`` of the polygons :func:`write_task` writes for ``mask``."""
    return [points_text(p) for p in mask_to_polygons(mask)]


def _parse(path: Path) -> ElementTree.Element:
    """The root of the XML at ``path``, or of the one XML in the zip at ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            xmls = [n for n in zf.namelist() if n.lower().endswith(".xml")]
            if len(xmls) != 1:
                raise UsageError(f"{path}: a zip with {len(xmls)} XML files; CVAT's export has one")
            data = zf.read(xmls[0])
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise UsageError(f"{path}: not XML ({exc})") from None
    if root.tag != "annotations":
        raise UsageError(f"{path}: not a CVAT XML (its root is <{root.tag}>, not <annotations>)")
    return root
