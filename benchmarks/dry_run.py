"""``convert --dry-run``'s time estimate beside the real run's time (issue 29).

    python benchmarks/dry_run.py                       # the bundled example, --model auto
    python benchmarks/dry_run.py --model grabcut --format coco,png,ytvis --repeat 3
    python benchmarks/dry_run.py --dataset viso --root /data/VISO --sequences car/001

For each repeat: ``box2mask convert --dry-run`` (its estimate, its own time,
its disk estimate), then the same ``convert`` for real into a fresh temp
folder: the time it reports (``--summary-json``'s ``timings.seconds``, the
"time" row of its table: from reading the dataset to the last format
written, what the estimate is of), its process's wall time (plus Python's
start and imports, about a second), and the bytes of the files it wrote;
each in a child process, as a user runs them. Prints one row per repeat and
the ratio estimate / real, which the issue asks to be within a factor of 2
on the example.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _files_bytes(out: Path) -> int:
    return sum(p.lstat().st_size for p in out.rglob("*") if p.is_file() or p.is_symlink())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="viso")
    ap.add_argument("--root", default=str(REPO / "examples" / "viso-mini"))
    ap.add_argument("--model", default="auto")
    ap.add_argument("--format", default="coco")
    ap.add_argument("--sequences", default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    base = [sys.executable, "-m", "box2mask", "convert", "--dataset", args.dataset,
            "--root", args.root, "--model", args.model, "--format", args.format]  # fmt: skip
    if args.sequences:
        base += ["--sequences", args.sequences]
    env = {**os.environ, "COLUMNS": "120"}
    print(f"{'run':>4} {'estimate s':>11} {'real s':>8} {'ratio':>6} {'process s':>10} "
          f"{'dry run s':>10} {'disk est.':>10} {'disk real':>10}")  # fmt: skip
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="box2mask-bench-") as tmp:
            out, plan = Path(tmp) / "out", Path(tmp) / "plan.json"
            t = time.perf_counter()
            subprocess.run([*base, "--out", str(out), "--dry-run", "--summary-json", str(plan)],
                           check=True, capture_output=True, env=env)  # fmt: skip
            dry = time.perf_counter() - t
            assert not out.exists(), "the dry run wrote under --out"
            est = json.loads(plan.read_text())
            summary = Path(tmp) / "summary.json"
            t = time.perf_counter()
            subprocess.run([*base, "--out", str(out), "--summary-json", str(summary)],
                           check=True, capture_output=True, env=env)  # fmt: skip
            process = time.perf_counter() - t
            real = json.loads(summary.read_text())["timings"]["seconds"]
            e = est["estimate"]["seconds"]
            print(f"{k + 1:>4} {e:>11.2f} {real:>8.2f} {e / real:>6.2f} {process:>10.2f} "
                  f"{dry:>10.2f} {est['estimate']['disk_bytes']:>10} "
                  f"{_files_bytes(out):>10}")  # fmt: skip
    print(f"model: {est['model']['name']} ({est['model']['why']}); sample "
          f"{est['sample']['frames']} of {est['frames']['to_convert']} frames")  # fmt: skip


if __name__ == "__main__":
    main()
