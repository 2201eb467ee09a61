"""``box2mask eval``: scores against known-geometry ground truth, --predictions, --sweep, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import UsageError
from box2mask.evaluate import eval_options, evaluate, parse_sweep, setting_label, sweep
from tests.data.make_eval_coco import HW, make_eval_coco

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("evalcoco")
    return root, make_eval_coco(root)


# -- independent reference: the official Boundary IoU code, full frame ----------
def ref_boundary(m: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    h, w = m.shape
    d = max(1, int(round(ratio * np.sqrt(h * h + w * w))))
    padded = cv2.copyMakeBorder(m.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
    return m & (eroded == 0)


def ref_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return 1.0 if u == 0 else np.count_nonzero(a & b) / u


def ref_biou(a: np.ndarray, b: np.ndarray) -> float:
    return ref_iou(ref_boundary(a), ref_boundary(b))


def box_fill(xyxy: list[float]) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in xyxy)
    m = np.zeros(HW, bool)
    m[y1:y2, x1:x2] = True
    return m


def expected_box_scores(root: Path, truth: dict) -> dict:
    """Per-object and per-frame means for box-filled predictions, from the JSON and numpy only."""
    data = json.loads((root / "annotations.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    cats = {c["id"]: c["name"] for c in data["categories"]}
    per_obj: dict[str, list[tuple[float, float]]] = {}
    frames: dict[tuple[str, int], list[np.ndarray]] = {}
    for a in data["annotations"]:
        im = images[a["image_id"]]
        key = (im["sequence"], im["frame_index"], a["track_id"])
        if key not in truth:
            continue
        x, y, w, h = a["bbox"]
        pred = box_fill([x, y, x + w, y + h])
        gt = truth[key]
        per_obj.setdefault(cats[a["category_id"]], []).append(
            (ref_iou(pred, gt), ref_biou(pred, gt))
        )
        pu, gu = frames.setdefault(key[:2], [np.zeros(HW, bool), np.zeros(HW, bool)])
        pu |= pred
        gu |= gt
    allv = [v for vs in per_obj.values() for v in vs]
    fr = [(ref_iou(p, g), ref_biou(p, g)) for p, g in frames.values()]
    return {
        "iou": np.mean([v[0] for v in allv]),
        "biou": np.mean([v[1] for v in allv]),
        "at50": np.mean([v[0] >= 0.5 for v in allv]),
        "at75": np.mean([v[0] >= 0.75 for v in allv]),
        "n": len(allv),
        "by_cat": {c: np.mean([v[0] for v in vs]) for c, vs in per_obj.items()},
        "frame_iou": np.mean([v[0] for v in fr]),
        "frame_biou": np.mean([v[1] for v in fr]),
        "frames": len(fr),
    }


def test_box_model_scores_match_the_fixture_geometry(dataset) -> None:
    root, truth = dataset
    want = expected_box_scores(root, truth)
    # the airplane band fills half its box: IoU exactly 0.5, by construction
    assert want["by_cat"]["airplane"] == pytest.approx(0.5)
    rep = evaluate(dataset="coco", root=root, model="box")
    s = rep.summary
    po = s["per_object"]["overall"]
    assert po["count"] == want["n"] == 16
    assert po["iou"] == pytest.approx(want["iou"], abs=1e-12)
    assert po["biou"] == pytest.approx(want["biou"], abs=1e-12)
    assert po["iou@0.5"] == pytest.approx(want["at50"])
    assert po["iou@0.75"] == pytest.approx(want["at75"])
    for cat, v in want["by_cat"].items():
        assert s["per_object"]["by_category"][cat]["iou"] == pytest.approx(v, abs=1e-12)
    assert s["per_frame"]["count"] == want["frames"] == 4
    assert s["per_frame"]["iou"] == pytest.approx(want["frame_iou"], abs=1e-12)
    assert s["per_frame"]["biou"] == pytest.approx(want["frame_biou"], abs=1e-12)
    # objects and frames without ground truth are skipped and counted
    assert rep.objects_without_gt == 4  # the maskless ship of each scored frame
    assert rep.frames_without_gt == 1  # s3
    assert rep.objects_by_source == {"box": 16}


def test_ground_truth_leaving_a_small_window_is_scored_whole(dataset) -> None:
    """With a 16-px crop, ship 5's mask reaches past its window: the score must not change."""
    root, truth = dataset
    big = evaluate(dataset="coco", root=root, model="box")
    small = evaluate(dataset="coco", root=root, model="box", crop_size=16, context=1.0)
    for key in ("per_object", "per_frame"):
        assert json.dumps(small.summary[key], sort_keys=True) == json.dumps(
            big.summary[key], sort_keys=True
        )
    x1, y1 = 20, 44
    gt = truth[("s1", 1, 5)]
    assert ref_iou(box_fill([x1, y1, x1 + 10, y1 + 6]), gt) == pytest.approx(10 / 22)


