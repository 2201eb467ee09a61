"""What ``box2mask export`` and ``box2mask import`` cost on real iSAID tiles (docs/annotation-tools.md).

Converts the tiles with the weight-free ``classical`` model (``--work``, kept for a
second run), then for each tool and shape: exports every object, imports the unedited
review into the job (matched against the job's parts; nothing to write), and prints the
time per object and the size of the files the export wrote (XML, JSON; not the frames).
Last, the time of an import that changes one mask: the corrections written and every
format of the job derived again (a copy of the job).

    python benchmarks/exchange_speed.py --root /work/shared/data/isaid-dev [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="b2m-exchange-"))
    job = work / "job"
    if not (job / "annotations.json").is_file():
        cmd = [sys.executable, "-m", "box2mask", "convert", "--dataset", "coco", "--root",
               str(args.root), "--out", str(job), "--model", "classical"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    from exchange_helpers import cvat_review, cvat_set_mask, ls_review

    from box2mask.exchange import export, import_review

    print(
        f"{'tool':12} {'shape':8} {'objects':>8} {'export ms/obj':>14} {'import ms/obj':>14} {'MB':>7}"
    )
    for tool in ("cvat", "labelstudio"):
        for shape in ("mask", "polygon"):
            out = work / f"{tool}-{shape}-{time.monotonic_ns()}"
            t0 = time.perf_counter()
            s = export(job, tool, out, shape=shape)
            t1 = time.perf_counter()
            files = ([ls_review(out, out / "review.json")] if tool == "labelstudio"
                     else sorted(out.glob("tasks/**/annotations.xml")))  # fmt: skip
            t2 = time.perf_counter()
            n = 0
            for f in files:
                imp = import_review(tool, f, job, manifest=out / "box2mask-export.json")
                res = imp.result
                assert res.counts()["unchanged"] == len(res.changes), res.counts()
                assert imp.changes is None  # nothing written
                n += len(res.changes)
            t3 = time.perf_counter()
            size = sum(
                p.stat().st_size
                for p in out.rglob("*")
                if p.is_file() and p.suffix in (".json", ".xml") and p.name != "review.json"
            )
            print(f"{tool:12} {shape:8} {s.objects:8d} {1000 * (t1 - t0) / s.objects:14.2f} "
                  f"{1000 * (t3 - t2) / n:14.2f} {size / 1e6:7.2f}")  # fmt: skip
    # one changed mask: written into a copy of the job, its formats derived again
    copy = work / f"job-copy-{time.monotonic_ns()}"
    shutil.copytree(job, copy, symlinks=True)
    out = work / f"cvat-one-{time.monotonic_ns()}"
    export(copy, "cvat", out)
    xml = sorted(out.glob("tasks/**/annotations.xml"))[0]
    done: list[bool] = []

    def edit(root, image) -> None:  # noqa: ANN001
        shapes = list(image)
        if shapes and not done:
            done.append(True)
            h, w = int(image.get("height")), int(image.get("width"))
            mask = np.zeros((h, w), bool)
            mask[10:40, 10:50] = True
            cvat_set_mask(shapes[0], mask)

    f = cvat_review(xml, out / "edited.xml", edit)
    t0 = time.perf_counter()
    imp = import_review("cvat", f, copy, manifest=out / "box2mask-export.json")
    t1 = time.perf_counter()
    assert imp.result.counts()["changed"] == 1 and imp.changes is not None
    print(f"one changed mask into the job ({len(imp.files)} files written): {t1 - t0:.2f} s")


if __name__ == "__main__":
    main()
