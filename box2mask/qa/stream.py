"""``box2mask qa`` frame by frame: where the frames come from, and one unit of work.

A job is read one frame at a time, a sequence after the other, never whole:

- a job folder whose convert has finished: its frames through
  :class:`~box2mask.job.JobFolder` (parts with their corrections, the frames
  its ``annotations.json`` is assembled from; ids are those of that file: 1..
  in dataset order);
- a COCO file (or a folder holding only ``annotations.json``): indexed on
  disk by :class:`~box2mask.cocofile.CocoFile`, read back frame by frame.

The *unit* of work is a sequence: its frames in frame order, with the last mask
of each live track (:class:`~box2mask.qa.signals.TrackLinks`), which is all the
track signals need. Units are independent, so tasks of consecutive units run
on the executors (:func:`box2mask.executors.tasks.map_tasks`) and give the same
rows whichever worker runs them. A task writes its objects' rows as sorted runs
(:mod:`box2mask.qa.ranking`) and returns only counts: nothing in memory grows
with the number of objects but the driver's list of run files.

:func:`run_task` is the task; :class:`Row` the per-object record a caller
(``qa --plots``, a notebook) can read back from qa.json with
:func:`box2mask.qa.report.iter_ranked`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from box2mask.consistency import annotation_box
from box2mask.job.corrections import REVIEWED
from box2mask.qa.ranking import RunWriter, rank_key
from box2mask.qa.score import DEFAULT, FLAGS, Calibration, flags, logit, suspicion
from box2mask.qa.signals import CropGeometry, ObjectSignals, TrackLinks, frame_signals

#: qa.json / qa.csv signal columns, in order
SIGNAL_COLUMNS = (
    "score", "box_area", "aspect", "area", "area_ratio", "box_iou", "outside", "components",
    "fragment", "touches_crop", "at_image_edge", "nested", "box_overlap", "mask_overlap",
    "fallback", "image_disagreement", "prev_iou", "next_iou", "track_iou",
)  # fmt: skip
#: qa.csv's columns
CSV_HEAD = ("rank", "id", "image_id", "file_name", "sequence", "frame_index", "track_id",
            "category", "mask_source", "review", "suspicion", "flags", *SIGNAL_COLUMNS)  # fmt: skip
_HEAD = ("file_name", "sequence", "frame_index", "track_id", "category", "mask_source",
         "prompt_box")  # fmt: skip
FLAG_BITS = {name: 1 << k for k, name in enumerate(FLAGS)}
_FIELDS = tuple(f.name for f in fields(ObjectSignals))
#: one CSV row at a time (a task runs in one thread)
_BUF = io.StringIO()
_CSV = csv.writer(_BUF, lineterminator="")
#: a unit's place in the tie-break of a job's objects (objects per unit below 2**40)
UNIT_SHIFT = 40


def _round(v: Any) -> Any:
    return round(v, 5) if isinstance(v, float) else v


def _csv_text(value: Any) -> Any:
    """A CSV cell: a name holding lone surrogates (a file name's undecodable bytes, a JSON
    ``\\udcff``) is written with them as ``\\udcff`` text; UTF-8 cannot hold them."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


# -- sources -----------------------------------------------------------------------
@dataclass(frozen=True)
class SourceSpec:
    """What a task opens to read frames (picklable): ``kind`` ``job`` (a job folder) or
    ``file`` (a COCO file and its index)."""

    kind: str
    path: str
    index: str = ""


@dataclass
class SourceFrame:
    """One frame to score: its COCO image, annotations and each one's category name, and
    each annotation's place (``ordinal`` in the file; its index in a job unit)."""

    image: dict[str, Any]
    anns: list[dict[str, Any]]
    categories: list[str]
    places: list[int]


class JobReader:
    """A finished job's frames through :class:`~box2mask.job.JobFolder`, ids within a unit."""

    def __init__(self, path: str) -> None:
        from box2mask.job import JobFolder

        self.folder = JobFolder(path)

    def frames(self, sequence: str) -> Iterator[SourceFrame]:
        n_ann = 0
        for n_img, part in enumerate(self.folder.iter_sequence(sequence), start=1):
            image = {"id": n_img, **part["image"]}
            anns, names, places = [], [], []
            for a in part["annotations"]:
                n_ann += 1
                anns.append({**a, "id": n_ann, "image_id": n_img})
                names.append(str(a.get("category")))
                places.append(n_ann - 1)
            yield SourceFrame(image, anns, names, places)


class FileReader:
    """A COCO file's frames through its on-disk index (:class:`~box2mask.cocofile.CocoFile`)."""

    def __init__(self, path: str, index: str) -> None:
        from box2mask.cocofile import CocoFile

        self.coco = CocoFile.attach(path, index)

    def frames(self, sequence: str) -> Iterator[SourceFrame]:
        cats = self.coco.categories
        for image, pairs in self.coco.frames(sequence):
            anns = [a for _, a in pairs]
            names = [cats.get(a.get("category_id"), str(a.get("category_id"))) for a in anns]
            yield SourceFrame(image, anns, names, [k for k, _ in pairs])


def open_reader(spec: SourceSpec) -> JobReader | FileReader:
    return JobReader(spec.path) if spec.kind == "job" else FileReader(spec.path, spec.index)


# -- one task ----------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """What every task scores with (the job's identity, the calibration)."""

    geom: CropGeometry
    model: str | None
    image_root: str | None
    cal: Calibration = DEFAULT
    #: also keep the unrounded signals (``--gt-dataset`` scores the flags with them)
    exact: bool = False
    #: rank the objects a person reviewed (``review`` in :data:`REVIEWED`) too
    include_reviewed: bool = False