def test_small_object_policy_scores_cars_as_boxes(dataset) -> None:
    root, truth = dataset
    rep = evaluate(dataset="coco", root=root, model="ellipse")
    assert rep.objects_by_source == {"box": 4, "ellipse": 12}
    assert rep.settings["box_fill_classes"] == ["car"]
    # a car box without one quarter: box IoU 48/64
    assert rep.summary["per_object"]["by_category"]["car"]["iou"] == pytest.approx(0.75)
    off = evaluate(dataset="coco", root=root, model="ellipse", box_fill_classes="")
    assert off.objects_by_source == {"ellipse": 16}
    assert off.summary["per_object"]["by_category"]["car"]["iou"] != pytest.approx(0.75)


def test_report_settings_hold_every_option_that_changes_the_masks(
    dataset, tiny_checkpoints
) -> None:
    """The settings are the job identity's options (less formats and shard), so a mask-changing
    option is reported without eval naming it: --clip-to-obb, --share-crops, --precision..."""
    import dataclasses

    from box2mask.evaluate import NOT_EVALUATED
    from box2mask.options import ConvertOptions, job_identity

    root, _ = dataset
    identity = {f.name for f in dataclasses.fields(ConvertOptions) if "identity" in f.metadata}
    shape = evaluate(dataset="coco", root=root, model="ellipse", clip_to_obb=True).settings
    assert shape["clip_to_obb"] is True and shape["precision"] is None  # no model precision
    opts = eval_options(dataset="coco", root=root, clip_to_obb=True)
    assert set(job_identity(opts, False, "fp32")) - set(NOT_EVALUATED) <= set(shape)
    prompt = evaluate(
        dataset="coco", root=root, model="sam", checkpoint=str(tiny_checkpoints["sam"]),
        device="cpu", share_crops=0.5, sequences="s1", classes="airplane",
    ).settings  # fmt: skip
    assert prompt["share_crops"] == 0.5 and prompt["precision"] == "fp32"
    assert prompt["upsample"] == 2 and prompt["interpolation"] == "bicubic"
    assert identity - set(NOT_EVALUATED) - {"temporal", "prompt_every"} <= set(prompt)
    assert not set(NOT_EVALUATED) & (set(shape) | set(prompt))


