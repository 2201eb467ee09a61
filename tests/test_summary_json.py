"""``convert --summary-json FILE``: the run's record, valid against its shipped JSON Schema.

The record is checked with ``jsonschema`` (draft 2020-12, formats checked)
against ``box2mask/schemas/convert-summary.schema.json``; its counts against
the COCO output itself; ``finished.json`` holds the same record; a stopped run
writes a ``stopped`` record; a bad ``--summary-json`` is refused before work.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.summary import SCHEMA_VERSION, load_schema, schema_path
from tests.data.make_viso_many import make_viso_many
from tests.kill_helpers import disk_full_after

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "viso-mini"
runner = CliRunner()


def _validate(record: dict) -> None:
    jsonschema.validate(record, load_schema(), format_checker=jsonschema.FormatChecker())


def _convert(root: Path, out: Path, *extra: str):
    args = ["convert", "--dataset", "viso", "--root", str(root), "--out", str(out), *extra]
    return runner.invoke(app, args)


def test_the_schema_is_a_valid_draft_2020_12_schema_shipped_in_the_package():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["version"] == {"const": SCHEMA_VERSION}
    assert schema_path().parent.name == "schemas" and schema_path().parent.parent.name == "box2mask"


def test_the_example_runs_summary_validates_and_agrees_with_its_output(tmp_path):
    out, path = tmp_path / "job", tmp_path / "reports" / "summary.json"
    res = _convert(EXAMPLE, out, "--format", "coco,png", "--split", "val=0.3",
                   "--summary-json", str(path))  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads(path.read_text())
    _validate(record)
    assert record == json.loads((out / ".box2mask" / "finished.json").read_text())
    assert record["status"] == "finished" and record["version"] == SCHEMA_VERSION
    assert record["model"]["name"] == "lite" and record["model"]["requested"] == "auto"
    assert record["model"]["kind"] == "crop"
    assert "no HQ-SAM, SAM or SAM 2 checkpoint found" in record["model"]["why"]
    coco = json.loads((out / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_both = Counter((names[a["category_id"]], a["mask_source"]) for a in coco["annotations"])
    got = {(c, s): n for c, row in record["objects"]["by_class_and_source"].items()
           for s, n in row.items()}  # fmt: skip
    assert got == dict(by_both)
    assert record["objects"]["by_source"] == dict(
        Counter(a["mask_source"] for a in coco["annotations"])
    )
    assert record["objects"]["total"] == len(coco["annotations"])
    assert record["frames"] == {"total": 24, "converted": 24, "already_done": 0, "skipped": 0}
    assert record["split"]["sequences"] == {"train": {"sequences": 2, "frames": 16},
                                            "val": {"sequences": 1, "frames": 8}}  # fmt: skip
    for rel in record["outputs"]:
        assert (out / rel).exists()
    assert {"annotations.json", "annotations_val.json", "plane"} <= set(record["outputs"])
    assert set(record["timings"]["phases"]) == {"prepare", "convert", "assemble"}
    # a rerun of the finished job: nothing converted, every frame already done
    res = _convert(EXAMPLE, out, "--format", "coco,png", "--split", "val=0.3",
                   "--summary-json", str(path))  # fmt: skip
    again = json.loads(path.read_text())
    _validate(again)
    assert again["frames"]["converted"] == 0 and again["frames"]["already_done"] == 24


def test_skips_are_listed_with_their_kind_file_and_reason(tmp_path):
    root = tmp_path / "viso"
    shutil.copytree(EXAMPLE, root)
    bad = root / "mot" / "plane" / "001" / "img" / "000002.jpg"
    bad.write_bytes(b"not a jpeg")
    gt = root / "mot" / "ship" / "001" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "3,9,x,y,1,1,1,-1,-1,-1\n")
    path = tmp_path / "s.json"
    res = _convert(root, tmp_path / "job", "--model", "ellipse", "--summary-json", str(path))
    assert res.exit_code == 0, res.output
    record = json.loads(path.read_text())
    _validate(record)
    assert record["frames"]["skipped"] == 1 and record["frames"]["converted"] == 23
    kinds = {r["kind"]: r for r in record["skipped"]["reports"]}
    # (the reason's words depend on the decoder: "cannot be decoded", or "cannot be read" once
    # ultralytics, imported by another test, has patched the image readers)
    assert (
        kinds["frame"]["file"] == str(bad) and "frame image cannot be" in kinds["frame"]["reason"]
    )
    assert kinds["annotation"]["file"] == str(gt) and kinds["annotation"]["line"] is not None
    assert record["skipped"]["by_kind"] == {"annotation": 1, "frame": 1}
    assert record["model"]["why"] == "--model ellipse was given"


def test_a_stopped_run_writes_a_stopped_record_and_no_finished_json(tmp_path, monkeypatch):
    root = tmp_path / "viso"
    make_viso_many(root, (6, 5))
    disk_full_after(monkeypatch, 4)
    path = tmp_path / "s.json"
    res = _convert(root, tmp_path / "job", "--model", "ellipse", "--summary-json", str(path))
    assert res.exit_code == 1, res.output
    record = json.loads(path.read_text())
    _validate(record)
    assert record["status"] == "stopped" and "no space left on device" in record["message"]
    assert record["frames"]["converted"] == 4 and record["frames"]["total"] == 11
    assert not (tmp_path / "job" / ".box2mask" / "finished.json").exists()


def test_a_summary_json_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    for target, msg in [(tmp_path / "folder", "is a folder"),
                        (tmp_path / "file" / "s.json", "is a file, not a folder")]:  # fmt: skip
        out = tmp_path / "job"
        res = _convert(EXAMPLE, out, "--model", "box", "--summary-json", str(target))
        assert res.exit_code == 2 and msg in res.output, res.output
        assert not out.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"status": "done"},
        {"frames": {"total": -1, "converted": 0, "already_done": 0, "skipped": 0}},
        {
            "objects": {
                "total": 1,
                "by_source": {"box": "1"},
                "by_class": {},
                "by_class_and_source": {},
            }
        },  # fmt: skip
    ],
)
def test_the_schema_refuses_a_record_that_breaks_it(tmp_path, change):
    path = tmp_path / "s.json"
    res = _convert(EXAMPLE, tmp_path / "job", "--model", "box", "--summary-json", str(path))
    assert res.exit_code == 0
    record = {**json.loads(path.read_text()), **change}
    with pytest.raises(jsonschema.ValidationError):
        _validate(record)
