"""One reader of MOTChallenge-style text rows ``frame,id,x,y,w,h,...`` (mot, satmtb, viso).

:func:`read_mot_rows` reads a file once and returns its rows as arrays
(:class:`MotRows`). A clean file — every kept line the same number (≥ 6) of
plain numbers, as the rules of the dialect keep them — is parsed by one
``numpy.loadtxt`` call; any other file line by line, where each bad line is
reported with its file and line and skipped. The fast path only takes files on
which the line-by-line rules would keep every line as it is, so both give the
same rows (a 30,000-line file: about 20 ms of CPU instead of 100-200 ms).

The formats disagree on details that are part of each adapter's behaviour
(FORMATS.md), so a :class:`Dialect` holds them:

- :data:`MOT` (the ``mot`` and ``satmtb`` adapters): ``#`` lines are
  comments; frame and id are truncated to integers; absent targets are
  decided row by row — ``none`` fields and all-zero boxes are skipped, rows
  with ``w <= 0``, ``h <= 0`` or NaN are skipped and counted (one note per
  file naming their lines, made when ``note`` is given).
- :data:`VISO`: ``#`` lines are malformed; frame and id must be integers;
  rows with ``w <= 0`` or NaN are returned, because VISO decides per file
  whether the four box values are ``x,y,w,h`` or corners before it can tell
  which rows are absent (it counts them itself, with :func:`absent_rows_note`).

In both, a frame or id that is NaN, infinite or beyond :data:`MAX_ID` in
magnitude makes the line malformed (reported with its file and line).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from box2mask.adapters._objects import Obj, Reporter, report_missing
from box2mask.adapters.base import (
    detect_delimiter,
    first_non_numeric,
    is_absent,
    read_text_lines,
    split_fields,
)

from box2mask import ids

#: A row rule's answer for a line that is an absent target to be counted.
ABSENT = "absent"

#: The largest frame number or track id (in magnitude; box2mask.ids). Rows are parsed
#: into float64, which holds every whole number below 2**53 exactly; a longer one
#: (2**53 + 1) reads as its neighbour, so two ids could read as one: such lines are malformed.
MAX_ID = ids.MAX_ID
_MAX_F = float(MAX_ID)  # a float: float-to-int comparisons cost twice as much per line
_ID_RANGE = "at most 2**53 - 1 in magnitude"

#: ``rule(fields, text, path, line, report)``: the six numbers of a line with at
#: least 6 fields, or :data:`ABSENT`, or ``None`` (skipped; reported if bad).
RowRule = Callable[
    [list[str], str, Path, int, Reporter],
    "tuple[float, float, float, float, float, float] | str | None",
]


def absent_rows_note(lines: list[int], all_rows: bool = False) -> str:
    """The message that counts the absent rows (``w <= 0``, ``h <= 0``, NaN) of one file."""
    shown = ", ".join(str(n) for n in lines[:10])
    more = f" and {len(lines) - 10} more" if len(lines) > 10 else ""
    only = " (all rows of the file: its frames have no boxes)" if all_rows else ""
    return (
        f"{len(lines)} row(s) with w <= 0, h <= 0 or NaN skipped as absent targets{only}: "
        f"line(s) {shown}{more}"
    )


def _mot_row(fields: list[str], text: str, path: Path, ln: int, report: Reporter):  # type: ignore[no-untyped-def]
    # Numbers first, the absent-target forms only when they fail: a clean
    # line then costs one float() per field and no string tests.
    try:
        box = [float(v) for v in fields[2:6]]
    except ValueError:
        box = None
    if box is None or any(math.isnan(v) for v in box):
        if is_absent(fields[2:6]):
            return ABSENT if box is not None else None  # NaN is counted, "none" is not
        box = None
    elif not any(box):
        return None  # all zeros: absent (FORMATS.md)
    try:
        frame, tid = float(fields[0]), float(fields[1])
    except ValueError:
        box = None
    if box is None:
        report(f"cannot read numbers from {text!r}", path, ln)
        return None
    if not (abs(frame) <= _MAX_F and abs(tid) <= _MAX_F):  # NaN fails too
        report(
            f"frame and id must be finite numbers {_ID_RANGE}, got {fields[0]!r}, {fields[1]!r}",
            path,
            ln,
        )
        return None
    if not all(math.isfinite(v) for v in box):
        report(f"non-finite box in {text!r}", path, ln)
        return None
    return (frame, tid, *box)  # frame and id truncated by the caller (Dialect.integer_ids)


def _viso_row(fields: list[str], text: str, path: Path, ln: int, report: Reporter):  # type: ignore[no-untyped-def]
    try:
        frame_f, tid_f, x, y, w, h = map(float, fields[:6])
    except ValueError:
        # a row that is not six plain numbers: an absent box ("none"), or reported
        bad = first_non_numeric(fields[:2])
        if bad is None and is_absent(fields[2:6]):
            return None
        col, value = bad or first_non_numeric(fields[:6]) or (0, "")
        report(f"non-numeric value {value!r} in column {col}", path, ln)
        return None
    if not (frame_f.is_integer() and tid_f.is_integer()):
        report(f"frame and id must be integers, got {fields[0]!r}, {fields[1]!r}", path, ln)
        return None
    if abs(frame_f) > _MAX_F or abs(tid_f) > _MAX_F:
        report(
            f"frame and id must be integers {_ID_RANGE}, got {fields[0]!r}, {fields[1]!r}", path, ln
        )
        return None
    if any(math.isinf(v) for v in (x, y, w, h)):
        report(f"infinite box value in {fields[2:6]}", path, ln)
        return None
    return (frame_f, tid_f, x, y, w, h)


@dataclass(frozen=True)
class Dialect:
    """What one family of MOT-style files says about comments, bad lines and absent rows.

    Attributes:
        comments: ``#`` lines are comments (skipped) rather than malformed.
        lead: the warning for a line starting with an empty field.
        short: the report for a line of fewer than 6 fields (``{n}``: how
            many, ``{text}``: the line).
        row: the rule for one line of at least 6 fields.
        integer_ids: the fast path takes a file only if its frames and ids are
            integers (the rule reports others); otherwise they are truncated
            (by the reader, on the whole array, after the rule).
        count_absent: the reader decides and counts absent rows (all-zero
            boxes skipped; ``w <= 0``, ``h <= 0``, NaN counted); otherwise
            every row comes back and the adapter decides.
    """

    comments: bool
    lead: str
    short: str
    row: RowRule
    integer_ids: bool
    count_absent: bool


# The two dialects as a table: the row rule and the flags aligned on one line, then the messages.
MOT = Dialect(
    row=_mot_row,  comments=True,  integer_ids=False, count_absent=True,
    lead="line starts with an empty field; dropped it",
    short="expected at least 6 fields frame,id,x,y,w,h, got {n}",
)  # fmt: skip
VISO = Dialect(
    row=_viso_row, comments=False, integer_ids=True,  count_absent=False,
    lead="line starts with an empty field (known VISO corruption); dropped it",
    short="expected at least 6 values (frame,id,x,y,w,h), got {n}: {text!r}",
)  # fmt: skip


@dataclass(frozen=True)
class MotRows:
    """The rows of one MOT-style file.

    Attributes:
        path: the file.
        lines: its text lines (for :meth:`fields` and the adapters' messages).
        delimiter: ``","`` or ``"whitespace"`` (from the first lines, for logs).
        line: ``(M,)`` int64 1-based line number of each row.
        values: ``(M, 6)`` float64 ``frame, id, x, y, w, h`` of each row, in
            file order (frame and id hold whole numbers).
        absent: lines counted as absent targets (dialects with ``count_absent``).
    """

    path: Path
    lines: list[str]
    delimiter: str
    line: np.ndarray
    values: np.ndarray
    absent: list[int]

    def __len__(self) -> int:
        return len(self.line)

    def fields(self, i: int) -> list[str]:
        """Every field of row ``i``'s line (the columns after the sixth included)."""
        return split_fields(self.lines[int(self.line[i]) - 1])[0]

    def boxes(self) -> Iterator[tuple[int, int, int, int, float, float, float, float]]:
        """``(i, line, frame, track_id, x, y, w, h)`` of each row, as Python numbers."""
        frame = [int(v) for v in self.values[:, 0].tolist()]
        tid = [int(v) for v in self.values[:, 1].tolist()]
        x, y, w, h = (self.values[:, c].tolist() for c in range(2, 6))
        return zip(range(len(self)), self.line.tolist(), frame, tid, x, y, w, h, strict=True)


def read_mot_rows(
    path: Path,
    report: Reporter,
    dialect: Dialect = MOT,
    note: Callable[..., None] | None = None,
) -> MotRows:
    """The rows of a MOTChallenge-style file ``frame,id,x,y,w,h,...``.

    Blank lines are skipped; malformed lines are reported with file and line
    and skipped; absent rows are handled as the ``dialect`` says. With
    ``count_absent`` and ``note`` (an :meth:`Adapter.note`), the absent rows
    are counted in one note per file naming their lines.
    """
    lines = read_text_lines(path)
    delim = detect_delimiter(lines[:5])
    fast = _rows_fast(lines, delim, dialect)
    line, values, absent = fast if fast is not None else _rows_checked(lines, path, report, dialect)
    if dialect.count_absent and len(values):
        box = values[:, 2:6]
        zero = ~box.any(axis=1)  # all zeros: absent, not counted (only the fast path has them)
        gone = ~zero & ((box[:, 2] <= 0) | (box[:, 3] <= 0))
        if gone.any():
            absent = sorted([*absent, *line[gone].tolist()])
        keep = ~(zero | gone)
        line, values = line[keep], values[keep]
    if absent and note is not None:
        note(absent_rows_note(absent), path, absent[0], count=len(absent))
    return MotRows(path, lines, delim, line, values, absent)


def _rows_fast(
    lines: list[str], delim: str, dialect: Dialect
) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """All rows with one ``numpy.loadtxt`` when the file is clean, else ``None``.

    Clean: every kept line has the same number (≥ 6) of plain numbers, with
    frame and id within :data:`MAX_ID` (whole numbers where the dialect wants integers), no
    infinite box value, and no NaN where the reader counts absent rows
    itself (the line-by-line rule tells NaN from ``none`` by its text).
    """
    if dialect.comments:  # two inline loops: a function call per line costs ~10 % here
        kept = [i for i, line in enumerate(lines, 1) if line.strip() and line.lstrip()[:1] != "#"]
    else:
        kept = [i for i, line in enumerate(lines, 1) if line.strip()]
    if not kept:
        return np.zeros(0, np.int64), np.zeros((0, 6)), []
    try:
        arr = np.loadtxt(
            [lines[i - 1] for i in kept],
            delimiter="," if delim == "," else None,
            dtype=np.float64,
            ndmin=2,
            comments=None,  # "#" lines were dropped above, or are malformed (checked path)
        )
    except ValueError:
        return None
    if arr.shape[1] < 6:
        return None
    box, ids = arr[:, 2:6], arr[:, :2]
    if np.isinf(box).any() or (dialect.count_absent and np.isnan(box).any()):
        return None
    if not (np.abs(ids) <= MAX_ID).all():  # NaN and infinities fail too
        return None
    if dialect.integer_ids and not (ids == np.round(ids)).all():
        return None
    values = arr[:, :6]
    if not dialect.integer_ids:
        values = values.copy()
        values[:, :2] = np.trunc(values[:, :2])  # int(float(...)), as the line rule does
    return np.asarray(kept, dtype=np.int64), values, []


def _rows_checked(
    lines: list[str], path: Path, report: Reporter, dialect: Dialect
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rows line by line, reporting every bad one (the dialect's rule for each line)."""
    rows: list[tuple[float, float, float, float, float, float]] = []
    linenos: list[int] = []
    absent: list[int] = []
    comments, rule = dialect.comments, dialect.row
    for ln, line in enumerate(lines, 1):
        text = line.strip()
        if not text or (comments and text[0] == "#"):
            continue
        fields, lead = split_fields(line)
        if lead:
            report(dialect.lead, path, ln)
        if len(fields) < 6:
            report(dialect.short.format(n=len(fields), text=text), path, ln)
            continue
        row = rule(fields, text, path, ln, report)
        if row is None:
            continue
        if row == ABSENT:
            absent.append(ln)
            continue
        rows.append(row)  # type: ignore[arg-type]
        linenos.append(ln)
    values = np.asarray(rows, np.float64).reshape(-1, 6)
    if not dialect.integer_ids:
        values[:, :2] = np.trunc(values[:, :2])  # as the fast path does
    return np.asarray(linenos, np.int64), values, absent


def mot_objects(
    path: Path,
    images: Mapping[int, object],
    category: Callable[[MotRows, int], str | None],
    report: Reporter,
    note: Callable[..., None] | None = None,
) -> dict[int, list[Obj]]:
    """The boxes of a MOT-dialect file as :class:`Obj` per frame (the mot and satmtb adapters).

    Args:
        path: the file.
        images: the sequence's frames (``{frame number: ...}``); rows of other
            frames are reported with :func:`report_missing`.
        category: ``category(rows, i)``: row ``i``'s category, or ``None`` to
            leave the row out (a class not asked for).
        report, note: the adapter's :meth:`Adapter.report` and :meth:`Adapter.note`.
    """
    per_frame: dict[int, list[Obj]] = {}
    missing: dict[int, int] = {}
    rows = read_mot_rows(path, report, note=note)
    for i, ln, frame, tid, x, y, w, h in rows.boxes():
        cat = category(rows, i)
        if cat is None:
            continue
        if frame not in images:
            missing.setdefault(frame, ln)
            continue
        per_frame.setdefault(frame, []).append(
            Obj(np.array([x, y, x + w, y + h]), tid, cat, path, ln)
        )
    report_missing(report, path, missing, max(images, default=0))
    return per_frame
