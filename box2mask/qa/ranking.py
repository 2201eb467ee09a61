"""The ranked list of ``box2mask qa`` sorted on disk: sorted runs, then one merge.

Ranking a million objects must not hold a million objects. Each worker writes
its objects' finished rows (the text of their qa.json and qa.csv lines) into
*runs*: files of at most :data:`RUN_ROWS` lines, each sorted by the rank key.
The driver merges the runs (``heapq.merge``, a line of each run in memory) into
qa.json, qa.csv and the review page's data in one pass, most suspicious first.

A run line is ``KEY\\tUNIT\\tID\\tIMAGE\\tJSON\\tCSV\\tPAGE\\tEXACT``:

- ``KEY``: ``0`` for a ranked object, ``1`` for a reviewed one left out of the
  ranking (they come after every ranked one), then 32 hex digits that sort as
  the rank does (:func:`rank_key`): the log-odds ``z``, largest first (its
  IEEE-754 bits, turned so that text order is number order), then the
  object's place in the output's annotation order (ties go to the earlier
  annotation, as they always have);
- ``UNIT``, ``ID``, ``IMAGE``: the object's work unit and its annotation and
  image ids (within the unit for a job, whose ids the merge offsets by the
  units before it; the file's own for a COCO file);
- ``JSON``: the object's qa.json record after ``"image_id"`` (``, "file_name":
  ..., "signals": {...}}``); ``CSV``: its qa.csv cells after ``image_id``, as a JSON
  string; ``PAGE``: the review page's fields (JSON); ``EXACT``: the unrounded
  signals and log-odds (JSON, only for ``--gt-dataset``), or empty.

JSON escapes tabs and newlines, so a line is one line whatever the names hold.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: lines of a run (about 1 KiB each): what a worker holds before it sorts and writes them
RUN_ROWS = 10_000
#: runs merged at once; more are merged in rounds
FAN_IN = 128

_MASK = (1 << 64) - 1


def rank_key(z: float, place: int) -> str:
    """32 hex digits: text order = largest ``z`` first, then smallest ``place``.

    >>> rank_key(2.0, 5) < rank_key(1.0, 0) < rank_key(1.0, 1) < rank_key(-3.0, 0)
    True
    """
    v = -z + 0.0  # -0.0 and 0.0 are one number, as in a sort of floats
    if v != v:  # NaN: last
        v = float("inf")
    bits = struct.unpack(">Q", struct.pack(">d", v))[0]
    bits = (~bits & _MASK) if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}{place:016x}"


class RunWriter:
    """Collects lines and writes them as sorted runs into ``folder``.

    Args:
        folder: where the runs go (the caller deletes it).
        rows: lines per run.
    """

    def __init__(self, folder: Path | str, rows: int = RUN_ROWS) -> None:
        self.folder = str(folder)
        self.rows = rows
        self.lines: list[str] = []
        self.runs: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        self.lines.sort()
        fd, path = tempfile.mkstemp(prefix="run-", suffix=".txt", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(self.lines)
        self.runs.append(path)
        self.lines = []


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", buffering=1 << 16) as fh:
        yield from fh


def merge_runs(runs: Iterable[str], folder: Path | str) -> Iterator[str]:
    """Every line of ``runs``, in key order (runs past :data:`FAN_IN` merged in rounds
    into new runs in ``folder`` first)."""
    runs = list(runs)
    while len(runs) > FAN_IN:
        merged = []
        for k in range(0, len(runs), FAN_IN):
            group = runs[k : k + FAN_IN]
            fd, path = tempfile.mkstemp(prefix="merge-", suffix=".txt", dir=str(folder))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.writelines(heapq.merge(*(_lines(p) for p in group)))
            for p in group:
                with contextlib.suppress(OSError):
                    os.unlink(p)
            merged.append(path)
        runs = merged
    yield from heapq.merge(*(_lines(p) for p in runs))


__all__ = ["FAN_IN", "RUN_ROWS", "RunWriter", "merge_runs", "rank_key"]
