"""Label Studio: tasks with box2mask's masks as predictions, and Label Studio's export read back.

One Label Studio task per frame (Label Studio segments images; its video tag
has no masks). The export writes:

- ``tasks.json``: Label Studio's import format, ``[{"data": {...},
  "predictions": [{"model_version", "score", "result": [...]}]}]``. Each object
  is a region: a ``brushlabels`` result whose ``value.rle`` is the mask in
  Label Studio's brush RLE (:mod:`box2mask.exchange.lsrle`), or with
  ``--shape polygon`` a ``polygonlabels`` result whose ``value.points`` are
  ``[x, y]`` in percent of the image's width and height; plus a ``number``
  result with the same region ``id`` holding its track id (the labeling
  config's per-region ``<Number name="track">``, which the reviewer also fills
  for a new object).
- ``label_config.xml``: the labeling config the project needs (the image, the
  brush or polygon labels of the job's categories, the per-region track number).
- ``data.image`` is ``/data/local-files/?d=<path>``, the frame's path relative to
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (``--document-root``, by default the
  folder above the job's dataset root): Label Studio serves a file to a project
  with a local-files storage whose path holds it, inside the document root and
  not the root itself, so the dataset root is that storage. The dataset's own
  files are served, nothing is copied.
- ``data.box2mask`` carries the key back: the export id, the job's identity
  hash, the sequence, the frame, its size and the track ids sent to it. So
  Label Studio's JSON export alone (``GET /api/projects/<id>/export?exportType=
  JSON``) is enough to bring the review back.

Reading back, a task's newest annotation that was not cancelled is the
review; a task without one was not reviewed and changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from box2mask import __version__
from box2mask.errors import UsageError
from box2mask.exchange import _codec, lsrle
from box2mask.exchange.cvat import label_color
from box2mask.exchange.model import (
    Found,
    FrameKey,
    ToolFile,
    name_from_json,
    name_to_json,
    tool_text,
)
from box2mask.exchange.plan import Plan, PlanFrame
from box2mask.exchange.polygons import mask_to_polygons, polygons_to_mask
from box2mask.io import atomic_open
from box2mask.masks import MaskBlock

TASKS_JSON = "tasks.json"
LABEL_CONFIG = "label_config.xml"
#: the control names of the labeling config (``from_name`` of the results)
IMAGE, BRUSH, POLYGON, TRACK = "image", "mask", "polygon", "track"
_REGION_ID = re.compile(r"^t(-?\d+)(?:~\d+)?$")


def label_config(plan: Plan) -> str:
    """The labeling config of the export's project (XML)."""
    tag, name = ("PolygonLabels", POLYGON) if plan.shape == "polygon" else ("BrushLabels", BRUSH)
    labels = "\n".join(
        f"    <Label value={quoteattr(label)} background={quoteattr(label_color(label))}/>"
        for label in plan.labels
    )
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>\n'
        f'  <{tag} name="{name}" toName="{IMAGE}">\n{labels}\n  </{tag}>\n'
        f'  <Number name="{TRACK}" toName="{IMAGE}" perRegion="true"/>\n'
        "</View>\n"
    )


def image_url(frame: PlanFrame, document_root: Path) -> str:
    """``/data/local-files/?d=<path of the frame relative to the document root>``.

    Raises:
        UsageError: the frame is not inside the document root.
    """
    try:  # absolute, links not followed: the URL names the file as the dataset does
        rel = Path(os.path.abspath(frame.source)).relative_to(os.path.abspath(document_root))
    except ValueError:
        raise UsageError(
            f"--document-root {document_root}: the frame {frame.source} is not inside it; "
            "Label Studio serves local files only under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
        ) from None
    return "/data/local-files/?d=" + quote(
        rel.as_posix().encode("utf-8", "surrogateescape"), safe="/"
    )


def polygon_percent(poly: list[tuple[float, float]], hw: tuple[int, int]) -> list[list[float]]:
    """Frame-pixel vertices as Label Studio's ``[x %, y %]`` of the image's width and height."""
    h, w = hw
    return [[100.0 * x / w, 100.0 * y / h] for x, y in poly]


