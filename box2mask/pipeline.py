"""``box2mask.convert``: a whole conversion job, from options to files on disk.

adapter → (shard, filters) → job (resume) → executor (engines) → sink (files, then
ledger) → writers' final assembly. The parts are found by registry: the
adapter (``ADAPTERS``), the model (``MODELS``), the formats (``WRITERS``) and
the executor (``EXECUTORS``); nothing here names one. Everything here is
plain Python; progress goes to a callback, so the CLI's rich progress bar and
a notebook's tqdm are both thin layers on top.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.adapters import open_dataset
from box2mask.adapters.base import check_selection, select_sequences, shard_sequences
from box2mask.checks import drop_outside_boxes
from box2mask.engine import DeviceFailed, Profile
from box2mask.errors import AnnotationError, Box2MaskError
from box2mask.executors import FrameEncoder, FrameSink, RunContext, choose_executor
from box2mask.io import check_frame_file
from box2mask.job import DISK_FULL, Job, JobFolder, JobInterrupted, JobStopped, WriteFailed
from box2mask.job.changes import finish_pending
from box2mask.job.derive import finalize
from box2mask.layout import STATE_DIR, renamed, sequence_dirs
from box2mask.options import (
    ConvertOptions,
    check_output_dir,
    split_list,
)
from box2mask.problems import Problems
from box2mask.runtime import (
    choose_model,
    convert_identity,
    parse_devices,
    resolve_precision,
    with_model_defaults,
)
from box2mask.split import check_formats, make_split
from box2mask.summary import check_summary_path, summary_record, write_record
from box2mask.types import Frame
from box2mask.writers import WRITERS, EncodedFrame, WriterContext
from box2mask.writers.base import sequence_tops
from box2mask.writers.coco import category_table

log = logging.getLogger("box2mask")


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
    #: things the user should know that are not problems (sequences written under safe names)
    notes: list[str] = field(default_factory=list)
    #: objects by category, then mask source
    objects_by_class: dict[str, Counter[str]] = field(default_factory=dict)
    model_kind: str = "shape"
    checkpoint: Path | None = None
    precision: str | None = None
    root: Path | None = None
    #: sequences this run converts (its shard's)
    sequences: int = 0
    #: ``--split``: its spec and each split's sequences and frames in this run, else ``None``
    split: dict[str, Any] | None = None
    #: wall seconds of the run's phases: ``prepare`` (dataset, model choice, job),
    #: ``convert`` (the frames), ``assemble`` (the formats written at the end)
    phases: dict[str, float] = field(default_factory=dict)
    #: the options as the run used them (model defaults filled in)
    options: ConvertOptions | None = None

    @property
    def objects(self) -> int:
        return sum(self.objects_by_source.values())


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
    started = datetime.datetime.now(datetime.timezone.utc)
    if opts.summary_json is not None:  # a folder there, a read-only place: exit 2 before work
        check_summary_path(opts.summary_json)
    problems = Problems(strict=opts.strict)
    adapter = open_dataset(opts.dataset, opts.root, opts.adapter_options, problems)
    root = adapter.root

    all_seqs = adapter.list_sequences()
    # nothing to convert, or a --classes typo: exit 2
    check_selection(adapter, all_seqs, opts.classes)
    # every sequence's folder, over the whole dataset so that shards agree; two in one: exit 2
    dirs = sequence_dirs([s.name for s in all_seqs])
    selected = select_sequences(opts.dataset, all_seqs, opts.sequences)
    # the split is made over the selection, before --shard, so that every shard agrees
    split = make_split(opts.split, opts.split_by, opts.seed, [s.name for s in selected])
    seqs = shard_sequences(selected, opts.shard)
    seq_names = [s.name for s in seqs]

    if opts.strict:
        # --strict: every annotation is parsed (and every problem raised) before any work is written
        for _ in drop_outside_boxes(adapter.frames(seq_names), problems):
            pass

    spec, checkpoint, note = choose_model(opts)
    opts = with_model_defaults(opts, spec)
    devices = parse_devices(opts.device, spec.kind)
    gpus = [d for d in split_list(opts.device) if d not in ("auto", "cpu")]
    if not spec.on_device and gpus:
        # a weight-free model runs on the CPU: say so rather than take --device cuda silently
        note = "; ".join(
            n for n in (note, f"--device {opts.device}: {spec.name} is weight-free and runs on "
                        "the CPU (a GPU serves only the SAM-family models)") if n
        )  # fmt: skip
    precision = resolve_precision(opts, devices[0])
    categories = category_table(adapter.categories())
    identity = convert_identity(
        opts, root, adapter.output_options(), spec, checkpoint, precision
    )
    check_formats(split, {f: WRITERS.get(f).split_units for f in opts.formats})
    ctx = WriterContext(opts.out, root, categories, seq_names, list(opts.formats), split)
    writers = [WRITERS.get(f)(ctx) for f in opts.formats]
    outputs = [name for w in writers for name in w.outputs()]
    # what --overwrite may delete whole: every format's own files and folders, except the
    # sequences' folders of a per-frame format (png), which may hold files of the user's:
    # their files are listed one by one in the job's outputs.jsonl as they are written
    tops = set(sequence_tops(seq_names))
    owned = [o for w in writers for o in w.outputs() if not (w.per_frame and o in tops)]
    job = Job(opts.out, identity)
    check_output_dir(job.out)  # a file, a read-only or /proc path: one UsageError naming --out
    done = job.open(
        overwrite=opts.overwrite,
        extra={
            "categories": categories,
            "sequences": [s.name for s in all_seqs],
            "outputs": outputs,
            "owned": owned,
            "sequence_dirs": renamed(dirs),
            **({"split": split.to_json()} if split is not None else {}),
        },
    )
    notes = _renamed_note(renamed({s: dirs[s] for s in seq_names}))
    if job.dropped[1]:
        notes.append(
            f"--overwrite dropped the job's corrections: {job.dropped[1]} object(s) of "
            f"{job.dropped[0]} frame(s) reviewed, corrected, added or removed by qa apply or "
            "an import (docs/jobs.md, 'Corrections')"
        )
    for line in notes:
        log.info("%s", line)

    total = sum(s.num_frames for s in seqs)
    # frames already done are counted as they come by (_pending): a ledger line that
    # names no frame of this run, or one whose part is gone, counts for nothing
    state = Progress(frames_total=total)
    state_lock = threading.Lock()
    by_source: Counter[str] = Counter()
    by_class: dict[str, Counter[str]] = {}
    profile = Profile()
    phases = {"prepare": time.perf_counter() - t_start}
    t_convert = time.perf_counter()

    def summary() -> Summary:
        """What the run did so far (its end, or where a signal or a fault stopped it)."""
        return Summary(
            out=opts.out,
            model=spec.name,
            model_note=note,
            device=",".join(str(d) for d in devices) if spec.on_device else "cpu",
            frames_total=total,
            frames_done=state.frames_done - state.frames_resumed,
            frames_resumed=state.frames_resumed,
            objects_by_source=by_source,
            problems=problems,
            seconds=time.perf_counter() - t_start,
            outputs=[opts.out / name for name in outputs],
            profile=dict(profile.seconds),
            notes=notes,
            objects_by_class=by_class,
            model_kind=spec.kind,
            checkpoint=checkpoint,
            precision=precision,
            root=root,
            sequences=len(seqs),
            options=opts,
            split=None
            if split is None
            else {
                **split.to_json(),
                "sequences": split.counts({s.name: s.num_frames for s in seqs}),
            },
            phases=dict(phases),
        )

    try:
        finish_pending(JobFolder(opts.out))  # a change to the job a kill interrupted
        if progress:
            progress(state)

        def recorded(enc: EncodedFrame, _info: dict[str, Any]) -> None:
            """A frame's files are in place and its ledger line written: count it, tell the caller."""
            with state_lock:  # frames already done are counted on the thread that reads frames
                by_source.update(enc.sources)
                for cat, sources in enc.classes.items():
                    by_class.setdefault(cat, Counter()).update(sources)
                state.frames_done += 1
                state.objects_done += sum(enc.sources.values())
                state.sequence = enc.sequence
                if progress:
                    progress(state)

        stop = threading.Event()
        part_of = job.part_path if any(w.needs_parts for w in writers) else None
        reading = _Reading()
        frames = _pending(
            drop_outside_boxes(adapter.frames(seq_names), problems),
            done,
            stop,
            reading,
            _resumed(state, state_lock, progress, part_of),
            problems,
        )
        sink = FrameSink(job, FrameEncoder(writers), recorded, timer=profile.time)
        ctx = RunContext(opts, spec, checkpoint, devices, precision, problems, profile, stop)
        executor = choose_executor(opts.executor, len(devices))()
        t_convert = time.perf_counter()
        try:
            with _stop_on_signals(stop, reading) as caught:
                executor.run(frames, ctx, sink)
        except _InputInterrupted:
            pass  # the first signal came while the dataset was being read: nothing in flight
        except KeyboardInterrupt:
            if not stop.is_set():
                raise
            caught.append("again")  # a second signal: stopped at once, frames in flight dropped
        except WriteFailed as exc:
            raise JobStopped(_stopped_message(exc.cause, state, opts)) from None
        except DeviceFailed as exc:
            raise JobStopped(
                f"stopped: {exc}. {state.frames_done} of {state.frames_total} frames are done and "
                f"recorded in {job.ledger_file}; run the same command again to resume (a new "
                "process gets a fresh device context)."
            ) from None
        except OSError as exc:  # the ledger itself could not be written
            raise JobStopped(_stopped_message(exc, state, opts)) from None
        if stop.is_set():
            done_now = state.frames_done
            how = (
                "stopped at once, the frames in flight are not written"
                if "again" in caught
                else "finished the frames in flight"
            )
            err = JobInterrupted(
                f"interrupted ({caught[0] if caught else 'stop'}): {how}; "
                f"{done_now} of {total} frames are done and recorded in {job.ledger_file}. "
                "Run the same command again to resume."
            )
            err.exit_code = 128 + (caught[1] if caught else 2)
            raise err
        phases["convert"] = time.perf_counter() - t_convert

        try:
            t_assemble = time.perf_counter()
            finalize(writers, JobFolder(opts.out).assembly(), opts.out)
            phases["assemble"] = time.perf_counter() - t_assemble
            done_run = summary()
            record = summary_record(done_run, opts, started=started)
            job.mark_finished(record)  # finished.json: the same record as --summary-json
        except OSError as exc:
            raise JobStopped(_stopped_message(exc, state, opts, merging=True)) from None
    except (JobInterrupted, JobStopped) as exc:
        if opts.summary_json is not None:  # what was done, for the pipeline that ran us
            if "convert" not in phases:
                phases["convert"] = time.perf_counter() - t_convert
            status = "interrupted" if isinstance(exc, JobInterrupted) else "stopped"
            record = summary_record(summary(), opts, status, str(exc), started)
            with contextlib.suppress(OSError):
                write_record(opts.summary_json, record)
        raise
    finally:
        job.close()  # releases the job lock
    if opts.summary_json is not None:
        write_record(opts.summary_json, record)
    return done_run


