"""The job folder: the one owner of everything ``box2mask convert`` keeps under ``--out``.

Everything that reads or writes a job folder goes through this package
(docs/jobs.md, "Who reads and writes the job folder"):

- :mod:`.state`: ``job.json`` (:func:`read_job_file`, the one reader), the lock
  (:func:`hold_lock`, the one ``flock``), the ledger, the output manifest and
  ``--overwrite`` (:class:`Job`: a ``convert`` run's handle);
- :mod:`.parts`: the part format, a frame's COCO record without ids (written by
  the executors' encoder, read here, never rewritten);
- :mod:`.corrections`: the corrections layer (people's changes, keyed by
  ``(sequence, frame, track id)``), beside the parts;
- :mod:`.folder`: :class:`JobFolder`, a job as its readers see it (its saved
  state; its frames, parts with corrections, one at a time);
- :mod:`.derive`: every format derived from the frames through the writer
  registry (:func:`finalize`, per-frame :func:`frame_files`);
- :mod:`.changes`: :func:`apply_changes`, the operation that puts a set of
  :class:`ObjectChange` s into a job, atomically and idempotently, and
  re-derives every format (``qa apply``, the annotation tools' imports);
- :mod:`.frames`: the job's frames as training data (``box2mask train --data``),
  the reviewed objects marked.

A package rather than one module because these are seven jobs of one folder;
its name stays ``box2mask.job``, so ``from box2mask.job import Job`` works as
before.
"""

from box2mask.job.changes import ChangeSummary, apply_changes
from box2mask.job.corrections import REVIEWED, ObjectChange
from box2mask.job.folder import JobFolder
from box2mask.job.state import (
    DISK_FULL,
    LEDGER_SYNC_SECONDS,
    Job,
    JobFileError,
    JobInterrupted,
    JobLocked,
    JobStopped,
    WriteFailed,
    diff_identity,
    format_diffs,
    hold_lock,
    read_job_file,
    read_ledger_records,
)

__all__ = [
    "DISK_FULL",
    "LEDGER_SYNC_SECONDS",
    "REVIEWED",
    "ChangeSummary",
    "Job",
    "JobFileError",
    "JobFolder",
    "JobInterrupted",
    "JobLocked",
    "JobStopped",
    "ObjectChange",
    "WriteFailed",
    "apply_changes",
    "diff_identity",
    "format_diffs",
    "hold_lock",
    "read_job_file",
    "read_ledger_records",
]
