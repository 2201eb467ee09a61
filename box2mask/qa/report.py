"""``box2mask qa``: read an output frame by frame, rank its objects, write ``qa.json`` and ``qa.csv``.

An output is a job folder (``<out>/annotations.json`` and
``<out>/.box2mask/job.json``) or a COCO file; a COCO file beside a job's
``.box2mask/`` folder takes that job's identity. The identity gives the crop
geometry (``crop_size``, ``context``, ``window``), the model (``fallback``)
and the dataset root the images' ``file_name`` is relative to (the image
signal); without it box2mask's defaults apply and the image signal needs
``image_root``.

Memory does not grow with the number of objects (issue 28): a finished job is
read through its parts (:class:`~box2mask.job.JobFolder`), a COCO file through
an on-disk index (:class:`~box2mask.cocofile.CocoFile`); each sequence is
scored frame by frame (:mod:`box2mask.qa.stream`), on the executors when
``workers > 1``; the ranked rows are sorted on disk (:mod:`box2mask.qa.ranking`)
and merged into qa.json, qa.csv and the review page's data in one pass. The
score is the same function of the same signals (:mod:`box2mask.qa.score`).

qa.json holds one ranked object per line; :func:`iter_ranked` reads them back one
at a time (the per-object rows a plot or a notebook consumes without holding
the list).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.io import atomic_open
from box2mask.job import JobFolder, read_job_file
from box2mask.layout import COCO_NAME
from box2mask.qa.ranking import merge_runs
from box2mask.qa.score import FLAGS, Calibration, calibration_for
from box2mask.qa.signals import CropGeometry, ObjectSignals
from box2mask.qa.stream import (
    CSV_HEAD,
    SIGNAL_COLUMNS,
    Settings,
    SourceSpec,
    Task,
    TaskResult,
    run_task,
)

QA_JSON = "qa.json"
QA_CSV = "qa.csv"
#: frames per task: consecutive sequences are grouped until a task has this many
TASK_FRAMES = 200

__all__ = [
    "QA_CSV",
    "QA_JSON",
    "SIGNAL_COLUMNS",
    "Output",
    "QAReport",
    "iter_ranked",
    "open_output",
    "run_qa",
]


@dataclass
class Output:
    """A job or COCO file to rank: where its frames come from and its job's saved state.

    Attributes:
        coco_path: the COCO file (a job's ``annotations.json``).
        job_dir: the job folder (``None`` for a bare COCO file).
        job: the job's ``job.json`` (empty without one).
        parts: the job is read through its parts (a finished job with parts); else the
            COCO file is indexed on disk when :func:`run_qa` reads it.
    """

    coco_path: Path
    job_dir: Path | None = None
    job: dict[str, Any] = field(default_factory=dict)
    parts: bool = False

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self.job.get("identity", {}))


def open_output(path: Path | str) -> Output:
    """A job folder or a COCO file (see the module docstring); nothing is read yet but
    ``job.json``.

    Raises:
        UsageError: no such file or folder, a folder without ``annotations.json``, an
            unreadable ``job.json``.
    """
    path = Path(path)
    if path.is_dir():
        coco_path = path / COCO_NAME
        if not coco_path.is_file():
            raise UsageError(
                f"--job {path}: no {COCO_NAME} (a `box2mask convert --format coco` job)"
            )
        job_dir: Path | None = path
    elif path.is_file():
        coco_path, job_dir = path, path.parent
    else:
        raise UsageError(f"--job {path}: no such job folder or COCO file")
    # an unreadable job.json: JobFileError, a UsageError naming it
    job = read_job_file(job_dir, missing_ok=True) if job_dir is not None else None
    if job is None:
        job, job_dir = {}, path if path.is_dir() else None
    parts = False
    if path.is_dir() and job:
        folder = JobFolder(path)
        # the parts are what annotations.json is assembled from once the job is finished
        parts = folder.finished and not folder.pending and bool(folder.sequences)
    return Output(coco_path, job_dir, job, parts)


@dataclass
class QAReport:
    """What :func:`run_qa` found (the objects themselves are in the files it wrote).

    Attributes:
        objects: the number of objects ranked.
        reviewed: objects a person reviewed (``review`` ``accepted`` or ``manual``) left
            out of the ranking (``include_reviewed`` ranks them: then 0).
        top: the first ranked rows (qa.json's records), most suspicious first.
        flag_counts: objects per flag.
        paths: qa.json, qa.csv (and the page's index.html when asked).
        exact: with ``exact``: every object's unrounded signals and log-odds, ranked
            (``--gt-dataset`` scores the flags with them); else empty.
    """

    source: Path
    model: str | None
    image_root: Path | None
    unread_images: int
    calibration: str
    objects: int
    flag_counts: dict[str, int]
    top: list[dict[str, Any]]
    paths: list[Path] = field(default_factory=list)
    page: Path | None = None
    exact: list[tuple[ObjectSignals, float]] = field(default_factory=list)
    frames: int = 0
    reviewed: int = 0
    include_reviewed: bool = False


def _tasks(output: Output, spec: SourceSpec, scratch: str, settings: Settings, coco: Any
           ) -> tuple[list[Task], int]:  # fmt: skip
    """Consecutive sequences grouped into tasks of about :data:`TASK_FRAMES` frames, and
    the number of frames."""
    if output.parts:
        folder = JobFolder(output.job_dir)  # type: ignore[arg-type]
        sizes = [(s, len(folder.frame_indices(s))) for s in folder.sequences]
    else:
        sizes = coco.sequence_sizes()
    tasks: list[Task] = []
    group: list[tuple[int, str]] = []
    in_group = frames = 0
    for rank, (seq, n) in enumerate(sizes):
        group.append((rank, seq))
        in_group += n
        frames += n
        if in_group >= TASK_FRAMES:
            tasks.append(Task(spec, tuple(group), scratch, settings))
            group, in_group = [], 0
    if group:
        tasks.append(Task(spec, tuple(group), scratch, settings))
    return tasks, frames


def run_qa(
    output: Output,
    dest: Path,
    *,
    image_root: Path | None = None,
    images: bool = True,
    cal: Calibration | None = None,
    workers: int = 1,
    executor: str = "auto",
    ray_address: str | None = None,
    top: int = 10,
    html: Path | None = None,
    html_top: int = 1000,
    html_plots: Sequence[str] = (),
    exact: bool = False,
    include_reviewed: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
) -> QAReport:
    """Signals, score and flags of every object of ``output``, most suspicious first, into
    ``dest/qa.json`` and ``dest/qa.csv`` (and the review page into ``html``).

    Args:
        output: from :func:`open_output`.
        dest: the folder for qa.json and qa.csv (made if missing); the temporary files
            of the ranking go there too, and are deleted.
        image_root: where the images' ``file_name`` is relative to (default: the job's
            dataset root).
        images: read the images for the image signal.
        cal: the calibration of the score (default: the job model's, :func:`~box2mask.qa.score.calibration_for`).
        workers, executor, ray_address: where the sequences are scored
            (:func:`box2mask.executors.tasks.map_tasks`); the result is the same.
        top: ranked rows kept in :attr:`QAReport.top`.
        html, html_top: write the review page there, thumbnails for the ``html_top``
            most suspicious objects, and ``html_plots`` (PNG paths relative to ``html``,
            drawn by the caller) above the cards.
        exact: keep every object's unrounded signals (:attr:`QAReport.exact`).
        include_reviewed: rank the objects a person reviewed too. By default an object
            whose ``review`` is in :data:`box2mask.job.corrections.REVIEWED` (``accepted``:
            kept by ``qa apply``; ``manual``: drawn or corrected in an annotation tool) is
            scored (its neighbours' signals use it) and listed in qa.json's ``reviewed``
            and at the end of qa.csv, but not ranked: the page, the plots and the top
            rows see only the ranked objects.
        progress: ``progress(frames_done, frames_total, objects_done)``.
    """
    from box2mask.executors.tasks import map_tasks

    ident = output.identity
    root = image_root
    if root is None and ident.get("root"):
        root = Path(ident["root"])
    if not images:
        root = None
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if cal is None:  # the job's model's calibration (lite's weighs its quality head)
        cal = calibration_for(ident.get("model"))
    settings = Settings(
        CropGeometry.from_identity(ident), ident.get("model"),
        None if root is None else str(root), cal, exact, include_reviewed,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix=".qa-", dir=dest))
        coco = None
        if output.parts:
            spec = SourceSpec("job", str(output.job_dir))
        else:
            from box2mask.cocofile import CocoFile

            coco = stack.enter_context(CocoFile(output.coco_path, "--job", Path(scratch)))
            bad = coco.orphans()
            if bad is not None:
                raise UsageError(
                    f"--job {output.coco_path}: annotation id {bad[0]}: no image with id {bad[1]}"
                )
            spec = SourceSpec("file", str(output.coco_path), coco.index)
        tasks, total = _tasks(output, spec, scratch, settings, coco)
        done = [0, 0]

        def tick(frames: int, objects: int) -> None:
            done[0] += frames
            done[1] += objects
            if progress is not None:
                progress(done[0], total, done[1])

        results: list[TaskResult] = []
        try:
            for res in map_tasks(run_task, tasks, workers=workers, executor=executor,
                                 progress=tick, ray_address=ray_address):  # fmt: skip
                results.append(res)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--job {output.coco_path}: {exc}") from None
        counts: Counter[str] = Counter()
        for r in results:
            counts.update(r.flag_counts)
        flag_counts = {k: counts.get(k, 0) for k in FLAGS}
        n_objects = sum(r.objects for r in results)
        report = QAReport(
            output.coco_path, ident.get("model"), root, sum(r.unread for r in results),
            cal.source, n_objects, flag_counts, [], frames=sum(r.frames for r in results),
            reviewed=sum(r.reviewed for r in results), include_reviewed=include_reviewed,
        )  # fmt: skip
        offsets = _offsets(results) if output.parts else None
        page = None
        if html is not None:
            from box2mask.qa.html import PageWriter

            page = stack.enter_context(
                PageWriter(html, output, report, scratch, html_top, html_plots)
            )
        runs = [p for r in results for p in r.runs]
        _write(report, dest, merge_runs(runs, scratch), offsets, top, page, exact)
        if page is not None:
            report.page = page.finish(spec, root, offsets)
    return report


def _offsets(results: list[TaskResult]) -> dict[int, tuple[int, int]]:
    """A job's ``{unit: (annotations before it, images before it)}``: its ids are 1.. in
    dataset order, as its annotations.json gives them."""
    units = sorted(u for r in results for u in r.units)
    out: dict[int, tuple[int, int]] = {}
    a = i = 0
    for rank, n_ann, n_img in units:
        out[rank] = (a, i)
        a += n_ann
        i += n_img
    return out


def _write(
    report: QAReport,
    dest: Path,
    lines: Iterator[str],
    offsets: dict[int, tuple[int, int]] | None,
    top: int,
    page: Any,
    exact: bool,
) -> None:
    """qa.json and qa.csv (atomically) from the merged run lines, in one pass: the ranked
    objects (``"ranked"``, rows with a rank), then the reviewed ones left out of the
    ranking (``"reviewed"``, ``"rank": null``; rows with an empty rank), whose run keys
    sort last (:func:`box2mask.qa.stream._line`)."""
    jp, cp = dest / QA_JSON, dest / QA_CSV
    head = {
        "source": str(report.source),
        "model": report.model,
        "calibration": report.calibration,
        "image_root": None if report.image_root is None else str(report.image_root),
        "unread_images": report.unread_images,
        "objects": report.objects,
        "reviewed": report.reviewed,
        "include_reviewed": report.include_reviewed,
        "flags": FLAGS,
        "flag_counts": report.flag_counts,
    }
    with atomic_open(jp) as jf, atomic_open(cp) as cf:
        jf.write(json.dumps(head)[:-1] + ', "ranked": [')
        cf.write(",".join(CSV_HEAD) + "\n")
        rank = 0
        first = True
        for line in lines:
            key, unit, aid, iid, rest, cells, pg, ex = line.rstrip("\n").split("\t")
            aid_n, iid_n = int(aid), int(iid)
            if offsets is not None:
                a0, i0 = offsets[int(unit)]
                aid_n, iid_n = aid_n + a0, iid_n + i0
            if key[0] == "1":  # reviewed, not ranked: after every ranked object
                if rank >= 0:
                    jf.write('\n], "reviewed": [')
                    rank, first = -1, True
                record = f'{{"rank": null, "id": {aid_n}, "image_id": {iid_n}, {rest}'
                jf.write(("\n" if first else ",\n") + record)
                cf.write(f",{aid_n},{iid_n},{json.loads(cells)}\n")
                first = False
                continue
            rank += 1
            record = f'{{"rank": {rank}, "id": {aid_n}, "image_id": {iid_n}, {rest}'
            jf.write(("\n" if rank == 1 else ",\n") + record)
            cf.write(f"{rank},{aid_n},{iid_n},{json.loads(cells)}\n")
            if rank <= top:
                report.top.append(json.loads(record))
            if page is not None:
                page.add(rank, aid_n, iid_n, pg, rest)
            if exact:
                d = json.loads(ex)
                z = d.pop("logit")
                d["id"], d["image_id"] = aid_n, iid_n
                report.exact.append((ObjectSignals(**d), z))
        if rank >= 0:
            jf.write('\n], "reviewed": [')
        jf.write("\n]}\n")
    report.paths += [jp, cp]


def iter_ranked(path: Path | str) -> Iterator[dict[str, Any]]:
    """The ranked records of a qa.json, most suspicious first, one at a time (``rank``,
    ``id``, ..., ``suspicion``, ``flags``, ``signals``): what a plot of qa's output reads
    without holding the list."""
    import ijson

    done = 0
    try:
        with open(path, "rb") as fh:
            for rec in ijson.items(fh, "ranked.item", use_float=True):
                yield rec
                done += 1
        return
    except UnicodeDecodeError:
        # a "\udcff" escape (an undecodable byte of a file name, as Python writes it) is
        # refused by the C parser; the Python parser reads it as json does: go on with it
        pass
    with open(path, "rb") as fh:
        items = ijson.get_backend("python").items(fh, "ranked.item", use_float=True)
        for k, rec in enumerate(items):
            if k >= done:
                yield rec
