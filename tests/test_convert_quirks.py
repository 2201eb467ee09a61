"""`box2mask convert` end to end on datasets in their layouts *as published*, quirks included.

Each fixture (tests/data/make_*.py ``*_quirks``, tests/data/bad_inputs.py) is
written the way a real download looks (FORMATS.md): numbered class prefixes
(``1_Car_01``), annotation files without extension, ``imgs/`` for ``img/``,
classes outside the shared four, empty or broken annotation files, truncated
frames. The CLI runs on them and the COCO output is checked: its categories,
its objects, and what the summary says was skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from data import bad_inputs
from data.make_satsot import make_satsot_quirks

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def convert(dataset: str, root: Path, out: Path, *extra: object):
    return cli("convert", "--dataset", dataset, "--root", root, "--out", out, "--model", "box", *extra)


def coco_objects(out: Path) -> tuple[list[str], dict[tuple[str, int], list[tuple[str, tuple[float, ...]]]]]:
    """``(category names, {(sequence, frame): [(category, xyxy), ...]})`` of a COCO output."""
    data = json.loads((out / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    imgs = {i["id"]: i for i in data["images"]}
    got: dict[tuple[str, int], list[tuple[str, tuple[float, ...]]]] = {
        (i["sequence"], i["frame_index"]): [] for i in imgs.values()
    }
    for a in data["annotations"]:
        img = imgs[a["image_id"]]
        x, y, w, h = a["prompt_box"]
        got[(img["sequence"], img["frame_index"])].append((cats[a["category_id"]], (x, y, x + w, y + h)))
    return list(cats.values()), got


# -- SatSOT ---------------------------------------------------------------------------------


def test_satsot_as_shipped_converts_every_sequence_with_its_category(tmp_path: Path) -> None:
    truth = make_satsot_quirks(tmp_path / "SatSOT")
    res = convert("satsot", tmp_path / "SatSOT", tmp_path / "o", "--format", "coco")
    assert res.exit_code == 0, res.output
    names, got = coco_objects(tmp_path / "o")
    assert {"car", "airplane", "bus"} <= set(names)
    assert not any(n[0].isdigit() for n in names)  # no '1_car_01' category
    want = {
        (seq, f): [entry] if entry else []
        for seq, frames in truth.items()
        for f, entry in frames.items()
    }
    assert got.keys() == want.keys()  # 1_Car_01 (groundtruth, imgs/) is not skipped
    for key, objs in want.items():
        assert [(c, tuple(round(v, 3) for v in b)) for c, b in got[key]] == objs, key
    # what was assumed is said in the summary
    assert "imgs/" in res.output and "'groundtruth'" in res.output
    # a rerun resumes, it does not fail
    res2 = convert("satsot", tmp_path / "SatSOT", tmp_path / "o", "--format", "coco")
    assert res2.exit_code == 0, res2.output


def test_satsot_cars_with_a_numbered_prefix_are_box_filled(tmp_path: Path) -> None:
    make_satsot_quirks(tmp_path / "SatSOT")
    res = convert("satsot", tmp_path / "SatSOT", tmp_path / "o", "--sequences", "1_Car_01")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert data["annotations"] and all(a["mask_source"] == "box" for a in data["annotations"])


def test_satsot_root_one_level_too_high_says_what_to_pass(tmp_path: Path) -> None:
    make_satsot_quirks(tmp_path / "SatSOT")
    res = convert("satsot", tmp_path, tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert f"pass --root {tmp_path / 'SatSOT'}" in " ".join(res.output.split())


def test_satsot_root_one_level_too_low_says_what_to_pass(tmp_path: Path) -> None:
    make_satsot_quirks(tmp_path / "SatSOT")
    res = convert("satsot", tmp_path / "SatSOT" / "bus_01", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert "looks like one sequence folder" in " ".join(res.output.split())
