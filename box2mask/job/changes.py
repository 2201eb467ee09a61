"""Apply a set of per-object changes to a job, atomically and idempotently.

:func:`apply_changes` is the one way people's changes enter a job: ``box2mask
qa apply`` (a review page's decisions) and the annotation tools' imports call
it with :class:`~box2mask.job.corrections.ObjectChange` s. It

1. takes the job's lock (a running ``convert`` of the job refuses it);
2. finishes a change a kill interrupted (the journal, below);
3. checks every change against the job and works out each frame's new
   corrections (:func:`~box2mask.job.corrections.apply_to_frame`); one change
   that cannot be made stops everything, naming it, before anything is written;
4. writes the journal ``.box2mask/corrections.pending.json`` (each touched
   frame's corrections before and after), then each frame's corrections file,
   then the frames' per-frame files of every per-frame format (encoded from the
   corrected part by the format's own writer; a file the frame no longer has is
   deleted), then, when the job is finished, every format assembled from the
   parts (:func:`~box2mask.job.derive.finalize`, as ``convert`` does); and
   deletes the journal last.

A kill at any moment leaves the journal, and whoever takes the lock next (the
next change, or a ``convert`` of the job) replays it before anything else, so
the job ends with all of the changes or none. Changes the job already holds
are counted and write nothing: applying the same set twice changes no byte.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.io import atomic_write_json
from box2mask.job.corrections import ObjectChange, Outcome, apply_to_frame, overlay, read_entry
from box2mask.job.derive import finalize, frame_files
from box2mask.job.folder import JobFolder
from box2mask.job.state import OutputsManifest, write_frame_files
from box2mask.layout import PENDING_FILE
from box2mask.safe_paths import resolve_inside


@dataclass
class ChangeSummary:
    """What :func:`apply_changes` did.

    Attributes:
        out: the job folder.
        outcomes: per change (duplicates left out), what it did (``applied``,
            ``unchanged``: the job held it already, ``absent``: a removal or review of
            an object the frame does not hold).
        duplicates: changes that repeat an earlier one of the set (applied once).
        frames: frames whose corrections changed.
        files: the files written (corrections, per-frame files, assembled formats).
        recovered: frames of an interrupted earlier change that were finished first.
        assembled: the formats assembled from the parts were written again (``False``
            for a job whose ``convert`` has not finished: they are written when it does).
    """

    out: Path
    outcomes: list[Outcome] = field(default_factory=list)
    duplicates: int = 0
    frames: int = 0
    files: list[Path] = field(default_factory=list)
    recovered: int = 0
    assembled: bool = False

    def counts(self) -> Counter[tuple[str, str]]:
        """``{(action, result): n}``."""
        return Counter((o.change.action, o.result) for o in self.outcomes)


def apply_changes(
    out: Path | str, changes: Iterable[ObjectChange], doing: str = "apply the changes"
) -> ChangeSummary:
    """Apply ``changes`` to the job at ``out`` (see the module docstring).

    Args:
        out: a ``box2mask convert`` job folder.
        changes: the changes, at most one per object (a repeat is applied once).
        doing: what the caller does, for the message when the job is busy.

    Returns:
        A :class:`ChangeSummary`.

    Raises:
        UsageError: not a job folder, the job is running, or a change cannot be made
            (an object or frame the job does not hold, a conflict, an unknown
            category, a mask of another size, two different changes for one object);
            nothing was written.
    """
    folder = JobFolder(out)
    folder.saved  # noqa: B018  (not a job folder: one message, before the lock)
    with folder.locked(doing):
        summary = ChangeSummary(folder.out)
        summary.recovered = finish_pending(folder, summary.files)
        groups, summary.duplicates = _by_frame(changes)
        plan: list[dict[str, Any]] = []
        order = {s: k for k, s in enumerate(folder.sequences)}
        for (seq, fi), frame_changes in sorted(
            groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1])
        ):
            if not folder.part_path(seq, fi).is_file():
                raise UsageError(
                    f"{frame_changes[0].label}: the job {folder.out} has no frame {fi} of "
                    f"sequence {seq!r} (a frame it did not convert, or changes for another job)"
                )
            part = folder.model_part(seq, fi)
            before = read_entry(folder.layer_path(seq, fi))
            after, outcomes = apply_to_frame(part, before, frame_changes, folder.categories)
            summary.outcomes += outcomes
            if any(o.result == "applied" for o in outcomes):
                plan.append({"sequence": seq, "frame_index": fi, "before": before, "after": after})
        if plan:
            atomic_write_json(folder.state / PENDING_FILE, {"frames": plan})
            summary.files += _commit(folder, plan)
            summary.frames = len(plan)
            summary.assembled = folder.finished
    return summary


def finish_pending(folder: JobFolder, files: list[Path] | None = None) -> int:
    """Replay the journal a killed :func:`apply_changes` left, if any (the caller holds
    the lock); returns the frames it held."""
    path = folder.state / PENDING_FILE
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))["frames"]
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path}: the journal of an interrupted change is unreadable ({exc}); delete it and "
            "apply the changes again"
        ) from None
    written = _commit(folder, plan)
    if files is not None:
        files += written
    return len(plan)


def _commit(folder: JobFolder, plan: list[dict[str, Any]]) -> list[Path]:
    """Write the planned frames' corrections and derived files, then delete the journal."""
    writers = folder.writers()
    manifest = OutputsManifest(folder.state)
    written: list[Path] = []
    try:
        for item in plan:
            seq, fi = item["sequence"], int(item["frame_index"])
            part = folder.model_part(seq, fi)
            old = frame_files(overlay(part, item["before"]), writers, folder.root)
            layer = folder.layer_path(seq, fi)
            atomic_write_json(layer, item["after"])
            written.append(layer)
            new = frame_files(overlay(part, item["after"]), writers, folder.root)
            write_frame_files(folder.out, new, manifest, listed={f.path for f in old})
            written += [folder.out / f.path for f in new]
            for rel in {f.path for f in old} - {f.path for f in new}:
                with contextlib.suppress(ValueError, FileNotFoundError):
                    resolve_inside(folder.out, rel).unlink()
    finally:
        manifest.close()
    if folder.finished:  # an unfinished job's formats are assembled when its convert ends
        written += finalize(writers, folder.assembly(), folder.out)
    (folder.state / PENDING_FILE).unlink(missing_ok=True)
    return written


