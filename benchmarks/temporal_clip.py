"""A synthetic moving-object clip with true masks: IoU and temporal consistency per mode.

    python benchmarks/temporal_clip.py                 # tiny random SAM 2 (~3 min on 2 cores)
    python benchmarks/temporal_clip.py --hiera t       # SAM 2.1 Hiera-T's shape, random weights

The clip: ``--frames`` frames of 480×640, textured background, ``--objects``
ships (filled rotated ellipses) moving along straight lines, turning and
growing slowly; each frame's true masks are the drawn ellipses and the boxes
their tight boxes (the tracking annotation).

Rows:

- ``sam2`` per frame (image mode), ``--temporal propagate`` with
  ``--prompt-every 1`` and ``4``: IoU / BIoU against the true masks, temporal
  consistency (:mod:`box2mask.consistency`, aligned by the box motion),
  objects/s and peak memory (process RSS; each mode in a fresh process). Random weights say nothing about quality; the
  figures show the modes run and what they cost.
- ``ellipse`` (weight-free): the same measures; then the same masks with a
  planted jump (one track's mask moved 12 px off its box in one frame): the
  consistency along that track must drop at exactly the two pairs around it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from box2mask.consistency import aligned_iou  # noqa: E402
from box2mask.engine import EngineOptions, MaskEngine  # noqa: E402
from box2mask.evaluate import Scorer  # noqa: E402
from box2mask.models.classical import FillModel  # noqa: E402
from box2mask.types import Frame, FrameMasks  # noqa: E402

HW = (480, 640)


def make_clip(folder: Path, n_frames: int, n_objects: int, seed: int = 0) -> list[Frame]:
    """Frames (PNG) with moving ellipses; each frame's ``gt_mask`` gives the drawn masks."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = HW
    bg = cv2.resize(rng.integers(30, 140, (h // 16, w // 16, 3)).astype(np.uint8), (w, h))
    tracks = []
    for _ in range(n_objects):
        tracks.append({
            "c": rng.uniform([120, 100], [w - 120, h - 100]),
            "v": rng.uniform(-6, 6, 2),
            "axes": rng.uniform([18, 7], [40, 14]),
            "angle": rng.uniform(0, 180),
            "turn": rng.uniform(-2, 2),
            "grow": rng.uniform(0.99, 1.01),
            "colour": tuple(int(c) for c in rng.integers(150, 255, 3)),
        })  # fmt: skip
    frames = []
    for f in range(n_frames):
        img = bg.copy()
        masks, boxes = [], []
        for t in tracks:
            c = t["c"] + f * t["v"]
            ax = t["axes"] * t["grow"] ** f
            m = np.zeros(HW, np.uint8)
            args = ((int(round(c[0])), int(round(c[1]))), (int(ax[0]), int(ax[1])),
                    t["angle"] + f * t["turn"], 0, 360)  # fmt: skip
            cv2.ellipse(m, *args, 1, -1)
            cv2.ellipse(img, *args, t["colour"], -1)
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0])
            masks.append(m.astype(bool))
        img = cv2.add(img, rng.integers(0, 12, img.shape, dtype=np.uint8))
        path = folder / f"{f + 1:06d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        frames.append(Frame(
            "clip", f + 1, path, HW, np.array(boxes, float), np.arange(n_objects),
            ["ship"] * n_objects, gt_mask=lambda i, ms=masks: ms[i],
        ))  # fmt: skip
    return frames


def run_mode(engine: MaskEngine, frames: list[Frame], peak: Any, device: torch.device) -> tuple:
    done: list[FrameMasks] = []
    mem = peak(device)
    with mem.measure():
        t0 = time.perf_counter()
        engine.run(frames, done.append)
        seconds = time.perf_counter() - t0
    return done, seconds, mem.peak_bytes