@dataclass(frozen=True)
class Task:
    """Consecutive units (``(unit rank, sequence)``) of one source, and where runs go."""

    source: SourceSpec
    units: tuple[tuple[int, str], ...]
    scratch: str
    settings: Settings


@dataclass
class TaskResult:
    """What a task gives back: its runs, and counts (no object)."""

    runs: list[str] = field(default_factory=list)
    #: per unit: (rank, annotations, images)
    units: list[tuple[int, int, int]] = field(default_factory=list)
    flag_counts: Counter[str] = field(default_factory=Counter)
    objects: int = 0
    #: objects a person reviewed, left out of the ranking (not in ``objects``)
    reviewed: int = 0
    frames: int = 0
    unread: int = 0


def review_mark(ann: dict[str, Any]) -> str | None:
    """An annotation's ``review`` mark (:mod:`box2mask.job.corrections`), or ``None``."""
    mark = ann.get("review")
    return None if mark is None else str(mark)


def _line(
    sig: ObjectSignals,
    cal: Calibration,
    unit: int,
    where: int,
    tie: int,
    exact: bool,
    review: str | None = None,
    ranked: bool = True,
) -> tuple[str, list[str]]:
    """The run line of one finished object (:mod:`box2mask.qa.ranking`), and its flags.

    ``review`` is the object's review mark; an object left out of the ranking
    (``ranked=False``) gets a key that sorts after every ranked one (``1`` before the
    rank key, ``0`` for the ranked), so the merge gives the ranked list, then the
    reviewed objects, each most suspicious first."""
    z = logit(sig, cal)
    p = suspicion(sig, cal)
    fl = flags(sig)
    d = {k: getattr(sig, k) for k in _FIELDS}  # as_dict() without asdict's deep copies
    d["track_iou"] = sig.track_iou
    head = {k: d[k] for k in _HEAD[:-1]}
    head["review"] = review
    head["prompt_box"] = d["prompt_box"]
    sigs = {k: _round(d[k]) for k in SIGNAL_COLUMNS}
    rest = json.dumps({**head, "suspicion": round(p, 6), "flags": fl, "signals": sigs})
    cells = [_csv_text(d[k]) for k in _HEAD[:-1]] + ["" if review is None else _csv_text(review)]
    cells += [round(p, 6), _csv_text(" ".join(fl))]
    cells += ["" if sigs[k] is None else sigs[k] for k in SIGNAL_COLUMNS]
    _BUF.seek(0)
    _BUF.truncate()
    _CSV.writerow(cells)
    bits = 0
    for f in fl:
        bits |= FLAG_BITS[f]
    page = json.dumps([d["sequence"], d["frame_index"], d["track_id"], d["category"],
                       d["mask_source"], round(p, 6), bits, where, review])  # fmt: skip
    ex = json.dumps({**{k: d[k] for k in _FIELDS}, "logit": z}) if exact and ranked else ""
    key = ("0" if ranked else "1") + rank_key(z, tie)
    return (
        f"{key}\t{unit}\t{sig.id}\t{sig.image_id}\t{rest[1:]}\t{json.dumps(_BUF.getvalue())}"
        f"\t{page}\t{ex}\n",
        fl,
    )


def run_task(task: Task, tick: Callable[[int, int], None]) -> TaskResult:
    """Score every object of the task's units; their rows go to sorted runs in
    ``task.scratch``. ``tick(frames, objects)`` after each frame."""
    from box2mask.qa.image import read_image

    st = task.settings
    reader = open_reader(task.source)
    runs = RunWriter(task.scratch)
    out = TaskResult()
    job = task.source.kind == "job"
    root = None if st.image_root is None else Path(st.image_root)
    for rank, sequence in task.units:
        links = TrackLinks()
        # id(signals) -> (place in the order, where the page finds it, review mark), for
        # objects not yet done
        places: dict[int, tuple[int, int, str | None]] = {}
        n_ann = n_img = 0

        def finish(done: list[ObjectSignals], rank: int = rank, places: dict = places) -> None:
            for s in done:
                place, where, review = places.pop(id(s))
                tie = (rank << UNIT_SHIFT) + place if job else place
                # a reviewed object is scored with the others (its neighbours' signals need
                # it) and recorded, but ranked only when asked
                ranked = st.include_reviewed or review not in REVIEWED
                line, fl = _line(s, st.cal, rank, where, tie, st.exact, review, ranked)
                runs.add(line)
                if ranked:
                    out.flag_counts.update(fl)
                    out.objects += 1
                else:
                    out.reviewed += 1

        for fr in reader.frames(sequence):
            n_img += 1
            n_ann += len(fr.anns)
            if not fr.anns:
                tick(1, 0)
                continue
            bgr = None
            if root is not None:
                bgr = read_image(root / str(fr.image.get("file_name", "")))
                if bgr is None:
                    out.unread += 1
            sig, blocks = frame_signals(
                fr.image, fr.anns, fr.categories, st.geom, model=st.model, bgr=bgr
            )
            hw = (int(fr.image["height"]), int(fr.image["width"]))
            for pos, (s, blk, ann, place) in enumerate(
                zip(sig, blocks, fr.anns, fr.places, strict=True)
            ):
                # the page finds a job's object by its place in the frame, a file's by its ordinal
                places[id(s)] = (place, pos if job else place, review_mark(ann))
                finish(links.add(s, blk, annotation_box(ann), hw))
            tick(1, len(sig))
        finish(links.close())
        out.frames += n_img
        out.units.append((rank, n_ann, n_img))
    runs.flush()
    out.runs = runs.runs
    return out


__all__ = [
    "CSV_HEAD",
    "SIGNAL_COLUMNS",
    "Settings",
    "SourceSpec",
    "Task",
    "TaskResult",
    "run_task",
]
