"""``box2mask train lite``: train (or fine-tune) the light model; exact resume after a kill.

The run folder::

    run.json             what determines the run (compared on resume)
    cache/               the object cache (box2mask.train.lite.cache)
    state.pt             resume state: network, EMA, optimizer, step, best dev score
    metrics.jsonl        one line per logged step and per dev evaluation
    best.safetensors     the EMA network of the best dev per-object IoU so far
    model.safetensors    the final EMA network (written when the last step is done)

A step draws the objects of one input side (class-balanced, reviewed objects
first; :class:`~box2mask.train.lite.samples.Sampler`) with a generator seeded by
``(seed, step)``, cuts them as inference does, runs one forward pass, and takes one AdamW step on BCE + Dice (masks) and BCE (the IoU head, against
the IoU its own mask has). Weights are averaged (EMA); the EMA network is what
is evaluated and written. Everything a step depends on is in ``state.pt``
(saved every ``save_every`` steps and on SIGINT/SIGTERM), so a run killed at
any moment and started again with the same command ends with the same bytes
as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from box2mask.errors import Box2MaskError, JobMismatch, UsageError
from box2mask.io import atomic_torch_save
from box2mask.metrics import QualityAccumulator
from box2mask.models.lite import checkpoint as lite_ckpt
from box2mask.models.lite.crops import INPUT_SIDES
from box2mask.models.lite.model import LiteModel, flushing_denormals
from box2mask.models.lite.net import LiteArch, LiteNet
from box2mask.train.lite.cache import ObjectCache, Source, build_cache
from box2mask.train.lite.calibrate import calibrate
from box2mask.train.lite.samples import AugmentConfig, Sampler
from box2mask.types import Frame

log = logging.getLogger("box2mask")

STATE_FORMAT = "box2mask-lite-train-state"
#: input side / window side of a network trained from random weights (docs/lite.md: measured
#: against 1 and 2 on the development tiles)
DEFAULT_INPUT_SCALE = 1.5


@dataclass
class LiteTrainOptions:
    """Everything ``box2mask train lite`` takes.

    Attributes:
        out: the run folder.
        sources: the training data (frames with ground-truth masks).
        val: development frames with ground-truth masks (measured, never trained on), or none.
        init: start from this lite checkpoint (``None``: random weights).
        steps: optimizer steps in all.
        batch_pixels: input pixels per step (``128 × 48²``: 512 objects of 32 px, 32 of 128 px).
        lr, weight_decay, warmup: AdamW and its schedule (linear warm-up, cosine to 2 %).
        seed: seeds the weights and every batch.
        context, min_side: the window rule written into the checkpoint.
        input_scale: input side / window side, rounded up to an input side
            (:func:`~box2mask.models.lite.crops.input_side`); ``None``: the ``init`` file's,
            else :data:`DEFAULT_INPUT_SCALE`.
        arch: the network's shape (ignored with ``init``: the file's own is used).
        class_balance: objects of a class of ``n`` objects are drawn with weight ``n ** -class_balance``.
        reviewed_weight: objects a person reviewed or corrected are drawn this many times more often.
        ema: weight of the running average per step.
        val_every, save_every, log_every: in steps.
        threads: torch CPU threads (0: torch's default).
        device: ``cpu``, ``cuda``, ``cuda:N``.
        aug: the augmentation.
        describe: free-form provenance written into the checkpoint (command, licence).
    """

    out: Path
    sources: list[Source]
    val: Source | None = None
    init: Path | None = None
    steps: int = 15000
    batch_pixels: int = 128 * 48 * 48
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 300
    seed: int = 0
    context: float = 1.5
    min_side: int = 16
    input_scale: float | None = None
    arch: LiteArch = field(default_factory=LiteArch)
    class_balance: float = 0.5
    reviewed_weight: float = 4.0
    ema: float = 0.999
    val_every: int = 2000
    save_every: int = 200
    log_every: int = 50
    threads: int = 0
    device: str = "cpu"
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    describe: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What determines the trained weights (a resumed run must have the same)."""
        from box2mask import __version__
        from box2mask.io import sha256_file as file_sha256

        skip = ("out", "sources", "val", "init", "val_every", "log_every", "threads", "device",
                "describe", "save_every", "arch", "aug")  # fmt: skip
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        d["aug"] = self.aug.to_dict()
        d["arch"] = json.loads(self.arch.to_json())
        d["sources"] = [
            {"name": s.name, "describe": s.describe, "weight": s.weight} for s in self.sources
        ]
        d["init_sha256"] = None if self.init is None else file_sha256(self.init)
        d["box2mask_version"] = __version__
        return json.loads(json.dumps(d, default=str))


@dataclass
class LiteTrainResult:
    """What a finished run gives back."""

    model: Path
    best: Path | None
    steps: int
    dev: dict[str, Any] | None
    seconds: float


class Stop(Box2MaskError):
    """SIGINT / SIGTERM during training: the state was saved, the same command resumes."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(
            f"stopped by signal {signum} after step {step}; run the same command to resume"
        )
        self.exit_code = 128 + signum


# -- sampling ---------------------------------------------------------------------


def draw_weights(cache: ObjectCache, class_balance: float, reviewed_weight: float) -> np.ndarray:
    """Drawing weights of the cache's objects (see :class:`LiteTrainOptions`)."""
    counts = np.bincount(cache.category, minlength=len(cache.categories)).astype(np.float64)
    w = cache.weight * np.power(np.maximum(counts[cache.category], 1.0), -class_balance)
    return np.where(cache.reviewed, w * reviewed_weight, w)


# -- losses -----------------------------------------------------------------------


def losses(
    logits: torch.Tensor, iou_logit: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-object ``(bce, dice, iou_head)`` losses of one batch of one input side.

    Args:
        logits: ``(n, R, R)`` mask logits.
        iou_logit: ``(n,)`` the IoU head's logit.
        target: ``(n, R, R)`` soft masks in 0..1.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2))
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2)) + target.sum((1, 2)) + 1)
    with torch.no_grad():
        pred, gt = logits > 0, target > 0.5
        union = (pred | gt).sum((1, 2)).float()
        iou = torch.where(union > 0, (pred & gt).sum((1, 2)).float() / union.clamp_min(1), 1.0)
    head = F.binary_cross_entropy_with_logits(iou_logit, iou, reduction="none")
    return bce, dice, head


