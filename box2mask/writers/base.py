"""The writer seam: what an output format is, and the registry ``--format`` reads.

A format is one :class:`Writer` subclass registered in :data:`WRITERS`
(``@WRITERS.register("name")``) and imported once in ``writers/__init__.py``;
``convert``, the executors, ``merge`` and ``--overwrite`` ask the registry and
never name a format (docs/extending.md).

A writer has two halves, either of which may be empty:

- :meth:`Writer.encode_frame`: a finished frame's own files, as bytes (pure,
  so it runs wherever the frame was converted: a worker process, a Ray actor);
  the executor's :class:`~box2mask.executors.base.FrameSink` writes them
  atomically and only then records the frame in the ledger;
- :meth:`Writer.finalize`: files assembled at the end from every frame's COCO
  part (:class:`Assembly`), after the last frame of a run, again on a resumed
  run, and by ``box2mask merge`` over several jobs; idempotent.

Paths in :class:`FrameFile` are relative to the job's ``--out`` folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from box2mask.layout import sequence_dir
from box2mask.registry import Registry
from box2mask.split import Split
from box2mask.types import FrameMasks


@dataclass(frozen=True)
class FrameFile:
    """One file of a frame's outputs: ``path`` (posix, relative to ``--out``) and its bytes."""

    path: str
    data: bytes


@dataclass
class EncodedFrame:
    """A frame's outputs, encoded but not yet on disk.

    Picklable: it crosses process and Ray boundaries. Only the executor's
    sink writes it (then records the frame).
    """

    sequence: str
    frame_index: int
    files: list[FrameFile]
    #: objects by mask source (``"model"``, ``"box"``, ...), for the summary
    sources: dict[str, int] = field(default_factory=dict)
    #: objects by category, then mask source, for the summary (``--summary-json``)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        """``(sequence, frame_index)``."""
        return (self.sequence, self.frame_index)


@dataclass(frozen=True)
class WriterContext:
    """What a job's writers know about it.

    Attributes:
        out: the ``--out`` folder.
        root: the dataset root (a frame's ``file_name`` is relative to it).
        categories: the COCO category table (ids 1..), as in ``job.json``.
        sequences: the sequences the job converts, in dataset order.
        formats: the job's ``--format`` list (empty where the writers do not
            write a convert job: ``merge`` into a folder).
        split: the job's ``--split`` (:class:`box2mask.split.Split`), or ``None``: a
            format with :attr:`Writer.split_units` writes its files (or lists) per split.
    """

    out: Path
    root: Path
    categories: list[dict[str, Any]]
    sequences: list[str]
    formats: Sequence[str] = ()
    split: Split | None = None


@dataclass
class Assembly:
    """What a format assembled at the end reads (``convert``'s last step and ``merge``).

    Attributes:
        categories: the (unified) COCO category table, ids 1..
        parts: a fresh iterator over the frames' COCO parts (:mod:`box2mask.job.parts`:
            ``image`` and ``annotations`` without ids, corrections applied) in dataset
            order: sequence order, then frame order, one at a time. May be called more
            than once.
        sequences: the sequences present, in that order.
    """

    categories: list[dict[str, Any]]
    parts: Callable[[], Iterator[dict[str, Any]]]
    sequences: list[str]


class Writer:
    """One ``--format``. Subclasses override :meth:`encode_frame` and/or
    :meth:`finalize`, and :meth:`outputs`; the class docstring's first line
    is the format's one-line description."""

    #: the ``--format`` value (set by ``@WRITERS.register(name)``)
    name: ClassVar[str] = ""
    #: one line for ``--help`` and docs (the docstring's first line unless set)
    help: ClassVar[str] = ""
    #: True: :meth:`finalize` reads the COCO parts, so the job writes them
    needs_parts: ClassVar[bool] = False
    #: True: :meth:`encode_frame` gives files; ``merge`` copies them from each job folder
    per_frame: ClassVar[bool] = False
    #: the ``--split-by`` units the format writes splits for (``("sequence", "track")``);
    #: ``None``: it writes no split files (per-frame formats such as png), and a job's
    #: ``--split`` leaves it as it is. A unit not listed is refused before anything is written
    split_units: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx

    def encode_frame(self, fm: FrameMasks) -> list[FrameFile]:
        """The frame's own files (paths relative to ``--out``); none by default."""
        return []

    def finalize(self, assembly: Assembly, dest: Path) -> list[Path]:
        """Write the files assembled from every frame under ``dest``; returns them."""
        return []

    def outputs(self) -> list[str]:
        """Top-level names under ``--out`` this format owns: removed by
        ``--overwrite``, listed in the summary, copied by ``merge`` from job folders."""
        return []


class AssembledWriter(Writer):
    """A format written at the end from the parts, as one file or folder ``output`` under ``--out``.

    Subclasses set :attr:`output` and implement :meth:`assemble`.
    """

    needs_parts = True
    #: the file or folder, relative to ``--out``
    output: ClassVar[str] = ""

    def assemble(self, assembly: Assembly, path: Path) -> None:
        """Write the format at ``path`` (``dest / output``) from ``assembly``, atomically."""
        raise NotImplementedError

    def finalize(self, assembly: Assembly, dest: Path) -> list[Path]:
        self.assemble(assembly, Path(dest) / self.output)
        return [Path(dest) / o for o in self.outputs()]

    def split_files(self) -> list[str]:
        """The files a ``--split`` adds beside :attr:`output` (one per split; none here)."""
        return []

    def outputs(self) -> list[str]:
        return [self.output, *self.split_files()]


class _WriterRegistry(Registry[type[Writer]]):
    """Registers a writer class under its ``--format`` name (set on the class, as every
    registry does) and takes its ``--help`` line from its docstring."""

    def add(self, name: str, obj: type[Writer]) -> None:
        if not obj.help and obj.__doc__:
            obj.help = obj.__doc__.strip().splitlines()[0].rstrip(".")
        super().add(name, obj)


#: ``--format`` name -> writer class (plugins: entry-point group ``box2mask.writers``)
WRITERS: Registry[type[Writer]] = _WriterRegistry("format", entry_point_group="box2mask.writers")


def sequence_tops(sequences: list[str]) -> list[str]:
    """The top-level folders of per-sequence outputs (``car/001`` -> ``car``), sorted, unique.

    Folders are the sequences' safe names (:func:`box2mask.layout.sequence_dir`).
    """
    return sorted({sequence_dir(s).split("/")[0] for s in sequences})