def _by_frame(
    changes: Iterable[ObjectChange],
) -> tuple[dict[tuple[str, int], list[ObjectChange]], int]:
    """The changes grouped by frame, a repeat of one object's change dropped (and counted).

    Raises:
        UsageError: two different changes for one object, naming both.
    """
    groups: dict[tuple[str, int], dict[int, ObjectChange]] = {}
    repeated = 0
    for ch in changes:
        if not isinstance(ch, ObjectChange):
            raise TypeError(f"apply_changes takes ObjectChange items, got {type(ch).__name__}")
        frame = groups.setdefault(ch.frame_key, {})
        seen = frame.get(ch.track_id)
        if seen is None:
            frame[ch.track_id] = ch
        elif _same(seen, ch):
            repeated += 1
        else:
            raise UsageError(
                f"{ch.label} ({ch.action}) and {seen.label} ({seen.action}) change the same "
                f"object (sequence {ch.sequence!r} frame {ch.frame_index} track {ch.track_id}) "
                "differently; keep one of them"
            )
    return {k: list(v.values()) for k, v in groups.items()}, repeated


def _same(a: ObjectChange, b: ObjectChange) -> bool:
    keys = ("action", "annotation", "review", "review_tool")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


__all__ = ["PENDING_FILE", "ChangeSummary", "apply_changes", "finish_pending"]
