"""``convert --dry-run``: what a conversion would do, measured on a short sample, nothing written.

:func:`plan` reads the dataset as ``convert`` would (the same selection,
``--shard``, ``--split``, bad boxes dropped and unreadable frames found by
the same checks), counts sequences, frames and boxes per class, and how many
boxes the small-object policy box-fills; asks
:func:`box2mask.runtime.choose_model` which model runs and why (so the dry
run follows ``--model auto`` whatever it picks); reads an existing job at
``--out`` without touching it (resumed, or refused and why); then converts a
short sample of frames, spread over the job, with the chosen model on this
machine, in memory and in a scratch folder of the system's temp dir (removed
after), never under ``--out``:

- time: the sample's conversion (:data:`SAMPLE_FRAMES` frames at most,
  :data:`SAMPLE_SECONDS` at most) is scaled to the job by its work, each
  frame counting as one object plus the objects the model segments (a frame
  is decoded and written; a model object is a crop and a model pass; a
  box-filled object is nearly free); the model's load, the writes of the
  sample's files and the formats' assembly from its parts are measured and
  added (the assembly scaled by frames);
- disk: the bytes of the sample's files (per-frame files, the job's parts,
  the formats assembled from them) scaled by frames.

The estimate is the wall time of ``convert`` on this machine with the same
options (benchmarks/dry_run.py prints it beside the real run's).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.adapters import open_dataset
from box2mask.adapters.base import check_selection, select_sequences, shard_sequences
from box2mask.checks import drop_outside_boxes
from box2mask.errors import AnnotationError
from box2mask.io import atomic_write_bytes, check_frame_file
from box2mask.layout import STATE_DIR, sequence_dirs
from box2mask.options import ConvertOptions, check_folder_option
from box2mask.problems import Problems
from box2mask.split import check_formats, make_split
from box2mask.types import Frame, FrameMasks
from box2mask.writers import WRITERS, Assembly, WriterContext

#: frames of the measured sample at most (spread evenly over the frames to convert)
SAMPLE_FRAMES = 8
#: seconds the sample may run at most (the frames after it are not handed to the engine)
SAMPLE_SECONDS = 20.0
#: the plan record's ``schema`` and ``version`` (``--dry-run --summary-json FILE``)
PLAN_SCHEMA = "box2mask/convert-plan"
PLAN_VERSION = 1


@dataclass
class Sample:
    """What the measured sample did."""

    frames: int = 0
    objects: int = 0
    model_objects: int = 0
    #: model load (``build_engine``), conversion of the frames, writes of their files,
    #: the formats' assembly from their parts: wall seconds
    load_seconds: float = 0.0
    convert_seconds: float = 0.0
    write_seconds: float = 0.0
    assemble_seconds: float = 0.0
    #: bytes of the sample's per-frame files and parts, and of the assembled formats
    frame_bytes: int = 0
    assembled_bytes: int = 0


@dataclass
class Plan:
    """What ``convert`` would do with these options (:func:`plan`)."""

    dataset: str
    root: Path
    out: Path
    sequences: list[str]
    #: frames of the selection (its shard's), those an existing job has done, and those the
    #: checks would skip (missing, empty, not an image, a FIFO)
    frames_total: int
    frames_done: int
    frames_unreadable: int
    #: frames the run would convert (read, not done, readable)
    frames_to_convert: int
    #: boxes to convert, by class; of them, box-filled by --box-fill-classes / --box-fill-area
    boxes_by_class: Counter[str]
    box_filled_by_class: Counter[str]
    model: str
    model_kind: str
    model_why: str
    checkpoint: Path | None
    device: str
    precision: str | None
    formats: list[str]
    #: ``new``, ``resume`` or ``refused`` (with ``job_note`` saying why)
    job: str
    job_note: str
    problems: Problems
    sample: Sample
    estimate_seconds: float
    disk_bytes: int
    split: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: seconds the dry run itself took
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        """Frames the run would convert."""
        return self.frames_to_convert

    @property
    def boxes(self) -> int:
        return sum(self.boxes_by_class.values())

    @property
    def box_filled(self) -> int:
        return sum(self.box_filled_by_class.values())

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON data (``--dry-run --summary-json FILE``)."""
        import box2mask

        s = self.sample
        per_frame = s.convert_seconds / s.frames if s.frames else None
        return {
            "schema": PLAN_SCHEMA,
            "version": PLAN_VERSION,
            "box2mask_version": box2mask.__version__,
            "dataset": {"name": self.dataset, "root": str(self.root)},
            "out": str(self.out),
            "job": {"state": self.job, "note": self.job_note},
            "sequences": {"count": len(self.sequences), "names": list(self.sequences)},
            "frames": {
                "total": self.frames_total,
                "already_done": self.frames_done,
                "unreadable": self.frames_unreadable,
                "to_convert": self.frames,
            },
            "boxes": {
                "total": self.boxes,
                "by_class": dict(sorted(self.boxes_by_class.items())),
                "box_filled": self.box_filled,
                "box_filled_by_class": dict(sorted(self.box_filled_by_class.items())),
                "by_model": self.boxes - self.box_filled,
            },
            "skipped_inputs": dict(sorted(self.problems.counts.items())),
            "model": {
                "name": self.model,
                "kind": self.model_kind,
                "why": self.model_why,
                "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "device": self.device,
                "precision": self.precision,
            },
            "formats": list(self.formats),
            "split": self.split,
            "sample": {
                "frames": s.frames,
                "objects": s.objects,
                "model_objects": s.model_objects,
                "load_seconds": round(s.load_seconds, 4),
                "convert_seconds": round(s.convert_seconds, 4),
                "write_seconds": round(s.write_seconds, 4),
                "assemble_seconds": round(s.assemble_seconds, 4),
                "seconds_per_frame": None if per_frame is None else round(per_frame, 5),
            },
            "estimate": {
                "seconds": round(self.estimate_seconds, 2),
                "disk_bytes": self.disk_bytes,
            },
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }


