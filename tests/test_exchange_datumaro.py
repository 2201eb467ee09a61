"""CVAT's side of the exchange, read and written by datumaro, the dataset library CVAT builds
on (issue 27).

CVAT's server cannot run here (it needs PostgreSQL, Redis and a dozen services), and its own
format code (cvat/apps/dataset_manager/formats/cvat.py) needs CVAT's Django models, so
datumaro's CVAT importer and exporter (datumaro/plugins/data_formats/cvat) stand in: the
lineage CVAT's format code comes from. It runs in an environment of its own
(.ci/venvs/datumaro, made by .ci/side-env: datumaro wants pyarrow~=25 and an older OpenCV
than box2mask's), through tests/exchange_datumaro_run.py.

- datumaro reads box2mask's CVAT task with every mask bit for bit and its track id;
- a task edited and written back by datumaro's CVAT exporter (its own XML: masks as
  whole-frame RLE, its own image names) comes back through ``box2mask import`` into the job
  with exactly the reviewer's changes, in its COCO (read by pycocotools) and its other
  formats (YouTube-VIS, DAVIS).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli
from exchange_helpers import (
    ALL_FORMATS,
    REPO,
    assert_formats_agree,
    convert_job,
    copy_job,
    job_files,
    job_masks,
    side_python,
)
from pycocotools.coco import COCO
from test_exchange import MINI

from box2mask.exchange import Selection, export, read_review
from box2mask.exchange.polygons import mask_to_polygons

RUN = REPO / "tests" / "exchange_datumaro_run.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def datumaro() -> Path:
    return side_python("datumaro")


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    return convert_job(MINI, tmp_path_factory.mktemp("dm") / "job", "--format", ALL_FORMATS)


def _run(py: Path, *args: object) -> None:
    r = subprocess.run(
        [str(py), str(RUN), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]


def _names(out: Path) -> dict[str, tuple[str, int, list[int]]]:
    """``{image stem: (sequence, frame_index, tracks)}`` from the export's manifest."""
    man = json.loads((out / "box2mask-export.json").read_text())
    return {Path(f["image"]).stem: (t["sequence"], f["frame_index"], f["tracks"])
            for t in man["tasks"] for f in t["frames"]}  # fmt: skip


@pytest.mark.parametrize("shape", ["mask", "polygon"])
def test_datumaro_reads_every_mask_and_track(datumaro, job, tmp_path, shape) -> None:
    out = tmp_path / "cvat"
    export(job, "cvat", out, shape=shape)
    names = _names(out)
    masks = job_masks(job)
    coco = json.loads((job / "annotations.json").read_text())
    label = {c["id"]: c["name"] for c in coco["categories"]}
    imgs = {im["id"]: im for im in coco["images"]}
    labels = {(imgs[a["image_id"]]["sequence"], imgs[a["image_id"]]["frame_index"], a["track_id"]):
              label[a["category_id"]] for a in coco["annotations"]}  # fmt: skip
    got: dict[tuple[str, int, int], np.ndarray | list] = {}
    for task in sorted(out.glob("tasks/**/annotations.xml")):
        _run(datumaro, "read", task.parent, tmp_path / "read.npz")
        for name, arr in np.load(tmp_path / "read.npz").items():
            parts = name.split("|")
            poly = parts[0] == "poly"
            item, lab, track = parts[1:4] if poly else parts
            seq, fi, _ = names[item]
            key = (seq, fi, int(track))
            assert lab == labels[key]
            if poly:
                got.setdefault(key, []).append(arr)
            else:
                assert key not in got
                got[key] = arr
    assert got.keys() == masks.keys()
    for key, mask in masks.items():
        if shape == "mask":
            assert np.array_equal(got[key], mask), key
        else:  # the polygons box2mask wrote, as datumaro read them (two decimals)
            want = sorted(np.round(np.array(p), 2).tolist() for p in mask_to_polygons(mask))
            assert sorted(np.round(a, 2).tolist() for a in got[key]) == want, key


def test_a_task_edited_and_written_by_datumaro_comes_back(datumaro, job, tmp_path) -> None:
    seq = "plane/001"
    out = tmp_path / "cvat"
    export(job, "cvat", out, Selection(sequences=(seq,)))
    names = _names(out)
    masks = job_masks(job)
    (item, (_, fi, tracks)), *_ = sorted(names.items())
    assert len(tracks) >= 2
    changed, deleted = tracks[0], tracks[1]
    new_track = max(tracks) + 50
    grown = masks[(seq, fi, changed)].copy()
    grown[:, 1:] |= grown[:, :-1]
    added = np.zeros_like(grown)
    added[10:30, 40:90] = True
    np.savez(
        tmp_path / "edits.npz",
        **{f"change|{item}|{changed}": grown, f"delete|{item}|{deleted}": np.zeros(1),
           f"add|{item}|airplane|{new_track}": added},
    )  # fmt: skip
    task = next(iter(out.glob("tasks/**/annotations.xml"))).parent
    _run(datumaro, "edit", task, tmp_path / "edits.npz", tmp_path / "back")
    xml = next(iter((tmp_path / "back").glob("*.xml")))
    _, res = read_review("cvat", xml, job, manifest=out / "box2mask-export.json")
    kinds = {
        (c.kind, c.key.frame_index, c.key.track_id) for c in res.changes if c.kind != "unchanged"
    }
    assert kinds == {("changed", fi, changed), ("removed", fi, deleted), ("added", fi, new_track)}
    assert res.unmatched == []
    sent = sum(len(t) for _, _, t in names.values())
    assert res.counts()["unchanged"] == sent - 2
    rec = {c.key.track_id: c.record for c in res.changes if c.record}
    from box2mask.exchange import _codec

    assert np.array_equal(_codec.decode(rec[changed]["segmentation"], grown.shape), grown)
    assert np.array_equal(_codec.decode(rec[new_track]["segmentation"], grown.shape), added)

    # into the job: its COCO holds exactly those changes, and its other formats agree
    fixed = copy_job(job, tmp_path / "fixed")
    r = cli("import", "--from", "cvat", xml, "--job", fixed,
            "--manifest", out / "box2mask-export.json")  # fmt: skip
    assert r.exit_code == 0, r.output
    want = dict(masks)
    want[(seq, fi, changed)] = grown
    del want[(seq, fi, deleted)]
    want[(seq, fi, new_track)] = added
    assert_formats_agree(fixed, want)
    api = COCO(str(fixed / "annotations.json"))
    marked = {a["track_id"]: a for a in api.anns.values() if "review" in a}
    assert set(marked) == {changed, new_track}
    assert all(a["review_tool"] == "cvat" for a in marked.values())
    labels = {c["id"]: c["name"] for c in api.dataset["categories"]}
    assert labels[marked[new_track]["category_id"]] == "airplane"
    snap = job_files(fixed)  # importing it again changes no byte
    r = cli("import", "--from", "cvat", xml, "--job", fixed,
            "--manifest", out / "box2mask-export.json")  # fmt: skip
    assert r.exit_code == 0 and "nothing written" in r.output, r.output
    assert job_files(fixed) == snap
