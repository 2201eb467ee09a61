"""The executor seam: who converts the frames, and the one place a frame is committed.

An executor hands the job's pending frames to one or more engines (this
process, a process per device, a Ray actor pool) and gets back each finished
frame's outputs encoded (:class:`~box2mask.writers.base.EncodedFrame`). It
passes them to the :class:`FrameSink`, in the calling (driver) process only,
which keeps the job's contract in one place:

1. the frame's files outside the job's state folder are listed in the job's
   output manifest (``outputs.jsonl``, read by ``--overwrite``);
2. the frame's files are written atomically (temp file, fsync, rename);
3. only then is the frame recorded in the ledger (one ``write``, fsync);
4. then it is counted and the progress callback told.

So a kill at any moment leaves every recorded frame complete, a frame is
recorded once, and only one process ever writes the ledger. A new executor
is one module with an :class:`Executor` subclass registered in
:data:`EXECUTORS` (docs/extending.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from box2mask.errors import Box2MaskError
from box2mask.job import Job, WriteFailed
from box2mask.job.parts import encode_part, frame_part, part_relpath
from box2mask.job.state import write_frame_files
from box2mask.registry import Registry
from box2mask.types import Frame, FrameMasks
from box2mask.writers.base import EncodedFrame, FrameFile, Writer

if TYPE_CHECKING:  # torch and the engine are not needed to describe a run
    import torch

    from box2mask.engine import Profile
    from box2mask.models.registry import ModelSpec
    from box2mask.options import ConvertOptions
    from box2mask.problems import Problems

Timer = Callable[[str], AbstractContextManager[Any]]


def _no_timer(_stage: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


class FrameEncoder:
    """A finished frame → its :class:`EncodedFrame` (pure; picklable, so it runs in
    worker processes and Ray actors as well as in the driver).

    Args:
        writers: the job's writers (``--format``), in order.
    """

    def __init__(self, writers: list[Writer]) -> None:
        self.writers = list(writers)
        #: the job's per-frame COCO parts, written when any format is assembled from them
        self.parts = any(w.needs_parts for w in self.writers)

    def encode(self, fm: FrameMasks, timer: Timer | None = None) -> EncodedFrame:
        """The frame's files: its COCO part (``encode-rle``), then each writer's own (``write``)."""
        time_ = timer or _no_timer
        frame = fm.frame
        files: list[FrameFile] = []
        if self.parts:
            with time_("encode-rle"):
                rel = part_relpath(frame.sequence, frame.frame_index)
                files.append(FrameFile(rel, encode_part(frame_part(fm))))
        for w in self.writers:
            with time_("write"):
                files.extend(w.encode_frame(fm))
        sources = Counter(om.source for om in fm.masks)
        classes: dict[str, dict[str, int]] = {}
        for om in fm.masks:
            row = classes.setdefault(str(om.category), {})
            row[om.source] = row.get(om.source, 0) + 1
        return EncodedFrame(frame.sequence, frame.frame_index, files, dict(sources), classes)


class FrameSink:
    """Commits finished frames: files atomically in place, then the ledger line, then progress.

    Args:
        job: the open job (its ledger).
        encoder: the job's frame encoder.
        on_recorded: ``on_recorded(encoded, info)`` after the ledger line (counts, progress).
        timer: ``timer(stage)`` for ``--profile`` (``write`` covers files and the ledger).
    """

    def __init__(
        self,
        job: Job,
        encoder: FrameEncoder,
        on_recorded: Callable[[EncodedFrame, dict[str, Any]], None] | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.job = job
        self.encoder = encoder
        self._on_recorded = on_recorded
        self._time = timer or _no_timer
        self._lock = threading.Lock()

    def encode(self, fm: FrameMasks) -> EncodedFrame:
        return self.encoder.encode(fm, self._time)

    def commit(self, enc: EncodedFrame, **info: Any) -> None:
        """Write ``enc``'s files, then record the frame (``info`` goes on its ledger line).

        Raises:
            WriteFailed: a file could not be written (disk full, permissions);
                the frame is not recorded. An ``OSError`` from the ledger itself
                propagates as is.
        """
        if enc.key in self.job.corrected:  # converted again (its part was lost): its files
            enc = self.job.with_corrections(enc, self.encoder.writers)  # are the job's
        with self._lock, self._time("write"):
            try:
                write_frame_files(self.job.out, enc.files, self.job.manifest)
            except Box2MaskError as exc:
                raise Box2MaskError(f"{enc.sequence} frame {enc.frame_index}: {exc}") from None
            except OSError as exc:
                raise WriteFailed(exc) from exc
            self.job.record(enc.sequence, enc.frame_index, **info)
            if self._on_recorded is not None:
                self._on_recorded(enc, info)

    def write(self, fm: FrameMasks, **info: Any) -> None:
        """Encode and commit a frame converted in this process."""
        self.commit(self.encode(fm), **info)


@dataclass
class RunContext:
    """What an executor needs to build engines and report (the driver's view of a run)."""

    options: ConvertOptions
    spec: ModelSpec
    checkpoint: Path | None
    devices: list[torch.device]
    precision: str
    problems: Problems
    profile: Profile
    #: set by Ctrl-C / SIGTERM: finish the frames in flight, take no more
    stop: threading.Event


class Executor:
    """Runs a job's pending frames; each finished frame goes to ``sink.commit``.

    Contract: every frame handed out once; ``sink.commit`` called in the
    calling process only, once per frame; a frame that fails is reported to
    ``ctx.problems`` and skipped (the engine does this); raise
    :class:`~box2mask.job.JobStopped`, :class:`~box2mask.engine.DeviceFailed`,
    :class:`~box2mask.job.WriteFailed` or a
    :class:`~box2mask.errors.Box2MaskError` to stop the job (recorded frames stay).
    """

    #: the ``--executor`` value (set by ``@EXECUTORS.register(name)``)
    name: ClassVar[str] = ""
    #: one line for ``--help``
    help: ClassVar[str] = ""

    def run(self, frames: Iterable[Frame], ctx: RunContext, sink: FrameSink) -> None:
        raise NotImplementedError


#: ``--executor`` name -> executor class (plugins: entry-point group ``box2mask.executors``)
EXECUTORS: Registry[type[Executor]] = Registry("executor", entry_point_group="box2mask.executors")


def choose_executor(name: str, n_devices: int) -> type[Executor]:
    """``--executor auto``: in-process for one device, a process per device for several."""
    if name == "auto":
        name = "local" if n_devices == 1 else "processes"
    return EXECUTORS.get(name)


__all__ = [
    "EXECUTORS",
    "Executor",
    "FrameEncoder",
    "FrameSink",
    "RunContext",
    "choose_executor",
]
