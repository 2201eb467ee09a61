"""Join the outputs of jobs and shards into one output (``box2mask merge``).

``merge(inputs, dest)`` with a ``.json`` ``dest`` writes one COCO JSON (as
before formats were pluggable); with ``formats`` it writes each format into
the folder ``dest`` through the writer registry: formats assembled from the
frames' parts (COCO, and those that declare ``needs_parts``) are assembled
from all inputs at once, per-frame formats (``per_frame``) are copied from
each job folder.

Inputs are job folders (a ``--out`` of ``box2mask convert``: its
``.box2mask/job.json`` and per-frame parts are read, not its
``annotations.json``) or plain COCO JSON files. The result has:

- images in the order of the full dataset's sequences (saved in each job's
  ``job.json``; sequences only plain COCO inputs have come after, in input
  order), so shards ``1/N .. N/N`` merge into exactly the file an
  unsharded run writes), frames in frame order within a sequence;
- image and annotation ids ``1..`` given in that order, so they are unique
  and do not depend on which machine converted what;
- one category table: the first input's, then names the others add (by name).

Memory: one part at a time, plus the frame list of one sequence. Plain COCO
files are read whole (use job folders for very large inputs).

Refused (:class:`MergeError`, exit 2), all checked before anything is
written: jobs whose identities differ in anything but ``shard`` and
``sequences`` (the options that pick a share), unfinished jobs, shards
``K/N`` of which some ``K`` is missing (1/3 and 3/3 without 2/3), a frame
present in two inputs, a plain COCO file that names ids it does not hold (an annotation's
``image_id`` or ``category_id``), has two images with one id or records that are
not objects (:func:`box2mask.coco_checks.check_coco`), a plain COCO file that lacks
what a format needs (``sequence``, ``frame_index``, ``track_id``, RLE masks: a
foreign COCO file merges into COCO only), and outputs already at ``dest``. ``force=True``
accepts the first three, ``overwrite=True`` the last; never a frame in two
inputs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from box2mask.coco_checks import check_coco, id_key
from box2mask.errors import UsageError
from box2mask.ids import whole_id
from box2mask.job import JobFileError, JobFolder, diff_identity, format_diffs
from box2mask.job.derive import finalize
from box2mask.layout import FINISHED_FILE, JOB_FILE, STATE_DIR, sequence_dirs
from box2mask.split import Split, check_formats, make_split, merged_split
from box2mask.writers import WRITERS, Assembly, WriterContext
from box2mask.writers.coco import write_coco as write_coco_stream

#: identity keys that only choose which share of a dataset a job converts
SHARE_KEYS = ("shard", "sequences")


class MergeError(UsageError):
    """Inputs that cannot be merged (different jobs, a frame in two inputs, unfinished jobs)."""


@dataclass
class MergeSummary:
    """What :func:`merge` wrote."""

    dest: Path
    images: int
    annotations: int
    inputs: list[str]
    #: differences accepted under ``force`` (for the CLI to print)
    warnings: list[str] = field(default_factory=list)
    #: the files and folders written (a folder ``dest``: one or more per format)
    written: list[Path] = field(default_factory=list)


_Loader = Callable[[], dict[str, Any]]


class _Source:
    """One merge input: sequences in order, and each sequence's frames as loaders of part dicts."""

    label: str
    identity: dict[str, Any] | None
    sequences: list[str]
    categories: list[dict[str, Any]]

    def frames(self, sequence: str) -> list[tuple[int, _Loader]]:  # pragma: no cover - abstract
        raise NotImplementedError


class _JobSource(_Source):
    """A job folder, read through :class:`~box2mask.job.JobFolder` (parts with corrections)."""

    def __init__(self, out: Path) -> None:
        self.label = str(out)
        self.out = Path(out)
        self.folder = JobFolder(out)
        try:
            self.identity = self.folder.identity
        except JobFileError as exc:
            raise MergeError(str(exc)) from None
        self.categories = self.folder.categories
        self.finished = self.folder.finished
        self.pending = self.folder.pending
        #: the full dataset's sequence order (shards of one dataset share it)
        self.order = self.folder.order
        self.sequences = self.folder.sequences

    def frames(self, sequence: str) -> list[tuple[int, _Loader]]:
        return [(i, partial(self.folder.read_part, sequence, i))
                for i in self.folder.frame_indices(sequence)]  # fmt: skip


