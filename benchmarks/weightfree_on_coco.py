"""Weight-free mask makers against ground-truth masks of a COCO dataset.

For every ground-truth box, build the same centred crop window the engine
uses, run each method on it, paste the mask back and score it against the
object's own mask (per object) and, per frame, the union of all masks against
the union of all ground-truth masks (the ROS-SAM authors' convention).

    python benchmarks/weightfree_on_coco.py --root /work/shared/data/isaid-dev \
        [--ann annotations.json] [--images images] [--methods box,ellipse,grabcut] [--limit N]

Prints per-class and overall tables (IoU / Boundary IoU in percent) and the
time per object of each method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from box2mask import geometry
from box2mask.metrics import QualityAccumulator
from box2mask.models.base import ShapeModel
from box2mask.models.registry import MODELS


def _ann_mask(ann: dict, h: int, w: int) -> np.ndarray:
    seg = ann["segmentation"]
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return mask_utils.decode(rle).astype(bool)


def run(
    root: Path,
    ann_file: str,
    image_dir: str,
    methods: list[str] | dict[str, ShapeModel],
    limit: int | None,
    ratio: float,
    skip_artifacts: bool,
) -> dict[str, dict]:
    import box2mask.models  # noqa: F401  (registers the shape models)

    data = json.loads((root / ann_file).read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list[dict]] = defaultdict(list)
    for a in data["annotations"]:
        if a.get("iscrowd", 0):
            continue
        if skip_artifacts and a.get("tiling_clip_artifact", False):
            continue
        by_image[a["image_id"]].append(a)
    models = (
        dict(methods) if isinstance(methods, dict) else {m: MODELS.get(m).build() for m in methods}
    )
    methods = list(models)
    accs = {m: QualityAccumulator(ratio=ratio) for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    n_obj = 0
    for img in sorted(data["images"], key=lambda i: i["id"]):
        anns = by_image.get(img["id"], [])
        if not anns:
            continue
        bgr = cv2.imread(str(root / image_dir / img["file_name"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {root / image_dir / img['file_name']}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        gts = [_ann_mask(a, h, w) for a in anns]
        gt_union = np.logical_or.reduce(gts)
        for m, model in models.items():
            pred_union = np.zeros((h, w), dtype=bool)
            for a, gt in zip(anns, gts, strict=True):
                x, y, bw, bh = a["bbox"]
                xyxy = np.array([x, y, x + bw, y + bh], dtype=np.float64)
                win = geometry.window_for_box(xyxy, (h, w))
                crop = geometry.crop_image(image, win) if model.needs_image else None
                t0 = time.perf_counter()
                mask, _, _ = model.segment(
                    crop, win.box_to_crop(xyxy), win.size, None, cats[a["category_id"]]
                )
                seconds[m] += time.perf_counter() - t0
                pred = geometry.paste_mask(mask, win, (h, w))
                pred_union |= pred
                accs[m].add_object(cats[a["category_id"]], pred, gt)
            accs[m].add_frame(pred_union, gt_union)
        n_obj += len(anns)
        if limit is not None and n_obj >= limit:
            break
    out = {}
    for m in methods:
        s = accs[m].summary()
        s["ms_per_object"] = 1000 * seconds[m] / max(n_obj, 1)
        out[m] = s
    return out


def format_table(results: dict[str, dict]) -> str:
    methods = list(results)
    cats = sorted({c for r in results.values() for c in r["per_object"]["by_category"]})
    head = f"| {'class':<18} | {'n':>5} | " + " | ".join(f"{m} IoU / BIoU" for m in methods) + " |"
    sep = "|" + "|".join("-" * (len(c) + 2) for c in head.strip("|").split("|")) + "|"
    lines = [head, sep]

    def row(name: str, stats: list[dict]) -> str:
        n = stats[0]["count"]
        cells = [f"{100 * s['iou']:6.2f} / {100 * s['biou']:6.2f}" for s in stats]
        return f"| {name:<18} | {n:>5} | " + " | ".join(cells) + " |"

    for c in cats:
        lines.append(row(c, [results[m]["per_object"]["by_category"][c] for m in methods]))
    lines.append(
        row("**all (per object)**", [results[m]["per_object"]["overall"] for m in methods])
    )
    lines.append(row("**per frame (union)**", [results[m]["per_frame"] for m in methods]))
    lines.append(
        f"| {'IoU≥0.5 / ≥0.75':<18} | {'':>5} | "
        + " | ".join(
            f"{100 * results[m]['per_object']['overall']['iou@0.5']:6.2f} / "
            f"{100 * results[m]['per_object']['overall']['iou@0.75']:6.2f}"
            for m in methods
        )
        + " |"
    )
    lines.append(
        f"| {'ms / object':<18} | {'':>5} | "
        + " | ".join(f"{results[m]['ms_per_object']:15.2f}" for m in methods)
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--ann", default="annotations.json", help="COCO JSON, relative to --root")
    p.add_argument("--images", default="images", help="image folder, relative to --root")
    p.add_argument("--methods", default="box,ellipse,grabcut")
    p.add_argument("--limit", type=int, default=None, help="stop after about N objects")
    p.add_argument("--biou-ratio", type=float, default=0.02)
    p.add_argument(
        "--skip-artifacts",
        action="store_true",
        help="leave out objects marked tiling_clip_artifact",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    cv2.setNumThreads(1)
    results = run(
        args.root,
        args.ann,
        args.images,
        [m.strip() for m in args.methods.split(",") if m.strip()],
        args.limit,
        args.biou_ratio,
        args.skip_artifacts,
    )
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
