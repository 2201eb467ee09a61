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

import pytest
from data import bad_inputs
from data.make_satsot import make_satsot_quirks
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def convert(dataset: str, root: Path, out: Path, *extra: object):
    return cli(
        "convert", "--dataset", dataset, "--root", root, "--out", out, "--model", "box", *extra
    )


def coco_objects(
    out: Path,
) -> tuple[list[str], dict[tuple[str, int], list[tuple[str, tuple[float, ...]]]]]:
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
        got[(img["sequence"], img["frame_index"])].append(
            (cats[a["category_id"]], (x, y, x + w, y + h))
        )
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


# -- the bad-input rows (issue 16 items 2, 3, 7): builder, args, exit code, message ------------

#: ``(builder in tests/data/bad_inputs.py, dataset, extra CLI args, exit code, substring of the output)``;
#: every row runs ``convert --dataset D --root <builder's root> --out O --model M`` (box unless given).
BAD_INPUTS = [
    (
        "build_satsot_quirks",
        "satsot",
        [],
        0,
        "ground truth read from 'groundtruth' without extension",
    ),
    ("build_satsot_unknown_category", "satsot", [], 0, "2 converted"),
    # 3 lines for 4 images (a real copy: 705 for 750): accepted and said, also under --strict
    (
        "build_satsot_quirks",
        "satsot",
        ["--strict"],
        0,
        "frame-count mismatch: 3 ground-truth lines but 4 images in imgs/",
    ),
    (
        "build_satsot_root_too_high",
        "satsot",
        [],
        2,
        "the sequence folders are one level down, in 'SatSOT': pass --root",
    ),
    (
        "build_satsot_root_too_low",
        "satsot",
        [],
        2,
        "looks like one sequence folder: pass its parent",
    ),
    ("build_viso_gt_empty", "viso", [], 0, "gt.txt is empty; sequence skipped"),
    ("build_viso_gt_empty", "viso", ["--strict"], 2, "gt.txt is empty; sequence skipped"),
    ("build_viso_gt_binary", "viso", [], 0, "gt.txt has no readable row; sequence skipped"),
    ("build_viso_gt_binary", "viso", ["--strict"], 2, "gt.txt:1: expected at least 6 values"),
    (
        "build_viso_gt_absent_only",
        "viso",
        [],
        0,
        "3 row(s) with w <= 0, h <= 0 or NaN skipped as absent targets (all rows",
    ),
    (
        "build_viso_absent_rows",
        "viso",
        [],
        0,
        "gt.txt:2: 3 row(s) with w <= 0, h <= 0 or NaN skipped as absent targets: line(s) 2, 3, 4",
    ),
    ("build_viso_absent_rows", "viso", ["--strict"], 0, "absent 3"),
    (
        "build_viso_truncated_jpeg",
        "viso",
        ["--model", "classical"],
        0,
        "000002.jpg: frame image cannot be read: JPEG has no end-of-image marker",
    ),
    (
        "build_viso_truncated_jpeg",
        "viso",
        ["--model", "classical", "--strict"],
        2,
        "JPEG has no end-of-image marker (file truncated)",
    ),
    (
        "build_viso_truncated_png",
        "viso",
        ["--model", "classical"],
        0,
        "000002.png: frame image cannot be read: PNG has no IEND chunk",
    ),
    (
        "build_viso_empty_frame_file",
        "viso",
        ["--model", "classical"],
        0,
        "000002.jpg: frame image is an empty file",
    ),
    ("build_viso_sequence_without_gt", "viso", [], 0, "sequence car/001 has no gt/gt.txt; skipped"),
    (
        "build_viso_only_sequence_without_gt",
        "viso",
        [],
        2,
        "has no sequence with annotations: nothing to convert",
    ),
    (
        "build_viso_good",
        "viso",
        ["--classes", "bus"],
        2,
        "--classes: viso has no class 'bus'; its classes: airplane, ship, train, car",
    ),
]


@pytest.mark.parametrize(
    ("builder", "dataset", "args", "code", "message"),
    BAD_INPUTS,
    ids=[f"{r[0]}{'-' + '-'.join(a.strip('-') for a in r[2]) if r[2] else ''}" for r in BAD_INPUTS],
)
def test_bad_input_row(
    tmp_path: Path, builder: str, dataset: str, args: list[str], code: int, message: str
) -> None:
    root = getattr(bad_inputs, builder)(tmp_path / "data")
    model = [] if "--model" in args else ["--model", "box"]
    res = cli(
        "convert", "--dataset", dataset, "--root", root, "--out", tmp_path / "o", *model, *args
    )
    text = " ".join(res.output.split())
    assert res.exit_code == code, res.output
    assert message in text, res.output
    assert "internal error" not in text


