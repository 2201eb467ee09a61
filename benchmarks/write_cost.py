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

Timed per format, in one process, files written (and fsynced) to a temp folder:

- ``per frame``: what runs for every frame in the workers: the COCO part
  (``frame_part`` + its JSON file, the input of every assembled format), the
  PNG map, the YOLO label file;
- ``at the end``: what runs once after the last frame from the parts
  (``finalize``: ``annotations.json``, ``ytvis.json``, the DAVIS PNGs, the
  MOTS text, the YOLO links and ``data.yaml``), parts read back from disk.

``µs/object`` is (per frame + at the end) wall-clock time / objects; an
assembled format also needs the parts, so its ``with parts`` column adds the
COCO part cost. ``CPU`` columns: the same in process CPU time, which leaves
out the waits for ``fsync`` (every file is written atomically) and for the
other processes of a shared machine.
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
from box2mask.io import atomic_write_bytes, atomic_write_json  # noqa: E402
from box2mask.layout import part_path  # noqa: E402
from box2mask.types import Frame, FrameMasks, MaskBlock, ObjectMask  # noqa: E402
from box2mask.writers.coco import category_table, frame_part, read_parts, write_coco  # noqa: E402
from box2mask.writers.davis import write_davis  # noqa: E402
from box2mask.writers.mots import write_mots  # noqa: E402
from box2mask.writers.png import write_png_frame  # noqa: E402
from box2mask.writers.yolo import encode_labels, finalize_yolo  # noqa: E402
from box2mask.writers.ytvis import write_ytvis  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--frames", type=int, default=260)
    ap.add_argument("--per-frame", type=int, default=122)
    args = ap.parse_args()
    cats = category_table([("airplane", "vehicle"), ("ship", "vessel"), ("train", "vehicle"), ("car", "vehicle")])  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="write_cost_"))
    out, state = tmp / "out", tmp / "out" / ".box2mask"
    per_frame = {"coco": 0.0, "png": 0.0, "yolo": 0.0}
    cpu = {k: 0.0 for k in ("coco", "png", "ytvis", "davis", "mots", "yolo")}
    n_obj = 0
    try:
        for fm in dense_frames(args.frames, args.per_frame):
            n_obj += len(fm.masks)
            t0, c0 = time.perf_counter(), time.process_time()
            atomic_write_json(part_path(state, fm.frame.sequence, fm.frame.frame_index), frame_part(fm))
            t1, c1 = time.perf_counter(), time.process_time()
            write_png_frame(fm, out / "png")
            t2, c2 = time.perf_counter(), time.process_time()
            rel, data = encode_labels(fm, cats)
            atomic_write_bytes(out / rel, data)  # as the sink writes a frame file
            t3, c3 = time.perf_counter(), time.process_time()
            per_frame["coco"] += t1 - t0
            per_frame["png"] += t2 - t1
            per_frame["yolo"] += t3 - t2
            cpu["coco"] += c1 - c0
            cpu["png"] += c2 - c1
            cpu["yolo"] += c3 - c2
        part_cpu = cpu["coco"]  # the per-frame parts' CPU time (before the COCO assembly)
        files = sorted((state / "parts" / SEQ).glob("*.json"))

        def parts():
            return read_parts(files)

        finals = {
            "coco": lambda: write_coco(parts(), cats, out / "annotations.json"),
            "ytvis": lambda: write_ytvis(parts(), cats, out / "ytvis.json"),
            "davis": lambda: write_davis(parts(), Path("/nonexistent"), out),
            "mots": lambda: write_mots(parts(), cats, out),
            "yolo": lambda: finalize_yolo(parts(), cats, Path("/nonexistent"), out),
        }
        at_end = {}
        for name, fn in finals.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            at_end[name] = time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
        sizes = {
            "coco": (out / "annotations.json").stat().st_size,
            "png": _size(out / "png"),
            "ytvis": (out / "ytvis.json").stat().st_size,
            "davis": _size(out / "davis" / "Annotations") + (out / "davis" / "objects.json").stat().st_size,  # fmt: skip
            "mots": _size(out / "mots"),
            "yolo": _size(out / "yolo" / "labels"),
        }
        videos = json.loads((out / "davis" / "objects.json").read_text())["videos"]
        tracks = sum(len(v["objects"]) for v in videos)
        print(f"{args.frames} frames of {HW[1]}x{HW[0]}, {n_obj} objects, {tracks} tracks "
              f"(DAVIS videos: {len(videos)}); files in {tmp}")  # fmt: skip
        print()
        head = (f"{'format':<7}{'per frame s':>12}{'at the end s':>14}{'total s':>9}{'µs/object':>11}"
                f"{'with parts':>12}{'vs coco':>9}{'CPU µs/obj':>12}{'CPU w/ parts':>14}{'MB':>7}")  # fmt: skip
        print(head)
        print("-" * len(head))
        coco_us = (per_frame["coco"] + at_end["coco"]) / n_obj * 1e6
        for name in ("coco", "png", "ytvis", "davis", "mots", "yolo"):
            pf, end = per_frame.get(name, 0.0), at_end.get(name, 0.0)
            total = pf + end
            us = total / n_obj * 1e6
            needs_parts = name in ("ytvis", "davis", "mots", "yolo")
            with_parts = us + (per_frame["coco"] / n_obj * 1e6 if needs_parts else 0.0)
            cus = cpu[name] / n_obj * 1e6
            cwith = cus + (part_cpu / n_obj * 1e6 if needs_parts else 0.0)
            print(f"{name:<7}{pf:>12.2f}{end:>14.2f}{total:>9.2f}{us:>11.1f}{with_parts:>12.1f}"
                  f"{with_parts / coco_us:>9.2f}{cus:>12.1f}{cwith:>14.1f}{sizes[name] / 1e6:>7.1f}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    main()