def score(done: list[FrameMasks], masks_of: Any = None) -> dict[str, float]:
    """IoU, BIoU and consistency of a run's masks (``masks_of`` replaces them, for plants)."""
    scorer = Scorer()
    for fm in sorted(done, key=lambda fm: fm.frame.frame_index):
        preds = list(fm.masks) if masks_of is None else masks_of(fm)
        scorer.score_frame(fm.frame, list(range(len(fm.frame))), preds)
    s = scorer.summary()
    po, tc = s["per_object"]["overall"], s["temporal_consistency"]
    return {"iou": po["iou"], "biou": po["biou"], "cons": tc["mean"], "gt_cons": tc["gt_mean"],
            "pairs": tc["pairs"], "below_0.5": tc["below_0.5"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import speed_common as speed  # PeakMemory

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hiera", default="tiny", choices=["tiny", "t", "s", "b+", "l"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-sam2", action="store_true", help="only the weight-free rows")
    p.add_argument("--one-mode", help=argparse.SUPPRESS)  # internal: one sam2 mode, JSON out
    args = p.parse_args(argv)
    if args.one_mode is not None:
        return _one_mode(args)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    out: dict[str, Any] = {}
    n_obj = args.frames * args.objects
    with tempfile.TemporaryDirectory(prefix="b2m-tclip-") as tmp:
        frames = make_clip(Path(tmp) / "clip", args.frames, args.objects)
        opts = EngineOptions(batch_size=args.batch_size, box_fill_classes=(), write_queue=0)
        rows = []
        if not args.skip_sam2:
            import json
            import subprocess

            # each mode in a fresh process, so that its peak memory is its own
            for label, k in [("sam2 per frame", 0), ("propagate, K=1", 1), ("propagate, K=4", 4)]:
                res = subprocess.run(
                    [sys.executable, __file__, "--one-mode", str(k), "--hiera", args.hiera,
                     "--frames", str(args.frames), "--objects", str(args.objects),
                     "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                r = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append((label, r["score"], n_obj / r["seconds"], r["peak_mb"]))
        fill = MaskEngine(FillModel("ellipse"), EngineOptions(**vars(opts)), FillModel("box"))
        done, s, peak_b = run_mode(fill, frames, speed.PeakMemory, device)
        rows.append(("ellipse (weight-free)", score(done), n_obj / s, peak_b / 2**20))

        # the planted jump: track 0's mask moved 12 px right (its box stays) in the middle frame
        mid = args.frames // 2 + 1

        def planted(fm: FrameMasks) -> list[Any]:
            preds: list[Any] = []
            for om in fm.masks:
                full = np.zeros(HW, bool)
                ov = om.window.overlap(HW)
                if ov is not None:
                    fr_, fc, cr, cc = ov
                    full[fr_, fc] = om.mask[cr, cc]
                if fm.frame.frame_index == mid and om.track_id == 0:
                    full = np.roll(full, 12, axis=1)
                preds.append(full)
            return preds

        rows.append(("ellipse + planted jump", score(done, planted), math.nan, math.nan))
        track = []
        prev = None
        for fm in sorted(done, key=lambda fm: fm.frame.frame_index):
            m = planted(fm)[0]
            if prev is not None:
                track.append((fm.frame.frame_index, aligned_iou(prev[0], prev[1], m, fm.frame.xyxy[0])))
            prev = (m, fm.frame.xyxy[0])

    print(f"synthetic clip: {args.frames} frames 480x640, {args.objects} moving ships "
          f"({n_obj} objects), sam2 = random {args.hiera} weights, CPU {args.threads} threads")  # fmt: skip
    print(f"{'mode':24}{'IoU':>7}{'BIoU':>7}{'cons':>7}{'true':>7}{'<0.5':>6}{'obj/s':>10}{'peak MB':>9}")
    for label, sc, ops, mb in rows:
        print(f"{label:24}{100 * sc['iou']:7.1f}{100 * sc['biou']:7.1f}{100 * sc['cons']:7.1f}"
              f"{100 * sc['gt_cons']:7.1f}{100 * sc['below_0.5']:6.0f}"
              + ("" if math.isnan(ops) else f"{ops:10.3f}{mb:9.0f}"))  # fmt: skip
        out[label] = {**sc, "objects_per_s": ops, "peak_mb": mb}
    print(f"(cons: mean aligned IoU of consecutive masks along a track, {rows[0][1]['pairs']} pairs; "
          "true: the same for the true masks; <0.5: share of pairs below 0.5, %)")  # fmt: skip
    print(f"planted track 0, jump at frame {mid}: aligned IoU per pair (frame: IoU) "
          + ", ".join(f"{f}: {v:.2f}" for f, v in track))  # fmt: skip
    out["planted_track"] = track
    return out


def _one_mode(args: argparse.Namespace) -> dict[str, Any]:
    """One sam2 mode (``--one-mode 0``: per frame, ``K``: propagate, prompt every K); JSON line."""
    import json

    import speed_common as speed
    import speed_sam2

    from box2mask.models.sam2 import load_sam2
    from box2mask.temporal import TemporalEngine

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    k = int(args.one_mode)
    with tempfile.TemporaryDirectory(prefix="b2m-tclip-") as tmp:
        frames = make_clip(Path(tmp) / "clip", args.frames, args.objects)
        ckpt = speed_sam2.write_random_sam2(Path(tmp) / "sam2.pt", args.hiera)
        model = load_sam2(ckpt, device)
        opts = EngineOptions(batch_size=args.batch_size, box_fill_classes=(), write_queue=0)
        box = FillModel("box")
        engine = (
            MaskEngine(model, opts, box, device=device)
            if k == 0
            else TemporalEngine(model, opts, box, device=device, prompt_every=k)
        )
        done, s, peak_b = run_mode(engine, frames, speed.PeakMemory, device)
        out = {"score": score(done), "seconds": s, "peak_mb": peak_b / 2**20}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