# -- evaluation -------------------------------------------------------------------


@dataclass
class DevFrame:
    """A development frame held in memory: its image, boxes, classes and true masks."""

    frame: Frame
    image: np.ndarray
    masks: list[np.ndarray]
    keep: list[int]


def load_dev(source: Source) -> list[DevFrame]:
    """Read the development frames (every object with a true mask)."""
    from box2mask.io import read_image

    out = []
    for frame in source.frames():
        if frame.gt_mask is None:
            continue
        masks, keep = [], []
        for i in range(len(frame)):
            m = frame.gt_mask(i)
            if m is not None:
                masks.append(m)
                keep.append(i)
        if keep:
            out.append(DevFrame(frame, read_image(frame.image_path), masks, keep))
    return out


def evaluate(model: LiteModel, dev: list[DevFrame]) -> dict[str, Any]:
    """Per-object and per-frame IoU / Boundary IoU of ``model`` on ``dev`` (ground-truth boxes).

    The masks are made as ``convert`` makes them: the window of each box, the
    input, the network, the mask pasted back in window pixels.
    """
    acc = QualityAccumulator()
    for d in dev:
        f = d.frame
        windows = [model.window(f.xyxy[i]) for i in d.keep]
        inputs = [
            model.make_input(d.image, f.xyxy[i], w) for i, w in zip(d.keep, windows, strict=True)
        ]
        logits, _ = model.predict(inputs)
        h, w = f.image_hw
        pred_union = np.zeros((h, w), bool)
        gt_union = np.zeros((h, w), bool)
        for i, win, lg, gt in zip(d.keep, windows, logits, d.masks, strict=True):
            block = model.mask_block(lg, win, f.xyxy[i])
            pred = block.to_array(win.size)
            gt_win = _cut(gt, win)
            acc.add_object(str(f.category[i]), pred, gt_win, f.image_hw, win)
            _paste(pred_union, pred, win)
            gt_union |= gt
        acc.add_frame(pred_union, gt_union)
    return acc.summary()


def _cut(mask: np.ndarray, win: Any) -> np.ndarray:
    out = np.zeros((win.size, win.size), bool)
    sl = win.overlap(mask.shape)
    if sl is not None:
        fy, fx, cy, cx = sl
        out[cy, cx] = mask[fy, fx]
    return out