def test_viso_broken_gt_keeps_the_other_sequences_frames(tmp_path: Path) -> None:
    for builder in ("build_viso_gt_empty", "build_viso_gt_binary"):
        root = getattr(bad_inputs, builder)(tmp_path / builder)
        out = tmp_path / builder / "o"
        res = convert("viso", root, out)
        assert res.exit_code == 0, res.output
        _, got = coco_objects(out)
        assert sorted(got) == [
            ("plane/001", 1),
            ("plane/001", 2),
        ]  # car/001 skipped, nothing claimed empty
        assert all(len(v) == 1 for v in got.values())


def test_viso_absent_rows_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    root = bad_inputs.build_viso_absent_rows(tmp_path)
    res = convert("viso", root, tmp_path / "o")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "skipped inputs │ absent 3" in text
    _, got = coco_objects(tmp_path / "o")
    assert [len(got[("car/001", f)]) for f in (1, 2, 3)] == [1, 0, 1]


def test_truncated_frame_is_skipped_and_the_rest_converted(tmp_path: Path) -> None:
    root = bad_inputs.build_viso_truncated_jpeg(tmp_path)
    res = convert("viso", root, tmp_path / "o", "--model", "classical")
    assert res.exit_code == 0, res.output
    assert "frame 1" in " ".join(res.output.split())
    _, got = coco_objects(tmp_path / "o")
    assert ("plane/001", 2) not in got and ("plane/001", 1) in got


# -- VISO, OOTB, SAT-MTB, MOT as published ----------------------------------------------------


def _assert_objects(
    out: Path, want: dict[tuple[str, int], list[tuple[str, tuple[float, ...]]]]
) -> None:
    _, got = coco_objects(out)
    assert got.keys() == want.keys()
    for key, objs in want.items():
        assert sorted((c, tuple(round(v, 3) for v in b)) for c, b in got[key]) == sorted(objs), key


def test_viso_as_published_converts_with_its_quirks(tmp_path: Path) -> None:
    from data.make_viso import make_viso_quirks

    truth = make_viso_quirks(tmp_path / "VISO")
    res = convert("viso", tmp_path / "VISO", tmp_path / "o")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    names, _ = coco_objects(tmp_path / "o")
    assert names[:4] == ["airplane", "ship", "train", "car"]
    _assert_objects(
        tmp_path / "o",
        {
            (s, f): [(c, b) for _, c, b in objs]
            for s, frames in truth.items()
            for f, objs in frames.items()
        },
    )
    assert "2 row(s) with w <= 0, h <= 0 or NaN skipped as absent targets: line(s) 2, 4" in text
    assert "line starts with an empty field" in text
    assert "sequence train/001 has no gt/gt.txt; skipped" in text


def test_ootb_as_published_converts_with_its_quirks(tmp_path: Path) -> None:
    from data.make_satsot import make_ootb_quirks

    truth = make_ootb_quirks(tmp_path / "OOTB")
    res = convert("ootb", tmp_path / "OOTB", tmp_path / "o")
    assert res.exit_code == 0, res.output
    names, _ = coco_objects(tmp_path / "o")
    assert {"car", "airplane", "bus"} <= set(names)
    _assert_objects(
        tmp_path / "o",
        {(s, f): [e] if e else [] for s, frames in truth.items() for f, e in frames.items()},
    )


def test_satmtb_as_published_converts_extensionless_mot_files(tmp_path: Path) -> None:
    """SAT-MTB's MOT text has no extension for airplane (``mot/01``), ``.txt`` for car: both read."""
    from data.make_satmtb import make_satmtb

    make_satmtb(tmp_path / "SAT-MTB")
    res = convert("satmtb", tmp_path / "SAT-MTB", tmp_path / "o")
    assert res.exit_code == 0, res.output
    names, got = coco_objects(tmp_path / "o")
    cats = {c for objs in got.values() for c, _ in objs}
    assert {"airplane", "car"} <= cats and set(names[:4]) == {"airplane", "ship", "train", "car"}


def test_mot_absent_rows_are_counted_in_the_summary(tmp_path: Path) -> None:
    from data.make_mot import make_mot

    make_mot(tmp_path / "mot")
    res = convert("mot", tmp_path / "mot", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "skipped as absent targets" in " ".join(res.output.split())
