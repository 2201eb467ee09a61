"""Speed: box2mask's engine against the ROS-SAM authors' procedure, same clip, same weights.

    python benchmarks/speed.py --arch vit_b --objects 4           # CPU here
    python benchmarks/speed.py --arch vit_l --objects 200 --device cuda --batch-size 16
    python benchmarks/speed.py --arch vit_t --objects 4           # TinyViT (MobileSAM's shape)

One run times, on one synthetic clip and one set of random weights of a real
SAM shape (saved in the official ``sam_vit_*.pth`` layout and loaded by both):

- reference: the authors' procedure. Per object: crop the 512 window
  (box2mask's geometry, so the windows are identical), bicubic ×2 to 1024,
  ``segment_anything``'s own ``Sam`` (its ``ImageEncoderViT`` with its own
  attention) through ``SamPredictor.set_image`` / ``predict(box=...)``, batch 1,
  fp32, mask 1024 → window size (nearest), pasted into a frame-sized mask.
  For ``--arch vit_t`` the model is MobileSAM's (``build_sam_vit_t``:
  ``segment_anything``'s ``Sam`` with the original TinyViT encoder, taken from
  ``segment_anything_hq``'s copy of MobileSAM's ``tiny_vit_sam.py``), loaded from
  a ``mobile_sam.pt``-layout file.
- box2mask: :class:`~box2mask.engine.MaskEngine` with ``--model sam`` loaded
  from the same file (SDPA attention, batched crops, ``--precision``,
  optional ``--compile``), decode and crop on worker threads.
- optionally (``--share-crops IOU``) box2mask again with shared crops.

Printed: objects/s for each, the ratio, peak memory (process RSS during the
phase on CPU; ``torch.cuda.max_memory_allocated`` on CUDA) and the agreement of
the masks (mean / min IoU per object against the reference, and the mean mask
area so that a degenerate all-empty result would show). Random weights give
real timings (the FLOPs do not depend on the values) but not real masks.
``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from box2mask import geometry
from box2mask.engine import EngineOptions, MaskEngine, Profile
from box2mask.hostmem import keep_freed_memory
from box2mask.models.checkpoint import OFFICIAL_ARCHS, TINYVIT_5M, EncoderArch, TinyViTArch
from box2mask.models.classical import FillModel
from box2mask.models.sam import build_modules, load_prompt_model
from box2mask.types import Frame

sys.path.insert(0, str(Path(__file__).resolve().parent))  # speed_common, speed_sam2 beside it
from speed_common import (  # noqa: E402
    PeakMemory,
    agreement,
    make_clip,
    reference_crops,
    reference_window_mask,
    time_engine,
)

#: a tiny SAM whose shape segment_anything's ``_build_sam`` can build (MLP ratio 4)
TINY = EncoderArch(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), mlp_dim=128)


def arch_of(name: str) -> EncoderArch | TinyViTArch:
    if name == "tiny":
        return TINY
    if name == "vit_t":  # MobileSAM's / Light HQ-SAM's TinyViT-5M
        return TinyViTArch(**TINYVIT_5M)  # type: ignore[arg-type]
    dim, depth, heads, glob = OFFICIAL_ARCHS[name]
    return EncoderArch(dim, depth, heads, glob, mlp_dim=4 * dim)


def write_random_sam(path: Path, arch: EncoderArch | TinyViTArch, seed: int = 0) -> Path:
    """A random SAM of ``arch`` saved as an official ``sam_vit_*.pth`` (flat state dict).

    The relative-position tables, which SAM initialises to zero, get random
    values, so the attention paths really differ if they disagree (for a
    TinyViT, ``mobile_sam.pt``'s layout, its attention biases do).
    """
    torch.manual_seed(seed)
    enc, prompt, dec = build_modules(arch, hq=False)
    state: dict[str, torch.Tensor] = {}
    for prefix, mod in (
        ("image_encoder.", enc),
        ("prompt_encoder.", prompt),
        ("mask_decoder.", dec),
    ):
        for k, v in mod.state_dict().items():
            state[prefix + k] = v
    gen = torch.Generator().manual_seed(seed + 1)
    for k, v in state.items():
        if k.endswith(("rel_pos_h", "rel_pos_w", "attention_biases")):
            state[k] = 0.5 * torch.randn(v.shape, generator=gen)
    torch.save(state, path)
    return path


def run_reference(
    checkpoint: Path,
    arch: str,
    frames: list[Frame],
    device: torch.device,
    window: str,
    context: float,
) -> tuple[dict, dict, float, int, float]:
    """The authors' procedure with segment_anything's own model.

    Returns window masks and 256×256 low-res masks (logits > 0) by (frame, track id),
    seconds, peak bytes, CPU seconds of the process (it runs alone in its worker).
    """
    from segment_anything import SamPredictor, sam_model_registry
    from segment_anything.build_sam import _build_sam

    if arch == "vit_t":
        sam = mobile_sam_reference(checkpoint)
    elif arch == "tiny":
        sam = _build_sam(
            TINY.embed_dim,
            TINY.depth,
            TINY.num_heads,
            list(TINY.global_attn_indexes),
            str(checkpoint),
        )
    else:
        sam = sam_model_registry[arch](checkpoint=str(checkpoint))
    sam.to(device).eval()
    predictor = SamPredictor(sam)
    masks: dict[tuple[int, int], tuple[geometry.CropWindow, np.ndarray]] = {}
    lowres: dict[tuple[int, int], np.ndarray] = {}
    mem = PeakMemory(device)
    with mem.measure():
        t0, c0 = time.perf_counter(), time.process_time()
        for key, fr, box, win, up in reference_crops(frames, context, window):
            predictor.set_image(up)
            m, _, low = predictor.predict(
                box=geometry.box_to_model(box, win, 1024), multimask_output=False
            )
            lowres[key] = low[0] > 0
            masks[key] = reference_window_mask(m[0], win, fr)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    del predictor, sam
    gc.collect()
    return masks, lowres, seconds, mem.peak_bytes, cpu


class ReferenceWorker:
    """The authors' procedure in a process of its own, so it can be timed between box2mask's runs.

    box2mask's engine tunes glibc malloc for its whole process
    (:mod:`box2mask.hostmem`) and leaves GBs of freed heap behind; a reference
    run in the same process afterwards would get both. A fresh
    ``python speed.py --reference-worker`` process (malloc untouched unless
    ``--tune-reference``) runs :func:`run_reference` on request, so the two
    pipelines can alternate on a shared, noisy machine and be compared per pair.
    Requests and results are pickled over the child's stdin/stdout.
    """

    def __init__(self, tune: bool) -> None:
        import subprocess

        cmd = [sys.executable, str(Path(__file__).resolve()), "--reference-worker"]
        env = {**os.environ, "BOX2MASK_SPEED_TUNE_REFERENCE": "1" if tune else "0"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def run(self, *args: Any) -> tuple[dict, dict, float, int, float]:
        import pickle

        assert self.proc.stdin is not None and self.proc.stdout is not None
        ckpt, arch, frames, *rest = args
        plain = [  # Frame holds a read-only mapping, which does not pickle
            (f.sequence, f.frame_index, f.image_path, f.image_hw, f.xyxy, f.track_id, f.category)
            for f in frames
        ]
        pickle.dump((ckpt, arch, plain, *rest), self.proc.stdin)
        self.proc.stdin.flush()
        try:
            ok, value = pickle.load(self.proc.stdout)
        except EOFError:
            raise RuntimeError(f"the reference worker died (exit {self.proc.wait()})") from None
        if not ok:
            raise RuntimeError(f"reference run failed in the worker:\n{value}")
        return value

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


def _reference_worker() -> None:
    """``--reference-worker``: answer :class:`ReferenceWorker` requests until stdin closes."""
    import pickle
    import traceback

    if os.environ.get("BOX2MASK_SPEED_TUNE_REFERENCE") == "1":
        keep_freed_memory()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the result pipe
    while True:
        try:
            args = pickle.load(stdin)
        except EOFError:
            return
        ckpt, arch, plain, *rest, threads = args
        torch.set_num_threads(threads)
        frames = [Frame(*f) for f in plain]
        try:
            answer: tuple[bool, Any] = (True, run_reference(ckpt, arch, frames, *rest))
        except Exception:  # noqa: BLE001 - reported to the parent
            answer = (False, traceback.format_exc())
        pickle.dump(answer, stdout)
        stdout.flush()


def mobile_sam_reference(checkpoint: Path) -> torch.nn.Module:
    """MobileSAM's ``build_sam_vit_t`` model, loaded strictly, as its README runs it.

    ``segment_anything``'s ``Sam``, prompt encoder and decoder (MobileSAM's copies
    differ only in comments) with the original TinyViT: ``segment_anything_hq``'s
    ``tiny_vit_sam.TinyViT``, line for line MobileSAM's but for also returning the
    stage-1 features, which MobileSAM's ``forward`` does not.
    """
    import warnings

    import segment_anything.modeling as sa

    with warnings.catch_warnings():  # timm's deprecation and registry notices
        warnings.simplefilter("ignore")
        from segment_anything_hq.modeling.tiny_vit_sam import TinyViT as _TinyViT

    class MobileSamTinyViT(_TinyViT):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x)[0]

    encoder = MobileSamTinyViT(
        img_size=1024, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
        mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8,
    )  # fmt: skip
    transformer = sa.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)
    sam = sa.Sam(
        image_encoder=encoder,
        prompt_encoder=sa.PromptEncoder(256, (64, 64), (1024, 1024), 16),
        mask_decoder=sa.MaskDecoder(num_multimask_outputs=3, transformer=transformer,
                                    transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )  # fmt: skip
    sam.eval()
    sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam.eval()  # eval after loading (README): TinyViT caches its attention biases there


def run_engine(
    checkpoint: Path,
    frames: list[Frame],
    device: torch.device,
    opts: EngineOptions,
    precision: str,
    compile_: bool,
    warmup: int,
) -> tuple[
    dict[tuple[int, int], tuple[geometry.CropWindow, np.ndarray]],
    dict,
    float,
    int,
    float,
    Profile,
    float,
    int,
]:
    """box2mask's engine; returns window masks, 256×256 low-res masks, seconds, peak bytes,
    CPU seconds, stage profile, warm-up seconds, and the batch size the timed run ended with.

    The warm-up and the timed run get their own copies of ``opts``: the engine lowers
    its batch size after a CUDA out-of-memory, and a warm-up's must not carry over
    unreported into the timed run."""
    model = load_prompt_model("sam", checkpoint, device)
    if precision == "int8":
        model.quantize_encoder_int8()
    if compile_:
        model.compile_encoder()
    autocast = torch.bfloat16 if precision == "bf16" else None
    lowres_by_box: dict[tuple[float, ...], np.ndarray] = {}
    decode = model.decode

    def recording_decode(features: Any, boxes: torch.Tensor, index: torch.Tensor) -> Any:
        logits, iou = decode(features, boxes, index)
        for b, lg in zip(boxes.cpu().numpy(), (logits > 0).cpu().numpy(), strict=True):
            lowres_by_box[tuple(np.round(b, 3))] = lg
        return logits, iou

    model.decode = recording_decode  # type: ignore[method-assign]
    t_warm = 0.0
    if warmup:
        # compile / allocate / pick kernels on a full batch, outside the timing
        # (a compiled encoder pads smaller batches to the compiled size, so a full
        # batch covers the timed run's short last one)
        t0 = time.perf_counter()
        warm = MaskEngine(
            model,
            dataclasses.replace(opts),
            FillModel("box"),
            device=device,
            autocast_dtype=autocast,
        )
        warm.run(warmup_frames(frames, opts.batch_size) * warmup, lambda fm: None)
        t_warm = time.perf_counter() - t0
    profile = Profile()
    timed_opts = dataclasses.replace(opts)
    engine = MaskEngine(
        model, timed_opts, FillModel("box"), device=device, autocast_dtype=autocast, profile=profile
    )
    masks, seconds, peak_bytes, cpu = time_engine(engine, frames, device)
    lowres = {}
    for fr in frames:
        for i in range(len(fr)):
            key = (fr.frame_index, int(fr.track_id[i]))
            if key in masks:
                b = geometry.box_to_model(fr.xyxy[i], masks[key][0], model.image_size)
                lowres[key] = lowres_by_box.get(tuple(np.round(b.astype(np.float32), 3)))
    del engine, model
    gc.collect()
    return masks, lowres, seconds, peak_bytes, cpu, profile, t_warm, timed_opts.batch_size


def warmup_frames(frames: list[Frame], batch_size: int) -> list[Frame]:
    """The first frames that hold at least one full batch of objects (all if fewer)."""
    n = 0
    for i, fr in enumerate(frames):
        n += len(fr)
        if n >= batch_size:
            return frames[: i + 1]
    return list(frames)


def lowres_agreement(ref: dict, got: dict) -> tuple[float, float]:
    """Mean and min IoU of the 256×256 model masks (logits > 0), the same grid for both."""
    ious = []
    for k, a in ref.items():
        b = got.get(k)
        if b is None:
            continue
        union = np.count_nonzero(a | b)
        ious.append(1.0 if union == 0 else np.count_nonzero(a & b) / union)
    return (float(np.mean(ious)), float(np.min(ious))) if ious else (float("nan"), float("nan"))


def resampling_agreement(
    frames: list[Frame], crop_size: int, context: float, window: str
) -> tuple[float, float]:
    """Mean and min IoU between the two mask resampling chains on smooth, object-shaped logits.

    Random weights give noise-like masks, on which any two resamplings differ
    at every noise edge; real masks are smooth blobs. For each object this
    draws smooth 256×256 logits shaped like a real mask (``1 - r²`` of the
    box's inscribed ellipse, in the model's 256 grid) and compares
    box2mask's chain (bilinear 256 → S, > 0; DESIGN §4) with the authors'
    (bilinear 256 → 1024, > 0, then nearest 1024 → S). The figure is what the
    resampling difference costs on masks of real shape.
    """
    import torch.nn.functional as F

    ious = []
    for fr in frames:
        for box in fr.xyxy:
            win = geometry.window_for_box(box, fr.image_hw, crop_size, context, window)  # type: ignore[arg-type]
            x1, y1, x2, y2 = geometry.box_to_model(box, win, 1024) / 4  # 256-grid pixels
            yy, xx = np.mgrid[0:256, 0:256] + 0.5
            a, b = max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
            r2 = ((xx - (x1 + x2) / 2) / a) ** 2 + ((yy - (y1 + y2) / 2) / b) ** 2
            logits = torch.from_numpy((1.0 - r2).astype(np.float32))[None, None]
            ours = F.interpolate(logits, (win.size, win.size), mode="bilinear", align_corners=False)
            theirs = F.interpolate(logits, (1024, 1024), mode="bilinear", align_corners=False)
            theirs_np = (theirs[0, 0] > 0).numpy().astype(np.uint8)
            theirs_s = cv2.resize(theirs_np, (win.size, win.size), interpolation=cv2.INTER_NEAREST)
            a_, b_ = ours[0, 0].numpy() > 0, theirs_s.astype(bool)
            ious.append(np.count_nonzero(a_ & b_) / max(np.count_nonzero(a_ | b_), 1))
    return float(np.mean(ious)), float(np.min(ious))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="vit_b", choices=["tiny", "vit_t", "vit_b", "vit_l", "vit_h"],
                   help="encoder: ViT-B/L/H, TinyViT-5M (vit_t: MobileSAM), or a tiny test ViT")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--objects", type=int, default=4, help="objects in the clip (two per frame)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                   help="box2mask's precision (auto: bf16 on CUDA, fp32 on CPU); the reference is fp32")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile box2mask's encoder")
    p.add_argument("--share-crops", type=float, default=0.0, metavar="IOU",
                   help="also run box2mask with shared crops at this window IoU and compare")  # fmt: skip
    p.add_argument("--window", default="clamped", choices=["clamped", "centred"],
                   help="crop windows of both pipelines (clamped: the authors')")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machine: 1)")
    p.add_argument("--repeat", type=int, default=1, help="time each pipeline this many times")
    p.add_argument("--warmup", type=int, default=-1,
                   help="warm-up runs before timing (default: 1 on CUDA or with --compile, else 0)")  # fmt: skip
    p.add_argument("--skip-reference", action="store_true", help="time box2mask only")
    p.add_argument(
        "--tune-reference",
        action="store_true",
        help="give the reference box2mask's malloc tuning too (box2mask.hostmem)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the figures to this file")
    # --model sam2: SAM 2.1 against SAM2ImagePredictor per object (benchmarks/speed_sam2.py)
    p.add_argument("--model", default="sam", choices=["sam", "sam2"],
                   help="sam: --arch against SamPredictor; sam2: --hiera against SAM2ImagePredictor")  # fmt: skip
    p.add_argument("--hiera", default="t", choices=["t", "s", "b+", "l", "tiny"],
                   help="--model sam2: the SAM 2.1 Hiera shape (tiny: the tests' shape)")  # fmt: skip
    p.add_argument("--temporal", action="store_true",
                   help="--model sam2: also time --temporal propagate")  # fmt: skip
    p.add_argument("--prompt-every", type=int, default=1, help="with --temporal: prompt every K")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    precision = (
        args.precision
        if args.precision != "auto"
        else ("bf16" if device.type == "cuda" else "fp32")
    )
    warmup = args.warmup if args.warmup >= 0 else int(device.type == "cuda" or args.compile)
    arch = arch_of(args.arch)
    opts = EngineOptions(batch_size=args.batch_size, window=args.window, box_fill_classes=())
    result: dict[str, Any] = {
        "arch": args.arch, "device": str(device), "objects": args.objects, "batch_size": args.batch_size,
        "precision": precision, "compile": args.compile, "threads": args.threads, "window": args.window,
        "cpu": _cpu_name(), "torch": torch.__version__,
    }  # fmt: skip
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    what = f"sam2 hiera {args.hiera}" if args.model == "sam2" else args.arch
    print(f"box2mask speed benchmark: {what}, {args.objects} objects, {device} ({result.get('gpu') or result['cpu']}), "
          f"torch {torch.__version__}, {args.threads} CPU thread(s)", flush=True)  # fmt: skip
    if args.model == "sam2":
        import speed_sam2

        with tempfile.TemporaryDirectory(prefix="b2m-speed-") as tmp:
            result.update(speed_sam2.run(args, device, precision, Path(tmp)))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return result

    with tempfile.TemporaryDirectory(prefix="b2m-speed-") as tmp:
        ckpt = write_random_sam(Path(tmp) / f"sam_{args.arch}_random.pth", arch, args.seed)
        frames = make_clip(Path(tmp) / "clip", args.objects, args.seed)
        ref_s, ours_s, used = [], [], []
        ref_cpu: list[float] = []
        ours_cpu: list[float] = []
        ref_masks = ours = None
        ref_peak = our_peak = 0
        # The reference runs in a worker process of its own, alternating with
        # box2mask's runs: box2mask's engine tunes glibc malloc for the whole
        # process (box2mask.hostmem), which would speed up a reference run in
        # the same process too; alternating pairs keep a shared machine's load
        # changes out of the ratio. --tune-reference tunes the worker as well.
        worker = None if args.skip_reference else ReferenceWorker(args.tune_reference)
        if worker is not None:
            result["reference_malloc_tuned"] = args.tune_reference
        try:
            for r in range(args.repeat):
                if worker is not None:
                    ref_masks, ref_low, s, peak, cpu = worker.run(
                        ckpt, args.arch, frames, device, args.window, opts.context, args.threads
                    )
                    ref_s.append(s)
                    ref_cpu.append(cpu)
                    ref_peak = max(ref_peak, peak)
                    print(f"  [{r + 1}] reference: {s:.2f} s ({args.objects / s:.3f} objects/s)",
                          flush=True)  # fmt: skip
                ours, our_low, s, peak, cpu, profile, t_warm, bs = run_engine(
                    ckpt, frames, device, opts, precision, args.compile, warmup if r == 0 else 0
                )
                ours_s.append(s)
                ours_cpu.append(cpu)
                our_peak = max(our_peak, peak)
                used.append(bs)
                pair = f"; {ref_s[-1] / s:.2f}x the reference run before it" if ref_s else ""
                print(f"  [{r + 1}] box2mask:  {s:.2f} s ({args.objects / s:.3f} objects/s)"
                      + (f"; warm-up {t_warm:.1f} s" if t_warm else "") + pair, flush=True)  # fmt: skip
        finally:
            if worker is not None:
                worker.close()
        result["box2mask_malloc_tuned"] = keep_freed_memory()
        # what the timed runs used: an out-of-memory lowers the batch size mid-run
        result["batch_size_used"] = min(used)
        if min(used) != args.batch_size:
            print(f"  out of memory: the timed run's batch size fell from {args.batch_size} to "
                  f"{min(used)}", flush=True)  # fmt: skip
        result["box2mask_seconds"] = ours_s
        result["box2mask_cpu_seconds"] = ours_cpu
        result["box2mask_objects_per_s"] = args.objects / statistics.median(ours_s)
        result["box2mask_peak_mb"] = our_peak / 2**20
        model_s = sum(profile.seconds.get(k, 0.0) for k in ("encoder", "decoder"))
        result["box2mask_profile"] = dict(profile.seconds)
        result["box2mask_model_share"] = model_s / ours_s[-1]
        mean_area = float(np.mean([m.mean() for _, m in ours.values()]))
        result["mean_mask_area_fraction"] = mean_area
        if ref_masks is not None:
            result["reference_seconds"] = ref_s
            result["reference_cpu_seconds"] = ref_cpu
            # CPU seconds per object: the work each side does; on a shared machine
            # wall time also counts the time other jobs held the cores
            if device.type == "cpu":  # on CUDA the host's CPU time says nothing of the work
                result["cpu_speedup"] = statistics.median(ref_cpu) / statistics.median(ours_cpu)
            result["reference_objects_per_s"] = args.objects / statistics.median(ref_s)
            result["reference_peak_mb"] = ref_peak / 2**20
            result["speedup"] = result["box2mask_objects_per_s"] / result["reference_objects_per_s"]
            # each box2mask run against the reference run just before it (same load)
            result["speedup_pairs"] = [a / b for a, b in zip(ref_s, ours_s, strict=True)]
            result["mask_iou_mean"], result["mask_iou_min"] = agreement(ref_masks, ours)
            result["model_mask_iou_mean"], result["model_mask_iou_min"] = lowres_agreement(
                ref_low, our_low
            )
            result["resampling_iou_mean"], result["resampling_iou_min"] = resampling_agreement(
                frames, opts.crop_size, opts.context, args.window
            )
        if args.share_crops > 0:
            shared_opts = EngineOptions(**{**opts.__dict__, "share_crops": args.share_crops})
            shared, _, s, _, _, _, _, _ = run_engine(
                ckpt, frames, device, shared_opts, precision, args.compile, 0
            )
            result["shared_seconds"] = s
            result["shared_objects_per_s"] = args.objects / s
            result["shared_encoder_passes"] = _passes(frames, shared_opts)
            result["shared_iou_vs_unshared_mean"], result["shared_iou_vs_unshared_min"] = agreement(
                ours, shared
            )
            if ref_masks is not None:
                result["shared_iou_vs_reference_mean"], _ = agreement(ref_masks, shared)

    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def _passes(frames: list[Frame], opts: EngineOptions) -> int:
    from box2mask.engine import group_windows

    n = 0
    for fr in frames:
        wins = [
            geometry.window_for_box(b, fr.image_hw, opts.crop_size, opts.context, opts.window)
            for b in fr.xyxy
        ]  # type: ignore[arg-type]
        n += len(group_windows(wins, fr.xyxy, opts.share_crops))
    return n


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ×{os.cpu_count()}"
    except OSError:
        pass
    return "cpu"


def _print(r: dict[str, Any]) -> None:
    def spread(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} s" + (
            f" (min {min(xs):.2f}, max {max(xs):.2f})" if len(xs) > 1 else ""
        )

    print()
    bs = f"batch size {r['batch_size_used']}" + (
        f" (requested {r['batch_size']}, lowered after out of memory)"
        if r["batch_size_used"] != r["batch_size"]
        else ""
    )
    print(bs)
    print(f"{'':24}{'objects/s':>12}{'peak MB':>10}   seconds")
    if "reference_objects_per_s" in r:
        print(
            f"{'reference (authors)':24}{r['reference_objects_per_s']:12.3f}{r['reference_peak_mb']:10.0f}   {spread(r['reference_seconds'])}"
        )
    print(
        f"{'box2mask':24}{r['box2mask_objects_per_s']:12.3f}{r['box2mask_peak_mb']:10.0f}   {spread(r['box2mask_seconds'])}"
    )
    if "speedup" in r:
        pairs = r["speedup_pairs"]
        print(f"speed-up: {r['speedup']:.2f}x (ratio of the medians; per alternating pair: "
              f"{', '.join(f'{x:.2f}x' for x in pairs)}, median {statistics.median(pairs):.2f}x)")  # fmt: skip
        if "cpu_speedup" in r:
            print(f"speed-up in CPU seconds (work done, what a shared machine's load does not "
                  f"stretch): {r['cpu_speedup']:.2f}x (CPU s per object: reference "
                  f"{statistics.median(r['reference_cpu_seconds']) / r['objects']:.1f}, box2mask "
                  f"{statistics.median(r['box2mask_cpu_seconds']) / r['objects']:.1f})")  # fmt: skip
        on = {True: "on", False: "off"}
        print(f"glibc malloc tuning (box2mask.hostmem): reference "
              f"{on[bool(r.get('reference_malloc_tuned'))]}, box2mask {on[r['box2mask_malloc_tuned']]}")  # fmt: skip
        print(
            f"mask IoU vs reference, model output (256x256 logits > 0, same grid): mean "
            f"{r['model_mask_iou_mean']:.4f}, min {r['model_mask_iou_min']:.4f}"
        )
        print(f"mask IoU vs reference, final window masks: mean {r['mask_iou_mean']:.4f}, min "
              f"{r['mask_iou_min']:.4f} (box2mask resizes 256 -> S in one step, the authors 256 -> 1024 "
              "-> S; random weights give noise-like masks, mean area "
              f"{100 * r['mean_mask_area_fraction']:.0f}% of the window, so this counts resampling "
              "differences on every noise edge)")  # fmt: skip
        print(f"the two resampling chains on smooth object-shaped logits (each box's inscribed "
              f"ellipse): mean IoU {r['resampling_iou_mean']:.4f}, min {r['resampling_iou_min']:.4f}")  # fmt: skip
    print(
        f"box2mask time in the model (encoder + decoder): {100 * r['box2mask_model_share']:.0f}% of its wall time"
    )
    if "shared_seconds" in r:
        print(f"--share-crops: {r['shared_encoder_passes']} encoder passes for {r['objects']} objects, "
              f"{r['shared_objects_per_s']:.3f} objects/s; mask IoU vs unshared mean "
              f"{r['shared_iou_vs_unshared_mean']:.4f} (min {r['shared_iou_vs_unshared_min']:.4f})")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["--reference-worker"]:
        _reference_worker()
    else:
        main(sys.argv[1:])