def _renamed_note(changed: dict[str, str], show: int = 5) -> list[str]:
    """One line saying which sequences' files are under another (safe) folder name."""
    if not changed:
        return []
    pairs = ", ".join(f"{s!r} -> {d}" for s, d in list(changed.items())[:show])
    more = f" and {len(changed) - show} more" if len(changed) > show else ""
    return [
        f"{len(changed)} sequence name(s) cannot be used as folder names as they are; their "
        f"files are under safe names (the COCO output keeps the names): {pairs}{more} "
        f"(all in {STATE_DIR}/job.json 'sequence_dirs'; docs/jobs.md)"
    ]


def _stopped_message(
    exc: OSError, state: Progress, opts: ConvertOptions, merging: bool = False
) -> str:
    full = exc.errno in DISK_FULL
    what = "no space left on device" if full else f"could not write ({exc.strerror or exc})"
    where = f" while writing {exc.filename}" if exc.filename else ""
    if merging:
        return (
            f"stopped: {what}{where}. Every frame is converted and recorded; "
            f"{'free some space' if full else 'fix the cause'} and run the same command again "
            f"to write {', '.join(opts.formats)}."
        )
    return (
        f"stopped: {what}{where}. {state.frames_done} of {state.frames_total} frames are done "
        f"and recorded in {opts.out / STATE_DIR / 'ledger.jsonl'}; "
        f"{'free some space' if full else 'fix the cause'} and run the same command again to resume."
    )


