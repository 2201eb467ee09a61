"""What every dataset adapter is, and the helpers they share.

An adapter reads one dataset layout and yields :class:`~box2mask.types.Frame`
objects, one sequence at a time, lazily: nothing it holds grows with the
number of sequences or frames beyond the sequence being read.

A new adapter is a subclass registered by name (the registry sets its ``name``)::

    @ADAPTERS.register("mydata")
    class MyData(Adapter):
        layout = "mydata/<seq>/img/000001.jpg ... <seq>/gt.txt"
        options = {"part": Option("mot", "which part to read: mot|sot")}

        def list_sequences(self) -> list[SequenceInfo]: ...
        def read_sequence(self, sequence: str) -> Iterator[Frame]: ...

Bad annotation lines are reported through ``self.problems`` (an
:class:`~box2mask.problems.Problems`) with file and line, and skipped.

Frame listing, natural order, image sizes and the shared categories are in
the toolkit :mod:`box2mask.adapters._files`; the MOT-style row reader is
:mod:`box2mask.adapters._mot_rows`; this module holds the adapter base and the
text-line helpers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from box2mask.adapters._files import (
    SHARED_CATEGORIES,
    error_reason,
    first_image_hw,
    list_frame_images,
)

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.problems import Problems
from box2mask.registry import Registry
from box2mask.types import Frame

#: ``--dataset`` name -> adapter class (plugins: entry-point group ``box2mask.adapters``);
#: ``@ADAPTERS.register(name)`` sets the class's ``name``
ADAPTERS: Registry[type[Adapter]] = Registry("dataset", entry_point_group="box2mask.adapters")


@dataclass(frozen=True)
class Option:
    """One adapter option: its default and its help text (shown by ``box2mask datasets``)."""

    default: Any
    help: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SequenceInfo:
    """A sequence's name and frame count (shards are balanced by frame count)."""

    name: str
    num_frames: int


