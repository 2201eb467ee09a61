"""How well ``box2mask qa`` finds the bad masks on real iSAID tiles (docs/qa.md).

Converts the tiles with ``--model`` (default ``lite``, the model ``--model
auto`` uses without SAM-family weights; ``classical``: the weight-free default),
scores every object against its ground-truth mask, and prints the recall of objects with IoU < 0.5 among the
top 5 / 10 / 20 % ranked by

- the suspicion score, cross-fitted: the tiles are split in two by
  ``crc32(file_name) % 2``; each half is ranked with the calibration fitted
  on the other half, so no object is scored by weights that saw it;
- the shipped calibration of the model (``box2mask.qa.score.calibration_for``,
  fitted on all the tiles: in-sample here, printed for reference);
- random picks (the share itself);
- each single signal alone (its suspicious direction).

    python benchmarks/qa_on_isaid.py --root ../shared/data/isaid-dev [--model lite|classical]
        [--checkpoint FILE] [--work DIR] [--fit]

``--fit`` prints the calibration fitted on all tiles (what the shipped one holds).
The tiles stay where they are: nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from box2mask.cocofile import CocoFile
from box2mask.qa.flagscore import SHARES, SINGLE
from box2mask.qa.groundtruth import gt_ious
from box2mask.qa.report import open_output
from box2mask.qa.score import calibration_for, fit, logit, recall_at
from box2mask.qa.signals import CropGeometry, signals


def convert(root: Path, out: Path, model: str, checkpoint: Path | None) -> None:
    if not (out / "annotations.json").is_file():
        cmd = [sys.executable, "-m", "box2mask", "convert", "-d", "coco", "--root", str(root),
               "--out", str(out), "--model", model]  # fmt: skip
        if checkpoint is not None:
            cmd += ["--checkpoint", str(checkpoint)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--work", type=Path, default=None, help="job folder to convert into (kept)")
    p.add_argument("--model", default="lite", choices=("lite", "classical"))
    p.add_argument("--checkpoint", type=Path, default=None, help="lite weights (default: shipped)")
    p.add_argument("--fit", action="store_true", help="print the calibration fitted on all tiles")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.work or Path(tmp) / "job"
        model = args.model
        convert(args.root, out, model, args.checkpoint)
        output = open_output(out)
        coco = json.loads(output.coco_path.read_text(encoding="utf-8"))  # 1,534 objects: whole
        sig, unread = signals(coco, CropGeometry.from_identity(output.identity),
                              model=model, image_root=args.root)  # fmt: skip
        with CocoFile(output.coco_path, "--job") as indexed:
            ious = gt_ious(indexed, "coco", args.root)
    sig = [s for s in sig if s.id in ious]
    bad = np.array([ious[s.id] < 0.5 for s in sig])
    fold = np.array([zlib.crc32(s.file_name.encode()) % 2 for s in sig])
    shipped_cal = calibration_for(model)
    features = shipped_cal.features
    cals = {f: fit([s for s, k in zip(sig, fold, strict=True) if k != f], bad[fold != f],
                   source=f"fold != {f}", features=features) for f in (0, 1)}  # fmt: skip
    cross = np.array([logit(s, cals[int(k)]) for s, k in zip(sig, fold, strict=True)])
    shipped = np.array([logit(s, shipped_cal) for s in sig])
    print(
        f"model {model}; {len(sig)} objects on {len({s.image_id for s in sig})} tiles; "
        f"{int(bad.sum())} with IoU < 0.5 ({100 * bad.mean():.1f}%); unread images {unread}"
    )
    print(f"folds (crc32(file_name) % 2): objects {np.bincount(fold).tolist()}, "
          f"bad {[int(bad[fold == f].sum()) for f in (0, 1)]}")  # fmt: skip
    head = f"| {'ranking':<38} | " + " | ".join(f"top {int(100 * s)}%" for s in SHARES) + " |"
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")

    def row(name: str, scores: np.ndarray) -> list[float]:
        r = [recall_at(scores, bad, s) for s in SHARES]
        cells = [f"{100 * v:5.1f}%" for v in r]
        print(f"| {name:<38} | " + " | ".join(f"{c:>7}" for c in cells) + " |")
        return r

    rs = row("suspicion (cross-fitted)", cross)
    for f in (0, 1):
        m = fold == f
        print(f"| {'  fold ' + str(f) + ' alone':<38} | " + " | ".join(
            f"{100 * recall_at(cross[m], bad[m], s):5.1f}%" for s in SHARES) + " |")  # fmt: skip
    row("suspicion (shipped, in-sample)", shipped)
    print(f"| {'random':<38} | " + " | ".join(f"{100 * s:5.1f}%" for s in SHARES) + " |")
    best = np.zeros(len(SHARES))
    for name, fn in SINGLE.items():
        r = row(name, np.array([fn(s) for s in sig], dtype=np.float64))
        best = np.maximum(best, r)
    for f in (0, 1):
        m = fold == f
        per = [max(recall_at(np.array([fn(s) for s, k in zip(sig, m, strict=True) if k]),
                             bad[m], sh) for fn in SINGLE.values()) for sh in SHARES]  # fmt: skip
        print(
            f"| {'  best single signal, fold ' + str(f):<38} | "
            + " | ".join(f"{100 * v:6.1f}%" for v in per)
            + " |"
        )
    print(f"\ncross-fitted suspicion vs random at 10%: {rs[1] / 0.10:.2f}x; "
          f"vs best single signal: " + ", ".join(
              f"{100 * a:.1f}% vs {100 * b:.1f}% at {int(100 * s)}%"
              for a, b, s in zip(rs, best, SHARES, strict=True)))  # fmt: skip
    if args.fit:
        print("\ncalibration fitted on all tiles:")
        print(fit(sig, bad, source="isaid-dev, all 57 tiles, model " + model, features=features))
    return 0


if __name__ == "__main__":
    sys.exit(main())