def test_predictions_from_convert_score_like_the_model_inside_eval(dataset, tmp_path) -> None:
    root, _ = dataset
    out = tmp_path / "job"
    r = runner.invoke(
        app,
        [
            "convert",
            "--dataset",
            "coco",
            "--root",
            str(root),
            "--out",
            str(out),
            "--model",
            "ellipse",
        ],
    )
    assert r.exit_code == 0, r.output
    r1 = runner.invoke(
        app,
        ["eval", "--dataset", "coco", "--root", str(root), "--model", "ellipse",
         "--report", str(tmp_path / "model.json"), "--csv", str(tmp_path / "model.csv")],
    )  # fmt: skip
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(
        app,
        ["eval", "--dataset", "coco", "--root", str(root),
         "--predictions", str(out / "annotations.json"), "--report", str(tmp_path / "pred.json")],
    )  # fmt: skip
    assert r2.exit_code == 0, r2.output
    a = json.loads((tmp_path / "model.json").read_text())
    b = json.loads((tmp_path / "pred.json").read_text())
    for key in ("per_object", "per_frame", "per_frame_by_category"):
        assert _close(a[key], b[key]), key
    assert a["objects"] == b["objects"] == 16 and b["missing_predictions"] == 0
    # the mask sources are read back from the file
    assert (
        b["per_object_by_source"].keys() == a["per_object_by_source"].keys() == {"box", "ellipse"}
    )
    # the CSV has one row per category and the overall row, same numbers as the JSON
    rows = list(csv.DictReader((tmp_path / "model.csv").open()))
    assert [r["category"] for r in rows] == ["airplane", "car", "ship", "overall"]
    assert float(rows[-1]["iou"]) == pytest.approx(a["per_object"]["overall"]["iou"])
    assert float(rows[-1]["frame_biou"]) == pytest.approx(a["per_frame"]["biou"])
    # the terminal table states the small-object policy and the overall row
    assert "classes car" in r1.output and "overall" in r1.output


def test_a_coco_file_of_another_tool_scores_by_file_name_and_annotation_id(
    dataset, tmp_path
) -> None:
    """Predictions without box2mask's fields (sequence, frame_index, track_id) are placed by
    file_name and matched by annotation id on a coco dataset whose objects have no track_id
    (the adapter numbers them by their annotation id): the same scores as box2mask's own
    file. On other datasets such a file is refused (test_bad_inputs' eval rows)."""
    import shutil

    root, _ = dataset
    plain = tmp_path / "plain"
    shutil.copytree(root, plain)
    gt = json.loads((plain / "annotations.json").read_text())
    for a in gt["annotations"]:
        a.pop("track_id")
    (plain / "annotations.json").write_text(json.dumps(gt))
    out = tmp_path / "job"
    r = runner.invoke(app, ["convert", "--dataset", "coco", "--root", str(plain), "--out",
                            str(out), "--model", "ellipse"])  # fmt: skip
    assert r.exit_code == 0, r.output
    own = evaluate(dataset="coco", root=plain, predictions=out / "annotations.json")
    coco = json.loads((out / "annotations.json").read_text())
    for im in coco["images"]:
        im.pop("sequence"), im.pop("frame_index")
    for a in coco["annotations"]:
        a["id"] = a.pop("track_id")  # the other tool kept the dataset's annotation ids
    (tmp_path / "other.json").write_text(json.dumps(coco))
    other = evaluate(dataset="coco", root=plain, predictions=tmp_path / "other.json")
    assert other.missing_predictions == own.missing_predictions == 0
    assert other.summary["per_object"] == own.summary["per_object"]


def _close(a, b) -> bool:  # noqa: ANN001
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return abs(a - b) <= 1e-12
    return a == b


def test_missing_predictions_score_as_empty_masks(dataset, tmp_path) -> None:
    root, truth = dataset
    out = tmp_path / "job"
    r = runner.invoke(
        app,
        ["convert", "--dataset", "coco", "--root", str(root), "--out", str(out), "--model", "box"],
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "annotations.json").read_text())
    first = next(
        im["id"] for im in data["images"] if im["sequence"] == "s1" and im["frame_index"] == 1
    )
    # drop the airplane (track 1) of s1 frame 1
    data["annotations"] = [
        a for a in data["annotations"] if not (a["image_id"] == first and a["track_id"] == 1)
    ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(data))
    full = evaluate(dataset="coco", root=root, model="box")
    rep = evaluate(dataset="coco", root=root, predictions=pred)
    assert rep.missing_predictions == 1
    n = full.summary["per_object"]["by_category"]["airplane"]["count"]
    assert rep.summary["per_object"]["by_category"]["airplane"]["iou"] == pytest.approx(
        0.5 * (n - 1) / n
    )


