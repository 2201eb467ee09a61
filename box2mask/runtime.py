"""What a run is made of: the model chosen, the devices, the engine built.

Shared by ``convert`` (``pipeline``), its worker processes (``workers``) and
``eval``, so none of them imports another's module for these.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from box2mask.choices import DeviceType
from box2mask.engine import EngineOptions, MaskEngine, Profile
from box2mask.errors import CheckpointError, UsageError
from box2mask.io import sha256_file
from box2mask.models.registry import (
    MODELS,
    ModelSpec,
    auto_fallback,
    auto_order,
    for_checkpoint_kind,
    weight_free_default,
)
from box2mask.options import ConvertOptions
from box2mask.problems import Problems

if TYPE_CHECKING:
    import torch

log = logging.getLogger("box2mask")

#: the device types ``--device`` takes
DEVICE_TYPES = DeviceType.values()
#: what ``torch.device`` accepts of those: ``type`` or ``type:index``
_DEVICE_NAME = re.compile(r"(cpu|cuda|mps)(?::(0|[1-9][0-9]*))?")


@dataclass(frozen=True)
class HostCPU:
    """The device of a weight-free (shape) model: this machine's CPU.

    Stands for ``torch.device("cpu")`` (same ``type``, ``index``, ``str``;
    compares equal to it) so that a weight-free job never imports torch.
    """

    type: str = "cpu"
    index: None = None

    def __str__(self) -> str:
        return "cpu"

    def __eq__(self, other: object) -> bool:
        return getattr(other, "type", None) == "cpu" and getattr(other, "index", 0) is None

    def __hash__(self) -> int:
        return hash("cpu")


def _check_device_name(device: str) -> None:
    """A UsageError unless ``device`` is a ``--device`` entry (checked without torch)."""
    if device != "auto" and _DEVICE_NAME.fullmatch(device) is None:
        raise UsageError(f"--device {device!r} is not a device (auto, cpu, cuda, cuda:N)")


def _parse_device(device: str) -> torch.device | None:
    """``--device`` entry → a torch device (``None`` for ``auto``); a UsageError if it is none."""
    if device == "auto":
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        raise UsageError(f"--device {device!r} is not a device (auto, cpu, cuda, cuda:N)")
    return dev


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` → ``cuda:<current device>``;
    ``cuda:1``/``cpu`` as given (a CUDA index this machine lacks is refused)."""
    import torch

    dev = _parse_device(device)
    if dev is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= count:
            raise UsageError(
                f"--device {device}: this machine has {count} CUDA device(s) "
                f"(cuda:0 .. cuda:{count - 1})"
            )
        dev = torch.device("cuda", index)  # one name per GPU: `cuda` and `cuda:0` are one device
    return dev


def choose_model(opts: ConvertOptions) -> tuple[ModelSpec, Path | None, str]:
    """The model spec, its checkpoint and a note for the summary.

    ``--model auto``: the kind of ``--checkpoint`` if given; else HQ-SAM, SAM,
    then SAM 2 (``auto_rank``), whose official weights are present; else ``lite`` (its weights
    ship with box2mask); else (an installation without them) the best
    weight-free model.
    """
    from box2mask.weights import resolve_checkpoint

    if opts.model != "auto":
        spec = MODELS.get(opts.model)
        if spec.kind == "shape":
            if opts.checkpoint:
                raise UsageError(f"--model {spec.name} needs no checkpoint; drop --checkpoint")
            return spec, None, ""
        if spec.kind == "crop":
            return spec, crop_checkpoint(opts.checkpoint), ""
        return spec, resolve_checkpoint(opts.checkpoint, spec.name), ""
    if opts.checkpoint:
        from box2mask.models.checkpoint import inspect_checkpoint
        from box2mask.models.lite.checkpoint import is_lite_file

        lite = Path(str(opts.checkpoint)).expanduser()
        if lite.is_file() and is_lite_file(lite):
            spec = for_checkpoint_kind("lite")
            return spec, lite, f"--model auto: {lite.name} is a lite checkpoint"
        path = resolve_checkpoint(opts.checkpoint, auto_order()[0].name)
        kind = inspect_checkpoint(path).kind
        return for_checkpoint_kind(kind), path, f"--model auto: {path.name} is a {kind} checkpoint"
    for spec in auto_order():
        try:
            return (
                spec,
                resolve_checkpoint(None, spec.name),
                f"--model auto: found {spec.name} weights",
            )
        except CheckpointError:
            continue
    lite = auto_fallback()
    if lite is not None:
        try:
            path = crop_checkpoint(None)
        except CheckpointError:
            pass  # an installation without the weights: the note below says so
        else:
            return (
                lite,
                path,
                f"no HQ-SAM, SAM or SAM 2 checkpoint found: used box2mask's trained '{lite.name}' model "
                "(`box2mask weights list` for SAM / HQ-SAM weights)",
            )
    fallback = weight_free_default()
    return (
        fallback,
        None,
        f"no HQ-SAM, SAM or SAM 2 checkpoint found and no lite weights in this installation: used the "
        f"weight-free '{fallback.name}' model (see `box2mask weights list` to get one)",
    )


def model_identity(spec: ModelSpec, checkpoint: Path | None) -> dict[str, Any]:
    """The model's part of a job's identity: its name, its checkpoint's digest, and for a
    model with its own window rule (``lite``: a window of ``context`` times the box's long
    side, at least ``min_side`` px, read from the checkpoint) that rule, which ``qa`` needs
    to tell a mask cut by the window the model saw."""
    out: dict[str, Any] = {
        "model": spec.name,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
    }
    if spec.kind == "crop" and checkpoint is not None:
        import json

        from box2mask.models.lite.checkpoint import read_metadata

        window = json.loads(read_metadata(checkpoint)["window"])
        out["model_window"] = {
            "context": float(window["context"]),
            "min_side": int(window["min_side"]),
        }
    return out


