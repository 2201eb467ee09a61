"""Write cost per object of each output format on the dense case (issue 12).

    python benchmarks/write_cost.py                    # 260 frames, ~31,800 objects
    python benchmarks/write_cost.py --frames 40        # a quick look

Builds, in memory, the masks of a sequence shaped like VISO ``mot/car/001``:
``--frames`` frames of 1024x1024 with ``--per-frame`` (122) small box masks
of one side 8..12 px and the other 16..24 px, moving up to 2 px a frame;
tracks end after 40..260 frames and are replaced by new ids, so the sequence
has a few hundred tracks (the DAVIS writer splits it past 255). Each
object's mask is a filled box in its real crop window (``window_for_box``:
512 px, context 1.25, centred), kept as its block (``ObjectMask.from_block``)
as the engine makes box fills.

Timed per format through its registered writer (``WRITERS``), files written
(atomically, fsynced) to a temp folder:

- ``per frame``: ``encode_frame`` and writing its files, as the executor's
  sink does (the PNG map; nothing for the assembled formats);
- ``at the end``: ``finalize`` from the frames' COCO parts read back from
  disk (``annotations.json``, ``ytvis.json``, the DAVIS PNGs and links, the
  MOTS text, the YOLO labels, links and ``data.yaml``).

Every assembled format (COCO included) needs the COCO parts, which the job
writes per frame once for all of them (``frame_part``): ``with parts`` adds
their cost. ``µs/object``: wall clock / objects; ``CPU`` columns: process CPU
time, which leaves out the waits for ``fsync`` and for the other processes of
a shared machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from box2mask.geometry import window_for_box  # noqa: E402
from box2mask.io import atomic_write_bytes  # noqa: E402
from box2mask.job.parts import encode_part, frame_part, read_part  # noqa: E402
from box2mask.layout import STATE_DIR, part_path  # noqa: E402
from box2mask.types import Frame, FrameMasks, MaskBlock, ObjectMask  # noqa: E402
from box2mask.writers import WRITERS, Assembly, FrameFile, WriterContext  # noqa: E402
from box2mask.writers.coco import category_table  # noqa: E402

HW = (1024, 1024)
SEQ = "car/001"


def dense_frames(frames: int, per_frame: int, seed: int = 0):
    """Yield the FrameMasks of the dense sequence, one frame at a time."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1024, (per_frame, 2))
    vel = rng.uniform(-2, 2, (per_frame, 2))
    short, long_ = rng.integers(8, 13, per_frame), rng.integers(16, 25, per_frame)
    upright = rng.random(per_frame) < 0.5
    size = np.stack([np.where(upright, short, long_), np.where(upright, long_, short)], 1)
    ends = rng.integers(40, 261, per_frame)
    tid = np.arange(1, per_frame + 1)
    next_id = per_frame + 1
    for f in range(frames):
        for i in np.flatnonzero(ends <= f):  # the track ends: a new car takes its slot
            tid[i], next_id = next_id, next_id + 1
            ends[i] = f + rng.integers(40, 261)
            pos[i] = rng.uniform(0, 1024, 2)
        xy = np.floor(np.mod(pos + f * vel, 1024)) - size // 2
        boxes = np.concatenate([xy, xy + size], 1).clip(0, 1024)
        name = f"mot/{SEQ}/img/{f + 1:06d}.jpg"
        frame = Frame(SEQ, f + 1, Path("/nonexistent") / name, HW, boxes, tid.copy(),
                      ["car"] * per_frame, file_name=name)  # fmt: skip
        masks = []
        for i in range(per_frame):
            win = window_for_box(boxes[i], HW, 512, 1.25, "centred")
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            block = MaskBlock(y1 - win.y0, x1 - win.x0, y2 - y1, x2 - x1)  # a filled box
            masks.append(ObjectMask.from_block(int(tid[i]), "car", win, block, boxes[i], None, "box"))  # fmt: skip
        yield FrameMasks(frame, tuple(masks))


