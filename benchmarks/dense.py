"""The dense case: many small box-filled objects, converted end to end by the real CLI.

    python benchmarks/dense.py                          # this tree
    python benchmarks/dense.py --before /tmp/before     # also an older checkout; outputs compared
    python benchmarks/dense.py --category plane         # small non-car boxes: the classical shape fit

Builds, in a temp folder, a VISO-layout MOT sequence shaped like the real
VISO ``mot/car/001`` (260 frames of 1024x1024 JPEG, ~122 small boxes per frame,
about 31,800 in all, ~10x20 px, some of them touching or crossing the frame
edges), then runs ``python -m box2mask convert --profile`` on it as a
subprocess with the default model (``auto``: no weights here, so the
weight-free ``classical``; cars are box-filled by the default
``--box-fill-classes car``). Printed per source tree:

- objects/s end to end: objects / wall clock of the whole command, Python
  start-up and imports included;
- its CPU time (user + sys, from ``wait4``: less sensitive than the wall
  clock to other processes on a shared machine);
- peak RSS of the command (``ru_maxrss`` of the child from ``wait4``);
- the ``--profile`` stage table as the CLI printed it.

``--no-fsync`` is a diagnostic: ``os.fsync`` becomes a no-op in the child, to
show what the per-frame fsyncs (part file, ledger line) cost. Not a safe mode.

With ``--before DIR`` (e.g. ``git worktree add /tmp/before <commit>``) the
same dataset is converted by that checkout too, and the output files
(``annotations.json``, and the PNG maps with ``--format coco,png``) are
compared byte for byte. Each tree is imported through a small bootstrap that
maps ``box2mask``, ``box2mask.adapters`` and ``box2mask.weights`` to the
tree's own folders (the installed editable package points at one checkout).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

#: run box2mask's CLI from the source tree in argv[1] (argv[2:] are the CLI arguments)
BOOTSTRAP = """
import importlib.util, runpy, sys
from pathlib import Path
src = Path(sys.argv.pop(1))
dirs = {"box2mask": src / "box2mask", "box2mask.adapters": src / "adapters",
        "box2mask.weights": src / "weights"}
class _Tree:
    @staticmethod
    def find_spec(name, path=None, target=None):
        d = dirs.get(name)
        if d is None:
            return None
        return importlib.util.spec_from_file_location(
            name, d / "__init__.py", submodule_search_locations=[str(d)])
sys.meta_path.insert(0, _Tree)
if sys.argv[1] == "--no-fsync":  # diagnostic only: what the per-frame fsyncs cost
    import os
    sys.argv.pop(1)
    os.fsync = lambda fd: None
