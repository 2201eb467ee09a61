"""A reviewer's work in CVAT and Label Studio, done on the files (tests of issue 27).

``ls_review`` turns an export's ``tasks.json`` into what Label Studio's JSON export gives
after a reviewer submitted an annotation per task (the predictions' regions copied, as the
editor does, then edited). ``cvat_review`` edits a task's ``annotations.xml`` the way CVAT's
"CVAT for images 1.1" export of the edited task reads. The real tools are driven in
tests/test_exchange_labelstudio.py (a Label Studio server) and
tests/test_exchange_datumaro.py (datumaro's CVAT reader and writer).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from box2mask.exchange import _codec, cvat, lsrle

REPO = Path(__file__).resolve().parent.parent


def convert_job(root: Path, out: Path, *args: str) -> Path:
    """``box2mask convert --dataset viso --model classical`` of the VISO fixture, then
    ``box2mask qa --no-images``: a job with qa/qa.json."""
    from cli_helpers import cli, convert_viso

    r = convert_viso(root, out, "--model", "classical", *args)
    assert r.exit_code == 0, r.output
    r = cli("qa", "--out", out, "--no-images")
    assert r.exit_code == 0, r.output
    return out


def job_masks(job: Path) -> dict[tuple[str, int, int], np.ndarray]:
    """``{(sequence, frame_index, track_id): mask}`` of a job's (or a COCO file's) objects."""
    path = job / "annotations.json" if job.is_dir() else job
    coco = json.loads(path.read_text())
    imgs = {im["id"]: im for im in coco["images"]}
    out = {}
    for a in coco["annotations"]:
        im = imgs[a["image_id"]]
        key = (im["sequence"], im["frame_index"], a["track_id"])
        out[key] = _codec.decode(a["segmentation"], (im["height"], im["width"]))
    return out


def copy_job(job: Path, dest: Path, coco: dict[str, Any] | None = None) -> Path:
    """A copy of a job folder (its state and qa too), with ``coco`` as its annotations.json."""
    shutil.copytree(job, dest)
    if coco is not None:
        (dest / "annotations.json").write_text(json.dumps(coco))
    return dest


#: every format a job can have (the writer registry's built-ins)
ALL_FORMATS = "coco,ytvis,davis,mots,yolo,png"


def job_files(job: Path) -> dict[str, bytes]:
    """Every file under the job folder (its state, corrections and every format's files),
    by relative path, links read through; the lock file left out (flock's, not data)."""
    return {p.relative_to(job).as_posix(): p.read_bytes() for p in sorted(job.rglob("*"))
            if p.is_file() and p.name != "lock"}  # fmt: skip


def ytvis_masks(job: Path) -> dict[tuple[str, int, int], np.ndarray]:
    """``{(sequence, frame_index, track_id): mask}`` of a job's ``ytvis.json``, decoded by
    pycocotools (YouTube-VIS keeps a track's masks per frame of its video, ``null`` where
    the track is absent); frames are numbered by the job's COCO images of each video."""
    from pycocotools import mask as mask_utils

    yt = json.loads((job / "ytvis.json").read_text())
    coco = json.loads((job / "annotations.json").read_text())
    frames: dict[str, list[int]] = {}
    for im in coco["images"]:
        frames.setdefault(im["sequence"], []).append(im["frame_index"])
    videos = {v["id"]: v for v in yt["videos"]}
    out = {}
    for a in yt["annotations"]:
        v = videos[a["video_id"]]
        order = sorted(frames[v["name"]])
        assert len(order) == len(a["segmentations"]) == v["length"]
        for fi, seg in zip(order, a["segmentations"], strict=True):
            if seg is None:
                continue
            rle = mask_utils.frPyObjects(seg, v["height"], v["width"])
            out[(v["name"], fi, a["track_id"])] = mask_utils.decode(rle).astype(bool)
    return out


def coco_masks_by_pycocotools(job: Path) -> dict[tuple[str, int, int], np.ndarray]:
    """The job's ``annotations.json`` read by pycocotools (``COCO`` and ``annToMask``)."""
    from pycocotools.coco import COCO

    api = COCO(str(job / "annotations.json"))
    out = {}
    for a in api.dataset["annotations"]:
        im = api.imgs[a["image_id"]]
        out[(im["sequence"], im["frame_index"], a["track_id"])] = api.annToMask(a).astype(bool)
    return out


def assert_davis_agrees(job: Path, want: dict[tuple[str, int, int], np.ndarray]) -> None:
    """The job's DAVIS palette PNGs, read by PIL as DAVIS readers do, show ``want``: each
    object index's pixels lie inside its track's mask (``objects.json`` says which track),
    and a frame's painted pixels are the union of its masks (overlaps go to one object)."""
    from PIL import Image

    coco = json.loads((job / "annotations.json").read_text())
    stems: dict[str, dict[str, int]] = {}
    for im in coco["images"]:
        stems.setdefault(im["sequence"], {})[Path(im["file_name"]).stem] = im["frame_index"]
    videos = json.loads((job / "davis" / "objects.json").read_text())["videos"]
    seen = 0
    for v in videos:
        tracks = {o["index"]: o["track_id"] for o in v["objects"]}
        for png in sorted((job / "davis" / "Annotations" / v["name"]).glob("*.png")):
            fi = stems[v["sequence"]][png.stem]
            index = np.array(Image.open(png))
            mine = {t: m for (s, f, t), m in want.items()
                    if s == v["sequence"] and f == fi and t in tracks.values()}  # fmt: skip
            union = np.zeros(index.shape, bool)
            for m in mine.values():
                union |= m
            assert np.array_equal(index > 0, union), (v["name"], png.name)
            for k in np.unique(index[index > 0]):
                t = tracks[int(k)]
                assert t in mine and not (index == k)[~mine[t]].any(), (v["name"], png.name, t)
            seen += 1
    assert seen == len(coco["images"])


def assert_formats_agree(job: Path, want: dict[tuple[str, int, int], np.ndarray]) -> None:
    """pycocotools reads exactly ``want`` from the job's COCO and from its YouTube-VIS, and
    PIL reads it from its DAVIS PNGs (:func:`assert_davis_agrees`)."""
    for name, got in (("coco", coco_masks_by_pycocotools(job)), ("ytvis", ytvis_masks(job))):
        assert got.keys() == want.keys(), name
        bad = [k for k in want if not np.array_equal(got[k], want[k])]
        assert not bad, (name, bad[:5])
    assert_davis_agrees(job, want)


# -- Label Studio ----------------------------------------------------------------------


def ls_review(
    export_dir: Path,
    dest: Path,
    edit: Callable[[dict[str, Any], list[dict[str, Any]]], list[dict[str, Any]] | None]
    | None = None,
) -> Path:
    """Label Studio's JSON export after a review of every task of ``export_dir/tasks.json``.

    ``edit(task, result)`` gets each task and its annotation's result (the prediction's
    regions, copied) and returns the result to submit, or ``None`` to leave the task without
    an annotation. Tasks get ids 1.., annotations 1001...
    """
    tasks = json.loads((export_dir / "tasks.json").read_text())
    for n, t in enumerate(tasks, 1):
        t["id"] = n
        result = copy.deepcopy(t["predictions"][0]["result"])
        result = edit(t, result) if edit else result
        t["annotations"] = [] if result is None else [{
            "id": 1000 + n, "result": result, "was_cancelled": False,
            "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z",
        }]  # fmt: skip
    dest.write_text(json.dumps(tasks))
    return dest


def ls_region(rid: str, label: str, mask: np.ndarray, track: int | None) -> list[dict[str, Any]]:
    """A brush region as the editor submits it (plus its per-region track number)."""
    h, w = mask.shape
    out = [{
        "id": rid, "from_name": "mask", "to_name": "image", "type": "brushlabels",
        "original_width": w, "original_height": h, "image_rotation": 0, "origin": "manual",
        "value": {"format": "rle", "rle": lsrle.encode(mask), "brushlabels": [label]},
    }]  # fmt: skip
    if track is not None:
        out.append({"id": rid, "from_name": "track", "to_name": "image", "type": "number",
                    "value": {"number": track}})  # fmt: skip
    return out


def ls_frame(task: dict[str, Any]) -> tuple[str, int]:
    meta = task["data"]["box2mask"]
    return meta["sequence"], meta["frame_index"]


# -- CVAT ------------------------------------------------------------------------------


def cvat_review(
    xml_path: Path, dest: Path, edit: Callable[[ElementTree.Element, ElementTree.Element], None]
) -> Path:
    """The task's XML with ``edit(root, image)`` applied to each ``<image>``, as CVAT's
    export of the edited task reads."""
    tree = ElementTree.parse(xml_path)
    root = tree.getroot()
    for image in root.iter("image"):
        edit(root, image)
    tree.write(dest, encoding="utf-8", xml_declaration=True)
    return dest


def cvat_track(shape: ElementTree.Element) -> int | None:
    for a in shape.iter("attribute"):
        if a.get("name") == "track":
            return int(a.text) if (a.text or "").strip() else None
    return None


def cvat_set_mask(shape: ElementTree.Element, mask: np.ndarray) -> None:
    rle, left, top, width, height = cvat.mask_to_cvat(mask)
    shape.set("rle", ", ".join(map(str, rle)))
    for k, v in (("left", left), ("top", top), ("width", width), ("height", height)):
        shape.set(k, str(v))


def cvat_mask_shape(label: str, mask: np.ndarray, track: int | None) -> ElementTree.Element:
    el = ElementTree.Element(
        "mask", {"label": label, "source": "manual", "occluded": "0", "z_order": "0"}
    )
    cvat_set_mask(el, mask)
    a = ElementTree.SubElement(el, "attribute", {"name": "track"})
    a.text = "" if track is None else str(track)
    return el


# -- side environments (Label Studio's, datumaro's) ------------------------------------


def side_python(name: str) -> Path:
    """The python of ``.ci/venvs/<name>`` (made by .ci/run, or here on first use with the
    packages .ci/side-envs lists for it); skips the test, saying why, when it cannot be made
    (no package registry)."""
    import pytest

    venv = REPO / ".ci" / "venvs" / name
    py = venv / "bin" / "python"
    if py.is_file() and (venv / ".complete").is_file():
        return py
    cmd = [str(REPO / ".ci" / "side-env"), name]
    r = subprocess.run(cmd, capture_output=True, text=True, env={"PYTHON": sys.executable,
                       **__import__("os").environ})  # fmt: skip
    if r.returncode != 0 or not py.is_file():
        pytest.skip(f"the {name} environment could not be made ({' '.join(cmd)}): "
                    f"{(r.stderr or r.stdout).strip()[-400:]}")  # fmt: skip
    return py