FORMATS = ("coco", "png", "ytvis", "davis", "mots", "yolo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--frames", type=int, default=260)
    ap.add_argument("--per-frame", type=int, default=122)
    args = ap.parse_args()
    cats = category_table([("airplane", "vehicle"), ("ship", "vessel"), ("train", "vehicle"), ("car", "vehicle")])  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="write_cost_"))
    out = tmp / "out"
    ctx = WriterContext(out, Path("/nonexistent"), cats, [SEQ])
    writers = {name: WRITERS.get(name)(ctx) for name in FORMATS}
    wall = {k: [0.0, 0.0] for k in ("parts", *FORMATS)}  # [per frame, at the end]
    cpu = {k: [0.0, 0.0] for k in ("parts", *FORMATS)}
    n_obj = 0

    def timed(key: str, slot: int, fn) -> None:
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall[key][slot] += time.perf_counter() - t
        cpu[key][slot] += time.process_time() - c

    def write(files) -> None:
        for f in files:  # as the executor's FrameSink writes a frame's files
            atomic_write_bytes(out / f.path, f.data)

    try:
        for fm in dense_frames(args.frames, args.per_frame):
            n_obj += len(fm.masks)
            rel = part_path(Path(STATE_DIR), fm.frame.sequence, fm.frame.frame_index).as_posix()
            timed("parts", 0, lambda: write([FrameFile(rel, encode_part(frame_part(fm)))]))  # noqa: B023
            for name, w in writers.items():
                timed(name, 0, lambda w=w: write(w.encode_frame(fm)))  # noqa: B023
        files = sorted((out / STATE_DIR / "parts" / SEQ).glob("*.json"))
        assembly = Assembly(cats, lambda: map(read_part, files), [SEQ])
        for name, w in writers.items():
            timed(name, 1, lambda w=w: w.finalize(assembly, out))
        sizes = {
            "coco": (out / "annotations.json").stat().st_size,
            "png": _size(out / "car"),
            "ytvis": (out / "ytvis.json").stat().st_size,
            "davis": _size(out / "davis"),
            "mots": _size(out / "mots"),
            "yolo": _size(out / "yolo"),
        }
        videos = json.loads((out / "davis" / "objects.json").read_text())["videos"]
        tracks = sum(len(v["objects"]) for v in videos)
        print(f"{args.frames} frames of {HW[1]}x{HW[0]}, {n_obj} objects, {tracks} tracks "
              f"(DAVIS videos: {len(videos)}); files in {tmp}")  # fmt: skip
        print(f"COCO parts (what the assembled formats read): {wall['parts'][0]:.2f} s wall, "
              f"{cpu['parts'][0] / n_obj * 1e6:.1f} µs CPU per object")  # fmt: skip
        print()
        head = (f"{'format':<7}{'per frame s':>12}{'at the end s':>14}{'µs/object':>11}"
                f"{'with parts':>12}{'vs coco':>9}{'CPU µs/obj':>12}{'CPU w/ parts':>14}"
                f"{'CPU vs coco':>13}{'MB':>7}")  # fmt: skip
        print(head)
        print("-" * len(head))

        def cost(table, name):
            own = sum(table[name]) / n_obj * 1e6
            parts = sum(table["parts"]) / n_obj * 1e6 if writers[name].needs_parts else 0.0
            return own, own + parts

        coco_wall, coco_cpu = cost(wall, "coco")[1], cost(cpu, "coco")[1]
        for name in FORMATS:
            us, us_parts = cost(wall, name)
            cus, cus_parts = cost(cpu, name)
            print(f"{name:<7}{wall[name][0]:>12.2f}{wall[name][1]:>14.2f}{us:>11.1f}{us_parts:>12.1f}"
                  f"{us_parts / coco_wall:>9.2f}{cus:>12.1f}{cus_parts:>14.1f}"
                  f"{cus_parts / coco_cpu:>13.2f}{sizes[name] / 1e6:>7.1f}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    main()
