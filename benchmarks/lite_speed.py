"""How fast ``--model lite`` is on the dense case, beside ``classical``, in one run.

    python benchmarks/lite_speed.py [--frames 260] [--threads 2] [--checkpoint FILE]

Builds the dense VISO-layout clip of ``benchmarks/dense.py`` (1024x1024 JPEG
frames, ~122 boxes of ~10x20 px per frame, some crossing the edges) and prints:

- **the model alone** (in this process, after the runs below): the inputs of every object of the first ``--model-frames``
  frames are cut first; then the network (``LiteModel.predict``, batches of 256)
  and the network plus the paste back to window pixels are timed, as objects/s;
- **end to end**: ``python -m box2mask convert --model M --box-fill-classes ''``
  (every object through the model, none box-filled) as a subprocess, for
  ``lite`` and ``classical``: objects/s over the whole command's wall clock
  (start-up included), its CPU seconds and peak RSS (``wait4``);
- the same with the default policy (``--box-fill-classes car``) for reference.

Threads: the child gets ``OMP_NUM_THREADS=--threads`` (torch's intra-op threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from dense import objects_written, run_cli, write_dense_viso  # noqa: E402


def model_alone(root: Path, frames: int, checkpoint: Path | None, threads: int) -> dict[str, float]:
    """Objects/s of the network, and of the network plus the paste back, on real crops of the clip."""
    import box2mask.adapters  # noqa: F401
    import torch
    from box2mask.adapters.base import ADAPTERS

    from box2mask.io import read_image
    from box2mask.models.lite import build_lite

    torch.set_num_threads(threads)
    model = build_lite(checkpoint)
    adapter = ADAPTERS.get("viso")(root)
    inputs, windows, boxes = [], [], []
    for k, frame in enumerate(adapter.frames()):
        if k == frames:
            break
        image = read_image(frame.image_path)
        for box in frame.xyxy:
            w = model.window(box)
            windows.append(w)
            boxes.append(box)
            inputs.append(model.make_input(image, box, w))
    model.predict(inputs[:256])  # warm-up (oneDNN primitive creation)
    t0 = time.perf_counter()
    outputs = []
    for s in range(0, len(inputs), 256):
        out, _ = model.predict(inputs[s : s + 256])
        outputs.extend(out)
    t_net = time.perf_counter() - t0
    t0 = time.perf_counter()
    for out, w, box in zip(outputs, windows, boxes, strict=True):
        model.mask_block(out, w, box)
    t_paste = time.perf_counter() - t0
    n = len(inputs)
    return {"objects": n, "network": n / t_net, "network+paste": n / (t_net + t_paste)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=260)
    ap.add_argument("--per-frame", type=int, default=122)
    ap.add_argument(
        "--model-frames", type=int, default=40, help="frames whose objects time the model alone"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--checkpoint", type=Path, default=None, help="a lite file (default: the shipped one)"
    )
    ap.add_argument("--keep", type=Path, help="keep the dataset and outputs in this folder")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory(prefix="box2mask-lite-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        root = base / "viso"
        if not (root / "mot").exists():
            n = write_dense_viso(root, args.frames, args.per_frame, "car")
            print(f"dataset: {root} ({args.frames} frames 1024x1024, {n} boxes)")
        ck = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
        runs = [
            ("lite, every object", ["--model", "lite", "--box-fill-classes", "", *ck]),
            ("classical, every object", ["--model", "classical", "--box-fill-classes", ""]),
            ("lite, cars box-filled", ["--model", "lite", "--box-fill-classes", "car", *ck]),
            ("classical, cars box-filled", ["--model", "classical", "--box-fill-classes", "car"]),
        ]
        print("\n| run | objects | wall s | objects/s | CPU s | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for k, (name, extra) in enumerate(runs):
            out = base / f"out-{k}"
            r = run_cli(REPO, root, out, "coco", ["--overwrite", "--device", "cpu", *extra])
            objects = objects_written(out)
            print(f"| {name} | {objects} | {r['wall']:.1f} | {objects / r['wall']:,.0f} | "
                  f"{r['cpu']:.1f} | {r['peak_mib']:.0f} |", flush=True)  # fmt: skip
        # after the subprocesses: a child forked from a large parent reports the parent's
        # resident pages in its peak RSS
        alone = model_alone(root, args.model_frames, args.checkpoint, args.threads)
        print(f"\nmodel alone ({alone['objects']} objects of {args.model_frames} frames, "
              f"{args.threads} threads): network {alone['network']:,.0f} objects/s, "
              f"network + paste {alone['network+paste']:,.0f} objects/s")  # fmt: skip


if __name__ == "__main__":
    main()