class _CocoSource(_Source):
    """A COCO JSON file, read whole; images grouped by ``sequence`` (``""`` if absent)."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        self.identity = None
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise MergeError(f"{path} is not a readable COCO JSON file: {exc}") from None
        try:  # ids the file does not hold, records that are not objects: one message
            check_coco(data, str(path))
        except UsageError as exc:
            raise MergeError(str(exc)) from None
        images, anns, cats = data["images"], data["annotations"], data["categories"]
        for n, c in enumerate(cats):
            if not isinstance(c.get("name"), str):
                raise MergeError(f"{path}: categories[{n}] has no name (a string)")
        self.categories = [
            {"id": c["id"], "name": c["name"], "supercategory": c.get("supercategory", "")}
            for c in cats
        ]
        names = {whole_id(c["id"]): c["name"] for c in cats}
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for a in anns:
            rec = {k: v for k, v in a.items() if k not in ("id", "image_id", "category_id")}
            by_image.setdefault(id_key(a["image_id"]), []).append(
                {"category": names[whole_id(a["category_id"])], **rec}
            )
        self._images, self._anns = images, anns
        self._seqs: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for pos, img in enumerate(images):
            seq = str(img.get("sequence", ""))
            # without frame numbers, keep the file's order within the group
            idx = int(img["frame_index"]) if "frame_index" in img else pos
            part = {
                "image": {k: v for k, v in img.items() if k != "id"},
                "annotations": by_image.get(id_key(img["id"]), []),
            }
            self._seqs.setdefault(seq, []).append((idx, part))
        self.sequences = list(self._seqs)

    def frames(self, sequence: str) -> list[tuple[int, _Loader]]:
        out = [(i, (lambda p=p: p)) for i, p in self._seqs.get(sequence, [])]
        out.sort(key=lambda t: t[0])
        return out

    def lacks_video_fields(self) -> str | None:
        """What this file lacks for the formats beyond COCO (tracks in sequences, RLE
        masks), as box2mask's own COCO output has them: the first image or annotation
        without it, or ``None``."""
        for n, img in enumerate(self._images):
            for key, kind in (("sequence", str), ("frame_index", int), ("width", int),
                              ("height", int), ("file_name", str)):  # fmt: skip
                value = img.get(key) if isinstance(img, dict) else None
                if not isinstance(value, kind) or isinstance(value, bool):
                    return f"images[{n}] has no {key} ({kind.__name__})"
        for n, ann in enumerate(self._anns):
            tid = ann.get("track_id")
            if not isinstance(tid, int) or isinstance(tid, bool):
                return f"annotations[{n}] has no track_id (an integer)"
            seg = ann.get("segmentation")
            if not (isinstance(seg, dict) and isinstance(seg.get("counts"), str)):
                return f"annotations[{n}] has no compressed-RLE segmentation"
            for key in ("area", "bbox", "score"):
                if key not in ann:
                    return f"annotations[{n}] has no {key}"
        return None


def open_input(path: Path) -> _Source:
    """A job folder (has ``.box2mask/job.json``) or a COCO JSON file."""
    path = Path(path)
    if path.is_dir():
        if (path / STATE_DIR / JOB_FILE).is_file():
            return _JobSource(path)
        raise MergeError(
            f"{path} is not a box2mask job folder (no {STATE_DIR}/{JOB_FILE}); "
            "pass the --out folder of a convert run, or a COCO JSON file"
        )
    if path.is_file():
        return _CocoSource(path)
    raise MergeError(f"{path}: no such file or folder")


def unify_categories(tables: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The first table as is, then each name it lacks (by name) with the next free id.

    >>> unify_categories([[{"id": 1, "name": "car", "supercategory": "vehicle"}],
    ...                   [{"id": 1, "name": "ship", "supercategory": "vessel"},
    ...                    {"id": 2, "name": "car", "supercategory": "vehicle"}]])[1]
    {'id': 2, 'name': 'ship', 'supercategory': 'vessel'}
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for k, table in enumerate(tables):
        for c in table:
            if c["name"] in seen:
                continue
            cid = c["id"] if k == 0 else max((o["id"] for o in out), default=0) + 1
            out.append({"id": cid, "name": c["name"], "supercategory": c.get("supercategory", "")})
            seen.add(c["name"])
    return out


def merge(
    inputs: Sequence[Path | str],
    dest: Path | str,
    force: bool = False,
    formats: Sequence[str] | None = None,
    overwrite: bool = False,
    split: str | None = None,
    split_by: str = "sequence",
    seed: int = 0,
    progress: Callable[[int, int, int], None] | None = None,
) -> MergeSummary:
    """Merge job folders and/or COCO files into ``dest`` (each file written atomically).

    Every check is made before anything is written: a refused merge writes nothing.

    Args:
        inputs: job folders (``--out`` of ``convert``) and/or COCO JSON files.
        dest: a ``.json`` file (one COCO JSON, when ``formats`` is ``None`` or
            ``["coco"]``), or a folder that receives each format.
        force: merge jobs that differ, are unfinished or miss shards (``--force``).
        formats: ``--format`` names (``None``: COCO; with a folder ``dest``,
            the formats of the first job).
        overwrite: replace outputs already at ``dest`` (``--overwrite``).
        split, split_by, seed: ``--split``, ``--split-by``, ``--seed``: split the merged
            sequences (or tracks) afresh (:mod:`box2mask.split`); without ``split``, a
            folder ``dest`` gets the split the jobs were converted with, each sequence in
            the split its job gave it.
        progress: ``progress(frames read, frames to read, objects read)`` as the inputs'
            frames are read (once per format assembled from them).

    Raises:
        MergeError: see the module docstring.
    """
    if not inputs:
        raise MergeError("nothing to merge: give one or more job folders or COCO files")
    sources = [open_input(Path(p)) for p in inputs]
    warnings: list[str] = []
    jobs = [s for s in sources if s.identity is not None]
    problems: list[str] = []
    for s in jobs[1:]:
        diffs = [d for d in diff_identity(jobs[0].identity, s.identity) if d[0] not in SHARE_KEYS]  # type: ignore[arg-type]
        if diffs:
            problems.append(
                f"{s.label} differs from {jobs[0].label}: "
                + format_diffs(diffs, a="first has", b="this has")
            )
    for s in jobs:
        if getattr(s, "pending", False):
            raise MergeError(
                f"{s.label}: a change to the job (qa apply, an import) was interrupted; run it "
                "again, or the job's convert command, to complete it before merging"
            )
    for s in jobs:
        if not getattr(s, "finished", True):
            problems.append(
                f"{s.label} is not finished (no {STATE_DIR}/{FINISHED_FILE}): "
                "run its convert command again to complete it"
            )
    problems += _missing_shards(jobs)
    if problems and not force:
        raise MergeError(
            "refusing to merge: " + "; ".join(problems) + ". Use --force to merge anyway."
        )
    warnings.extend(problems)
    dest = Path(dest)
    single = dest.suffix.lower() == ".json" and list(formats or ["coco"]) == ["coco"]
    if not single and formats is None:
        formats = jobs[0].identity.get("formats", ["coco"]) if jobs else ["coco"]  # type: ignore[union-attr]
    if split is None and (split_by != "sequence" or seed != 0):
        raise MergeError(
            f"{'--split-by' if split_by != 'sequence' else '--seed'} is an option of --split"
        )
    if split is not None and single:
        raise MergeError(f"--split writes one file per split: give a folder --out, not {dest.name}")
    _check_inputs(sources, formats or ["coco"], single)
    the_split = None if single else _split(sources, split, split_by, seed)
    if the_split is not None:
        check_formats(the_split, {f: WRITERS.get(f).split_units for f in formats or ["coco"]})
        if the_split.by == "track":
            for src in sources:
                lack = src.lacks_video_fields() if isinstance(src, _CocoSource) else None
                if lack is not None:
                    raise MergeError(
                        f"--split-by track: {src.label}: {lack}; a split by track needs "
                        "box2mask's track ids"
                    )
    _check_frames_once(sources)
    _check_dest(sources, dest, formats or ["coco"], single, overwrite, the_split)
    counter = _Counter(sources, progress)
    if single:
        summary = write_coco(sources, dest, counter)
        summary.written = [dest]
    else:
        summary = _write_formats(sources, dest, formats or ["coco"], counter, the_split)
    summary.warnings = warnings
    return summary


def _missing_shards(jobs: Sequence[_Source]) -> list[str]:
    """``shard 2/3 is missing`` for each ``K`` of ``K/N`` that no job converted, when some
    job is a shard of ``N``."""
    have: dict[int, set[int]] = {}
    for job in jobs:
        shard = (job.identity or {}).get("shard")
        if shard:
            k, n = (int(v) for v in str(shard).split("/"))
            have.setdefault(n, set()).add(k)
    out = []
    for n, ks in sorted(have.items()):
        missing = [k for k in range(1, n + 1) if k not in ks]
        if missing:
            given = ", ".join(f"{k}/{n}" for k in sorted(ks))
            out.append(
                f"shard{'s' if len(missing) > 1 else ''} "
                f"{', '.join(f'{k}/{n}' for k in missing)} "
                f"{'are' if len(missing) > 1 else 'is'} missing (given: {given}): the merge "
                "would lack their sequences"
            )
    return out


def _check_inputs(sources: list[_Source], formats: Sequence[str], single: bool) -> None:
    """Each format known, and each input able to give it (before anything is written)."""
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise MergeError(
            f"--format {unknown[0]!r} is not a format; known: {', '.join(WRITERS.names())}"
        )
    jobs = [s for s in sources if isinstance(s, _JobSource)]
    plain = [s for s in sources if isinstance(s, _CocoSource)]
    if not single:  # two sequences whose folders would be one (from COCO inputs): exit 2
        sequence_dirs(_assembly(sources).sequences)
    for name in formats:
        writer = WRITERS.get(name)
        if writer.needs_parts:
            for job in jobs:
                kept = [f for f in (job.identity or {}).get("formats", ["coco"]) if f in WRITERS]
                if not any(WRITERS.get(f).needs_parts for f in kept):
                    raise MergeError(
                        f"--format {name}: {job.label} kept no frame parts (converted with "
                        f"--format {','.join(kept)}); convert it again with coco among its formats"
                    )
        if writer.per_frame:
            if plain:
                raise MergeError(
                    f"--format {name}: {plain[0].label} is a COCO file; {name} is written per "
                    "frame and can only be merged from job folders"
                )
            for job in jobs:
                if name not in (job.identity or {}).get("formats", []):
                    raise MergeError(f"--format {name}: {job.label} was not converted with it")
        elif name != "coco":
            for src in plain:
                lack = src.lacks_video_fields()
                if lack is not None:
                    raise MergeError(
                        f"--format {name}: {src.label}: {lack}; a COCO file merges into "
                        f"{name} only when it has box2mask's fields (sequence, frame_index, "
                        "track_id, RLE masks); merge it with --format coco"
                    )


def _check_frames_once(sources: list[_Source]) -> None:
    """A frame in two inputs is refused before anything is written."""
    for seq in _assembly(sources).sequences:  # in output order: the first clash is named
        owner: dict[int, str] = {}
        for s in sources:
            if seq not in s.sequences:
                continue
            for i, _ in sorted(s.frames(seq), key=lambda t: t[0]):
                if i in owner and owner[i] != s.label:
                    raise MergeError(
                        f"sequence {seq!r} frame {i} is in both {owner[i]} and {s.label}"
                    )
                owner.setdefault(i, s.label)


def _split(sources: list[_Source], split: str | None, split_by: str, seed: int) -> Split | None:
    """The merged output's split: ``--split`` over the merged sequences, else the jobs' own."""
    if split is not None:
        return make_split(split, split_by, seed, _assembly(sources).sequences)
    jobs = [s for s in sources if isinstance(s, _JobSource)]
    return merged_split([j.folder.saved.get("split") for j in jobs])


def _check_dest(
    sources: list[_Source],
    dest: Path,
    formats: Sequence[str],
    single: bool,
    overwrite: bool,
    split: Split | None = None,
) -> None:
    """Outputs already at ``dest`` are replaced only with ``overwrite``; a file where the
    folder ``dest`` must be is refused."""
    if single:
        found = [dest] if dest.exists() else []
    else:
        if dest.exists() and not dest.is_dir():
            raise MergeError(f"--out {dest}: is a file; give a folder (or a .json file for COCO)")
        jobs = [s for s in sources if isinstance(s, _JobSource)]
        root = Path(jobs[0].identity.get("root", ".")) if jobs else Path(".")  # type: ignore[union-attr]
        sequences = list(dict.fromkeys(seq for s in sources for seq in s.sequences))
        ctx = WriterContext(dest, root, [], sequences, split=split)
        found = [
            dest / rel
            for name in formats
            for rel in WRITERS.get(name)(ctx).outputs()
            if (dest / rel).exists() or (dest / rel).is_symlink()
        ]
    if found and not overwrite:
        shown = ", ".join(str(p) for p in found[:3]) + (" ..." if len(found) > 3 else "")
        raise MergeError(
            f"--out {dest}: {shown} already exist{'s' if len(found) == 1 else ''}; "
            "use --overwrite to replace, or another --out"
        )


class _Counter:
    """Counts the frames and objects the formats read from the inputs (and tells ``progress``);
    its first pass's counts are the merged output's images and annotations."""

    def __init__(
        self, sources: list[_Source], progress: Callable[[int, int, int], None] | None
    ) -> None:
        self.frames = sum(len(s.frames(q)) for s in sources for q in s.sequences)
        self.passes = 1
        self.progress = progress
        self.done = self.objects = 0
        self.first: tuple[int, int] | None = None

    def parts(self, sources: list[_Source]) -> Iterator[dict[str, Any]]:
        n_img = n_ann = 0
        for part in _ordered_frames(sources):
            n_img += 1
            n_ann += len(part["annotations"])
            self.done += 1
            self.objects += len(part["annotations"])
            if self.progress is not None:
                self.progress(self.done, self.frames * self.passes, self.objects)
            yield part
        if self.first is None:
            self.first = (n_img, n_ann)


def _write_formats(
    sources: list[_Source], dest: Path, formats: Sequence[str], counter: _Counter,
    split: Split | None = None,
) -> MergeSummary:
    """Each format into the folder ``dest``: assembled ones from every input's parts at
    once, per-frame ones copied from each job folder (checked by :func:`_check_inputs`)."""
    jobs = [s for s in sources if isinstance(s, _JobSource)]
    assembly = _assembly(sources, counter)
    root = Path(jobs[0].identity.get("root", ".")) if jobs else Path(".")  # type: ignore[union-attr]
    ctx = WriterContext(dest, root, assembly.categories, assembly.sequences, split=split)
    dest.mkdir(parents=True, exist_ok=True)
    writers = [WRITERS.get(name)(ctx) for name in formats]
    counter.passes = max(1, sum(1 for w in writers if w.needs_parts))
    for writer in writers:
        if writer.per_frame:
            for job in jobs:
                own = WRITERS.get(writer.name)(WriterContext(job.out, root, [], job.sequences))
                _copy_outputs(own, job.out, dest)
    written = finalize(writers, assembly, dest)
    written += [dest / o for w in writers for o in w.outputs() if (dest / o).exists()]
    if counter.first is None:  # no format read the parts: count them
        for _ in counter.parts(sources):
            pass
    n_img, n_ann = counter.first  # type: ignore[misc]
    return MergeSummary(
        dest, n_img, n_ann, [s.label for s in sources], written=sorted(set(written))
    )


def _copy_outputs(writer: object, src: Path, dest: Path) -> None:
    """Copy a job's per-frame outputs (``writer.outputs()``) into ``dest``."""
    for rel in writer.outputs():  # type: ignore[attr-defined]
        a, b = src / rel, dest / rel
        if a.is_dir():
            shutil.copytree(a, b, symlinks=True, dirs_exist_ok=True)  # links stay links
        elif a.is_file():
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(a, b)


