"""Names from the data through the exchange (issue 27): sequences and categories that no
tool file can hold as they are, and frames in odd places.

Each sequence ('../../ESC1', '', one with a newline and a byte that is not UTF-8, one of 300
bytes) and category (markup, a newline, a '%') goes out to CVAT and Label Studio, every file
is written inside --out, CVAT's XML parses, and an unedited review comes back with every
object unchanged. datumaro reads the CVAT task of the worst of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from cli_helpers import cli
from exchange_helpers import REPO, job_masks, ls_review, side_python

from box2mask.errors import UsageError
from box2mask.exchange import export, read_review
from box2mask.exchange.model import name_from_json, name_to_json, tool_labels, tool_text

SEQS = ["../../ESC1", "", "a\nb\udcff", "x" * 300]
CATS = ['<b>"ship"&amp;', "small\nvehicle", "50%"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """The COCO fixture (tests/data/make_coco.py) with hostile sequence and category names,
    converted with --model box."""
    from data.make_coco import make_coco

    base = tmp_path_factory.mktemp("names")
    root = base / "COCO"
    make_coco(root)
    data = json.loads((root / "annotations.json").read_text())
    for k, im in enumerate(data["images"]):
        im["sequence"] = SEQS[k % len(SEQS)]
        im["frame_index"] = k + 1
    for c, name in zip(data["categories"], CATS, strict=False):
        c["name"] = name
    (root / "annotations.json").write_text(json.dumps(data))
    out = base / "job"
    r = cli("convert", "--dataset", "coco", "--root", root, "--out", out, "--model", "box")
    assert r.exit_code == 0, r.output
    return out


def _tree(path: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs}


def test_names_as_tool_text_and_json() -> None:
    for name in [*SEQS, *CATS, "\ud800", "\t", "\x7f\x85"]:
        text = tool_text(name)
        assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in text)
        text.encode("utf-8")  # no surrogates left
        assert name_from_json(json.loads(json.dumps(name_to_json(name)))) == name
    assert len({tool_text(n) for n in [*SEQS, *CATS, "%25"]}) == len(SEQS) + len(CATS) + 1
    labels = tool_labels(
        [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}, {"id": 3, "name": "a\nb"}]
    )
    assert labels == {"car #1": 1, "car #2": 2, "a%0Ab": 3}


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_hostile_names_go_out_and_come_back(job, tmp_path, tool) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    out = outer / "deep" / "out"
    before = _tree(tmp_path)
    export(job, tool, out)
    assert {p for p in _tree(tmp_path) - before if not p.startswith("outer/deep/out/")} == set()
    coco = json.loads((job / "annotations.json").read_text())
    if tool == "cvat":
        files = sorted(out.glob("tasks/**/annotations.xml"))
        assert len(files) == len({im["sequence"] for im in coco["images"]})
        for f in files:
            root = ElementTree.parse(f).getroot()  # well-formed XML whatever the names
            labels = {el.text for el in root.iter("name") if el.text}
            assert {tool_text(n) for n in CATS[:2]} <= labels
    else:
        files = [ls_review(out, tmp_path / "ls.json")]
        config = ElementTree.fromstring((out / "label_config.xml").read_text())
        values = {el.get("value") for el in config.iter("Label")}
        assert {tool_text(n) for n in CATS[:2]} <= values
    unchanged = 0
    for f in files:
        _, res = read_review(tool, f, job, manifest=out / "box2mask-export.json")
        assert res.unmatched == [] and res.counts()["unchanged"] == len(res.changes)
        unchanged += len(res.changes)
    assert unchanged == len(coco["annotations"])


def test_missing_frames_and_frames_outside_the_document_root_write_nothing(job, tmp_path) -> None:
    with pytest.raises(UsageError, match="frame image"):
        export(job, "cvat", tmp_path / "a", image_root=tmp_path)
    assert not (tmp_path / "a").exists()
    with pytest.raises(UsageError, match="is not inside it"):
        export(job, "labelstudio", tmp_path / "b", document_root=tmp_path)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_datumaro_reads_the_task_of_a_hostile_sequence(job, tmp_path) -> None:
    py = side_python("datumaro")
    out = tmp_path / "cvat"
    export(job, "cvat", out)
    man = json.loads((out / "box2mask-export.json").read_text())
    masks = job_masks(job)
    for task in sorted(out.glob("tasks/**/annotations.xml")):
        r = subprocess.run([str(py), str(REPO / "tests" / "exchange_datumaro_run.py"), "read",
                            str(task.parent), str(tmp_path / "r.npz")],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        for name, arr in np.load(tmp_path / "r.npz").items():
            item, label, track = name.split("|")
            t, f = next(
                (t, f) for t in man["tasks"] for f in t["frames"] if Path(f["image"]).stem == item
            )
            key = (name_from_json(t["sequence"]), f["frame_index"], int(track))
            assert np.array_equal(arr, masks[key])
            assert label in {tool_text(n) for n in CATS} | {"airplane", "small_vehicle"}
