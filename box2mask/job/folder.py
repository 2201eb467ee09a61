"""A job folder as its readers see it: its saved state, and its frames, one at a time.

:class:`JobFolder` is how ``merge``, ``qa apply``, the changes operation and
``convert``'s final assembly read a job: ``job.json`` through
:func:`~box2mask.job.state.read_job_file`, and the frames as parts with their
corrections (:func:`~box2mask.job.corrections.overlay`), in dataset order,
loaded one at a time (:meth:`JobFolder.iter_parts`): memory holds one part and
the frame numbers of one sequence, never the job.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.job.corrections import layer_frames, layer_path, overlay, read_entry
from box2mask.job.parts import Part, read_part
from box2mask.job.state import hold_lock, read_job_file
from box2mask.layout import (
    FINISHED_FILE,
    PARTS_DIR,
    PENDING_FILE,
    part_frame_index,
    part_path,
    sequence_dir,
    state_dir,
)
from box2mask.split import Split
from box2mask.writers.base import WRITERS, Assembly, Writer, WriterContext


class JobFolder:
    """The ``--out`` folder of a ``box2mask convert`` job, read.

    Args:
        out: the job folder.

    Raises:
        JobFileError: (on first use of :attr:`saved`) no readable ``job.json``.
    """

    def __init__(self, out: Path | str) -> None:
        self.out = Path(out)
        self.state = state_dir(self.out)

    def __repr__(self) -> str:
        return f"JobFolder({str(self.out)!r})"

    @cached_property
    def saved(self) -> dict[str, Any]:
        """``job.json`` (read once)."""
        return read_job_file(self.out)  # type: ignore[return-value]

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self.saved.get("identity") or {})

    @property
    def categories(self) -> list[dict[str, Any]]:
        """The COCO category table (ids 1..)."""
        return list(self.saved.get("categories") or [])

    @property
    def order(self) -> list[str]:
        """The full dataset's sequences, in order (shards of one dataset share it)."""
        return list(self.saved.get("sequences") or [])

    @property
    def formats(self) -> list[str]:
        """The job's ``--format`` list."""
        return list(self.identity.get("formats") or ["coco"])

    @property
    def root(self) -> Path:
        """The dataset root (a part's ``file_name`` is relative to it)."""
        return Path(self.identity.get("root") or ".")

    @property
    def pending(self) -> bool:
        """A change to the job was interrupted (its journal is there; the next one, or a
        ``convert`` of the job, finishes it)."""
        return (self.state / PENDING_FILE).exists()

    @property
    def finished(self) -> bool:
        """A run went through every frame (``finished.json``)."""
        return (self.state / FINISHED_FILE).exists()

    @cached_property
    def sequences(self) -> list[str]:
        """The sequences that have parts, in dataset order."""
        parts = self.state / PARTS_DIR
        return [s for s in self.order if (parts / sequence_dir(s)).is_dir()]

    def part_path(self, sequence: str, frame_index: int) -> Path:
        return part_path(self.state, sequence, frame_index)

    def layer_path(self, sequence: str, frame_index: int) -> Path:
        """The frame's corrections file (:mod:`box2mask.job.corrections`)."""
        return layer_path(self.state, sequence, frame_index)

    def frame_indices(self, sequence: str) -> list[int]:
        """The sequence's converted frames (those with a part), in frame order."""
        folder = self.state / PARTS_DIR / sequence_dir(sequence)
        found = (part_frame_index(p) for p in folder.glob("*.json"))
        return sorted(i for i in found if i is not None)

    def model_part(self, sequence: str, frame_index: int) -> Part:
        """A frame's part as the model made it (no corrections)."""
        return read_part(self.part_path(sequence, frame_index))

    def read_part(self, sequence: str, frame_index: int, corrected: bool = True) -> Part:
        """A frame as the job holds it: its part with its corrections (``corrected``)."""
        part = self.model_part(sequence, frame_index)
        if not corrected:
            return part
        return overlay(part, read_entry(self.layer_path(sequence, frame_index)))

    def iter_sequence(self, sequence: str) -> Iterator[Part]:
        """A sequence's frames (parts with their corrections), in frame order, one at a time."""
        fixed = layer_frames(self.state, sequence)
        for i in self.frame_indices(sequence):
            part = self.model_part(sequence, i)
            if i in fixed:
                part = overlay(part, read_entry(self.layer_path(sequence, i)))
            yield part

    def iter_parts(self, sequences: Iterable[str] | None = None) -> Iterator[Part]:
        """Every frame of the job (or of ``sequences``), dataset order, one at a time."""
        for seq in self.sequences if sequences is None else sequences:
            yield from self.iter_sequence(seq)

    def assembly(self) -> Assembly:
        """The job's frames as an :class:`Assembly` (what the formats are assembled from).

        The parts are read when :attr:`Assembly.parts` is called, not before.
        """
        return Assembly(self.categories, self.iter_parts, list(self.sequences))

    @property
    def split(self) -> Split | None:
        """The job's ``--split`` as ``job.json`` saved it (its sequences' splits), or ``None``."""
        return Split.from_json(self.saved.get("split"))

    def writers(self, formats: Iterable[str] | None = None) -> list[Writer]:
        """The job's writers (its ``--format`` list, or ``formats``), in that order, with the
        job's split: a change re-derives the split files too."""
        names = list(self.formats if formats is None else formats)
        ctx = WriterContext(self.out, self.root, self.categories, self.sequences, names, self.split)
        return [WRITERS.get(name)(ctx) for name in names]

    @contextlib.contextmanager
    def locked(self, doing: str) -> Iterator[None]:
        """Hold the job's lock (:func:`~box2mask.job.state.hold_lock`) while changing it.

        Raises:
            UsageError: a ``convert`` of the job (or another change) is running;
                ``doing`` says what waits (``"apply the decisions"``).
        """
        fd = hold_lock(self.state)
        if fd is None:
            raise UsageError(
                f"--job {self.out}: a box2mask process is running this job; {doing} when it "
                "has ended"
            )
        try:
            yield
        finally:
            os.close(fd)
