"""The training loop: alternating AdamW steps, validation, checkpoints, resume, DDP.

``train(options)`` is what ``box2mask train`` runs. The run folder holds::

    run.json            what determines the run (compared on resume)
    checkpoint.pt       resume state after the last finished epoch: trainable
                        parameters, optimizer, scheduler, RNG states, epoch, step
    metrics.jsonl       one line per logged step and per epoch
    metrics.csv         one row per epoch
    best.safetensors    the ROS-SAM model of the best validation IoU so far
    model.safetensors   the final model (written when the last epoch ends)
    samples/            --dry-run pictures

Several processes (``torchrun --nproc-per-node N -m box2mask train ...``):
``WORLD_SIZE > 1`` in the environment starts ``torch.distributed`` (NCCL on
CUDA, Gloo on CPU); each rank reads its share of the samples
(``DistributedSampler``), gradients are averaged by DDP, validation frames
are split over the ranks and their scores merged, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from box2mask.adapters.base import Adapter, open_dataset
from box2mask.errors import Box2MaskError, CheckpointError, JobMismatch, UsageError
from box2mask.io import atomic_torch_save, sha256_file
from box2mask.job.corrections import layer_digest
from box2mask.job.frames import training_frames
from box2mask.layout import state_dir
from box2mask.train.augment import AugmentConfig
from box2mask.train.data import (
    DataConfig,
    TrainDataset,
    collate,
    eligible_objects,
    has_reviewed,
    restrict_frame,
    sample_frames,
)
from box2mask.train.model import (
    PARTS,
    PHASE_PARTS,
    TrainingModule,
    build_training_model,
    mask_loss,
    named_parts,
    parameter_counts,
    phase_of_step,
)
from box2mask.types import Frame

log = logging.getLogger("box2mask")

STATE_FORMAT = "box2mask-train-state"
STATE_VERSION = 1
Schedule = Literal["step", "cosine", "none"]


@dataclass
class TrainOptions:
    """Everything ``box2mask train`` takes (names as the CLI options).

    Attributes:
        dataset, root, adapter_options: the training data (an adapter whose
            frames carry ground-truth masks); ``dataset`` may be ``None`` when
            ``data`` gives the data.
        data: box2mask job folders whose masks are training data too
            (:func:`box2mask.job.frames.training_frames`): the objects a person
            reviewed first (their frames always kept, whatever
            ``frame_fraction``; drawn first among a frame's ``max_objects``), then
            the model's own masks.
        reviewed_only: of ``data``, only the objects a person reviewed.
        sam, hq: official SAM and HQ-SAM checkpoints of the same ViT.
        out: the run folder.
        val_options: adapter options for the validation data (merged over
            ``adapter_options``, e.g. ``{"split": "val"}``); or
        val_fraction: hold out this share of the sequences instead (0: no
            validation).
        val_max_frames: validate on at most this many frames (evenly spaced).
        lora_rank: LoRA rank (the authors use 512; clamped to the ViT width).
        epochs, lr, weight_decay: AdamW training length and settings.
        schedule: ``step`` (×``lr_gamma`` every ``lr_drop_epochs``, HQ-SAM's
            train.py), ``cosine`` (to 0 at the end) or ``none``.
        warmup_steps: linear warm-up over the first optimizer steps.
        batch_size: images per micro-batch per process.
        grad_accum: micro-batches per optimizer step.
        steps_per_epoch: cap on optimizer steps per epoch (quick runs).
        view, exclude_classes, frame_fraction, max_objects: the samples
            (:class:`~box2mask.train.data.DataConfig`).
        augment, lsj_scale, rotate_prob, max_angle: augmentation.
        seed: every random choice (frames kept, samples, LoRA init).
        device: ``auto`` (CUDA if present, the local rank's GPU under
            torchrun), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16``.
        workers: DataLoader worker processes (0: load in the main process).
        overwrite: start afresh in a run folder that has a run.
        log_every: a metrics line every this many optimizer steps.
    """

    dataset: str | None
    sam: Path
    hq: Path
    out: Path
    root: Path | None = None
    adapter_options: dict[str, Any] = field(default_factory=dict)
    val_options: dict[str, Any] | None = None
    val_fraction: float = 0.0
    val_max_frames: int = 200
    lora_rank: int = 512
    epochs: int = 24
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Schedule = "step"
    lr_drop_epochs: int = 10
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    batch_size: int = 1
    grad_accum: int = 1
    steps_per_epoch: int | None = None
    view: Literal["frame", "crop"] = "frame"
    exclude_classes: tuple[str, ...] = ("car",)
    frame_fraction: float = 0.25
    max_objects: int = 16
    augment: bool = True
    lsj_scale: tuple[float, float] = (0.1, 4.0)
    rotate_prob: float = 0.5
    max_angle: float = 180.0
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    workers: int = 0
    overwrite: bool = False
    log_every: int = 10
    data: tuple[Path, ...] = ()
    reviewed_only: bool = False

    def __post_init__(self) -> None:
        self.sam, self.hq, self.out = Path(self.sam), Path(self.hq), Path(self.out)
        self.data = tuple(Path(p) for p in self.data)
        if not self.dataset and not self.data:
            raise UsageError("no training data: give --dataset (with --root) and/or --data JOB")
        if not self.dataset and (self.root is not None or self.adapter_options):
            raise UsageError("--root and --opt describe a --dataset; give --dataset too")
        if not self.dataset and self.val_options is not None:
            raise UsageError("--val-opt picks a --dataset's validation data; give --dataset too")
        if self.reviewed_only and not self.data:
            raise UsageError("--reviewed-only chooses among the objects of --data JOB; give --data")
        self.exclude_classes = tuple(self.exclude_classes)
        self.lsj_scale = (float(self.lsj_scale[0]), float(self.lsj_scale[1]))
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"--grad-accum must be at least 1, got {self.grad_accum}"),
            (0 < self.frame_fraction <= 1, f"--frame-fraction must be in (0, 1], got {self.frame_fraction}"),
            (0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), got {self.val_fraction}"),
            (self.schedule in ("step", "cosine", "none"), f"--schedule must be step, cosine or none, got {self.schedule!r}"),
            (self.view in ("frame", "crop"), f"--view must be frame or crop, got {self.view!r}"),
            (self.precision in ("auto", "fp32", "bf16"), f"--precision must be auto, fp32 or bf16, got {self.precision!r}"),
            (0 < self.lsj_scale[0] <= self.lsj_scale[1], f"--lsj-scale must be MIN,MAX with 0 < MIN <= MAX, got {self.lsj_scale}"),
            (0 <= self.rotate_prob <= 1, f"--rotate-prob must be in [0, 1], got {self.rotate_prob}"),
            (self.max_objects >= 1, f"--max-objects must be at least 1, got {self.max_objects}"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "--steps-per-epoch must be at least 1"),
            (self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.val_options is not None and self.val_fraction > 0:
            raise UsageError(
                "give either --val-opt (a validation split) or --val-fraction, not both"
            )

    def data_config(self) -> DataConfig:
        return DataConfig(
            view=self.view,
            exclude_classes=self.exclude_classes,
            max_objects=self.max_objects,
            augment=self.augment,
            aug=AugmentConfig(
                scale_min=self.lsj_scale[0],
                scale_max=self.lsj_scale[1],
                rotate_prob=self.rotate_prob,
                max_angle=self.max_angle,
            ),
            seed=self.seed,
        )


@dataclass
class TrainProgress:
    """What the loop reports through its callback.

    ``event``: ``"start"`` (totals known), ``"step"`` (after an optimizer
    step), ``"validate"`` (validation begins), ``"epoch"`` (an epoch ended and
    was saved), ``"done"``.
    """

    event: str
    epoch: int  # 0-based epoch in progress (or just finished)
    epochs: int
    step_in_epoch: int = 0
    steps_per_epoch: int = 0
    global_step: int = 0
    phase: str = ""
    loss: float = math.nan
    lr: float = math.nan
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    out: Path
    epochs_done: int
    global_step: int
    history: list[dict[str, Any]]
    model_path: Path | None
    best_path: Path | None
    lora_rank: int
    parameter_counts: dict[str, int]
    resumed_from: int = 0
    #: the trained model in memory (train mode, LoRA unfolded); ``None`` on other ranks
    model: Any = None


# ---------------------------------------------------------------------------
# distributed helpers


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started: bool = False  # this call initialised the process group

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Start ``torch.distributed`` from torchrun's environment when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        started = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, started)


def _broadcast(obj: Any, di: DistInfo) -> Any:
    if di.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _collective_device(device: torch.device) -> torch.device:
    """The device of tensors for this run's collectives: the model's, or under NCCL
    (which has no CPU backend) the rank's current GPU."""
    if (
        device.type != "cuda"
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_backend() == "nccl"
    ):
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _agree_on_batches(flags: list[int], n: int, di: DistInfo, device: torch.device) -> torch.Tensor:
    """``(n,)`` int32: 1 for the micro-batches every rank trains on.

    ``flags[k]`` is 1 where this rank's micro-batch ``k`` exists and has objects;
    missing entries (a short last step) count as 0. Every rank gets the same
    answer (MIN over the ranks), so all make the same DDP calls. The tensor lives
    on :func:`_collective_device`: NCCL refuses CPU tensors.
    """
    t = torch.zeros(n, dtype=torch.int32)
    t[: len(flags)] = torch.tensor(flags, dtype=torch.int32)
    t = t.to(_collective_device(device))
    if di.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def _resolve_device(name: str, di: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{di.local_rank}"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    return dev


# ---------------------------------------------------------------------------
# data


def _read_sequences(adapter: Adapter, names: list[str]) -> list[tuple[str, list[Frame]]]:
    return [(name, list(adapter.read_sequence(name))) for name in names]


def _spaced(frames: list[Frame], n: int) -> list[Frame]:
    if len(frames) <= n:
        return frames
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in idx]


def _sources(opts: TrainOptions) -> list[tuple[str, Callable[[], list[Frame]]]]:
    """Every training sequence, as ``(name, read its frames)``: the dataset's, then each
    job's (``data``), in order. A job's sequence is named ``<job folder>:<sequence>`` so
    that it cannot meet a dataset's of the same name."""
    out: list[tuple[str, Callable[[], list[Frame]]]] = []
    if opts.dataset:
        adapter = open_dataset(opts.dataset, opts.root, opts.adapter_options)
        names = [s.name for s in adapter.list_sequences()]
        if not names:
            raise UsageError(f"{opts.dataset} at {adapter.root} has no sequences")
        out += [(n, lambda n=n: list(adapter.read_sequence(n))) for n in names]
    for job in opts.data:
        for seq, frames in training_frames(job, reviewed_only=opts.reviewed_only):
            out.append((f"{job.name}:{seq}", lambda frames=frames: frames))
    return out


def load_frames(opts: TrainOptions) -> tuple[list[Frame], list[Frame]]:
    """``(train frames, validation frames)`` as the options say (see :class:`TrainOptions`)."""
    seqs = _sources(opts)
    names = [n for n, _ in seqs]

    def read(keep: Callable[[int], bool]) -> list[tuple[str, list[Frame]]]:
        return [(n, load()) for i, (n, load) in enumerate(seqs) if keep(i)]

    val_frames: list[Frame] = []
    if opts.val_options is not None:
        val_adapter = open_dataset(
            opts.dataset, opts.root, {**opts.adapter_options, **opts.val_options}
        )
        for _, frames in _read_sequences(
            val_adapter, [s.name for s in val_adapter.list_sequences()]
        ):
            val_frames.extend(frames)
        train_seqs = read(lambda i: True)
    elif opts.val_fraction > 0 and len(names) >= 2:
        rng = np.random.default_rng([opts.seed, 7])
        k = min(len(names) - 1, max(1, round(opts.val_fraction * len(names))))
        held = set(rng.choice(len(names), size=k, replace=False).tolist())
        train_seqs = read(lambda i: i not in held)
        for _, frames in read(lambda i: i in held):
            val_frames.extend(frames)
    elif opts.val_fraction > 0:
        # one sequence: hold out its last frames (the first ones train)
        ((name, frames),) = read(lambda i: True)
        cut = max(1, int(round(len(frames) * (1 - opts.val_fraction))))
        train_seqs, val_frames = [(name, frames[:cut])], frames[cut:]
    else:
        train_seqs = read(lambda i: True)
    # frames holding an object a person reviewed are kept whatever the share
    train = sample_frames(
        train_seqs, opts.frame_fraction, opts.seed, always=has_reviewed if opts.data else None
    )
    val = []
    for f in val_frames:
        keep = eligible_objects(f, opts.exclude_classes)
        if keep and f.gt_mask is not None:
            val.append(restrict_frame(f, keep))
    return train, _spaced(val, opts.val_max_frames)


# ---------------------------------------------------------------------------
# validation


def validate(
    model: torch.nn.Module,
    frames: list[Frame],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    di: DistInfo | None = None,
    batch_size: int = 4,
) -> dict[str, float]:
    """Mask IoU / Boundary IoU of the model through the inference pipeline (DESIGN §4).

    Each rank scores its share of ``frames``; the totals are merged.

    Returns:
        ``{"val_iou", "val_biou"}`` (per object, means over objects) and
        ``{"val_frame_iou", "val_frame_biou"}`` (per frame, the authors' way),
        ``"val_objects"``; NaN without frames.
    """
    import box2mask.models  # noqa: F401  (registers the 'box' model)
    from box2mask import geometry
    from box2mask.engine import EngineOptions, MaskEngine
    from box2mask.metrics import QualityAccumulator
    from box2mask.models.registry import MODELS

    di = di or DistInfo()
    acc = QualityAccumulator()
    mine = frames[di.rank :: di.world]
    was_training = model.training
    model.eval()
    engine = MaskEngine(
        model,  # type: ignore[arg-type]
        EngineOptions(batch_size=batch_size, box_fill_classes=(), workers=1),
        box_filler=MODELS.get("box").build(),
        device=device,
        autocast_dtype=autocast_dtype,
    )

    def on_frame(fm: Any) -> None:
        frame = fm.frame
        hw = frame.image_hw
        pred_u = np.zeros(hw, dtype=bool)
        gt_u = np.zeros(hw, dtype=bool)
        for i, om in enumerate(fm.masks):  # all objects kept, in frame order
            gt = frame.gt_mask(i) if frame.gt_mask is not None else None
            if gt is None:
                continue
            gt = np.asarray(gt, dtype=bool)
            acc.add_object(om.category, om.mask, geometry.crop_mask(gt, om.window), hw, om.window)
            geometry.paste_mask(om.mask, om.window, hw, pred_u)
            gt_u |= gt
        acc.add_frame(pred_u, gt_u)

    try:
        engine.run(mine, on_frame)
    finally:
        model.train(was_training)
    if di.world > 1:
        gathered: list[Any] = [None] * di.world
        dist.all_gather_object(gathered, acc)
        acc = QualityAccumulator(ratio=acc.ratio)
        for other in gathered:
            acc.merge(other)
    s = acc.summary()
    obj, frm = s["per_object"]["overall"], s["per_frame"]
    return {
        "val_iou": float(obj["iou"]),
        "val_biou": float(obj["biou"]),
        "val_frame_iou": float(frm["iou"]),
        "val_frame_biou": float(frm["biou"]),
        "val_objects": int(obj["count"]),
    }


# ---------------------------------------------------------------------------
# run folder


def run_identity(opts: TrainOptions, world: int) -> dict[str, Any]:
    """What determines the trained weights (a resumed run must have the same)."""
    from box2mask import __version__

    d = asdict(opts)
    for key in ("out", "device", "workers", "overwrite", "log_every", "sam", "hq"):
        d.pop(key)
    d["root"] = None if opts.root is None else str(Path(opts.root).resolve())
    # a job's reviewed objects are its data: corrections imported since make another run
    d["data"] = [
        {"job": str(Path(p).resolve()), "corrections_sha256": layer_digest(state_dir(Path(p)))}
        for p in opts.data
    ]
    d["exclude_classes"] = list(opts.exclude_classes)
    d["lsj_scale"] = list(opts.lsj_scale)
    d["sam_sha256"] = sha256_file(opts.sam)
    d["hq_sha256"] = sha256_file(opts.hq)
    d["world_size"] = world
    d["box2mask_version"] = __version__
    return d


def _open_run(opts: TrainOptions, identity: dict[str, Any]) -> bool:
    """Create or check the run folder; ``True`` if there is a checkpoint to resume."""
    from box2mask.train.run_folder import open_run_folder

    files = ("run.json", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "best.safetensors",
             "model.safetensors")  # fmt: skip
    held = open_run_folder(opts.out, identity, files, opts.overwrite, "box2mask training run")
    return held and (opts.out / "checkpoint.pt").is_file()


class MetricsLog:
    """``metrics.jsonl`` (every line) and ``metrics.csv`` (epoch rows)."""

    CSV_FIELDS = (
        "epoch", "global_step", "loss_hq", "loss_sam", "lr", "val_iou", "val_biou",
        "val_frame_iou", "val_frame_biou", "val_objects", "seconds",
    )  # fmt: skip

    def __init__(self, out: Path, keep_epochs: int) -> None:
        self.jsonl = out / "metrics.jsonl"
        self.csv = out / "metrics.csv"
        self.history: list[dict[str, Any]] = []
        # A killed run may have logged steps of an epoch it never finished: drop them.
        lines = []
        if self.jsonl.is_file():
            for line in self.jsonl.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                # epoch rows count finished epochs (1-based), step rows the epoch in progress (0-based)
                finished = int(rec.get("epoch", 0)) - (1 if rec.get("kind") == "epoch" else 0)
                if finished < keep_epochs:
                    lines.append(rec)
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(self.jsonl, "w", encoding="utf-8") as fh:
            for rec in lines:
                fh.write(json.dumps(rec) + "\n")
        self.history = [r for r in lines if r.get("kind") == "epoch"]
        self._write_csv()

    def _write_csv(self) -> None:
        tmp = self.csv.with_name(self.csv.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=self.CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for rec in self.history:
                w.writerow(rec)
        tmp.replace(self.csv)

    def add(self, rec: dict[str, Any]) -> None:
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if rec.get("kind") == "epoch":
            self.history.append(rec)
            self._write_csv()


# ---------------------------------------------------------------------------
# state


def _rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's random state; CUDA only for ``device`` (the rank's own GPU)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": json.dumps(random.getstate()),
    }
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        idx = device.index if device.index is not None else torch.cuda.current_device()
        state["cuda"] = torch.cuda.get_rng_state(idx)
    return state