def test_eval_without_ground_truth_is_a_clear_error(tmp_path) -> None:
    make_eval_coco(tmp_path, with_masks=False)
    r = runner.invoke(app, ["eval", "--dataset", "coco", "--root", str(tmp_path), "--model", "box"])
    assert r.exit_code == 2
    assert "nothing to score" in r.output and "ground-truth mask" in r.output


def test_bad_option_combinations_exit_2(dataset, tmp_path) -> None:
    root, _ = dataset
    r = runner.invoke(
        app,
        ["eval", "--dataset", "coco", "--root", str(root), "--predictions", str(tmp_path / "x.json"), "--sweep"],
    )  # fmt: skip
    assert r.exit_code == 2 and "--sweep" in r.output
    r = runner.invoke(
        app,
        [
            "eval",
            "--dataset",
            "coco",
            "--root",
            str(root),
            "--predictions",
            str(tmp_path / "x.json"),
        ],
    )
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(
        app, ["eval", "--dataset", "coco", "--root", str(root), "--sweep-axes", "zoom"]
    )
    assert r.exit_code == 2 and "unknown axis 'zoom'" in r.output


def test_parse_sweep_axes_values_and_labels() -> None:
    axes = parse_sweep(
        "crop_size,box_fill_classes", ["crop_size=256,512", "box_fill_classes=car+ship,none"]
    )
    assert axes == {"crop_size": (256, 512), "box_fill_classes": ("car,ship", "")}
    assert set(parse_sweep(None)) >= {"crop_size", "interpolation", "window", "hq_token_only"}
    assert parse_sweep("hq_token_only", ["hq_token_only=summed,hq"])["hq_token_only"] == (
        False,
        True,
    )
    with pytest.raises(UsageError, match="bad value"):
        parse_sweep("window", ["window=left"])
    assert setting_label("crop_size", 256) == "crop 256 (x4 upsample)"
    assert setting_label("hq_token_only", True) == "HQ token only"


def test_sweep_runs_one_change_at_a_time_and_skips_axes_that_do_not_apply(dataset) -> None:
    root, _ = dataset
    rep = sweep(
        eval_options(dataset="coco", root=root, model="ellipse"),
        parse_sweep("crop_size,interpolation,box_fill_classes"),
    )
    assert [r.label for r in rep.rows] == ["base", "box-fill classes: none"]
    assert any("crop_size" in n for n in rep.notes) and any("interpolation" in n for n in rep.notes)
    base, off = rep.rows[0].report, rep.rows[1].report
    assert base.objects_by_source == {"box": 4, "ellipse": 12}
    assert off.objects_by_source == {"ellipse": 16}
    d = rep.to_dict()
    assert [r["setting"] for r in d["rows"]] == ["base", "box-fill classes: none"]


def test_sweep_cli_with_a_prompt_model(dataset, tmp_path, tiny_checkpoints) -> None:
    """hq-sam (tiny random weights): crop size (with its upsample factor) and HQ-token rows."""
    root, _ = dataset
    r = runner.invoke(
        app,
        ["eval", "--dataset", "coco", "--root", str(root), "--model", "hq-sam",
         "--checkpoint", str(tiny_checkpoints["hq-sam"]), "--device", "cpu", "--sequences", "s1", "--classes", "airplane",
         "--sweep-axes", "crop_size,hq_token_only", "--sweep-values", "crop_size=256",
         "--csv", str(tmp_path / "sweep.csv"), "--report", str(tmp_path / "sweep.json")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [row["setting"] for row in rows] == ["base", "crop 256 (x4 upsample)", "HQ token only"]
    assert all(int(row["objects"]) == 2 for row in rows)
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["rows"][1]["settings"]["upsample"] == 4
    assert data["rows"][2]["settings"]["hq_token_only"] is True