class _InputInterrupted(BaseException):
    """The first signal came while the main thread was reading the dataset (a slow or
    hung file): the read is abandoned, the frames in flight are still finished.

    A ``BaseException``, so that no adapter's ``except Exception`` swallows it."""


class _Reading:
    """Whether the main thread is inside the adapter, reading the next frame."""

    def __init__(self) -> None:
        self.now = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        main = threading.current_thread() is threading.main_thread()
        self.now = main  # signal handlers run in the main thread only
        try:
            yield
        finally:
            self.now = False


def _resumed(
    state: Progress,
    lock: threading.Lock,
    progress: Callable[[Progress], None] | None,
    part_of: Callable[[str, int], Path] | None,
) -> Callable[[Frame], bool]:
    """``is_done(frame)`` for a frame the ledger names: counts it as already done,
    unless its COCO part (``part_of``, when the job keeps parts) is missing, in which
    case the frame is converted again."""

    def is_done(frame: Frame) -> bool:
        if part_of is not None and not part_of(*frame.key).is_file():
            log.warning(
                "%s frame %d: in the ledger but its part is missing; converting it again",
                *frame.key,
            )
            return False
        with lock:
            state.frames_done += 1
            state.frames_resumed += 1
            if progress:
                progress(state)
        return True

    return is_done