class Adapter:
    """Base class of dataset adapters.

    Args:
        root: the dataset's root folder.
        problems: where bad input is reported (a fresh non-strict one if omitted).
        **options: adapter options (see the class's ``options``); unknown names
            and values outside ``choices`` raise :class:`UsageError`.
    """

    #: the ``--dataset`` name (set by ``@ADAPTERS.register(name)``)
    name: ClassVar[str] = ""
    #: the expected layout, as shown by ``box2mask datasets``
    layout: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, root: Path | str, problems: Problems | None = None, **options: Any) -> None:
        self.root = Path(root)
        self.problems = problems if problems is not None else Problems()
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise UsageError(
                f"dataset {self.name!r} has no option {unknown[0]!r}; its options: {known}"
            )
        self.opts: dict[str, Any] = {k: o.default for k, o in self.options.items()}
        self.opts.update(options)
        for key, opt in self.options.items():
            if opt.choices is not None and self.opts[key] not in opt.choices:
                raise UsageError(
                    f"dataset {self.name!r} option {key}={self.opts[key]!r} is not one of {', '.join(opt.choices)}"
                )
        if not self.root.is_dir():
            raise DatasetNotFound(f"{self.name} root {self.root} does not exist or is not a folder")
        self.check_root()

    # -- to implement -------------------------------------------------------
    def check_root(self) -> None:
        """Raise :class:`DatasetNotFound` saying what layout was expected and what was found."""

    def list_sequences(self) -> list[SequenceInfo]:
        """Every sequence of the dataset, in a deterministic order."""
        raise NotImplementedError

    def read_sequence(self, sequence: str) -> Iterator[Frame]:
        """The frames of one sequence, in frame order."""
        raise NotImplementedError

    def categories(self) -> list[tuple[str, str]]:
        """``(name, supercategory)`` of every category this dataset can yield."""
        return list(SHARED_CATEGORIES)

    # -- provided -----------------------------------------------------------
    def output_options(self) -> dict[str, Any]:
        """The options that determine the output (saved in the job file)."""
        return dict(sorted(self.opts.items()))

    def frames(self, sequences: list[str] | None = None) -> Iterator[Frame]:
        """Frames of the given (default: all) sequences, sequence by sequence."""
        names = sequences if sequences is not None else [s.name for s in self.list_sequences()]
        for name in names:
            yield from self.read_sequence(name)

    def report(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        *,
        kind: str = "annotation",
    ) -> None:
        """Report a bad input and go on (raises under ``--strict``)."""
        self.problems.report(AnnotationError(message, path, line), kind=kind)

    def note(
        self,
        message: str,
        path: Path | str,
        line: int | None = None,
        *,
        kind: str = "absent",
        count: int = 1,
    ) -> None:
        """Count input skipped by a rule of the format (not an error: ``--strict`` goes on).

        A note names the file (or folder) whose rows or layout it counts; the
        same note (message, file, line) is made once per adapter, however
        often the file is read (``--strict`` reads every sequence twice).
        """
        key = (message, str(path), line)
        noted: set[tuple[str, str, int | None]] = self.__dict__.setdefault("_noted", set())
        if key in noted:
            return
        noted.add(key)
        self.problems.note(AnnotationError(message, path, line), kind=kind, count=count)

    def first_time(self, *key: object) -> bool:
        """True the first time this adapter sees ``key`` (listing twice reports once)."""
        seen: set[tuple[object, ...]] = self.__dict__.setdefault("_once", set())
        if key in seen:
            return False
        seen.add(key)
        return True

    def report_once(
        self, key: tuple[object, ...], message: str, path: Path, line: int | None = None
    ) -> None:
        """:meth:`report`, the first time ``key`` comes (see :meth:`first_time`)."""
        if self.first_time(*key):
            self.report(message, path, line)

    def frame_images(self, folder: Path) -> tuple[list[tuple[int, str]], tuple[int, int]] | None:
        """``(frames, (H, W))`` of a folder of frame images named by number, or ``None``.

        ``frames`` is :func:`~box2mask.adapters._files.list_frame_images`; the
        size is the first readable image's (a video shares one size, so one
        header is read). A frame whose header cannot be read before it is still
        yielded: the engine reports it once, when it reads or checks the frame
        (a report here too would count it twice). ``None`` when the folder holds
        no frame image or none is readable; then each unreadable one is reported
        here (kind ``image``), as no frame of the folder is yielded.
        """
        failed: list[tuple[Path, Exception]] = []
        images = list_frame_images(folder)
        hw = (
            first_image_hw(folder, images, lambda _k, path, exc: failed.append((path, exc)))
            if images
            else None
        )
        if hw is None:
            for path, exc in failed:
                self.report(error_reason(exc), path, kind="image")
        return None if hw is None else (images, hw)

    def file_name(self, path: Path) -> str:
        """``Frame.file_name``: the image path relative to the root (posix), else its name."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def frame(
        self,
        sequence: str,
        frame_index: int,
        image_path: Path,
        image_hw: tuple[int, int],
        **fields: Any,
    ) -> Frame:
        """A :class:`Frame` of this dataset, its ``file_name`` by :meth:`file_name`."""
        return Frame(
            sequence=sequence,
            frame_index=frame_index,
            image_path=image_path,
            image_hw=image_hw,
            file_name=self.file_name(image_path),
            **fields,
        )


def select_sequences(
    dataset: str, sequences: list[SequenceInfo], wanted: tuple[str, ...] | list[str]
) -> list[SequenceInfo]:
    """The sequences named by ``--sequences`` (all when none is named), in dataset order.

    Raises:
        UsageError: a name the dataset lacks (a sample of the names it has is given).
    """
    if not wanted:
        return list(sequences)
    known = {s.name for s in sequences}
    missing = [s for s in wanted if s not in known]
    if missing:
        sample = ", ".join(sorted(known)[:8]) + (" ..." if len(known) > 8 else "")
        raise UsageError(f"--sequences: {dataset} has no sequence {missing[0]!r}; it has: {sample}")
    chosen = set(wanted)
    return [s for s in sequences if s.name in chosen]


def shard_sequences(sequences: list[SequenceInfo], shard: str | None) -> list[SequenceInfo]:
    """The share of ``sequences`` that shard ``K/N`` converts, balanced by frame count.

    Sequences are dealt, longest first (ties by name), to the shard with the
    fewest frames so far (ties to the lowest shard): deterministic, so N
    machines given ``1/N`` .. ``N/N`` cover every sequence exactly once.
    Returns the share in the input order.
    """
    if shard is None:
        return list(sequences)
    from box2mask.options import parse_shard

    k, n = parse_shard(shard)
    load = [0] * n
    owner: dict[str, int] = {}
    for seq in sorted(sequences, key=lambda s: (-s.num_frames, s.name)):
        j = min(range(n), key=lambda i: (load[i], i))
        owner[seq.name] = j
        load[j] += max(seq.num_frames, 1)
    return [s for s in sequences if owner[s.name] == k - 1]


def check_selection(
    adapter: Adapter, sequences: list[SequenceInfo], classes: tuple[str, ...] | list[str]
) -> None:
    """Refuse a conversion that cannot yield anything: exit 2 with what the dataset has.

    ``sequences`` is the adapter's full listing. Raises :class:`DatasetNotFound`
    when no sequence has annotations (those left out were reported while
    listing), :class:`UsageError` when a ``--classes`` name is not one of the
    dataset's categories (a typo: the message lists the categories).
    """
    if not sequences:
        problems = adapter.problems.reports
        why = f" ({problems[0]}{' ...' if len(problems) > 1 else ''})" if problems else ""
        raise DatasetNotFound(
            f"{adapter.name} root {adapter.root} has no sequence with annotations: nothing to convert{why}"
        )
    if classes:
        names = [n for n, _ in adapter.categories()]
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise UsageError(
                f"--classes: {adapter.name} has no class {unknown[0]!r}; its classes: {', '.join(names)}"
            )


def resolve_root(dataset: str, root: Path | str | None) -> Path:
    """``--root``, or ``$BOX2MASK_DATA/<dataset>``; a missing root names the paths tried."""
    tried: list[str] = []
    if root is not None:
        p = Path(root).expanduser()
        if p.is_dir():
            return p
        tried.append(f"{p} (--root)")
    else:
        base = os.environ.get("BOX2MASK_DATA")
        if base:
            p = Path(base).expanduser() / dataset
            if p.is_dir():
                return p
            tried.append(f"{p} ($BOX2MASK_DATA/{dataset})")
        else:
            tried.append("$BOX2MASK_DATA/<dataset> ($BOX2MASK_DATA is not set)")
    raise DatasetNotFound(
        f"no {dataset} dataset found; tried: " + "; ".join(tried) + ". Pass --root PATH."
    )


def open_dataset(
    name: str,
    root: Path | str | None,
    options: Mapping[str, Any] | None = None,
    problems: Problems | None = None,
) -> Adapter:
    """The adapter registered as ``name``, opened on its root (:func:`resolve_root`, made absolute).

    The one way box2mask opens a dataset (convert, eval, viz, qa's ground
    truth, the temporal memory, training).

    Args:
        name: the ``--dataset`` name.
        root: ``--root``, or ``None`` for ``$BOX2MASK_DATA/<name>``.
        options: the adapter's options (``--adapter-option key=value``).
        problems: where bad input is reported; a fresh :class:`Problems` by default.

    Raises:
        UsageError: an unknown dataset (lists the registered ones) or adapter option.
        DatasetNotFound: no root (names the paths tried), or the adapter's layout is not there.
    """
    cls = ADAPTERS.get(name)
    return cls(resolve_root(name, root).resolve(), problems=problems, **dict(options or {}))


# -- text annotation helpers (FORMATS.md "Common rules") ----------------------

_SPLIT = re.compile(r"[,\s]+")


def split_fields(line: str) -> tuple[list[str], bool]:
    """Split an annotation line on commas or whitespace.

    Returns:
        ``(fields, had_leading_empty)``: a line starting with ``,`` (a known VISO
        corruption) loses its leading empty field and reports it.

    >>> split_fields("1, 2 ,3\\t4")
    (['1', '2', '3', '4'], False)
    >>> split_fields(",27,488,7,5")
    (['27', '488', '7', '5'], True)
    """
    stripped = line.strip()
    lead = stripped.startswith(",")
    parts = _SPLIT.split(stripped)
    if parts and parts[0] == "":
        parts = parts[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return parts, lead


def detect_delimiter(lines: list[str]) -> str:
    """``","`` if the first non-blank line has a comma, else ``"whitespace"`` (for logs)."""
    for line in lines:
        if line.strip():
            return "," if "," in line else "whitespace"
    return ","


def is_absent(values: list[str]) -> bool:
    """True for an absent target: ``none`` (any case), NaN, all zeros (FORMATS.md)."""
    if any(v.lower() in ("none", "nan", "") for v in values):
        return True
    try:
        nums = [float(v) for v in values]
    except ValueError:
        return False
    return all(n == 0 for n in nums)


def read_text_lines(path: Path) -> list[str]:
    """The lines of a text annotation file (UTF-8, BOM and CR tolerated)."""
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def to_number(text: str) -> float:
    """``float(text)``; raises ``ValueError`` for non-numbers and infinities."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def first_non_numeric(fields: list[str]) -> tuple[int, str] | None:
    """``(1-based column, text)`` of the first field that is not a number, or ``None``."""
    for i, text in enumerate(fields):
        try:
            to_number(text)
        except ValueError:
            return i + 1, text
    return None