def _assembly(sources: list[_Source], counter: _Counter | None = None) -> Assembly:
    """The inputs' frames as one :class:`Assembly` (dataset order, unified categories)."""
    categories = unify_categories([s.categories for s in sources])
    present = {seq for s in sources for seq in s.sequences}
    order: dict[str, None] = {}
    for s in sources:
        for seq in [*getattr(s, "order", []), *s.sequences]:
            if seq in present:
                order.setdefault(seq, None)
    parts = (lambda: counter.parts(sources)) if counter else (lambda: _ordered_frames(sources))
    return Assembly(categories, parts, list(order))


def _ordered_frames(sources: list[_Source]) -> Iterator[dict[str, Any]]:
    # the full dataset order saved by the jobs first, then what other inputs add, in input order
    order: dict[str, None] = {}
    for s in sources:
        for seq in getattr(s, "order", []):
            order.setdefault(seq, None)
    for s in sources:
        for seq in s.sequences:
            order.setdefault(seq, None)
    present = {seq for s in sources for seq in s.sequences}
    for seq in order:
        if seq not in present:
            continue
        entries: list[tuple[int, int, _Loader]] = []
        for k, s in enumerate(sources):
            if seq in s.sequences:
                entries.extend((i, k, load) for i, load in s.frames(seq))
        entries.sort(key=lambda t: (t[0], t[1]))
        for (i, k, _), (j, m, _) in zip(entries, entries[1:], strict=False):
            if i == j:
                raise MergeError(
                    f"sequence {seq!r} frame {i} is in both {sources[k].label} and {sources[m].label}"
                )
        for _, _, load in entries:
            yield load()


def write_coco(sources: list[_Source], dest: Path, counter: _Counter | None = None) -> MergeSummary:
    """Stream the sources' frames into ``dest`` (see :func:`box2mask.writers.coco.write_coco`)."""
    categories = unify_categories([s.categories for s in sources])
    frames = counter.parts(sources) if counter else _ordered_frames(sources)
    n_img, n_ann = write_coco_stream(frames, categories, dest)
    return MergeSummary(dest, n_img, n_ann, [s.label for s in sources])