def _pending(
    frames: Iterator[Frame],
    done: set[tuple[str, int]],
    stop: threading.Event,
    reading: _Reading,
    is_done: Callable[[Frame], bool],
    problems: Problems,
) -> Iterator[Frame]:
    """The frames not yet recorded whose image file is one (:func:`check_frame_file`);
    ends early once ``stop`` is set (Ctrl-C), and at once when the signal interrupts
    the read of the next frame.

    The file check is made here, for every frame, because a frame whose objects are
    all box-filled is never decoded: a missing, 0-byte, non-image (a text file named
    ``.jpg``) or non-regular frame (a FIFO, never opened) was converted and counted as
    done. It costs a ``stat`` and a header read; a decoded frame is still checked in
    full by the engine (truncation)."""
    it = iter(frames)
    while not stop.is_set():
        try:
            with reading.reading():
                frame = next(it)
        except (StopIteration, _InputInterrupted):
            return
        if frame.key in done and is_done(frame):
            continue
        try:
            with reading.reading():  # a hung file system: the first signal stops here too
                check_frame_file(frame.image_path, frame.image_hw)
        except AnnotationError as exc:
            problems.report(exc, kind="frame")
            continue
        except _InputInterrupted:
            return
        yield frame


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, reading: _Reading | None = None) -> Iterator[list[Any]]:
    """While converting, SIGINT/SIGTERM set ``stop`` (frames in flight are finished).

    When the signal finds the main thread reading the dataset (``reading``), that
    read is abandoned at once (:class:`_InputInterrupted`): a FIFO, a hung network
    file or a slow annotation file cannot keep the run from stopping.
    A second signal raises :class:`KeyboardInterrupt` at once (still safe: every
    file is written atomically and recorded after). Only in the main thread,
    where Python lets handlers be installed; elsewhere Ctrl-C behaves as usual.
    Yields a list that receives ``(signal name, number)`` of the first signal.
    """
    caught: list[Any] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        caught.extend([signal.Signals(signum).name, signum])
        stop.set()
        log.warning("stopping after the frames in flight (send the signal again to stop at once)")
        if reading is not None and reading.now:
            raise _InputInterrupted

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev)


__all__ = [
    "Box2MaskError",
    "JobInterrupted",
    "JobStopped",
    "Progress",
    "Summary",
    "convert",
    "shard_sequences",
]
