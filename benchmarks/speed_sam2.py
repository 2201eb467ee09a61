"""``benchmarks/speed.py --model sam2``: box2mask's sam2 against SAM 2's own per-object procedure.

Same clip and crops as speed.py (its ``make_clip``, box2mask's geometry), random
weights of a real SAM 2.1 shape (``--hiera t|s|b+|l``; ``tiny``: the test shape)
saved in the official ``{"model": state_dict}`` layout and loaded by both:

- reference: Meta's ``build_sam2`` with the official ``configs/sam2.1/*.yaml``
  (strict load) and ``SAM2ImagePredictor``: per object ``set_image`` of the
  bicubic ×2 crop and ``predict(box=..., multimask_output=False)``, batch 1, fp32;
  mask 1024 → window (nearest), as speed.py's SAM reference does;
- box2mask: :class:`~box2mask.engine.MaskEngine` with ``--model sam2`` (batched
  crops, ``--precision``), and optionally (``--temporal``) the
  :class:`~box2mask.temporal.TemporalEngine` with ``--prompt-every``.

Printed: objects/s, ratio, peak memory, and mask agreement with the reference.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from box2mask import geometry
from box2mask.engine import EngineOptions, MaskEngine, Profile
from box2mask.models.classical import FillModel
from box2mask.models.sam2_arch import OFFICIAL_HIERA, Sam2Arch
from box2mask.types import Frame

CONFIGS = {
    "t": "sam2.1_hiera_t",
    "s": "sam2.1_hiera_s",
    "b+": "sam2.1_hiera_b+",
    "l": "sam2.1_hiera_l",
}


def official_arch(hiera: str) -> Sam2Arch:
    for (dim, stages), (name, heads, glob, windows) in OFFICIAL_HIERA.items():
        if name == f"hiera_{hiera}":
            return Sam2Arch(
                name=name, version="2.1", embed_dim=dim, num_heads=heads, stages=stages,
                global_att_blocks=glob, window_spec=windows,
                window_pos_embed_bkg_spatial_size=(7, 7) if dim == 96 else (14, 14),
                backbone_channel_list=(8 * dim, 4 * dim, 2 * dim, dim),
            )  # fmt: skip
    raise ValueError(f"unknown Hiera {hiera!r}; one of {', '.join(CONFIGS)}, tiny")


def write_random_sam2(path: Path, hiera: str, seed: int = 0) -> Path:
    """Random SAM 2.1 weights of a published shape (or the tests' tiny one), official layout."""
    from box2mask.models.sam2 import build_sam2_net

    torch.manual_seed(seed)
    if hiera == "tiny":
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny_sam2 import tiny_state_dict

        torch.save({"model": tiny_state_dict(seed)}, path)
        return path
    net = build_sam2_net(official_arch(hiera))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if float(p.abs().sum()) == 0.0 or "pos_embed" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    torch.save({"model": net.state_dict()}, path)
    return path


def reference_model(checkpoint: Path, hiera: str, device: torch.device) -> Any:
    from sam2.build_sam import build_sam2

    if hiera == "tiny":
        from tiny_sam2 import CONFIG, OVERRIDES

        return build_sam2(CONFIG, str(checkpoint), device=str(device),
                          hydra_overrides_extra=list(OVERRIDES))  # fmt: skip
    return build_sam2(f"configs/sam2.1/{CONFIGS[hiera]}.yaml", str(checkpoint), device=str(device))


def run_reference(
    checkpoint: Path, hiera: str, frames: list[Frame], device: torch.device, window: str,
    context: float, peak: Any,
) -> tuple[dict, float, int]:  # fmt: skip
    """SAM2ImagePredictor per object; window masks by (frame, track), seconds, peak bytes."""
    import speed_common as speed  # the authors' per-object procedure, as for SAM
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(reference_model(checkpoint, hiera, device))
    masks: dict[tuple[int, int], tuple[geometry.CropWindow, np.ndarray]] = {}
    mem = peak(device)
    with mem.measure(), torch.inference_mode():
        t0 = time.perf_counter()
        for key, fr, box, win, up in speed.reference_crops(frames, context, window):
            predictor.set_image(up)
            m, _, _ = predictor.predict(
                box=geometry.box_to_model(box, win, 1024), multimask_output=False
            )
            masks[key] = speed.reference_window_mask(m[0], win, fr)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    del predictor
    gc.collect()
    return masks, seconds, mem.peak_bytes


def run_engine(
    checkpoint: Path, frames: list[Frame], device: torch.device, opts: EngineOptions,
    precision: str, peak: Any, temporal: bool = False, prompt_every: int = 1,
) -> tuple[dict, float, int, Profile]:  # fmt: skip
    from box2mask.models.sam2 import load_sam2
    from box2mask.temporal import TemporalEngine

    model = load_sam2(checkpoint, device)
    autocast = torch.bfloat16 if precision == "bf16" else None
    profile = Profile()
    kw: dict[str, Any] = {"device": device, "autocast_dtype": autocast, "profile": profile}
    if temporal:
        engine: MaskEngine = TemporalEngine(
            model, opts, FillModel("box"), prompt_every=prompt_every, **kw
        )
    else:
        engine = MaskEngine(model, opts, FillModel("box"), **kw)
    import speed_common as speed  # the same timed run as the SAM benchmark's

    masks, seconds, peak_bytes, _ = speed.time_engine(engine, frames, device)
    del engine, model
    gc.collect()
    return masks, seconds, peak_bytes, profile


def run(args: Any, device: torch.device, precision: str, tmp: Path) -> dict[str, Any]:
    """The sam2 benchmark for speed.py's parsed ``args``; returns the figures (and prints them)."""
    import speed_common as speed  # the clip, peak memory and agreement helpers

    hiera = args.hiera
    opts = EngineOptions(batch_size=args.batch_size, window=args.window, box_fill_classes=())
    ckpt = write_random_sam2(tmp / f"sam2.1_hiera_{hiera}_random.pt", hiera, args.seed)
    frames = speed.make_clip(tmp / "clip", args.objects, args.seed)
    r: dict[str, Any] = {"model": "sam2", "hiera": hiera}
    ref_s, ours_s = [], []
    ref = ours = None
    for k in range(0 if args.skip_reference else args.repeat):
        ref, s, ref_peak = run_reference(ckpt, hiera, frames, device, args.window, opts.context,
                                         speed.PeakMemory)  # fmt: skip
        ref_s.append(s)
        print(f"  [{k + 1}] reference (SAM2ImagePredictor per object): {s:.2f} s "
              f"({args.objects / s:.3f} objects/s)", flush=True)  # fmt: skip
    for k in range(args.repeat):
        ours, s, our_peak, profile = run_engine(ckpt, frames, device, opts, precision,
                                                speed.PeakMemory)  # fmt: skip
        ours_s.append(s)
        print(
            f"  [{k + 1}] box2mask sam2: {s:.2f} s ({args.objects / s:.3f} objects/s)", flush=True
        )
    r["box2mask_objects_per_s"] = args.objects / statistics.median(ours_s)
    r["box2mask_peak_mb"] = our_peak / 2**20
    r["box2mask_profile"] = dict(profile.seconds)
    if ref is not None:
        r["reference_objects_per_s"] = args.objects / statistics.median(ref_s)
        r["reference_peak_mb"] = ref_peak / 2**20
        r["speedup"] = r["box2mask_objects_per_s"] / r["reference_objects_per_s"]
        r["mask_iou_mean"], r["mask_iou_min"] = speed.agreement(ref, ours)
    if args.temporal:
        tm, s, tpeak, _ = run_engine(ckpt, frames, device, opts, precision, speed.PeakMemory,
                                     temporal=True, prompt_every=args.prompt_every)  # fmt: skip
        r["temporal_objects_per_s"] = args.objects / s
        r["temporal_peak_mb"] = tpeak / 2**20
        r["temporal_iou_vs_per_frame_mean"], _ = speed.agreement(ours, tm)
    print()
    print(f"{'':30}{'objects/s':>12}{'peak MB':>10}")
    if ref is not None:
        print(f"{'reference (per object)':30}{r['reference_objects_per_s']:12.3f}"
              f"{r['reference_peak_mb']:10.0f}")  # fmt: skip
    print(f"{'box2mask sam2':30}{r['box2mask_objects_per_s']:12.3f}{r['box2mask_peak_mb']:10.0f}")
    if "temporal_objects_per_s" in r:
        label = f"--temporal propagate, K={args.prompt_every}"
        print(f"{label:30}{r['temporal_objects_per_s']:12.3f}{r['temporal_peak_mb']:10.0f}")
    if "speedup" in r:
        print(f"speed-up: {r['speedup']:.2f}x; mask IoU vs reference (window masks; random "
              f"weights): mean {r['mask_iou_mean']:.4f}, min {r['mask_iou_min']:.4f}")  # fmt: skip
    return r