sys.argv[0] = "box2mask"
runpy.run_module("box2mask", run_name="__main__", alter_sys=True)
"""


def write_dense_viso(
    root: Path, frames: int = 260, per_frame: int = 122, category: str = "car", seed: int = 0
) -> int:
    """A VISO ``mot/<category>/001`` of ``frames`` 1024x1024 JPEGs and small moving boxes.

    Each of ``per_frame`` tracks starts at a random place and moves up to
    2 px per frame, wrapping around the frame; its top-left corner stays in
    ``[-w/2, 1024 - w/2)`` (likewise for y), so some boxes touch or cross the
    frame edges but none lies wholly outside. Boxes are ``w x h`` with one
    side 8..12 and the other 16..24 px. Returns the number of gt lines.
    """
    from tests.data.make_viso import write_images

    seq = root / "mot" / category / "001"
    write_images(seq / "img", range(1, frames + 1), hw=(1024, 1024))
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1024, (per_frame, 2))
    vel = rng.uniform(-2, 2, (per_frame, 2))
    short = rng.integers(8, 13, per_frame)
    long_ = rng.integers(16, 25, per_frame)
    upright = rng.random(per_frame) < 0.5
    w = np.where(upright, short, long_)
    h = np.where(upright, long_, short)
    lines = []
    for f in range(frames):
        xy = np.floor(np.mod(start + f * vel, 1024)).astype(int)
        for i in range(per_frame):
            x, y = int(xy[i, 0]) - int(w[i]) // 2, int(xy[i, 1]) - int(h[i]) // 2
            lines.append(f"{f + 1},{i + 1},{x},{y},{w[i]},{h[i]},1,-1,-1,-1")
    (seq / "gt").mkdir(parents=True, exist_ok=True)
    (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    return len(lines)


def run_cli(
    src: Path, root: Path, out: Path, fmt: str, extra: list[str], no_fsync: bool = False
) -> dict:
    """Convert with the CLI of source tree ``src``; wall clock, peak RSS and its output."""
    cmd = [sys.executable, "-c", BOOTSTRAP, str(src), *(["--no-fsync"] if no_fsync else [])]
    cmd += ["convert", "--dataset", "viso"]
    cmd += ["--root", str(root), "--out", str(out), "--format", fmt, "--profile", *extra]
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("PYTHONPATH", None)
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=out.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{src}: convert failed ({proc.returncode}):\n{text}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "peak_mib": usage.ru_maxrss / 1024, "log": text}


def digest(out: Path) -> dict[str, str]:
    """sha256 of every user-visible output file (not the job's own state)."""
    files = sorted(
        p for p in out.rglob("*") if p.is_file() and ".box2mask" not in p.relative_to(out).parts
    )
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def objects_written(out: Path) -> int:
    import json

    with open(out / "annotations.json") as fh:
        return len(json.load(fh)["annotations"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=260)
    ap.add_argument("--per-frame", type=int, default=122)
    ap.add_argument("--category", default="car", help="folder class: car (box-filled) or plane")
    ap.add_argument("--format", default="coco", help="coco, png or coco,png")
    ap.add_argument("--before", type=Path, help="an older source tree to run and compare with")
    ap.add_argument("--src", type=Path, default=REPO, help="the tree measured as 'after'")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tree (the best is shown)")
    ap.add_argument("--keep", type=Path, help="keep the dataset and outputs in this folder")
    ap.add_argument("--no-fsync", action="store_true",
                    help="diagnostic: os.fsync made a no-op in the child, to see what the "
                    "per-frame fsyncs of the part files and the ledger cost (not a safe mode)")  # fmt: skip
    ap.add_argument("extra", nargs="*", help="more convert options, after --")
    args = ap.parse_args()
    if "coco" not in args.format.split(","):
        ap.error("--format must include coco (objects are counted from annotations.json)")

    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="box2mask-dense-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        root = base / "viso"
        if not (root / "mot").exists():
            n_lines = write_dense_viso(root, args.frames, args.per_frame, args.category)
            print(f"dataset: {root} ({args.frames} frames 1024x1024, {n_lines} gt lines)")
        trees = ([("before", args.before)] if args.before else []) + [("after", args.src)]
        results = {}
        for name, src in trees:
            best = None
            for k in range(args.repeat):
                out = base / f"out-{name}-{k}"
                r = run_cli(src.resolve(), root, out, args.format, ["--overwrite", *args.extra],
                            args.no_fsync)  # fmt: skip
                r["out"] = out
                if best is None or r["wall"] < best["wall"]:
                    best = r
            best["objects"] = objects_written(best["out"])
            results[name] = best
            print(f"\n== {name}: {src} ==")
            print(best["log"].rstrip())
        print("\n| tree | objects | wall s | objects/s | CPU s (user+sys) | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            rate = r["objects"] / r["wall"]
            print(f"| {name} | {r['objects']} | {r['wall']:.2f} | {rate:,.0f} | {r['cpu']:.2f} "
                  f"| {r['peak_mib']:.0f} |")  # fmt: skip
        if args.before:
            a, b = digest(results["before"]["out"]), digest(results["after"]["out"])
            same = a == b
            print(f"\noutputs byte-identical: {same} ({len(b)} files compared)")
            if not same:
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                print("differing:", diff[:5])
                raise SystemExit(1)


if __name__ == "__main__":
    main()