def plan(options: ConvertOptions) -> Plan:
    """What ``convert(options)`` would do, measured on a short sample; writes nothing
    under ``--out`` (a scratch folder in the system's temp dir is removed after).

    Raises:
        Box2MaskError: what ``convert`` would refuse before starting (bad usage or input).
    """
    import box2mask
    import box2mask.models  # noqa: F401  (registers the models)
    from box2mask.runtime import (
        choose_model,
        convert_identity,
        parse_devices,
        resolve_precision,
        with_model_defaults,
    )
    from box2mask.safe_paths import check_out_path
    from box2mask.writers.coco import category_table

    opts = options
    t0 = time.perf_counter()
    check_out_path(opts.out)
    check_folder_option(opts.out, "--out")  # a file there, a read-only place: exit 2
    problems = Problems(strict=opts.strict)
    adapter = open_dataset(opts.dataset, opts.root, opts.adapter_options, problems)
    root = adapter.root
    all_seqs = adapter.list_sequences()
    check_selection(adapter, all_seqs, opts.classes)
    sequence_dirs([s.name for s in all_seqs])  # two sequences in one folder: exit 2
    selected = select_sequences(opts.dataset, all_seqs, opts.sequences)
    split = make_split(opts.split, opts.split_by, opts.seed, [s.name for s in selected])
    seqs = shard_sequences(selected, opts.shard)
    check_formats(split, {f: WRITERS.get(f).split_units for f in opts.formats})
    seq_names = [s.name for s in seqs]

    spec, checkpoint, note = choose_model(opts)  # what --model auto picks, and why
    opts = with_model_defaults(opts, spec)  # the model's box-fill policy, as convert uses it
    devices = parse_devices(opts.device, spec.kind)
    precision = resolve_precision(opts, devices[0])
    identity = convert_identity(
        opts, root, adapter.output_options(), spec, checkpoint, precision
    )
    job_state, job_note, done_keys = _existing_job(Path(opts.out), identity, opts.overwrite)
    total = sum(s.num_frames for s in seqs)

    # every frame read as convert reads it (bad boxes dropped, unreadable frames found); the
    # sample's frames are kept as they come by, at evenly spread places of the job
    targets = set(_spread(max(total - len(done_keys), 0), SAMPLE_FRAMES))
    wanted, fill_classes = set(opts.classes), set(opts.box_fill_classes)
    boxes: Counter[str] = Counter()
    filled: Counter[str] = Counter()
    work: list[int] = []  # per frame to convert: 1 + the objects the model segments
    chosen: list[tuple[Frame, int]] = []
    done = unreadable = 0
    for frame in drop_outside_boxes(adapter.frames(seq_names), problems):
        if frame.key in done_keys:
            done += 1
            continue
        try:
            check_frame_file(frame.image_path, frame.image_hw)
        except AnnotationError as exc:
            problems.report(exc, kind="frame")
            unreadable += 1
            continue
        by_model = 0
        for i, cat in enumerate(frame.category.tolist()):
            if wanted and cat not in wanted:
                continue
            x1, y1, x2, y2 = frame.xyxy[i].tolist()
            boxes[cat] += 1
            if cat in fill_classes or (x2 - x1) * (y2 - y1) < opts.box_fill_area:
                filled[cat] += 1
            else:
                by_model += 1
        if len(work) in targets:
            chosen.append((frame, 1 + by_model))
        work.append(1 + by_model)
    listing = time.perf_counter() - t0

    ctx = WriterContext(opts.out, root, category_table(adapter.categories()), seq_names,
                        list(opts.formats), split)  # fmt: skip
    sample = _measure(opts, spec, checkpoint, devices[0], precision, ctx, chosen)
    frames = len(work)
    estimate = 0.0
    if sample.frames:
        sample_work = sum(w for _, w in chosen[: sample.frames])
        scale = frames / sample.frames
        estimate = (
            listing  # convert reads the dataset as the dry run did
            + sample.load_seconds
            + sample.convert_seconds * sum(work) / sample_work
            + (sample.write_seconds + sample.assemble_seconds) * scale
        )
    disk = 0
    if sample.frames:
        disk = round((sample.frame_bytes + sample.assembled_bytes) * frames / sample.frames)
    notes = []
    if job_note:
        notes.append(job_note)
    if split is not None and split.by == "sequence":
        counts = split.counts({s.name: s.num_frames for s in seqs})
        notes.append(
            "split: "
            + ", ".join(
                f"{k} {v['sequences']} sequence(s), {v['frames']} frame(s)"
                for k, v in counts.items()
            )  # fmt: skip
        )
    return Plan(
        dataset=opts.dataset,
        root=root,
        out=Path(opts.out),
        sequences=seq_names,
        frames_total=total,
        frames_done=done,
        frames_unreadable=unreadable,
        frames_to_convert=frames,
        boxes_by_class=boxes,
        box_filled_by_class=filled,
        model=spec.name,
        model_kind=spec.kind,
        model_why=note or f"--model {opts.model} was given",
        checkpoint=checkpoint,
        device=",".join(str(d) for d in devices) if spec.on_device else "cpu",
        precision=precision if spec.kind == "prompt" else None,
        formats=list(opts.formats),
        job=job_state,
        job_note=job_note,
        problems=problems,
        sample=sample,
        estimate_seconds=estimate,
        disk_bytes=disk,
        split=None if split is None else split.to_json(),
        notes=notes,
        seconds=time.perf_counter() - t0,
    )


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices of ``range(n)`` spread evenly (all of them when ``n <= k``).

    >>> _spread(24, 4), _spread(3, 8)
    ([3, 9, 15, 21], [0, 1, 2])
    """
    if n <= k:
        return list(range(n))
    return [int((j + 0.5) * n / k) for j in range(k)]


def _existing_job(
    out: Path, identity: dict[str, Any], overwrite: bool
) -> tuple[str, str, set[tuple[str, int]]]:
    """``(state, note, frames done)`` of a job already at ``out``, read without writing."""
    from box2mask.job import JobFileError, diff_identity, format_diffs, read_job_file
    from box2mask.job.state import read_ledger_records

    if overwrite:
        there = (out / STATE_DIR).exists()
        return "new", "--overwrite: the job at --out would be deleted first" if there else "", set()
    try:
        saved = read_job_file(out, missing_ok=True)
    except JobFileError as exc:
        return "refused", f"{exc}; --overwrite starts afresh", set()
    if saved is None:
        return "new", "", set()
    records = read_ledger_records(out / STATE_DIR)
    diffs = diff_identity(saved.get("identity", {}), identity)
    if diffs and records:
        why = f"{out} holds a job started with other options ({format_diffs(diffs)})"
        return "refused", f"{why}; convert would exit 2 (--overwrite starts afresh)", set()
    if diffs:
        return "new", "the job at --out finished no frame: this run would take it over", set()
    done = {(str(r["sequence"]), int(r["frame"])) for r in records}
    return "resume", f"resuming the job at --out ({len(done)} frame(s) recorded)", done


def _measure(
    opts: ConvertOptions,
    spec: Any,
    checkpoint: Path | None,
    device: Any,
    precision: str,
    ctx: WriterContext,
    chosen: list[tuple[Frame, int]],
) -> Sample:
    """Convert the chosen frames with the run's model, encode their files, write them and
    assemble the formats from them in a scratch folder (removed after): the times and bytes."""
    from box2mask.engine import Profile, cuda_device_scope
    from box2mask.executors.base import FrameEncoder
    from box2mask.job.derive import finalize
    from box2mask.job.parts import part_key, part_relpath
    from box2mask.runtime import build_engine

    sample = Sample()
    if not chosen:
        return sample
    writers = [WRITERS.get(f)(ctx) for f in opts.formats]
    encoder = FrameEncoder(writers)
    encoded = []
    with (
        tempfile.TemporaryDirectory(prefix="box2mask-dry-run-") as tmp,
        cuda_device_scope(device if spec.on_device else None),
    ):
        t = time.perf_counter()
        engine = build_engine(opts, spec, checkpoint, device, precision, Problems(), Profile())
        sample.load_seconds = time.perf_counter() - t

        def feed():  # noqa: ANN202
            for frame, _ in chosen:
                if encoded and time.perf_counter() - t_run > SAMPLE_SECONDS:
                    return  # enough measured: the frames in flight finish
                yield frame

        def on_frame(fm: FrameMasks) -> None:
            encoded.append(encoder.encode(fm))

        t_run = time.perf_counter()
        engine.run(feed(), on_frame)
        sample.convert_seconds = time.perf_counter() - t_run
        sample.frames = len(encoded)
        sample.objects = sum(sum(e.sources.values()) for e in encoded)
        sample.model_objects = sum(w - 1 for _, w in chosen[: sample.frames])

        base = Path(tmp)
        t = time.perf_counter()
        parts = []
        for enc in encoded:
            for f in enc.files:
                atomic_write_bytes(base / f.path, f.data)
                sample.frame_bytes += len(f.data)
                if f.path == part_relpath(enc.sequence, enc.frame_index):
                    parts.append(json.loads(f.data))
        sample.write_seconds = time.perf_counter() - t
        assembled = [w for w in writers if not w.per_frame]
        if parts and assembled:
            order = {s: k for k, s in enumerate(ctx.sequences)}
            parts.sort(key=lambda p: (order.get(part_key(p)[0], 0), part_key(p)[1]))
            seqs = list(dict.fromkeys(part_key(p)[0] for p in parts))
            here = WriterContext(base, ctx.root, ctx.categories, seqs, ctx.formats, ctx.split)
            mine = [WRITERS.get(w.name)(here) for w in assembled]
            t = time.perf_counter()
            finalize(mine, Assembly(ctx.categories, lambda: iter(parts), seqs), base)
            sample.assemble_seconds = time.perf_counter() - t
            for w in mine:
                for name in w.outputs():
                    sample.assembled_bytes += _bytes(base / name)
    return sample


def _bytes(path: Path) -> int:
    """Bytes of a file, or of the files under a folder (links counted as links)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


__all__ = [
    "PLAN_SCHEMA",
    "PLAN_VERSION",
    "SAMPLE_FRAMES",
    "SAMPLE_SECONDS",
    "Plan",
    "Sample",
    "plan",
]