def points_text(points: list[list[float]]) -> str:
    """Percent vertices as compared on the way back: 4 decimals (a 10,000 px image's
    0.0001 % is 0.01 px), so a float's last digits do not count as an edit."""
    return ";".join(f"{x:.4f},{y:.4f}" for x, y in points)


def exported_polygons(mask: MaskBlock, hw: tuple[int, int]) -> list[str]:
    """:func:`points_text` of each polygon :func:`task` writes for ``mask``."""
    return [points_text(polygon_percent(p, hw)) for p in mask_to_polygons(mask)]


def task(
    plan: Plan, frame: PlanFrame, document_root: Path, identity_sha: str | None
) -> dict[str, Any]:
    """The Label Studio task of one frame, its objects as one prediction."""
    h, w = frame.hw
    result: list[dict[str, Any]] = []
    common = {"to_name": IMAGE, "original_width": w, "original_height": h, "image_rotation": 0}
    for obj in frame.objects:
        if obj.empty:
            continue
        rid = f"t{obj.key.track_id}"
        if plan.shape == "polygon":
            regions = [
                (rid if n == 0 else f"{rid}~{n}",
                 {"points": polygon_percent(p, frame.hw), "closed": True, "polygonlabels": [obj.label]})
                for n, p in enumerate(mask_to_polygons(frame.block(obj)))
            ]  # fmt: skip
            kind, from_name = "polygonlabels", POLYGON
        else:
            # the brush RLE covers the whole image: the one place a mask is spread over it
            rle = lsrle.encode(frame.mask(obj))
            regions = [(rid, {"format": "rle", "rle": rle, "brushlabels": [obj.label]})]
            kind, from_name = "brushlabels", BRUSH
        for region_id, value in regions:
            result.append(
                {"id": region_id, "from_name": from_name, "type": kind, **common, "value": value}
            )
            result.append({"id": region_id, "from_name": TRACK, "to_name": IMAGE, "type": "number",
                           "value": {"number": obj.key.track_id}})  # fmt: skip
    ranks = [o.rank[1] for o in frame.objects if o.rank is not None]
    return {
        "data": {
            "image": image_url(frame, document_root),
            "sequence": tool_text(frame.key.sequence),
            "frame_index": frame.key.frame_index,
            "file_name": tool_text(str(frame.image.get("file_name", ""))),
            "suspicion": max(ranks) if ranks else None,
            "box2mask": {
                "export_id": plan.export_id,
                "job_identity_sha256": identity_sha,
                "sequence": name_to_json(frame.key.sequence),
                "frame_index": frame.key.frame_index,
                "width": w,
                "height": h,
                "tracks": [o.key.track_id for o in frame.objects if not o.empty],
                "empty": [o.key.track_id for o in frame.objects if o.empty],
            },
        },
        "predictions": [
            {
                "model_version": f"box2mask {__version__}",
                "score": max(ranks) if ranks else 0.0,
                "result": result,
            }  # fmt: skip
        ],
    }


# -- reading ---------------------------------------------------------------------------


