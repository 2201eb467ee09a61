"""A COCO JSON file read in bounded memory: streamed once, indexed on disk.

``box2mask eval --predictions FILE``, ``qa --job FILE`` (a COCO file, not a job
folder), ``qa --gt-dataset`` and ``viz`` read COCO files of any size. Loading
one whole (``json.load``) holds every annotation, and a million objects take
gigabytes. :class:`CocoFile` instead streams the file with ``ijson`` (its C
parser) and keeps it in a temporary SQLite database beside the caller's
scratch folder: images and annotations on disk, read back one frame at a
time; memory holds the category table and SQLite's page cache (a few MiB),
whatever the file's size.

Three passes over the file (annotations, images, categories: the arrays may
come in any order) cost about 10 s per million annotations; the index is
deleted when the :class:`CocoFile` is closed.

What it answers:

- :meth:`CocoFile.frames` : the images in frame order: grouped by ``sequence``
  (first appearance), by ``frame_index`` within one (images without them form
  the sequence ``""`` ordered by image id, as :mod:`box2mask.consistency`
  orders them), each with its annotations in file order;
- :meth:`CocoFile.image_for`, :meth:`CocoFile.annotations_of` : a frame's image
  found by ``(sequence, frame_index)``, else by ``file_name``, and its
  annotations in file order (how ``eval --predictions`` matches a dataset's
  frames, :class:`box2mask.evaluate.PredictionIndex`).

Ids are compared as JSON values, so ``1`` and ``1.0`` are one id, as they are
in a Python dict.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError

#: rows inserted per SQLite transaction while indexing
_BATCH = 5000


def _text(name: str) -> str:
    """A name as SQLite keeps it: JSON (ASCII; lone surrogates of undecodable file names,
    which UTF-8 cannot hold, as ``\\udcff`` escapes)."""
    return json.dumps(name)


class _Surrogates(Exception):
    """The C parser met an escaped lone surrogate (read again with the Python parser)."""


def _key(value: Any) -> str:
    """An id as the text SQLite compares: JSON, whole floats as ints (``1.0`` is ``1``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def _ijson() -> Any:
    import ijson

    return ijson


class CocoFile:
    """A COCO JSON file, indexed on disk (see the module docstring).

    Args:
        path: the file.
        option: the option that named it, for messages (``--predictions``).
        scratch: folder for the temporary index (default: the system's temp folder).
        check: checks each record as it is indexed, raising :class:`UsageError`
            (:func:`box2mask.coco_checks.prediction_checks`).

    Raises:
        UsageError: the file is missing, not JSON, or not a COCO object (no
            ``images``/``annotations`` lists), naming it and ``option``.
    """

    def __init__(
        self,
        path: Path | str,
        option: str = "--job",
        scratch: Path | None = None,
        check: Callable[[str, int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.option = option
        #: called with each record as it is indexed: ``check("images", n, image)``,
        #: ``check("annotations", n, annotation)`` (:mod:`box2mask.coco_checks`)
        self._check = check
        if not self.path.is_file():
            raise UsageError(f"{option} {self.path}: no such file")
        self._dir: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix=".box2mask-index-", dir=None if scratch is None else str(scratch)
        )
        #: the index's SQLite file (:meth:`attach` opens it in another process)
        self.index = os.path.join(self._dir.name, "coco.sqlite")
        self.db = sqlite3.connect(self.index)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096;"
            "CREATE TABLE images (rank INTEGER PRIMARY KEY, id TEXT, gseq TEXT, gframe REAL,"
            " seq TEXT, frame INTEGER, file TEXT, data TEXT);"
            "CREATE TABLE anns (ord INTEGER PRIMARY KEY, image TEXT, data TEXT);"
            "CREATE TABLE categories (data TEXT);"
        )
        #: ``{id: name}`` of the file's categories
        self.categories: dict[Any, str] = {}
        self.category_list: list[dict[str, Any]] = []
        self.annotation_count = 0
        self.image_count = 0
        try:
            self._index()
        except BaseException:
            self.close()
            raise

    # -- indexing ---------------------------------------------------------------
    def _items(self, prefix: str) -> Iterator[Any]:
        ijson = _ijson()
        backend = ijson if self._backend is None else ijson.get_backend(self._backend)
        with open(self.path, "rb") as fh, self._parse_errors(ijson):
            yield from backend.items(fh, prefix, use_float=True)

    @contextlib.contextmanager
    def _parse_errors(self, ijson: Any) -> Iterator[None]:
        """ijson's errors as one message naming the file (an escaped lone surrogate, which
        the C parser refuses: :class:`_Surrogates`, read again with the Python parser)."""
        try:
            yield
        except ijson.JSONError as exc:
            raise UsageError(f"{self.option} {self.path}: not readable JSON ({exc})") from None
        except UnicodeDecodeError as exc:
            if self._backend is None:
                raise _Surrogates() from None
            raise UsageError(f"{self.option} {self.path}: not UTF-8 JSON ({exc})") from None

    def _index(self) -> None:
        self._backend: str | None = None
        try:
            self._check_top()
            self._fill()
        except _Surrogates:
            # a "\udcff" escape (a lone surrogate: a file name's undecodable byte, as Python
            # writes it) is refused by the C parser; ijson's Python parser reads it as
            # Python's json does, at a tenth of the speed
            self.db.executescript("DELETE FROM anns; DELETE FROM images; DELETE FROM categories;")
            self.category_list = []
            self._backend = "python"
            self._check_top()
            self._fill()

    def _fill(self) -> None:
        cur = self.db.cursor()
        batch: list[tuple[int, str, str]] = []
        for k, a in enumerate(self._items("annotations.item")):
            if not isinstance(a, dict):
                raise UsageError(f"{self.option} {self.path}: annotations[{k}] is not an object")
            if self._check is not None:
                self._check("annotations", k, a)
            batch.append((k, _key(a.get("image_id")), json.dumps(a)))
            if len(batch) >= _BATCH:
                cur.executemany("INSERT INTO anns VALUES (?, ?, ?)", batch)
                batch.clear()
        cur.executemany("INSERT INTO anns VALUES (?, ?, ?)", batch)
        self.annotation_count = cur.execute("SELECT COUNT(*) FROM anns").fetchone()[0]
        rows: list[tuple[Any, ...]] = []
        for k, im in enumerate(self._items("images.item")):
            if not isinstance(im, dict):
                raise UsageError(f"{self.option} {self.path}: images[{k}] is not an object")
            if self._check is not None:
                self._check("images", k, im)
            has_key = "sequence" in im and "frame_index" in im
            try:
                frame = int(im["frame_index"]) if has_key else None
            except (TypeError, ValueError):
                frame = None
            # the frame order of qa's tracks (box2mask.consistency): sequence, frame_index, else
            # the sequence "" and the image id
            gseq = _text(str(im.get("sequence", "")))
            gframe = _frame_number(im.get("frame_index", im.get("id")))
            rows.append((
                k, _key(im.get("id")), gseq, gframe, _text(str(im["sequence"])) if has_key else None,
                frame, _text(str(im["file_name"])) if "file_name" in im else None, json.dumps(im),
            ))  # fmt: skip
            if len(rows) >= _BATCH:
                cur.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                rows.clear()
        cur.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.image_count = cur.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        for c in self._items("categories.item"):
            if isinstance(c, dict) and "id" in c:
                self.category_list.append(c)
                cur.execute("INSERT INTO categories VALUES (?)", (json.dumps(c),))
        self._name_categories()
        cur.executescript(
            "CREATE INDEX anns_image ON anns (image, ord);"
            "CREATE INDEX images_id ON images (id);"
            "CREATE INDEX images_key ON images (seq, frame);"
            "CREATE INDEX images_group ON images (gseq, gframe, rank);"
            "CREATE INDEX images_file ON images (file);"
        )
        self.db.commit()

    def _check_top(self) -> None:
        """The file is a JSON object holding ``images`` and ``annotations`` arrays."""
        ijson = _ijson()
        backend = ijson if self._backend is None else ijson.get_backend(self._backend)
        seen: set[str] = set()
        with open(self.path, "rb") as fh, self._parse_errors(ijson):
            for k, (prefix, event, _value) in enumerate(backend.parse(fh)):
                if k == 0 and event != "start_map":
                    raise UsageError(f"{self.option} {self.path}: not a COCO JSON object")
                if prefix in ("images", "annotations") and event in (
                    "start_array", "start_map", "string", "number", "boolean", "null",
                ):  # fmt: skip
                    if event != "start_array":
                        raise UsageError(
                            f"{self.option} {self.path}: not a COCO JSON ({prefix} is not a "
                            "list)"
                        )
                    seen.add(prefix)
                    if {"images", "annotations"} <= seen:
                        return
        missing = [k for k in ("images", "annotations") if k not in seen]
        raise UsageError(
            f"{self.option} {self.path}: not a COCO JSON (no {' or '.join(missing)} list)"
        )

    def _name_categories(self) -> None:
        self.categories = {c["id"]: str(c.get("name", c["id"])) for c in self.category_list}

    @classmethod
    def attach(cls, path: Path | str, index: str, option: str = "--job") -> CocoFile:
        """The index another :class:`CocoFile` built (at its :attr:`index`), opened read-only
        (a worker process reads the file its driver indexed)."""
        self = cls.__new__(cls)
        self.path, self.option, self.index, self._dir = Path(path), option, index, None
        self.db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        self.category_list = [
            json.loads(d) for (d,) in self.db.execute("SELECT data FROM categories")
        ]
        self._name_categories()
        self.annotation_count = self.db.execute("SELECT COUNT(*) FROM anns").fetchone()[0]
        self.image_count = self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        return self

    # -- reading ----------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        if self._dir is not None:
            self._dir.cleanup()

    def __enter__(self) -> CocoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sequences(self) -> list[str]:
        """The images' sequences in order of first appearance (``""``: images without one)."""
        rows = self.db.execute("SELECT gseq, MIN(rank) AS r FROM images GROUP BY gseq ORDER BY r")
        return [json.loads(r[0]) for r in rows]

    def sequence_sizes(self) -> list[tuple[str, int]]:
        """``(sequence, images)`` in order of first appearance (:meth:`sequences`)."""
        rows = self.db.execute(
            "SELECT gseq, COUNT(*), MIN(rank) AS r FROM images GROUP BY gseq ORDER BY r"
        )
        return [(json.loads(r[0]), r[1]) for r in rows]

    def frames(self, sequence: str) -> Iterator[tuple[dict[str, Any], list[tuple[int, dict]]]]:
        """One sequence's images in frame order, each with its annotations as
        ``(ordinal in the file, annotation)`` in file order.

        The frame order is ``frame_index`` (the image id for images without one),
        then the image's place in the file.
        """
        rows = self.db.execute(
            "SELECT data FROM images WHERE gseq = ? ORDER BY gframe, rank", (_text(sequence),)
        )
        for (data,) in _fetch(rows):
            im = json.loads(data)
            yield im, self.annotations_of(im.get("id"))

    def annotations_of(self, image_id: Any) -> list[tuple[int, dict[str, Any]]]:
        """The annotations of the image ``image_id``, ``(ordinal, annotation)`` in file order."""
        rows = self.db.execute(
            "SELECT ord, data FROM anns WHERE image = ? ORDER BY ord", (_key(image_id),)
        )
        return [(k, json.loads(d)) for k, d in rows]

    def image_for(self, sequence: str, frame_index: int, file_name: str) -> dict[str, Any] | None:
        """The image of a frame: by ``(sequence, frame_index)``, else by ``file_name``
        (the last image of the file with that key, as a dict built from it would keep)."""
        row = self.db.execute(
            "SELECT data FROM images WHERE seq = ? AND frame = ? ORDER BY rank DESC LIMIT 1",
            (_text(sequence), int(frame_index)),
        ).fetchone()
        if row is None:
            row = self.db.execute(
                "SELECT data FROM images WHERE file = ? ORDER BY rank DESC LIMIT 1",
                (_text(file_name),),
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def keyed_sequences(self) -> set[str]:
        """The sequences of the images that carry ``sequence`` and ``frame_index``."""
        rows = self.db.execute("SELECT DISTINCT seq FROM images WHERE seq IS NOT NULL")
        return {json.loads(r[0]) for r in rows}

    def image_by_id(self, image_id: Any) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT data FROM images WHERE id = ? ORDER BY rank DESC LIMIT 1", (_key(image_id),)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def neighbours(self, image_id: Any, k: int) -> tuple[list[dict], list[dict]]:
        """The ``k`` images before and the ``k`` after the image ``image_id`` in its
        sequence's frame order (:meth:`frames`), nearest last / first: ``(before, after)``."""
        row = self.db.execute(
            "SELECT gseq, gframe, rank FROM images WHERE id = ? ORDER BY rank DESC LIMIT 1",
            (_key(image_id),),
        ).fetchone()
        if row is None:
            return [], []
        seq, frame, rank = row
        before = self.db.execute(
            "SELECT data FROM images WHERE gseq = ? AND (gframe, rank) < (?, ?)"
            " ORDER BY gframe DESC, rank DESC LIMIT ?", (seq, frame, rank, int(k)),
        ).fetchall()  # fmt: skip
        after = self.db.execute(
            "SELECT data FROM images WHERE gseq = ? AND (gframe, rank) > (?, ?)"
            " ORDER BY gframe, rank LIMIT ?", (seq, frame, rank, int(k)),
        ).fetchall()  # fmt: skip
        return [json.loads(d) for (d,) in reversed(before)], [json.loads(d) for (d,) in after]

    def annotation(self, ordinal: int) -> dict[str, Any] | None:
        """The annotation at place ``ordinal`` (0-based) of the file."""
        row = self.db.execute("SELECT data FROM anns WHERE ord = ?", (int(ordinal),)).fetchone()
        return None if row is None else json.loads(row[0])

    def first_orphan(self) -> tuple[int, Any] | None:
        """``(place in the file, image id)`` of the first annotation whose image is not in
        the file, or ``None``."""
        row = self.db.execute(
            "SELECT ord, data FROM anns WHERE image NOT IN (SELECT id FROM images) ORDER BY ord "
            "LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]).get("image_id"))

    def first_duplicate_image(self) -> tuple[int, int, Any] | None:
        """``(place, place of the first image with its id, id)`` of the first image whose id
        an earlier image has, or ``None``."""
        row = self.db.execute(
            "SELECT b.rank, MIN(a.rank), b.data FROM images b JOIN images a ON a.id = b.id "
            "AND a.rank < b.rank GROUP BY b.rank ORDER BY b.rank LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), json.loads(row[2]).get("id"))

    def orphans(self) -> tuple[Any, Any] | None:
        """``(annotation id, image id)`` of the first annotation whose image is not in the
        file, or ``None``."""
        row = self.db.execute(
            "SELECT data FROM anns WHERE image NOT IN (SELECT id FROM images) ORDER BY ord LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        a = json.loads(row[0])
        return a.get("id"), a.get("image_id")


def _fetch(cursor: sqlite3.Cursor, size: int = 256) -> Iterator[tuple[Any, ...]]:
    """A cursor's rows, a few at a time (the query stays open: no list of them all)."""
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield from rows


def _frame_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


__all__ = ["CocoFile"]