def _gather_rng_states(di: DistInfo, device: torch.device) -> list[dict[str, Any]]:
    """Every rank's :func:`_rng_state`, indexed by rank (a collective: all ranks call it)."""
    mine = _rng_state(device)
    if di.world == 1:
        return [mine]
    states: list[Any] = [None] * di.world
    dist.all_gather_object(states, mine)
    return states


def _set_rng_state(
    state: dict[str, Any] | list[dict[str, Any]], rank: int = 0, device: torch.device | None = None
) -> None:
    """Restore :func:`_rng_state` (or rank ``rank``'s entry of a per-rank list).

    A state that does not fit this machine (no entry for this rank, a GPU that
    is not there, CUDA state on a CPU run) is warned about and skipped, not
    fatal: only the random streams differ from an uninterrupted run.
    """
    if isinstance(state, list):  # per rank (this version)
        if rank >= len(state):
            log.warning(
                "the checkpoint holds random states of %d rank(s), none for rank %d: "
                "its random streams start afresh", len(state), rank,
            )  # fmt: skip
            return
        state = state[rank]
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    cuda = state.get("cuda")
    if cuda is None or (device is not None and device.type != "cuda"):
        return
    if not torch.cuda.is_available():
        log.warning("the checkpoint holds a CUDA random state but CUDA is not available: skipped")
        return
    count = torch.cuda.device_count()
    if isinstance(cuda, list | tuple):  # older checkpoints: every visible GPU of rank 0
        if len(cuda) != count:
            log.warning(
                "the checkpoint holds CUDA random states of %d GPU(s), %d visible now: "
                "restoring the first %d", len(cuda), count, min(len(cuda), count),
            )  # fmt: skip
        for i, st in enumerate(cuda[:count]):
            torch.cuda.set_rng_state(st, i)
        return
    idx = (
        device.index
        if device is not None and device.index is not None
        else torch.cuda.current_device()
    )
    if idx >= count:
        log.warning("cuda:%d is not visible (%d GPU(s)): its random state is skipped", idx, count)
        return
    torch.cuda.set_rng_state(cuda, idx)


