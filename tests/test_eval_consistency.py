"""``eval`` reports temporal consistency along tracks (issue 14.4), for every model.

The eval COCO fixture's objects move by whole pixels with their boxes, so the
true masks and the ``ellipse`` model's masks are perfectly consistent; a mask
planted off its box in one frame must show as a drop. eval's number is checked
against :func:`box2mask.consistency.temporal_consistency` read from the COCO files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.consistency import temporal_consistency
from box2mask.evaluate import evaluate
from tests.data.make_eval_coco import make_eval_coco

runner = CliRunner()


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("evalcoco")
    truth = make_eval_coco(root)
    out = tmp_path_factory.mktemp("job")
    r = runner.invoke(
        app, ["convert", "--dataset", "coco", "--root", str(root), "--out", str(out),
              "--model", "ellipse"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return root, truth, out / "annotations.json"


def _with_gt(coco: dict, truth: dict) -> dict:
    """The annotations eval scores: those with a ground-truth mask."""
    ims = {im["id"]: im for im in coco["images"]}
    keep = [
        a for a in coco["annotations"]
        if (ims[a["image_id"]]["sequence"], ims[a["image_id"]]["frame_index"], a["track_id"])
        in truth
    ]  # fmt: skip
    return {**coco, "annotations": keep}


def test_consistency_of_a_model_and_of_its_file_agree(job) -> None:
    root, truth, preds = job
    live = evaluate(dataset="coco", root=root, model="ellipse").summary["temporal_consistency"]
    scored = evaluate(dataset="coco", root=root, predictions=preds).summary["temporal_consistency"]
    want = temporal_consistency(_with_gt(json.loads(preds.read_text()), truth))
    assert live["pairs"] == scored["pairs"] == want["pairs"] == 8  # 4 tracks x 2 sequences
    assert live["tracks"] == 8
    assert live["mean"] == pytest.approx(want["mean"]) == pytest.approx(scored["mean"])
    assert live["mean"] == pytest.approx(1.0)  # ellipses move exactly with their boxes
    gt = temporal_consistency(_with_gt(json.loads((root / "annotations.json").read_text()), truth))
    assert live["gt_mean"] == pytest.approx(gt["mean"]) == pytest.approx(1.0)


def test_a_planted_jump_shows(job, tmp_path) -> None:
    root, truth, preds = job
    coco = json.loads(preds.read_text())
    ims = {im["id"]: im for im in coco["images"]}
    for a in coco["annotations"]:  # the ship of s1 frame 2 jumps 9 px right, its box does not
        im = ims[a["image_id"]]
        if (im["sequence"], im["frame_index"], a["track_id"]) == ("s1", 2, 2):
            m = mask_utils.decode(a["segmentation"]).astype(bool)
            moved = np.zeros_like(m)
            moved[:, 9:] = m[:, :-9]
            rle = mask_utils.encode(np.asfortranarray(moved.astype(np.uint8)))
            a["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(coco))
    r = runner.invoke(
        app, ["eval", "--dataset", "coco", "--root", str(root), "--predictions", str(planted),
              "--report", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    tc = json.loads((tmp_path / "r.json").read_text())["temporal_consistency"]
    want = temporal_consistency(_with_gt(coco, truth))
    assert tc["mean"] == pytest.approx(want["mean"]) and tc["mean"] < 0.95
    assert tc["below_0.5"] == pytest.approx(1 / 8)  # exactly the planted pair
    assert "Temporal consistency" in r.output and "over 8 pairs" in r.output