def convert_identity(
    opts: ConvertOptions,
    root: Path,
    adapter_options: dict[str, Any],
    spec: ModelSpec,
    checkpoint: Path | None,
    precision: str | None,
) -> dict[str, Any]:
    """A convert job's identity (job.json): what determines its outputs, compared on resume
    and shown by ``--dry-run`` (:func:`box2mask.options.job_identity` for the options)."""
    import box2mask
    from box2mask.options import job_identity

    return {
        "box2mask_version": box2mask.__version__,
        "dataset": opts.dataset,
        "root": str(root),
        "adapter_options": adapter_options,
        **model_identity(spec, checkpoint),
        **job_identity(opts, prompt_model=spec.kind == "prompt", precision=precision),
    }


def resolve_precision(opts: ConvertOptions, device: Any) -> str:
    """``--precision auto``: bf16 on CUDA, fp32 elsewhere; any other value as given."""
    if opts.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return opts.precision


def with_model_defaults(opts: ConvertOptions, spec: ModelSpec) -> ConvertOptions:
    """``opts`` with what was left to the model filled in: ``--box-fill-classes``
    (``None``: the model's own default, :attr:`ModelSpec.box_fill_classes`)."""
    if opts.box_fill_classes is not None:
        return opts
    return replace(opts, box_fill_classes=tuple(spec.box_fill_classes))


def crop_checkpoint(checkpoint: str | Path | None) -> Path:
    """``--checkpoint`` of ``--model lite``: an existing file, or the weights shipped in the package."""
    from box2mask.models.lite import shipped_weights

    if checkpoint is None or str(checkpoint) == "":
        return shipped_weights()
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"--checkpoint {checkpoint}: no such file (--model lite takes a file made by "
            "`box2mask train lite`, or none for the shipped weights)"
        )
    return path


def parse_devices(device: str, model_kind: str) -> list[Any]:
    """``--device``: one device, or a comma list (one worker process per entry).

    Shape models ignore the device (they run on CPU) but still get one worker
    process per entry, so ``--device cpu,cpu`` runs two GrabCut workers; every
    entry must still be a device name, and each is :class:`HostCPU` (torch is
    not imported for them). ``cpu`` may repeat (one CPU worker per
    entry); a GPU may not (``cuda:0,cuda:0`` or ``cuda,cuda:0``: two workers
    would share one device's memory), so that is refused.
    """
    names = [d.strip() for d in device.split(",") if d.strip()]
    if not names:
        raise UsageError("--device is empty")
    if model_kind not in ("prompt", "crop"):
        for name in names:
            _check_device_name(name)
        return [HostCPU()] * len(names)
    devices = [resolve_device(d) for d in names]
    seen: dict[torch.device, str] = {}
    for name, dev in zip(names, devices, strict=True):
        if dev.type != "cpu" and dev in seen:
            same = f"{seen[dev]!r} and {name!r} are" if seen[dev] != name else f"{name!r} is"
            raise UsageError(
                f"--device {device}: {same} the same device ({dev}); give each GPU once "
                "(only cpu may repeat: one CPU worker per entry)"
            )
        seen[dev] = name
    return devices


def engine_options(opts: ConvertOptions) -> EngineOptions:
    """The engine's settings taken from ``opts`` field by field (same name, same meaning).

    Deriving them, rather than listing them, keeps a new engine option from
    being spelled out once more here: a field of both dataclasses reaches the
    engine; the engine's own tuning fields (``prefetch_frames``,
    ``write_queue``) keep their defaults.
    """
    shared = {f.name for f in fields(ConvertOptions)}
    return EngineOptions(
        **{f.name: getattr(opts, f.name) for f in fields(EngineOptions) if f.name in shared}
    )


def build_engine(
    opts: ConvertOptions,
    spec: ModelSpec,
    checkpoint: Path | None,
    device: torch.device,
    precision: str,
    problems: Problems,
    profile: Profile,
) -> MaskEngine:
    """The model on ``device`` inside a :class:`MaskEngine` with ``opts``'s settings."""
    autocast_dtype = None
    if spec.kind == "prompt":
        import torch

        if precision == "bf16":
            autocast_dtype = torch.bfloat16
        model = spec.build(checkpoint, device=device, hq_token_only=opts.hq_token_only)
        if precision == "int8":
            model.quantize_encoder_int8()
        if opts.compile:
            model.compile_encoder()
    elif spec.kind == "crop":
        model = spec.build(checkpoint, device=device)
    else:
        model = spec.build()
    engine_cls, extra = MaskEngine, {}
    temporal = getattr(opts, "temporal", "off")
    if temporal != "off":  # --temporal propagate: box2mask.temporal (a window per track)
        if not spec.temporal:
            raise UsageError(
                f"--temporal {temporal} needs a model with a video memory (--model sam2), "
                f"not --model {spec.name}"
            )
        from box2mask.temporal import TemporalEngine, dataset_window_frames

        engine_cls = TemporalEngine
        extra = {
            "prompt_every": getattr(opts, "prompt_every", 1),
            "window_frames": dataset_window_frames(opts.dataset, opts.root, opts.adapter_options)
            if opts.dataset
            else None,
        }
    return engine_cls(
        model,
        engine_options(opts),
        box_filler=MODELS.get("box").build(),
        device=device,
        autocast_dtype=autocast_dtype,
        problems=problems,
        profile=profile,
        **extra,
    )