def make_optimizer(model: torch.nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    """AdamW over the trainable parts, one parameter group per part (named in ``group["part"]``)."""
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for part, _, p in named_parts(model):  # type: ignore[arg-type]
        if part != "frozen":
            groups.setdefault(part, []).append(p)
    return torch.optim.AdamW(
        [{"params": ps, "part": part} for part, ps in groups.items()],
        lr=opts.lr,
        weight_decay=opts.weight_decay,
    )


def lr_factor(step: int, total: int, steps_per_epoch: int, opts: TrainOptions) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-based)."""
    if opts.warmup_steps > 0 and step < opts.warmup_steps:
        return (step + 1) / opts.warmup_steps
    if opts.schedule == "cosine":
        span = max(1, total - opts.warmup_steps)
        t = min(1.0, (step - opts.warmup_steps) / span)
        return 0.5 * (1 + math.cos(math.pi * t))
    if opts.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return opts.lr_gamma ** (epoch // max(1, opts.lr_drop_epochs))
    return 1.0


def _phase_params(model: torch.nn.Module) -> dict[str, set[int]]:
    """``{phase: {id(p)}}`` of the parameters each alternating step updates."""
    by_part: dict[str, set[int]] = {p: set() for p in PARTS}
    for part, _, p in named_parts(model):  # type: ignore[arg-type]
        by_part[part].add(id(p))
    return {ph: set().union(*(by_part[p] for p in parts)) for ph, parts in PHASE_PARTS.items()}


def save_model(path: Path, model: torch.nn.Module, rank: int, meta: dict[str, Any]) -> Path:
    """The ROS-SAM file (LoRA unfolded) with training metadata (all values JSON strings)."""
    from box2mask.models.checkpoint import save_ros_sam

    extra = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    return save_ros_sam(path, model.state_dict(), lora_rank=rank, extra_metadata=extra)


# ---------------------------------------------------------------------------
# the loop


def train(
    opts: TrainOptions,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ROS-SAM (see the module docstring); resumes a run found in ``opts.out``.

    Args:
        opts: the options.
        progress: called on every event (rank 0 only).
        should_stop: polled after each optimizer step and epoch; when it turns
            true the loop ends after saving what finished (a stop mid-epoch
            loses that epoch's steps: resuming restarts it from its checkpoint).

    Raises:
        UsageError, DatasetNotFound, CheckpointError: bad options or inputs.
        JobMismatch: ``opts.out`` holds a run with other options.
    """
    from box2mask import __version__

    report = progress or (lambda p: None)
    stop = should_stop or (lambda: False)
    dev_type = (
        "cuda"
        if opts.device.startswith("cuda") or (opts.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    di = init_distributed(dev_type)
    try:
        device = _resolve_device(opts.device, di)
        use_bf16 = opts.precision == "bf16" or (opts.precision == "auto" and device.type == "cuda")
        amp_dtype = torch.bfloat16 if use_bf16 else None

        for name, path in (("--sam", opts.sam), ("--hq", opts.hq)):
            if not path.is_file():
                raise CheckpointError(f"{name} {path}: no such file")
        # Rank 0 checks the run folder; the others learn the outcome (or the error).
        error: str | None = None
        resume = False
        identity: dict[str, Any] = {}
        if di.main:
            try:
                identity = run_identity(opts, di.world)
                resume = _open_run(opts, identity)
            except Box2MaskError as exc:
                _broadcast((str(exc), False), di)
                raise
        error, resume = _broadcast((error, resume), di)
        if error is not None:
            raise JobMismatch(error)

        train_frames, val_frames = load_frames(opts)
        dataset = TrainDataset(train_frames, opts.data_config())
        if len(dataset) == 0:
            where = ", ".join([*([opts.dataset] if opts.dataset else []),
                               *(f"--data {p}" for p in opts.data)])  # fmt: skip
            raise UsageError(
                f"no training samples in {where}: no frame has an object outside "
                f"--exclude-classes {','.join(opts.exclude_classes) or '(none)'}"
                + (" that a person reviewed" if opts.reviewed_only else "")
            )
        model, rank = build_training_model(opts.sam, opts.hq, opts.lora_rank, device, opts.seed)
        counts = parameter_counts(model)
        module: torch.nn.Module = TrainingModule(model)
        if di.world > 1:
            module = torch.nn.parallel.DistributedDataParallel(
                module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,  # each alternating step uses part of the model
            )
        sampler = DistributedSampler(
            dataset, num_replicas=di.world, rank=di.rank, shuffle=True, seed=opts.seed
        )
        batches = math.ceil(len(sampler) / opts.batch_size)
        steps_per_epoch = math.ceil(batches / opts.grad_accum)
        if opts.steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, opts.steps_per_epoch)
        total = steps_per_epoch * opts.epochs
        optimizer = make_optimizer(model, opts)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total, steps_per_epoch, opts)
        )
        start_epoch, global_step, best = 0, 0, -math.inf
        if resume:
            state = torch.load(opts.out / "checkpoint.pt", map_location="cpu", weights_only=True)
            if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
                raise CheckpointError(
                    f"{opts.out / 'checkpoint.pt'} is not a box2mask training state"
                )
            params = dict(model.named_parameters())
            missing = set(state["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
            if missing:
                raise CheckpointError(
                    f"{opts.out / 'checkpoint.pt'} does not fit the model: {sorted(missing)[:3]}"
                )
            with torch.no_grad():
                for n, t in state["trainable"].items():
                    params[n].copy_(t)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"], di.rank, device)
            start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
            best = float(state["best"])
            log.info("resuming %s after epoch %d (step %d)", opts.out, start_epoch, global_step)
        metrics = MetricsLog(opts.out, start_epoch) if di.main else None
        phase_ids = _phase_params(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        meta_base = {
            "training": identity,
            "dataset": opts.dataset,
            "data": [str(Path(p).resolve()) for p in opts.data],
            "box2mask_version": __version__,
            "lora_rank_requested": opts.lora_rank,
        }
        if di.main:
            report(
                TrainProgress("start", start_epoch, opts.epochs, 0, steps_per_epoch, global_step)
            )
        stopped = False
        done = start_epoch
        for epoch in range(start_epoch, opts.epochs):
            t0 = time.monotonic()
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=opts.batch_size,
                sampler=sampler,
                num_workers=opts.workers,
                collate_fn=collate,
                pin_memory=device.type == "cuda",
            )
            sums = {"hq": [0.0, 0], "sam": [0.0, 0]}
            it = iter(loader)
            for step_in_epoch in range(steps_per_epoch):
                phase = phase_of_step(global_step)
                optimizer.zero_grad(set_to_none=True)
                loss_total, micro = 0.0, 0
                # The step's micro-batches first, then which of them every rank
                # trains on (one collective): the last one is known in advance, so
                # the micro-batch before every optimizer step synchronises the
                # gradients, also for a short last step or a skipped last batch.
                pending = [
                    b for b in (next(it, None) for _ in range(opts.grad_accum)) if b is not None
                ]
                flags = [1 if b["boxes"].shape[0] else 0 for b in pending]
                agreed = _agree_on_batches(flags, opts.grad_accum, di, device).tolist()
                used = [b for b, ok in zip(pending, agreed, strict=False) if ok]
                for k, batch in enumerate(used):
                    sync = k == len(used) - 1 or di.world == 1
                    ctx = (
                        module.no_sync()
                        if (di.world > 1 and not sync)
                        else contextlib.nullcontext()
                    )  # type: ignore[operator]
                    amp = (
                        torch.autocast(device.type, dtype=amp_dtype)
                        if amp_dtype
                        else contextlib.nullcontext()
                    )
                    with ctx:
                        with amp:
                            logits = module(
                                batch["images"].to(device, non_blocking=True),
                                batch["boxes"].to(device),
                                batch["image_index"].to(device),
                                phase,
                            )
                        loss = mask_loss(logits, batch["targets"].to(device))
                        (loss / opts.grad_accum).backward()
                    loss_total += float(loss.detach())
                    micro += 1
                # Only the step's own parts move: the others' gradients are dropped.
                for p in trainable:
                    if id(p) not in phase_ids[phase]:
                        p.grad = None
                if micro:
                    optimizer.step()
                scheduler.step()
                lr = scheduler.get_last_lr()[0]
                mean_loss = loss_total / micro if micro else math.nan
                if micro:
                    sums[phase][0] += mean_loss
                    sums[phase][1] += 1
                global_step += 1
                if di.main:
                    if metrics is not None and (global_step % max(1, opts.log_every) == 0):
                        metrics.add({"kind": "step", "epoch": epoch, "global_step": global_step,
                                     "phase": phase, "loss": mean_loss, "lr": lr})  # fmt: skip
                    report(TrainProgress("step", epoch, opts.epochs, step_in_epoch + 1,
                                         steps_per_epoch, global_step, phase, mean_loss, lr))  # fmt: skip
                if stop():
                    stopped = True
                    break
            if stopped:
                break
            if di.main:
                report(
                    TrainProgress(
                        "validate",
                        epoch,
                        opts.epochs,
                        steps_per_epoch,
                        steps_per_epoch,
                        global_step,
                    )
                )
            scores = (
                validate(model, val_frames, device, amp_dtype, di, max(2, opts.batch_size))
                if val_frames
                else {}
            )
            rec: dict[str, Any] = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "global_step": global_step,
                "loss_hq": sums["hq"][0] / sums["hq"][1] if sums["hq"][1] else math.nan,
                "loss_sam": sums["sam"][0] / sums["sam"][1] if sums["sam"][1] else math.nan,
                "lr": scheduler.get_last_lr()[0],
                **scores,
                "seconds": round(time.monotonic() - t0, 3),
            }
            score = scores.get("val_iou", math.nan)
            rng_states = _gather_rng_states(di, device)  # every rank's, before rank 0 saves
            if di.main:
                # best: highest validation IoU; without validation, the latest epoch
                improved = (not math.isnan(score) and score > best) or (not val_frames)
                if improved:
                    best = score if not math.isnan(score) else best
                    save_model(opts.out / "best.safetensors", model, rank,
                               {**meta_base, "epoch": epoch + 1, "val": scores})  # fmt: skip
                atomic_torch_save(
                    {
                        "format": STATE_FORMAT,
                        "version": STATE_VERSION,
                        "epoch": epoch + 1,
                        "global_step": global_step,
                        "trainable": {
                            n: p.detach().cpu()
                            for n, p in model.named_parameters()
                            if p.requires_grad
                        },
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": rng_states,
                        "best": best,
                        "lora_rank": rank,
                    },
                    opts.out / "checkpoint.pt",
                )
                if metrics is not None:
                    metrics.add(rec)
                report(TrainProgress("epoch", epoch, opts.epochs, steps_per_epoch, steps_per_epoch,
                                     global_step, metrics=rec))  # fmt: skip
            done = epoch + 1
            if di.world > 1:
                dist.barrier()
            if stop() and done < opts.epochs:
                stopped = True
                break
        model_path = None
        best_path = opts.out / "best.safetensors"
        if not stopped and di.main:
            last = metrics.history[-1] if metrics and metrics.history else {}
            model_path = save_model(
                opts.out / "model.safetensors",
                model,
                rank,
                {
                    **meta_base,
                    "epoch": opts.epochs,
                    "val": {k: v for k, v in last.items() if k.startswith("val_")},
                },
            )
            report(TrainProgress("done", opts.epochs - 1, opts.epochs, global_step=global_step))
        return TrainResult(
            out=opts.out,
            epochs_done=done,
            global_step=global_step,
            history=list(metrics.history) if metrics else [],
            model_path=model_path,
            best_path=best_path if best_path.is_file() else None,
            lora_rank=rank,
            parameter_counts=counts,
            resumed_from=start_epoch,
            model=model if di.main else None,
        )
    finally:
        if di.started and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class DryRunResult:
    """What ``--dry-run`` found: parameter counts per part and the pictures written."""

    parameter_counts: dict[str, int]
    lora_rank: int
    train_frames: int
    train_samples: int
    val_frames: int
    pictures: list[Path]


def dry_run(opts: TrainOptions, pictures: int = 4) -> DryRunResult:
    """Build the model and the data without training; write ``pictures`` augmented samples.

    The pictures (``RUN/samples/sample_NN.png``) show the image the model
    would get, each object's mask tinted and its box (from the mask) outlined.
    """
    from box2mask.train.export import sample_picture, write_picture

    for name, path in (("--sam", opts.sam), ("--hq", opts.hq)):
        if not Path(path).is_file():
            raise CheckpointError(f"{name} {path}: no such file")
    train_frames, val_frames = load_frames(opts)
    dataset = TrainDataset(train_frames, opts.data_config(), keep_full_masks=True)
    model, rank = build_training_model(opts.sam, opts.hq, opts.lora_rank, "cpu", opts.seed)
    counts = parameter_counts(model)
    del model
    written = []
    if len(dataset):
        idx = np.linspace(0, len(dataset) - 1, min(pictures, len(dataset))).round().astype(int)
        for j, i in enumerate(dict.fromkeys(int(v) for v in idx)):
            aug, frame = dataset.sample(i)
            title = (
                f"{frame.sequence}:{frame.frame_index} rot {aug.angle:.0f} scale {aug.scale:.2f}"
            )
            written.append(
                write_picture(
                    opts.out / "samples" / f"sample_{j:02d}.png", sample_picture(aug, title)
                )
            )
    return DryRunResult(counts, rank, len(train_frames), len(dataset), len(val_frames), written)
