"""``box2mask qa``: signals on planted faults, the ranking of a track's bad frame, reports, --gt-dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.qa.score import recall_at
from tests.data.make_eval_coco import make_eval_coco

runner = CliRunner()
HW = (200, 300)


def _rle(m: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _band(x: int, y: int, s: int, anti: bool = False) -> np.ndarray:
    """A diagonal band across the ``s``x``s`` box at (x, y) (``anti``: the other diagonal)."""
    rr, cc = np.mgrid[0:s, 0:s]
    d = (cc - (s - 1 - rr)) if anti else (cc - rr)
    m = np.zeros(HW, bool)
    m[y : y + s, x : x + s] = np.abs(d) <= s // 5
    return m


def _coco(objects: list[tuple[str, int, int, str, list[float], np.ndarray]]) -> dict:
    """``(sequence, frame_index, track_id, category, xywh, mask)`` -> a COCO dict."""
    images: dict[tuple[str, int], int] = {}
    anns = []
    cats = sorted({o[3] for o in objects})
    for seq, fi, tid, cat, box, m in objects:
        iid = images.setdefault((seq, fi), len(images) + 1)
        rle = _rle(m)
        anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cats.index(cat) + 1,
                     "segmentation": rle, "area": int(m.sum()),
                     "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
                     "track_id": tid, "score": 1.0, "prompt_box": box,
                     "mask_source": "model"})  # fmt: skip
    return {
        "images": [
            {
                "id": i,
                "file_name": f"{s}/{f:04d}.png",
                "width": HW[1],
                "height": HW[0],
                "sequence": s,
                "frame_index": f,
            }
            for (s, f), i in images.items()
        ],  # fmt: skip
        "annotations": anns,
        "categories": [{"id": k + 1, "name": c, "supercategory": c} for k, c in enumerate(cats)],
    }


def _qa(tmp_path: Path, coco: dict, *extra: str) -> dict:
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(coco))
    r = runner.invoke(app, ["qa", "--job", str(path), "--no-images", *extra])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "qa" / "qa.json").read_text())


def test_planted_bad_frame_of_a_track_ranks_first(tmp_path: Path) -> None:
    objects = []
    for f in range(10):
        # a diagonal ship moving right; in frame 6 its mask flips to the other diagonal:
        # same box, same area, one piece, inside its box: only the track sees it
        x = 20 + 6 * f
        objects.append(("v", f, 1, "ship", [x, 30, 40, 40], _band(x, 30, 40, anti=f == 6)))
        # distractors the frame-local part ranks high: a large box, and a box nested in it
        big = np.zeros(HW, bool)
        big[100:190, 150:290] = True
        objects.append(("v", f, 2, "harbor", [150, 100, 140, 90], big))
        small = np.zeros(HW, bool)
        small[120:140, 200:230] = True
        objects.append(("v", f, 3, "ship", [200, 120, 30, 20], small))
    rep = _qa(tmp_path, _coco(objects))
    first = rep["ranked"][0]
    assert (first["track_id"], first["frame_index"]) == (1, 6)
    assert "track_jump" in first["flags"]
    assert first["signals"]["track_iou"] < 0.3
    # its good neighbours are close to their other neighbour, so they are not flagged
    for r in rep["ranked"]:
        if r["track_id"] == 1 and r["frame_index"] in (5, 7):
            assert "track_jump" not in r["flags"] and r["signals"]["track_iou"] > 0.9
    # without the track ids the same bad frame is not found first
    coco = _coco(objects)
    for a in coco["annotations"]:
        del a["track_id"]
    sub = tmp_path / "notrack"
    sub.mkdir()
    rep2 = _qa(sub, coco)
    assert rep2["ranked"][0]["id"] != first["id"]


def test_signals_and_flags_of_planted_faults(tmp_path: Path) -> None:
    good = np.zeros(HW, bool)
    good[20:40, 20:50] = True
    leak = np.zeros(HW, bool)
    leak[60:80, 20:50] = True
    leak[60:80, 50:80] = True  # as much again outside the box
    frag = np.zeros(HW, bool)
    frag[100:120, 20:40] = True
    frag[100:105, 45:50] = True  # a second piece
    empty = np.zeros(HW, bool)
    # a mask that reaches its crop window's edge: box (150..170, 150..170) has a
    # 512-px window from x = -96 to 415, y = -96 to 415 with the default geometry;
    # crop_size 40 (job identity) makes the window 40 px: x 140..179
    cut = np.zeros(HW, bool)
    cut[150:170, 150:180] = True
    objects = [
        ("s", 1, 1, "car", [20, 20, 30, 20], good),
        ("s", 1, 2, "car", [20, 60, 30, 20], leak),
        ("s", 1, 3, "car", [20, 100, 30, 20], frag),
        ("s", 1, 4, "car", [200, 20, 30, 20], empty),
        ("s", 1, 5, "car", [150, 150, 20, 20], cut),
    ]
    coco = _coco(objects)
    (tmp_path / ".box2mask").mkdir()
    (tmp_path / ".box2mask" / "job.json").write_text(
        json.dumps(
            {"identity": {"crop_size": 40, "context": 1.25, "window": "centred", "model": "sam"}}
        )
    )
    rep = _qa(tmp_path, coco)
    by_track = {r["track_id"]: r for r in rep["ranked"]}
    assert by_track[1]["flags"] == []
    assert by_track[2]["signals"]["outside"] == pytest.approx(0.5)
    assert "leaks" in by_track[2]["flags"]
    assert by_track[3]["signals"]["components"] == 2
    assert by_track[3]["signals"]["fragment"] == pytest.approx(25 / 425, abs=1e-5)
    assert "fragments" in by_track[3]["flags"]
    assert by_track[4]["flags"][0] == "empty"
    assert "cut_by_crop" in by_track[5]["flags"] and by_track[5]["signals"]["touches_crop"]
    assert not by_track[1]["signals"]["touches_crop"]
    # the good mask is the least suspicious, the empty one the most
    assert rep["ranked"][-1]["track_id"] == 1 and rep["ranked"][0]["track_id"] == 4
    # qa.csv: one row per object, same order and flags as qa.json
    with open(tmp_path / "qa" / "qa.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["id"]) for r in rows] == [r["id"] for r in rep["ranked"]]
    assert rows[0]["flags"].split() == rep["ranked"][0]["flags"]
    # the cut mask also reaches past its box: two leaks
    assert {r["track_id"] for r in rep["ranked"] if "leaks" in r["flags"]} == {2, 5}
    assert rep["flag_counts"]["leaks"] == 2


def test_gt_dataset_scores_the_flags(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    truth = make_eval_coco(root)
    job = tmp_path / "job"
    r = runner.invoke(app, ["convert", "-d", "coco", "--root", str(root), "--out", str(job),
                            "--model", "box"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["qa", "--job", str(job), "--gt-dataset", "coco", "--gt-root",
                            str(root)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "recall of the" in r.output and "random" in r.output
    rep = json.loads((job / "qa" / "qa.json").read_text())
    scored = json.loads((job / "qa" / "qa_gt.json").read_text())
    # the objects' IoUs computed here with numpy: box fills against the known masks
    ious = {}
    for o in rep["ranked"]:
        gt = truth.get((o["sequence"], o["frame_index"], o["track_id"]))
        if gt is None:
            continue
        x, y, w, h = (int(v) for v in o["prompt_box"])
        box = np.zeros_like(gt)
        box[y : y + h, x : x + w] = True
        ious[o["id"]] = (gt & box).sum() / (gt | box).sum()
    bad_ids = {i for i, v in ious.items() if v < 0.5}
    assert scored["objects"] == len(ious) and scored["bad"] == len(bad_ids) == 4
    ranked = [o for o in rep["ranked"] if o["id"] in ious]
    scores = [-k for k in range(len(ranked))]
    bad = [o["id"] in bad_ids for o in ranked]
    assert scored["suspicion"] == pytest.approx(
        [recall_at(scores, bad, s) for s in (0.05, 0.1, 0.2)]
    )
    assert scored["random"] == [0.05, 0.1, 0.2]
    assert set(scored["single"]) >= {"box area", "nested box", "track jump"}


def test_bad_usage_is_one_message_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["qa", "--job", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such job folder or COCO file" in r.output
    (tmp_path / "x.json").write_text("[1, 2]")
    r = runner.invoke(app, ["qa", "--job", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "not a COCO JSON" in r.output


def test_model_score_and_unscored_fills(tmp_path: Path) -> None:
    m = np.zeros(HW, bool)
    m[20:40, 20:50] = True
    objects = [("s", 1, t, "car", [20, 20, 30, 20], m) for t in (1, 2, 3)]
    coco = _coco(objects)
    coco["annotations"][0]["score"] = 0.3  # the model doubts this one
    coco["annotations"][1]["score"] = 0.95
    coco["annotations"][2]["score"] = 0.3
    coco["annotations"][2]["mask_source"] = "ellipse"  # a fill's score is no estimate
    rep = _qa(tmp_path, coco)
    by_track = {r["track_id"]: r for r in rep["ranked"]}
    assert rep["ranked"][0]["track_id"] == 1 and "low_score" in by_track[1]["flags"]
    assert by_track[3]["signals"]["score"] is None and "low_score" not in by_track[3]["flags"]
    assert by_track[2]["suspicion"] == by_track[3]["suspicion"]
    # one frame per track: no track signal
    assert by_track[1]["signals"]["track_iou"] is None


def test_a_lite_job_is_scored_with_its_quality_head_and_its_own_window(tmp_path: Path) -> None:
    """A lite job records lite's window rule; qa scores it with lite's calibration (its
    predicted IoU weighed), and a mask cut by lite's window (not the SAM one) is flagged."""
    from box2mask.models.lite.crops import window_for_box
    from box2mask.qa.score import CALIBRATIONS, DEFAULT, calibration_for, logit
    from box2mask.qa.signals import CropGeometry, object_signals
    from tests.test_lite_model import _random_file

    example = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"
    weights = _random_file(tmp_path / "tiny.safetensors")
    job = tmp_path / "job"
    r = runner.invoke(app, ["convert", "-d", "viso", "--root", str(example), "--out", str(job),
                            "--model", "lite", "--checkpoint", str(weights)])  # fmt: skip
    assert r.exit_code == 0, r.output
    ident = json.loads((job / ".box2mask" / "job.json").read_text())["identity"]
    assert ident["model_window"] == {"context": 1.5, "min_side": 16}
    r = runner.invoke(app, ["qa", "--job", str(job), "--no-images"])
    assert r.exit_code == 0, r.output
    head = json.loads((job / "qa" / "qa.json").read_text().splitlines()[0] + "]}")
    assert head["calibration"] == CALIBRATIONS["lite"].source != DEFAULT.source
    assert calibration_for("classical") is DEFAULT and calibration_for(None) is DEFAULT

    # lite's window of a 20x10 box at (100, 50): 30 px, centred; the SAM window is far larger
    geom = CropGeometry.from_identity(ident)
    box = [100.0, 50.0, 120.0, 60.0]
    win = geom.window_for(box, HW)
    assert win == window_for_box(box, 1.5, 16) and win.size == 30
    image = {"id": 1, "height": HW[0], "width": HW[1], "file_name": "a.png"}
    m = np.zeros(HW, bool)
    m[50:60, win.x0 : 120] = True  # reaches the window's left border
    ann = {"id": 1, "image_id": 1, "bbox": [100.0, 50.0, 20.0, 10.0], "segmentation": _rle(m),
           "mask_source": "model", "score": 0.9}  # fmt: skip
    lite_sig = object_signals(ann, image, "car", geom)
    sam_sig = object_signals(ann, image, "car", CropGeometry())
    assert lite_sig.touches_crop and not sam_sig.touches_crop
    # the quality head counts: a lower predicted IoU is more suspicious, all else equal
    cal = CALIBRATIONS["lite"]
    low = object_signals({**ann, "score": 0.3}, image, "car", geom)
    assert logit(low, cal) > logit(lite_sig, cal)


