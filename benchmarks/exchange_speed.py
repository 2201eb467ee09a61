"""What ``box2mask export`` and ``box2mask import`` cost on real iSAID tiles (docs/annotation-tools.md).

Converts the tiles with the weight-free ``classical`` model (``--work``, kept for a
second run), then for each tool and shape: exports every object, reads the unedited
review back, and prints the time per object and the size of the files the export wrote
(XML, JSON; not the frames).

    python benchmarks/exchange_speed.py --root /work/shared/data/isaid-dev [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

    from exchange_helpers import ls_review

    from box2mask.exchange import export, read_review

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
                _, res = read_review(tool, f, job, manifest=out / "box2mask-export.json")
                assert res.counts()["unchanged"] == len(res.changes), res.counts()
                n += len(res.changes)
            t3 = time.perf_counter()
            size = sum(
                p.stat().st_size
                for p in out.rglob("*")
                if p.is_file() and p.suffix in (".json", ".xml") and p.name != "review.json"
            )
            print(f"{tool:12} {shape:8} {s.objects:8d} {1000 * (t1 - t0) / s.objects:14.2f} "
                  f"{1000 * (t3 - t2) / n:14.2f} {size / 1e6:7.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
