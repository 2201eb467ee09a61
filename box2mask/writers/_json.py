"""Streaming a large JSON object of two arrays (COCO's images + annotations, YouTube-VIS's
videos + annotations) with memory that does not grow with the dataset."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from box2mask.io import atomic_open


class _Array:
    """Appends JSON records to an open text file, one per line, comma-separated."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.count = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.count += 1
        self._fh.write(("\n" if self.count == 1 else ",\n") + json.dumps(record))


@contextlib.contextmanager
def two_arrays(
    dest: Path, first: str, second: str, tail: dict[str, Any]
) -> Iterator[tuple[Callable[[dict[str, Any]], None], Callable[[dict[str, Any]], None]]]:
    """Write ``{first: [...], second: [...], **tail}`` at ``dest`` atomically, streamed.

    Yields ``(add_first, add_second)``: records of the first array go straight
    to the output, those of the second to a spool file beside it, appended
    after the first array when the block ends; memory holds one record at a
    time. ``add_first.count`` / ``add_second.count`` say how many were added.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_open(dest) as fh,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=dest.parent) as spool,
    ):
        fh.write("{" + json.dumps(first) + ":[")
        add_first, add_second = _Array(fh), _Array(spool)
        yield add_first, add_second
        fh.write("\n]," + json.dumps(second) + ":[")
        spool.seek(0)
        shutil.copyfileobj(spool, fh, 1 << 20)
        fh.write("\n]" + "".join("," + json.dumps(k) + ":" + json.dumps(v) for k, v in tail.items()))
        fh.write("}\n")


Sink = Callable[[dict[str, Any]], None]


def split_arrays(
    stack: contextlib.ExitStack,
    dest: Path,
    first: str,
    second: str,
    tail: dict[str, Any],
    split_files: dict[str, str],
) -> tuple[tuple[Sink, Sink], dict[str, tuple[Sink, Sink]]]:
    """:func:`two_arrays` at ``dest`` and at each split's file beside it, entered on ``stack``.

    Args:
        split_files: ``{split name: file name}`` (none without ``--split``).

    Returns:
        ``((add_first, add_second) of dest, {split name: (add_first, add_second)})``.
    """
    whole = stack.enter_context(two_arrays(dest, first, second, tail))
    sinks = {
        name: stack.enter_context(two_arrays(Path(dest).parent / file, first, second, tail))
        for name, file in split_files.items()
    }
    return whole, sinks


def to_splits(
    split: Any,
    sinks: dict[str, tuple[Sink, Sink]],
    sequence: str,
    head: dict[str, Any],
    records: list[tuple[Any, dict[str, Any]]],
) -> None:
    """One unit (a COCO frame, a YouTube-VIS video) into the split files of ``split``
    (:class:`box2mask.split.Split`): whole into its sequence's split (``--split-by
    sequence``), or into the file of each split one of its tracks is in, the other splits'
    objects kept as ``iscrowd: 1`` (``--split-by track``).

    Args:
        sinks: each split's ``(add_head, add_record)`` (:func:`split_arrays`).
        head: the unit's image or video record.
        records: ``(track key, record)`` of each object (the key as ``split.of_track`` takes it).
    """
    if split.by == "sequence":
        add_head, add = sinks[split.of_sequence(sequence)]
        add_head(head)
        for _, rec in records:
            add(rec)
        return
    owners = [split.of_track(sequence, key) for key, _ in records]
    for name in split.names:
        if name not in owners:
            continue
        add_head, add = sinks[name]
        add_head(head)
        for owner, (_, rec) in zip(owners, records, strict=True):
            add(rec if owner == name else {**rec, "iscrowd": 1})


def write_json_sidecar(path: Path, obj: Any) -> None:
    """A small JSON table beside a format's files (indented, newline-terminated), atomically."""
    from box2mask.io import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(obj, indent=1) + "\n").encode("utf-8"))