def _paste(frame_mask: np.ndarray, mask: np.ndarray, win: Any) -> None:
    sl = win.overlap(frame_mask.shape)
    if sl is not None:
        fy, fx, cy, cx = sl
        frame_mask[fy, fx] |= mask[cy, cx]


def dev_brief(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures kept in the metrics log and the checkpoint (percent, 2 decimals)."""

    def pct(v: float) -> float:
        return round(100 * float(v), 2)

    po = summary["per_object"]
    return {
        "objects": int(po["overall"]["count"]),
        "frames": int(summary["per_frame"]["count"]),
        "per_object_iou": pct(po["overall"]["iou"]),
        "per_object_biou": pct(po["overall"]["biou"]),
        "per_frame_iou": pct(summary["per_frame"]["iou"]),
        "per_frame_biou": pct(summary["per_frame"]["biou"]),
        "by_category_iou": {c: pct(s["iou"]) for c, s in po["by_category"].items()},
        "by_category_count": {c: int(s["count"]) for c, s in po["by_category"].items()},
    }


# -- the run ----------------------------------------------------------------------


def _lr(step: int, opts: LiteTrainOptions) -> float:
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    t = (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return opts.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _open_run(opts: LiteTrainOptions, identity: dict[str, Any], overwrite: bool) -> None:
    from box2mask.train.run_folder import open_run_folder

    files = ("run.json", "state.pt", "metrics.jsonl", "best.safetensors", "model.safetensors")
    open_run_folder(opts.out, identity, files, overwrite, "box2mask lite run")


@contextlib.contextmanager
def _signals_saved() -> Iterator[list[int]]:
    """SIGINT/SIGTERM set a flag (the loop saves its state and stops) instead of killing at once."""
    caught: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        caught.append(signum)

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            old[sig] = signal.signal(sig, handler)
    try:
        yield caught
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def train_lite(
    opts: LiteTrainOptions,
    overwrite: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> LiteTrainResult:
    """Train; see the module docstring. ``progress`` gets each logged record."""
    with flushing_denormals():  # subnormal floats: 10x slower on x86, no use here
        return _train_lite(opts, overwrite, progress)


def _train_lite(
    opts: LiteTrainOptions,
    overwrite: bool,
    progress: Callable[[dict[str, Any]], None] | None,
) -> LiteTrainResult:
    t_start = time.perf_counter()
    if opts.steps <= 0 or opts.batch_pixels < 32 * 32:
        raise UsageError("--steps must be > 0 and --batch-pixels at least 1024")
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    identity = opts.identity()
    _open_run(opts, identity, overwrite)
    out = opts.out

    init = None if opts.init is None else lite_ckpt.load(opts.init)
    arch = init.net.arch if init is not None else opts.arch
    if init is not None:
        # a fine-tuned file keeps the window rule its network learned
        opts.context, opts.min_side = init.context, init.min_side
    scale = opts.input_scale
    if scale is None:
        scale = init.input_scale if init is not None else DEFAULT_INPUT_SCALE

    cache = build_cache(out / "cache", opts.sources, opts.min_side,
                        progress=lambda f, n: progress and progress({"kind": "cache", "frames": f, "objects": n}))  # fmt: skip
    if len(cache) == 0:
        raise UsageError("the training data has no object with a ground-truth mask")
    sampler = Sampler(cache, draw_weights(cache, opts.class_balance, opts.reviewed_weight),
                      opts.context, opts.min_side, opts.batch_pixels, scale)  # fmt: skip
    dev = load_dev(opts.val) if opts.val is not None else []

    torch.manual_seed(opts.seed)
    net = LiteNet(arch)
    if init is not None:
        net.load_state_dict(init.net.state_dict())
    # channels-last: 5x faster convolutions on CPU (oneDNN), the same on CUDA
    net.to(device).to(memory_format=torch.channels_last).train()
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opts.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=opts.lr,
    )
    step, best = 0, None
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise JobMismatch(f"{state_path} is not a lite training state; use --overwrite")
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, best = int(state["step"]), state["best"]
        log.info("resuming %s at step %d", out, step)
    _trim_metrics(out / "metrics.jsonl", step)

    def save_state() -> None:
        atomic_torch_save({"format": STATE_FORMAT, "net": net.state_dict(), "ema": ema.state_dict(),
                           "opt": opt.state_dict(), "step": step, "best": best}, state_path)  # fmt: skip

    def record(rec: dict[str, Any]) -> None:
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if progress is not None:
            progress(rec)

    def ema_model() -> LiteModel:
        """The EMA network for inference, its thresholds calibrated on training objects."""
        net_cpu = copy.deepcopy(ema).cpu()
        model = LiteModel(
            lite_ckpt.LiteCheckpoint(net_cpu, opts.context, opts.min_side, {}, None, (), scale),
            "cpu",
        )
        model.thresholds = calibrate(model, cache, seed=opts.seed)
        return model

    def write_model(path: Path, dev_figures: dict[str, Any] | None, model: LiteModel) -> Path:
        extra = {
            "recipe": {k: v for k, v in identity.items() if k != "sources"},
            "data": [
                s.describe | {"name": s.name, "objects": int((cache.source == k).sum())}
                for k, s in enumerate(opts.sources)
            ],  # fmt: skip
            "dev": {"step": step, **(dev_figures or {})},
            "dev_source": None if opts.val is None else opts.val.describe,
        }
        extra.update({k: v for k, v in opts.describe.items()})
        return lite_ckpt.save(path, copy.deepcopy(ema).cpu(), opts.context, opts.min_side,
                              INPUT_SIDES, extra, model.thresholds, scale)  # fmt: skip

    def run_dev(model: LiteModel) -> dict[str, Any] | None:
        return dev_brief(evaluate(model, dev)) if dev else None

    sums = {"loss": 0.0, "bce": 0.0, "dice": 0.0, "iou_head": 0.0, "n": 0, "objects": 0}
    t_log = time.perf_counter()
    with _signals_saved() as caught:
        while step < opts.steps:
            if caught:
                save_state()
                raise Stop(caught[0], step)
            rng = np.random.default_rng([opts.seed, step])
            b = sampler.batch(rng, opts.aug)
            lr = _lr(step, opts)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            x = torch.from_numpy(b.inputs).to(device).contiguous(memory_format=torch.channels_last)
            t = torch.from_numpy(b.targets).to(device)
            logits, iou_logit = net(x)
            bce, dice, head = losses(logits, iou_logit, t)
            total = (bce + dice + 0.5 * head).mean()
            parts = torch.stack([bce.mean(), dice.mean(), head.mean()]).detach()
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            with torch.no_grad():
                d = min(opts.ema, (1 + step) / (10 + step))
                for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                    pe.mul_(d).add_(pn.detach(), alpha=1 - d)
                for be, bn in zip(ema.buffers(), net.buffers(), strict=True):
                    be.copy_(bn)
            step += 1
            sums["loss"] += float(total.detach())
            for k, v in zip(("bce", "dice", "iou_head"), parts.tolist(), strict=True):
                sums[k] += v
            sums["n"] += 1
            sums["objects"] += len(b.index)
            if step % opts.log_every == 0 or step == opts.steps:
                now = time.perf_counter()
                n = max(sums["n"], 1)
                record({"kind": "step", "step": step, "lr": lr,
                        **{k: round(sums[k] / n, 5) for k in ("loss", "bce", "dice", "iou_head")},
                        "objects_per_s": round(sums["objects"] / max(now - t_log, 1e-9), 1)})  # fmt: skip
                sums = dict.fromkeys(sums, 0.0)
                sums["n"] = sums["objects"] = 0
                t_log = now
            if step % opts.save_every == 0 or step == opts.steps:
                save_state()
            if dev and (step % opts.val_every == 0 or step == opts.steps):
                model = ema_model()
                figures = run_dev(model)
                assert figures is not None
                figures["thresholds"] = list(model.thresholds)
                record({"kind": "dev", "step": step, **figures})
                if best is None or figures["per_object_iou"] > best["per_object_iou"]:
                    best = {"step": step, **figures}
                    write_model(out / "best.safetensors", figures, model)
                save_state()
    final = ema_model()
    final_dev = run_dev(final)
    model_path = write_model(out / "model.safetensors", final_dev, final)
    return LiteTrainResult(
        model_path,
        (out / "best.safetensors") if (out / "best.safetensors").is_file() else None,
        step,
        final_dev,
        time.perf_counter() - t_start,
    )


def _trim_metrics(path: Path, step: int) -> None:
    """Drop the log lines of steps after the saved state (a killed run logged them, then lost them)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(rec.get("step", 0)) <= step:
            keep.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
    tmp.replace(path)