def _page_data(index: Path) -> dict:
    """The review page's data block (JSON: script_json writes no markup characters)."""
    import re

    text = index.read_text(encoding="utf-8")
    m = re.search(r'<script id="qa-data" type="application/json">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_review_page_pictures_of_the_top_objects(tmp_path: Path) -> None:
    """Issue 27: the page's full-frame and track pictures exist for the --html-top objects only,
    decode, are downscaled to FRAME_SIDE, and a neighbour frame whose image cannot be read is
    said so (not "the track is not in this frame")."""
    import shutil

    import cv2

    from box2mask.qa.views import FRAME_SIDE, NEAR

    root = tmp_path / "data"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "viso-mini", root)
    job = tmp_path / "job"
    r = runner.invoke(app, ["convert", "-d", "viso", "--root", str(root), "--out", str(job),
                            "--model", "ellipse", "--format", "coco"])  # fmt: skip
    assert r.exit_code == 0, r.output
    lost = root / "mot" / "car" / "001" / "img" / "000004.jpg"
    lost.unlink()  # after the conversion: the page finds it unreadable
    page = tmp_path / "page"
    r = runner.invoke(app, ["qa", "--job", str(job), "--html", str(page), "--html-top", "1000"])
    assert r.exit_code == 0, r.output
    ranked = json.loads((job / "qa" / "qa.json").read_text())["ranked"]
    data = _page_data(page / "index.html")
    views = data["views"]
    assert len(views) == len(ranked) == len(data["thumbs"])
    coco = json.loads((job / "annotations.json").read_text())
    ims = {im["id"]: im for im in coco["images"]}
    present = {(ims[a["image_id"]]["sequence"], ims[a["image_id"]]["frame_index"], a["track_id"])
               for a in coco["annotations"]}  # fmt: skip
    assert any(k >= 0 for v in views if v for _, k, _ in v["near"])
    for o, v, thumb in zip(ranked, views, data["thumbs"], strict=True):
        gone = o["sequence"] == "car/001" and o["frame_index"] == 4
        assert (v is None) == gone and thumb == (0 if gone else 1)
        if v is None:
            continue
        assert 0 <= v["box"][0] < 1 and 0 <= v["box"][1] < 1
        near = {fi: (k, side) for fi, k, side in v["near"]}
        assert len(near) <= 2 * NEAR
        assert all(side == (-1 if fi < o["frame_index"] else 1) for fi, (k, side) in near.items())
        assert all(abs(fi - o["frame_index"]) <= NEAR for fi in near)  # 8 frames, no gap
        assert len(near) == min(NEAR, o["frame_index"] - 1) + min(NEAR, 8 - o["frame_index"])
        for fi, (k, _) in near.items():
            if o["sequence"] == "car/001" and fi == 4:
                assert k == -2  # unreadable, not missing
            else:  # a crop exactly where the track is in that frame
                assert (k >= 0) == ((o["sequence"], fi, o["track_id"]) in present)
    frames = sorted((page / "frames").iterdir())
    # one picture per readable frame holding a top object (here every object is a top one)
    assert len(frames) == len({(o["sequence"], o["frame_index"]) for o in ranked}) - 1
    for f in frames + sorted((page / "track").iterdir()):
        im = cv2.imread(str(f))
        assert im is not None and max(im.shape[:2]) <= FRAME_SIDE
    # --html-top bounds them: one object, one frame, at most 2 * NEAR track crops
    small = tmp_path / "small"
    r = runner.invoke(app, ["qa", "--job", str(job), "--html", str(small), "--html-top", "1"])
    assert r.exit_code == 0, r.output
    assert len(list((small / "frames").iterdir())) == 1
    assert 1 <= len(list((small / "track").iterdir())) <= 2 * NEAR
    assert len(list((small / "thumbs").iterdir())) == 1