def read_export(path: Path, identity_sha: str | None) -> ToolFile:
    """Label Studio's JSON export of a project holding an export's tasks.

    Args:
        path: the JSON file (a list of tasks with ``data``, ``annotations``, ...).
        identity_sha: the job's identity hash: a task made from another job is refused.

    Raises:
        UsageError: not a Label Studio JSON export, or made from another job.
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(tasks, list):
        raise UsageError(f"{path}: not Label Studio's JSON export (a list of tasks)")
    out = ToolFile("labelstudio", [], {})
    polygons = False
    for n, t in enumerate(tasks):
        where = f"task {t.get('id', n + 1) if isinstance(t, dict) else n + 1}"
        meta = (t.get("data") or {}).get("box2mask") if isinstance(t, dict) else None
        if not isinstance(meta, dict):
            out.skipped.append((where, "not a task of a box2mask export (no data.box2mask)"))
            continue
        if meta.get("job_identity_sha256") != identity_sha:
            raise UsageError(
                f"{path}: {where} was exported from another job (its identity differs from "
                "--job's); import a file into the job it was exported from"
            )
        try:
            fkey = FrameKey(name_from_json(meta["sequence"]), int(meta["frame_index"]))
            hw = (int(meta["height"]), int(meta["width"]))
            tracks = {int(v) for v in meta["tracks"]}
            empty = {int(v) for v in meta.get("empty", [])}
        except (KeyError, TypeError, ValueError) as exc:
            out.skipped.append((where, f"data.box2mask is damaged ({exc})"))
            continue
        review = _review(t.get("annotations") or [])
        if review is None:
            out.not_reviewed += 1
            continue
        out.covered[fkey] = tracks
        out.empty[fkey] = empty
        where = f"{where} annotation {review.get('id')}"
        found, poly = _regions(review.get("result") or [], fkey, hw, where)
        polygons |= poly
        out.found += found
    if polygons:
        out.exported_shapes = exported_polygons
    return out


def _review(annotations: list[Any]) -> dict[str, Any] | None:
    """The newest annotation that was not cancelled (by ``updated_at``, then ``id``)."""
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None
    return max(
        kept,
        key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0),
    )


def _regions(
    result: list[Any], fkey: FrameKey, hw: tuple[int, int], where: str
) -> tuple[list[Found], bool]:
    """The objects of one annotation's result; whether any is a polygon."""
    numbers: dict[str, Any] = {}
    regions: list[dict[str, Any]] = []
    for r in result:
        if not isinstance(r, dict):
            continue
        if r.get("type") == "number" and r.get("from_name") == TRACK:
            numbers[str(r.get("id"))] = (r.get("value") or {}).get("number")
        elif r.get("type") not in ("number",):
            regions.append(r)
    found: list[Found] = []
    polygons = False
    for r in regions:
        rid = str(r.get("id"))
        value = r.get("value") or {}
        kind = str(r.get("type"))
        labels = value.get(kind) if isinstance(value.get(kind), list) else []
        track, problem = _track(numbers.get(rid), rid)
        label = str(labels[0]) if labels else None
        f = Found(f"{where} region {rid!r}", fkey, track, label, problem=problem)
        found.append(f)
        if problem:
            continue
        if len(labels) != 1:
            f.problem = f"{len(labels)} labels on one region"
            continue
        size = (r.get("original_height"), r.get("original_width"))
        if size != hw:
            f.problem = f"a region on a {size[0]}x{size[1]} image; the frame is {hw[0]}x{hw[1]}"
            continue
        try:
            if kind == "brushlabels":
                if value.get("format", "rle") != "rle":
                    raise ValueError(f"brush format {value.get('format')!r}, not rle")
                f.rle = _codec.encode(lsrle.decode(value.get("rle") or [], hw))
            elif kind == "polygonlabels":
                polygons = True
                pts = [[float(x), float(y)] for x, y in value.get("points") or []]
                f.shape_text = points_text(pts)
                h, w = hw
                f.rle = _codec.encode(
                    polygons_to_mask([[(x * w / 100.0, y * h / 100.0) for x, y in pts]], hw)
                )
            else:
                f.problem = f"a {kind} region is not a mask: draw a brush mask or a polygon"
        except (ValueError, TypeError) as exc:
            f.problem = str(exc)
    return found, polygons


def _track(number: Any, region_id: str) -> tuple[int | None, str | None]:
    """A region's track id: its track number, else the one in an id box2mask gave it."""
    if number is None:
        m = _REGION_ID.match(region_id)
        return (int(m.group(1)), None) if m else (None, None)
    try:
        value = float(number)
    except (TypeError, ValueError):
        return None, f"track number {number!r} is not a number"
    if not value.is_integer():
        return None, f"track number {number!r} is not a whole number"
    return int(value), None


def write(plan: Plan, out: Path, document_root: Path, identity_sha: str | None) -> int:
    """``out/tasks.json`` and ``out/label_config.xml``; returns the number of tasks."""
    tasks = [task(plan, f, document_root, identity_sha) for t in plan.tasks for f in t.frames]
    with atomic_open(out / TASKS_JSON) as fh:
        json.dump(tasks, fh)
    with atomic_open(out / LABEL_CONFIG) as fh:
        fh.write(label_config(plan))
    return len(tasks)