def read_values(
    line: str,
    want: int,
    names: str,
    path: Path,
    lineno: int,
    report: Callable[..., None],
    *,
    lead_warning: str = "line starts with an empty field",
    absent_first: bool = True,
) -> list[float] | None:
    """The ``want`` numbers of a one-box line (SatSOT, OOTB, VISO SOT), or ``None``.

    FORMATS.md's common rules: a line that starts with an empty field keeps
    the rest when exactly ``want`` values remain (a warning, ``lead_warning``
    first), else it is reported and skipped; an absent target (``none``,
    NaN, all zeros) gives ``None`` silently — tested before the value count
    when ``absent_first`` (SatSOT, OOTB), after it otherwise (VISO SOT, where
    a lone ``none`` is a short line); a wrong count or a non-number
    (infinities included) is reported with its column and gives ``None``.

    Args:
        names: the values' names for messages (``"x,y,w,h"``).
        report: the adapter's :meth:`Adapter.report`.
    """
    fields, lead = split_fields(line)
    if lead:
        if len(fields) != want:
            report(
                f"line starts with an empty field and has {len(fields)} values left, "
                f"expected {want} ({names}); skipped",
                path,
                lineno,
            )
            return None
        report(f"{lead_warning}; read the remaining {want} values as {names}", path, lineno)
    if absent_first and is_absent(fields):
        return None
    if len(fields) != want:
        report(
            f"expected {want} values ({names}), got {len(fields)}: {line.strip()!r}", path, lineno
        )
        return None
    if not absent_first and is_absent(fields):
        return None
    try:
        return [to_number(v) for v in fields]
    except ValueError:
        col, text = first_non_numeric(fields) or (0, "")
        report(f"non-numeric value {text!r} in column {col}", path, lineno)
        return None


def number_text(value: str) -> str:
    """A whole number as its integer text (``"1.0"`` → ``"1"``), any other text as written.

    >>> number_text("3.0"), number_text("2.5"), number_text("car")
    ('3', '2.5', 'car')
    """
    try:
        f = float(value)
    except ValueError:
        return value
    return str(int(f)) if f.is_integer() else value
