"""Speed of the MOT-style annotation parse: VISO, mot and satmtb on a 30,000-line file.

    python benchmarks/adapter_parse.py                      # this checkout
    python benchmarks/adapter_parse.py --src /tmp/before    # another tree (git archive REV)

One synthetic sequence of ``--frames`` frames with ``--per-frame`` objects
each (300 x 100 = 30,000 lines by default), written once into a temporary
folder in three layouts (VISO ``mot/car/001``, generic ``mot``, SAT-MTB
``car/01``), the same rows in each: ``frame,id,x,y,w,h,1,-1,-1,-1`` (SAT-MTB:
``frame,id,x,y,w,h,1,0,-1,-1``), with every 1000th row ``w = 0`` (an absent
target, counted). The images are one real 1024x1024 JPEG copied to every
frame (only the first header is read).

Timed, each the median of ``--runs`` runs after one warm-up:

- ``viso parse``: ``Viso._read_mot`` (the ``gt.txt`` into per-frame arrays,
  corner/xywh decision, absent rows, missing frames, duplicate ids);
- ``viso parse, one bad line``: the same with line 2 malformed, which takes
  the line-by-line path (it reports that line);
- ``viso read_sequence``: every :class:`Frame` of the sequence, listing
  included;
- ``mot read_sequence`` and ``satmtb read_sequence``: the same rows through
  the generic MOT and the SAT-MTB adapters (object checks included).

Each tree is imported through a bootstrap that maps ``box2mask`` and
``box2mask.adapters`` to the tree's own folders (the installed editable
package points at one checkout), so two checkouts can be compared on the same
files. Printed: one line per measure, median wall-clock and median CPU time
of the process in milliseconds (the CPU figure is the steadier one on a
shared machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def use_tree(src: Path) -> None:
    """Import ``box2mask`` and ``box2mask.adapters`` from ``src`` (before anything imports them)."""
    dirs = {"box2mask": src / "box2mask", "box2mask.adapters": src / "adapters"}

    class _Tree:
        @staticmethod
        def find_spec(name, path=None, target=None):  # type: ignore[no-untyped-def]
            d = dirs.get(name)
            if d is None:
                return None
            return importlib.util.spec_from_file_location(
                name, d / "__init__.py", submodule_search_locations=[str(d)]
            )

    sys.meta_path.insert(0, _Tree)


def mot_lines(frames: int, per_frame: int, cls: str = "-1", seed: int = 0) -> list[str]:
    """``frames x per_frame`` rows ``frame,id,x,y,w,h,1,<cls>,-1,-1``; every 1000th has ``w = 0``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 1000, (frames, per_frame, 2))
    out = []
    for f in range(frames):
        for i in range(per_frame):
            w = 0 if (f * per_frame + i) % 1000 == 999 else 9
            out.append(f"{f + 1},{i + 1},{xy[f, i, 0]},{xy[f, i, 1]},{w},7,1,{cls},-1,-1")
    return out


def write_frames(folder: Path, frames: int, pattern: str, first: Path) -> None:
    folder.mkdir(parents=True)
    for k in range(1, frames + 1):
        shutil.copyfile(first, folder / (pattern % k))


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall-clock and median CPU time of this process, in ms (after one warm-up)."""
    fn()  # warm-up (imports, image-size cache)
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=REPO, help="source tree to import (default: this one)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--per-frame", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    use_tree(args.src.resolve())

    import logging

    import numpy as np
    from PIL import Image

    logging.getLogger("box2mask").setLevel(logging.ERROR)  # the absent-row notes, once per run

    from box2mask.adapters import ADAPTERS

    from box2mask.problems import Problems

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first = root / "first.jpg"
        Image.fromarray(np.zeros((1024, 1024, 3), np.uint8)).save(first)
        lines = mot_lines(args.frames, args.per_frame)
        # VISO
        viso_root = root / "viso"
        seq = viso_root / "mot" / "car" / "001"
        write_frames(seq / "img", args.frames, "%06d.jpg", first)
        (seq / "gt").mkdir()
        gt = seq / "gt" / "gt.txt"
        gt.write_text("\n".join(lines) + "\n")
        bad_root = root / "viso-bad"
        bad_seq = bad_root / "mot" / "car" / "001"
        bad_seq.mkdir(parents=True)
        (bad_seq / "img").symlink_to(seq / "img")
        (bad_seq / "gt").mkdir()
        bad_gt = bad_seq / "gt" / "gt.txt"
        bad_gt.write_text("\n".join([lines[0], "1,x,3,4,5,6", *lines[1:]]) + "\n")
        # generic mot
        mot_root = root / "mot" / "seq1"
        (mot_root / "gt").mkdir(parents=True)
        (mot_root / "img1").symlink_to(seq / "img")
        (mot_root / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
        # SAT-MTB
        mtb_seq = root / "satmtb" / "car" / "01"
        (mtb_seq / "mot").mkdir(parents=True)
        (mtb_seq / "img").symlink_to(seq / "img")
        mtb = mot_lines(args.frames, args.per_frame, cls="0")
        (mtb_seq / "mot" / "01.txt").write_text("\n".join(mtb) + "\n")

        frames = set(range(1, args.frames + 1))

        def viso_parse(path: Path, root_: Path) -> Callable[[], object]:
            def run() -> object:
                viso = ADAPTERS.get("viso")(root_, Problems())
                out = viso._read_mot(path, "car", (1024, 1024), frames)
                assert out is not None and len(out) == args.frames
                return out

            return run

        def read_all(name: str, root_: Path, sequence: str) -> Callable[[], object]:
            def run() -> object:
                adapter = ADAPTERS.get(name)(root_, Problems())
                got = list(adapter.read_sequence(sequence))
                n = sum(len(f) for f in got)
                assert n == len(lines) - len(lines) // 1000, (name, n)
                return got

            return run

        print(f"tree: {args.src.resolve()}; {len(lines):,} lines, {args.frames} frames, "
              f"median of {args.runs} runs")  # fmt: skip
        measures = [
            ("viso parse", viso_parse(gt, viso_root)),
            ("viso parse, one bad line", viso_parse(bad_gt, bad_root)),
            ("viso read_sequence", read_all("viso", viso_root, "car/001")),
            ("mot read_sequence", read_all("mot", root / "mot", "seq1")),
            ("satmtb read_sequence", read_all("satmtb", root / "satmtb", "car/01")),
        ]
        for label, fn in measures:
            wall, cpu = median_ms(fn, args.runs)
            print(f"{label:28s} {wall:8.1f} ms wall {cpu:8.1f} ms cpu")


if __name__ == "__main__":
    main()
