"""The COCO output is both a ground-truth file and a results file (issue 16 item 5).

Round trip: convert, load ``annotations.json`` as ground truth, load its
``annotations`` list with ``loadRes`` as detections, evaluate: AP must be
exactly 1.0 for ``segm`` and ``bbox``. This needs every ``score`` to be a
number (``COCOeval`` sorts by it), no zero-area annotation from a box wholly
outside the image (it can never be matched), and ``maxDets`` above the
densest frame's object count (COCOeval's default keeps 100 per image).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import box2mask
from tests.data.make_viso import write_images

HW = (200, 300)
DENSE = 150  # objects in the dense frame: more than COCOeval's default maxDets=100


def make_eval_viso(root: Path) -> dict[str, int]:
    """VISO MOT layout: ``plane/001`` with a box partly and one wholly outside, ``ship/001`` dense.

    Returns the number of boxes that lie (at least partly) inside the image, per sequence.
    """
    h, w = HW
    seqs: dict[str, list[tuple[int, int, int, int, int, int]]] = {
        "plane": [
            (1, 1, 10, 12, 30, 20),
            (1, 2, 280, 150, 40, 30),  # partly outside (right and bottom edges)
            (1, 3, 320, 40, 20, 20),  # wholly outside on the right
            (1, 4, 60, -50, 20, 20),  # wholly outside above
            (2, 1, 12, 13, 30, 20),
            (2, 2, -10, 100, 25, 25),  # partly outside on the left
        ],
        "ship": [
            (1, 100 + i, 4 + 20 * (i % 15), 4 + 20 * (i // 15), 10 + i % 5, 8 + i % 4)
            for i in range(DENSE)
        ],
    }
    inside: dict[str, int] = {}
    for cat, rows in seqs.items():
        seq = root / "mot" / cat / "001"
        write_images(seq / "img", range(1, 3), hw=HW)
        (seq / "gt").mkdir(parents=True, exist_ok=True)
        (seq / "gt" / "gt.txt").write_text(
            "\n".join(",".join(str(v) for v in (*r, 1, -1, -1, -1)) for r in rows) + "\n"
        )
        inside[f"{cat}/001"] = sum(
            1 for _, _, x, y, bw, bh in rows if x < w and y < h and x + bw > 0 and y + bh > 0
        )
    return inside


def _evaluate(gt: COCO, dets: list[dict], iou_type: str) -> float:
    dt = gt.loadRes(dets)
    ev = COCOeval(gt, dt, iou_type)
    ev.params.maxDets = [100, 300, 1000]  # dense frames: see docs/eval.md
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools' headline stats[0] is always taken at 100 detections per image;
    # AP@[.5:.95] at maxDets[-1] comes from the precision table (as docs/eval.md says)
    prec = ev.eval["precision"][:, :, :, 0, -1]
    assert ev.stats[1] == ev.stats[2] == 1.0  # AP@.5, AP@.75 at maxDets[2]
    return float(prec[prec > -1].mean())


@pytest.mark.parametrize("model", ["box", "ellipse"])
def test_coco_output_evaluated_against_itself_has_ap_1(tmp_path, model):
    root = tmp_path / "viso"
    inside = make_eval_viso(root)
    out = tmp_path / "out"
    summary = box2mask.convert(dataset="viso", root=root, out=out, model=model)
    path = out / "annotations.json"
    data = json.loads(path.read_text())
    anns = data["annotations"]
    assert len(anns) == sum(inside.values())  # the two wholly-outside boxes made no annotation
    assert all(a["area"] > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in anns)
    assert all(isinstance(a["score"], float) for a in anns)
    dense = max(sum(1 for a in anns if a["image_id"] == img["id"]) for img in data["images"])
    assert dense == DENSE > 100
    # the dropped boxes are counted, with a reason, in the summary
    outside = [str(e) for e in summary.problems.reports if "outside" in str(e)]
    assert len(outside) == 2, [str(e) for e in summary.problems.reports]

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    for iou_type in ("segm", "bbox"):
        assert _evaluate(gt, json.loads(path.read_text())["annotations"], iou_type) == 1.0


def test_boxes_outside_the_image_are_dropped_with_their_attributes():
    import numpy as np

    from box2mask.checks import drop_outside_boxes
    from box2mask.problems import Problems
    from box2mask.types import Frame

    xyxy = [[-20, 0, -5, 10], [0, 0, 10, 10], [50, 5, 60, 15], [20, 20, 30, 30]]
    obb = np.array([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]] for x1, y1, x2, y2 in xyxy], float)
    frame = Frame(
        "s/1", 7, Path("img/7.jpg"), (40, 50), xyxy, [1, 2, 3, 4], ["a", "b", "c", "d"],
        obb=obb, gt_mask=lambda i: np.full((40, 50), i, np.uint8),
        attributes={"fine_class": ["fa", "fb", "fc", "fd"]},
    )  # fmt: skip
    problems = Problems()
    (kept,) = list(drop_outside_boxes([frame], problems))
    assert kept.track_id.tolist() == [2, 4] and list(kept.category) == ["b", "d"]
    assert kept.xyxy.tolist() == [xyxy[1], xyxy[3]]
    np.testing.assert_array_equal(kept.obb, obb[[1, 3]])
    assert list(kept.attributes["fine_class"]) == ["fb", "fd"]
    assert kept.gt_mask(1)[0, 0] == 3  # object 1 of the kept frame is object 3 of the input
    assert len(problems) == 2 and problems.counts["annotation"] == 2
    assert (
        "s/1 frame 7: box [-20, 0, -5, 10] of track 1 lies entirely outside the 50x40 image"
        in str(problems.reports[0])
    )
    same = Frame("s/1", 8, Path("x.jpg"), (40, 50), [[0, 0, 5, 5]], [1], ["a"])
    assert list(drop_outside_boxes([same], problems)) == [same]  # nothing to drop: the same frame


def test_strict_stops_on_a_box_outside_the_image_before_writing(tmp_path):
    from box2mask.errors import AnnotationError

    root = tmp_path / "viso"
    make_eval_viso(root)
    out = tmp_path / "out"
    with pytest.raises(AnnotationError, match="lies entirely outside the 300x200 image"):
        box2mask.convert(dataset="viso", root=root, out=out, model="box", strict=True)
    assert not out.exists() or not list(out.rglob("*.json"))
