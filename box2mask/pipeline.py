"""``box2mask.convert``: a whole conversion job, from options to files on disk.

adapter → (shard, filters) → job (resume) → engine → writers → ledger → merged COCO JSON.
Everything here is plain Python; progress goes to a callback, so the CLI's
rich progress bar and a notebook's tqdm are both thin layers on top.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from box2mask.adapters import ADAPTERS, SequenceInfo, resolve_root
from box2mask.engine import EngineOptions, MaskEngine, Profile
from box2mask.errors import Box2MaskError, CheckpointError, UsageError
from box2mask.job import Job
from box2mask.models.registry import MODELS, ModelSpec
from box2mask.options import ConvertOptions, parse_shard
from box2mask.problems import Problems
from box2mask.types import FrameMasks
from box2mask.writers.coco import category_table, frame_part, merge_parts
from box2mask.writers.png import write_png_frame

log = logging.getLogger("box2mask")

#: the weight-free model used by ``--model auto`` when no checkpoint is found
WEIGHT_FREE_DEFAULT = "grabcut"
COCO_NAME = "annotations.json"


@dataclass
class Progress:
    """What a progress callback is told, after each frame and at the start (``frames_done=0``)."""

    frames_total: int
    frames_done: int = 0
    frames_resumed: int = 0
    objects_done: int = 0
    sequence: str = ""


@dataclass
class Summary:
    """The outcome of a conversion (the CLI prints it as a table)."""

    out: Path
    model: str
    model_note: str
    device: str
    frames_total: int
    frames_done: int
    frames_resumed: int
    objects_by_source: Counter[str]
    problems: Problems
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    profile: dict[str, float] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        return sum(self.objects_by_source.values())


def shard_sequences(sequences: list[SequenceInfo], shard: str | None) -> list[SequenceInfo]:
    """The share of ``sequences`` that shard ``K/N`` converts, balanced by frame count.

    Sequences are dealt, longest first (ties by name), to the shard with the
    fewest frames so far (ties to the lowest shard): deterministic, so N
    machines given ``1/N`` .. ``N/N`` cover every sequence exactly once.
    Returns the share in the input order.
    """
    if shard is None:
        return list(sequences)
    k, n = parse_shard(shard)
    load = [0] * n
    owner: dict[str, int] = {}
    for seq in sorted(sequences, key=lambda s: (-s.num_frames, s.name)):
        j = min(range(n), key=lambda i: (load[i], i))
        owner[seq.name] = j
        load[j] += max(seq.num_frames, 1)
    return [s for s in sequences if owner[s.name] == k - 1]


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda``/``cuda:1``/``cpu`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    return dev


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of each file of a folder (sorted) for checkpoint folders."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def choose_model(opts: ConvertOptions) -> tuple[ModelSpec, Path | None, str]:
    """The model spec, its checkpoint and a note for the summary.

    ``--model auto``: the kind of ``--checkpoint`` if given; else HQ-SAM, then
    SAM, whose official weights are present; else the best weight-free model.
    """
    from box2mask.weights import resolve_checkpoint

    if opts.model != "auto":
        spec = MODELS.get(opts.model)
        if spec.kind == "shape":
            if opts.checkpoint:
                raise UsageError(f"--model {spec.name} needs no checkpoint; drop --checkpoint")
            return spec, None, ""
        return spec, resolve_checkpoint(opts.checkpoint, spec.name), ""
    if opts.checkpoint:
        from box2mask.models.checkpoint import inspect_checkpoint

        path = resolve_checkpoint(opts.checkpoint, "hq-sam")
        kind = inspect_checkpoint(path).kind
        name = "ros-sam" if kind.startswith("ros-sam") else kind
        return MODELS.get(name), path, f"--model auto: {path.name} is a {kind} checkpoint"
    for name in ("hq-sam", "sam"):
        try:
            return (
                MODELS.get(name),
                resolve_checkpoint(None, name),
                f"--model auto: found {name} weights",
            )
        except CheckpointError:
            continue
    return (
        MODELS.get(WEIGHT_FREE_DEFAULT),
        None,
        f"no SAM/HQ-SAM checkpoint found: used the weight-free '{WEIGHT_FREE_DEFAULT}' model "
        "(see `box2mask weights list` to get one)",
    )


def convert(
    options: ConvertOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
    **kwargs: Any,
) -> Summary:
    """Convert a dataset's boxes into masks.

    Args:
        options: a :class:`ConvertOptions`, or pass its fields as keyword
            arguments (``convert(dataset="viso", root="data/VISO", out="masks")``).
        progress: called with a :class:`Progress` after every frame.

    Returns:
        A :class:`Summary`. Raises :class:`~box2mask.errors.Box2MaskError` on
        bad usage or input; finished frames stay recorded in the job's ledger.
    """
    import box2mask.models  # noqa: F401  (registers the models)

    opts = options if options is not None else ConvertOptions(**kwargs)
    t_start = time.perf_counter()
    problems = Problems(strict=opts.strict)
    root = resolve_root(opts.dataset, opts.root).resolve()
    adapter = ADAPTERS.get(opts.dataset)(root, problems=problems, **opts.adapter_options)

    all_seqs = adapter.list_sequences()
    seqs = all_seqs
    if opts.sequences:
        known = {s.name for s in all_seqs}
        missing = [s for s in opts.sequences if s not in known]
        if missing:
            sample = ", ".join(sorted(known)[:8]) + (" ..." if len(known) > 8 else "")
            raise UsageError(
                f"--sequences: {opts.dataset} has no sequence {missing[0]!r}; it has: {sample}"
            )
        wanted = set(opts.sequences)
        seqs = [s for s in all_seqs if s.name in wanted]
    seqs = shard_sequences(seqs, opts.shard)
    seq_names = [s.name for s in seqs]

    if opts.strict:
        # --strict: every annotation is parsed (and every problem raised) before any work is written
        for _ in adapter.frames(seq_names):
            pass

    spec, checkpoint, note = choose_model(opts)
    device = resolve_device(opts.device) if spec.kind == "prompt" else torch.device("cpu")
    precision = opts.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    categories = category_table(adapter.categories())
    identity = {
        "box2mask_version": box2mask.__version__,
        "dataset": opts.dataset,
        "root": str(root),
        "adapter_options": adapter.output_options(),
        "model": spec.name,
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "hq_token_only": opts.hq_token_only if spec.kind == "prompt" else None,
        "precision": precision if spec.kind == "prompt" else None,
        "crop_size": opts.crop_size,
        "context": opts.context,
        "window": opts.window,
        "interpolation": opts.interpolation,
        "threshold": opts.threshold,
        "box_fill_classes": sorted(opts.box_fill_classes),
        "box_fill_area": opts.box_fill_area,
        "clip_to_obb": opts.clip_to_obb,
        "classes": sorted(opts.classes),
        "sequences": sorted(opts.sequences),
        "shard": opts.shard,
        "formats": sorted(opts.formats),
    }
    outputs = ([COCO_NAME] if "coco" in opts.formats else []) + (
        sorted({n.split("/")[0] for n in seq_names}) if "png" in opts.formats else []
    )
    job = Job(opts.out, identity)
    job.out.mkdir(parents=True, exist_ok=True)
    done = job.open(
        overwrite=opts.overwrite,
        extra={
            "categories": categories,
            "sequences": [s.name for s in all_seqs],
            "outputs": outputs,
        },
    )
    job.repair_ledger()

    if spec.kind == "prompt":
        model = spec.build(checkpoint, device=device, hq_token_only=opts.hq_token_only)
    else:
        model = spec.build()
    box_filler = MODELS.get("box").build()
    profile = Profile()
    engine = MaskEngine(
        model,
        EngineOptions(
            batch_size=opts.batch_size,
            crop_size=opts.crop_size,
            context=opts.context,
            window=opts.window,
            interpolation=opts.interpolation,
            threshold=opts.threshold,
            box_fill_classes=opts.box_fill_classes,
            box_fill_area=opts.box_fill_area,
            classes=opts.classes,
            clip_to_obb=opts.clip_to_obb,
            workers=opts.workers,
        ),
        box_filler=box_filler,
        device=device,
        autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
        problems=problems,
        profile=profile,
    )

    total = sum(s.num_frames for s in seqs)
    resumed = sum(1 for key in done if key[0] in set(seq_names))
    state = Progress(frames_total=total, frames_done=resumed, frames_resumed=resumed)
    by_source: Counter[str] = Counter()
    if progress:
        progress(state)

    def on_frame(fm: FrameMasks) -> None:
        with profile.time("write"):
            if "coco" in opts.formats:
                from box2mask.io import atomic_write_json

                atomic_write_json(
                    job.part_path(fm.frame.sequence, fm.frame.frame_index), frame_part(fm)
                )
            if "png" in opts.formats:
                write_png_frame(fm, opts.out)
            job.record(fm.frame.sequence, fm.frame.frame_index)
        by_source.update(om.source for om in fm.masks)
        state.frames_done += 1
        state.objects_done += len(fm.masks)
        state.sequence = fm.frame.sequence
        if progress:
            progress(state)

    frames = (f for f in adapter.frames(seq_names) if f.key not in done)
    try:
        engine.run(frames, on_frame)
    finally:
        job.close()

    written: list[Path] = []
    if "coco" in opts.formats:
        parts = _parts_in_order(job, seq_names)
        merge_parts(parts, categories, opts.out / COCO_NAME)
        written.append(opts.out / COCO_NAME)
    if "png" in opts.formats:
        written.extend(opts.out / n for n in sorted({n.split("/")[0] for n in seq_names}))
    return Summary(
        out=opts.out,
        model=spec.name,
        model_note=note,
        device=str(device) if spec.kind == "prompt" else "cpu",
        frames_total=total,
        frames_done=state.frames_done - resumed,
        frames_resumed=resumed,
        objects_by_source=by_source,
        problems=problems,
        seconds=time.perf_counter() - t_start,
        outputs=written,
        profile=dict(profile.seconds),
    )


def _parts_in_order(job: Job, seq_names: list[str]) -> list[Path]:
    """Part files of the given sequences, sequence order then frame order."""
    out: list[Path] = []
    for name in seq_names:
        d = job.dir / "parts" / name
        if d.is_dir():
            out.extend(sorted(d.glob("*.json"), key=lambda p: int(p.stem)))
    return out


def options_dict(opts: ConvertOptions) -> dict[str, Any]:
    """The options as plain data (for logs and reports)."""
    d = asdict(opts)
    d["out"] = str(opts.out)
    d["root"] = None if opts.root is None else str(opts.root)
    return d


__all__ = ["Box2MaskError", "Progress", "Summary", "convert", "shard_sequences"]
