"""A job's state folder ``<out>/.box2mask/``: identity, ledger, manifest, lock.

- ``job.json``: everything that determines the output (DESIGN §8), written
  when the job starts, plus (not compared) the category table and the full
  dataset's sequence order, which fixes the order ids are given in. Running
  again with the same identity resumes; with a different one it is refused
  (:class:`JobMismatch` names each difference and both values). It is read in
  one place, :func:`read_job_file`.
- ``ledger.jsonl``: one line per finished frame, appended (one ``write``
  call) only after that frame's files are atomically in place (each fsynced).
  The ledger itself is fsynced at most every :data:`LEDGER_SYNC_SECONDS` and
  on close: a kill (even SIGKILL) loses no written line, and a power cut can
  lose only the last lines, whose frames are then converted again to the
  same bytes; their files were durable before their lines were written. A
  torn last line (killed mid-write) is ignored and cut off on the next start.
- ``finished.json``: written when a run has gone through every frame of the
  job (frames done and skipped): the run's summary record
  (:mod:`box2mask.summary`, the ``--summary-json`` content); ``box2mask merge``
  refuses jobs without it.
- the manifest of what the job writes outside its state folder, read by
  ``--overwrite``: ``job.json``'s ``owned`` (the files and folders of the
  formats assembled at the end, listed when the job starts) and
  ``outputs.jsonl`` (each frame's own files, appended before they are
  written, so a killed job leaves them listed). ``--overwrite`` deletes
  those and the state folder, nothing else, and only after checking that
  every one of them is a plain relative path inside ``--out`` (no ``..``, no
  absolute path, no symbolic link out of it).
- ``sequence_dirs`` in ``job.json``: the sequences whose folder name is not
  the name itself (:func:`box2mask.layout.sequence_dir`); a job whose folders
  were named otherwise (an earlier box2mask) is not resumed.
- ``lock``: held (a kernel ``flock``, :func:`hold_lock`) by whoever writes the
  job: a running ``convert`` (:class:`Job`) or a change to it
  (:meth:`box2mask.job.folder.JobFolder.locked`).

The parts, the corrections layer and the formats derived from them are in the
other modules of :mod:`box2mask.job`. See docs/jobs.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from box2mask.errors import Box2MaskError, JobMismatch, UsageError
from box2mask.io import atomic_write_bytes, atomic_write_json
from box2mask.job.corrections import count_layer, layer_frames
from box2mask.job.derive import with_corrections
from box2mask.layout import (
    CORRECTIONS_DIR,
    FINISHED_FILE,
    JOB_FILE,
    LEDGER_FILE,
    LOCK_FILE,
    OUTPUTS_FILE,
    PARTS_DIR,
    STATE_DIR,
    part_path,
)
from box2mask.safe_paths import check_relpath, resolve_inside
from box2mask.writers.base import EncodedFrame, FrameFile, Writer

log = logging.getLogger(__name__)

#: errno values that mean "no room left": the job stops cleanly instead of skipping frames
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

#: the ledger is fsynced at most this often (and on close): one fsync per frame cost
#: dense weight-free jobs about a third of their time, for no safety a kill needs
LEDGER_SYNC_SECONDS = 0.5


class JobInterrupted(Box2MaskError):
    """Ctrl-C (SIGINT) or SIGTERM: the frames in flight were finished and recorded."""

    exit_code = 130


class JobLocked(Box2MaskError):
    """Another process holds the job (two runs on one ``--out`` at once); exit 1."""


class JobStopped(Box2MaskError):
    """The job could not go on (disk full, a worker died); finished frames stay recorded; exit 1."""


class JobFileError(UsageError):
    """A job's ``job.json`` is missing or cannot be read (exit 2).

    Attributes:
        path: the file.
        reason: what is wrong with it (``no such file``, the JSON error...).
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_job_file(out: Path, missing_ok: bool = False) -> dict[str, Any] | None:
    """A job's ``job.json``, the one place it is read: ``{"identity": {...}, ...}``.

    Args:
        out: the job folder (``--out``).
        missing_ok: return ``None`` when the job has no ``job.json``.

    Raises:
        JobFileError: it is missing (unless ``missing_ok``), unreadable, not JSON,
            or not an object whose ``identity`` is an object.
    """
    path = Path(out) / STATE_DIR / JOB_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise JobFileError(path, "no such file (not a box2mask job folder)") from None
    except (OSError, ValueError) as exc:
        raise JobFileError(path, f"unreadable ({exc})") from None
    try:
        saved = json.loads(text)
    except ValueError as exc:
        raise JobFileError(path, f"unreadable ({exc})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("identity", {}), dict):
        raise JobFileError(path, "unreadable (not a box2mask job file: no identity object)")
    return saved


def hold_lock(state: Path) -> int | None:
    """Take ``<state>/lock`` (an exclusive, non-blocking ``flock``): the one lock of a job.

    The kernel drops the lock when its holder dies, SIGKILL included, so a killed
    run never leaves the job locked.

    Returns:
        The lock's file descriptor (close it to release the lock), or ``None`` when
        another process holds it.
    """
    Path(state).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(state) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class WriteFailed(Exception):
    """An output file could not be written (carries the ``OSError``); stops the job."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class OutputsManifest:
    """Appends a frame's own output files to ``outputs.jsonl`` (what ``--overwrite`` deletes).

    Call :meth:`note` *before* writing the files, so that ``--overwrite`` finds them
    even after a kill. One ``write`` per call (``O_APPEND``), not fsynced: a lost line
    after a power cut leaves a file ``--overwrite`` does not delete, never the reverse.
    """

    def __init__(self, state: Path) -> None:
        self.path = Path(state) / OUTPUTS_FILE
        self._fd: int | None = None

    def note(self, paths: list[str]) -> None:
        """List ``paths`` (posix, relative to ``--out``)."""
        if not paths:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        data = (json.dumps({"files": paths}) + "\n").encode("utf-8")
        if os.write(self._fd, data) != len(data):
            raise OSError(errno.ENOSPC, "short write to the output manifest", str(self.path))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_frame_files(
    out: Path, files: list[FrameFile], manifest: OutputsManifest, listed: Collection[str] = ()
) -> None:
    """A frame's files in place under ``out``: listed in the manifest (those outside the
    state folder, except those ``listed`` there already), then each written atomically
    (temp file, fsync, rename).

    Raises:
        Box2MaskError: a path that is not a plain relative one (a writer's bug must not
            write outside ``--out`` either); nothing written.
        OSError: a file could not be written.
    """
    for f in files:
        try:
            check_relpath(f.path)
        except ValueError:
            raise Box2MaskError(
                f"a writer gave the output path {f.path!r}, which is not a plain path inside "
                "--out; nothing written"
            ) from None
    manifest.note(
        [f.path for f in files if not f.path.startswith(STATE_DIR + "/") and f.path not in listed]
    )
    for f in files:
        atomic_write_bytes(Path(out) / f.path, f.data)


class Job:
    """The state folder of one conversion job.

    Args:
        out: the ``--out`` folder.
        identity: the output-determining options (JSON-serialisable).
    """

    def __init__(self, out: Path, identity: dict[str, Any]) -> None:
        self.out = Path(out)
        self.dir = self.out / STATE_DIR
        self.job_file = self.dir / JOB_FILE
        self.ledger_file = self.dir / LEDGER_FILE
        self.finished_file = self.dir / FINISHED_FILE
        self.outputs_file = self.dir / OUTPUTS_FILE
        self.identity = identity
        self._ledger_fd: int | None = None
        self._lock_fd: int | None = None
        self.manifest = OutputsManifest(self.dir)
        #: frames with corrections (:mod:`box2mask.job.corrections`), found by :meth:`open`
        self.corrected: set[tuple[str, int]] = set()
        #: ``(frames, objects)`` of corrections ``--overwrite`` dropped, for the summary
        self.dropped: tuple[int, int] = (0, 0)
        self._synced_at = 0.0

    def part_path(self, sequence: str, frame_index: int) -> Path:
        return part_path(self.dir, sequence, frame_index)

    def open(
        self, overwrite: bool = False, extra: dict[str, Any] | None = None
    ) -> set[tuple[str, int]]:
        """Start or resume the job.

        Args:
            overwrite: delete an existing job (and the outputs it wrote) and start afresh.
            extra: saved beside the identity, not compared (categories, sequence order).

        Returns:
            The ``(sequence, frame_index)`` keys already finished.

        Raises:
            JobMismatch: an existing job has a different identity.
        """
        self._lock()
        try:
            return self._open(overwrite, extra)
        except BaseException:
            self.close()
            raise

    def _open(self, overwrite: bool, extra: dict[str, Any] | None) -> set[tuple[str, int]]:
        if overwrite and self.dir.exists():
            self.dropped = count_layer(self.dir)
            self._remove_outputs()
            self._lock()
        try:
            saved = read_job_file(self.out, missing_ok=True)
        except JobFileError as exc:
            raise JobMismatch(f"{exc}; use --overwrite to start afresh") from None
        if saved is not None:
            diffs = diff_identity(saved.get("identity", {}), self.identity)
            if diffs and not any(True for _ in read_ledger_records(self.dir)):
                # the earlier run finished no frame (e.g. its checkpoint failed to
                # load): nothing to protect, so the new options take the job over
                log.info(
                    "%s: earlier job finished no frame; starting it with the new options", self.out
                )
                atomic_write_json(
                    self.job_file, {"identity": self.identity, **(extra or {})}, indent=2
                )
            elif diffs:
                raise JobMismatch(
                    f"{self.out} holds a job started with other options ({format_diffs(diffs)}). "
                    "Run with the same options to resume it, use another --out, or --overwrite to start afresh."
                )
            else:
                self._check_sequence_dirs(saved, extra or {})
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.job_file, {"identity": self.identity, **(extra or {})}, indent=2)
        self.repair_ledger()
        self.remove_stale_temp_files()
        self.corrected = {
            (seq, fi)
            for seq in (extra or {}).get("sequences", [])
            for fi in layer_frames(self.dir, seq)
        }
        done = self.read_ledger()
        # O_APPEND: each record is one write() at the end of the file, never interleaved
        self._ledger_fd = os.open(self.ledger_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        return done

    def saved(self) -> dict[str, Any]:
        """The job's ``job.json`` (:func:`read_job_file`)."""
        return read_job_file(self.out)  # type: ignore[return-value]

    def _check_sequence_dirs(self, saved: dict[str, Any], extra: dict[str, Any]) -> None:
        """Refuse to resume a job whose sequences' folders were named otherwise.

        ``sequence_dirs`` lists the sequences whose folder is not their name; a job
        without it (an earlier box2mask) used every name as it was.
        """
        if "sequence_dirs" not in extra:
            return
        before, now = saved.get("sequence_dirs", {}), extra["sequence_dirs"]
        for seq in sorted(set(saved.get("sequences", [])) & set(extra.get("sequences", []))):
            if before.get(seq, seq) != now.get(seq, seq):
                raise JobMismatch(
                    f"{self.out} holds a job whose files of sequence {seq!r} are in the folder "
                    f"{before.get(seq, seq)!r}; this box2mask names it {now.get(seq, seq)!r} "
                    "(names are made safe for the file system; docs/jobs.md). Use --overwrite to "
                    "start afresh, or another --out."
                )

    def with_corrections(self, enc: EncodedFrame, writers: list[Writer]) -> EncodedFrame:
        """A frame's files, converted again, when it has corrections: its per-frame files
        re-derived from its part with them (:func:`box2mask.job.derive.with_corrections`)."""
        return with_corrections(enc, self.dir, writers, Path(self.identity.get("root") or "."))

    def read_ledger(self) -> set[tuple[str, int]]:
        """Finished frames; a torn (unterminated or unparsable) line is ignored."""
        return {(rec["sequence"], int(rec["frame"])) for rec in read_ledger_records(self.dir)}

    def record(self, sequence: str, frame_index: int, **info: Any) -> None:
        """Append a finished frame to the ledger (call after its files are in place).

        ``info`` (worker id, object count) is stored on the line for the curious;
        only ``sequence`` and ``frame`` are read back.
        """
        if self._ledger_fd is None:
            raise RuntimeError("Job.open() first")
        line = json.dumps({"sequence": sequence, "frame": int(frame_index), **info}) + "\n"
        data = line.encode("utf-8")
        # one write() call: a kill leaves the line whole or torn at the end, never interleaved
        written = os.write(self._ledger_fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, "short write to the ledger", str(self.ledger_file))
        now = time.monotonic()
        if now - self._synced_at >= LEDGER_SYNC_SECONDS:
            os.fsync(self._ledger_fd)
            self._synced_at = now

    def close(self) -> None:
        self.manifest.close()
        if self._ledger_fd is not None:
            with contextlib.suppress(OSError):  # closing must not hide the error that stopped us
                os.fsync(self._ledger_fd)
            os.close(self._ledger_fd)
            self._ledger_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _lock(self) -> None:
        """Hold ``.box2mask/lock`` (:func:`hold_lock`) while the job runs: one process per job."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        fd = hold_lock(self.dir)
        if fd is None:
            raise JobLocked(
                f"another box2mask process is running the job in {self.out}; "
                "wait for it to end (or stop it) before running this one"
            )
        self._lock_fd = fd

    def remove_stale_temp_files(self) -> None:
        """Delete the temp files of atomic writes a killed run left (``.<name>.<random>.tmp``)."""
        roots = [self.dir / PARTS_DIR, self.dir / CORRECTIONS_DIR]
        with contextlib.suppress(Box2MaskError, AttributeError, TypeError):
            for rel in self.saved().get("outputs", []):
                with contextlib.suppress(ValueError):  # a path out of --out: not walked
                    roots.append(resolve_inside(self.out, rel))
        for top in [self.out, self.dir]:
            for p in top.glob(".*.tmp"):
                p.unlink(missing_ok=True)
        for root in roots:
            if root.is_dir() and not root.is_symlink():
                for dirpath, _dirs, files in os.walk(root):
                    for name in files:
                        if name.startswith(".") and name.endswith(".tmp"):
                            Path(dirpath, name).unlink(missing_ok=True)

    def repair_ledger(self) -> None:
        """Drop a torn last line so that appends start on a fresh line."""
        if not self.ledger_file.exists():
            return
        data = self.ledger_file.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.ledger_file, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())

    def mark_finished(self, record: dict[str, Any]) -> None:
        """Say that a run went through every frame (``box2mask merge`` reads that it is
        there): ``record`` is the run's summary (:func:`box2mask.summary.summary_record`,
        what ``--summary-json`` writes)."""
        atomic_write_json(self.finished_file, record, indent=1)

    def _remove_outputs(self) -> None:
        """``--overwrite``: remove what the previous job's manifest lists, then its state folder.

        Every listed path is checked first (:func:`box2mask.safe_paths.resolve_inside`:
        relative, plain components, its folder inside ``--out`` with links resolved); one
        that fails stops everything before anything is deleted. Listed folders (a format's
        own, as ``davis/``) go whole, links inside them as links; per-frame files one by
        one, then the folders they leave empty, up to ``--out``.

        Raises:
            UsageError: a listed path is not inside ``--out``; nothing was deleted.
        """
        try:
            saved = self.saved()
        except JobFileError:
            saved = {}
        # jobs before the per-frame manifest listed every top-level output as owned
        owned = saved.get("owned", saved.get("outputs", []))
        listed = [(rel, True) for rel in (owned if isinstance(owned, list) else [owned])]
        listed += [(rel, False) for rel in self._manifest_files()]
        targets = []
        for rel, whole in listed:
            try:
                targets.append((resolve_inside(self.out, rel), whole))
            except ValueError as exc:
                raise UsageError(
                    f"--overwrite: {self.job_file if whole else self.outputs_file} lists "
                    f"{rel!r} as an output of the job, which is not a path inside --out "
                    f"{self.out} ({exc}); nothing was deleted. Delete the old job by hand, "
                    "or use another --out."
                ) from None
        folders: set[Path] = set()
        for path, whole in targets:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif whole and path.is_dir():
                shutil.rmtree(path)  # removes links inside, never follows them
            if not whole:
                folders.add(path.parent)
        for folder in folders:  # a killed write's temp file of a listed file: ".<name>.*.tmp"
            names = {p.name for p, whole in targets if not whole and p.parent == folder}
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    n = entry.name
                    temp = n.startswith(".") and n.endswith(".tmp") and entry.is_file()
                    if temp and n[1:-4].rpartition(".")[0] in names:
                        os.unlink(entry.path)
        real_out = Path(os.path.realpath(self.out))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            while (
                folder.is_relative_to(self.out)
                and folder not in (self.out, self.dir)
                and Path(os.path.realpath(folder)) != real_out
            ):
                try:
                    folder.rmdir()  # only an empty folder: the user's files stay
                except OSError:
                    break
                folder = folder.parent
        shutil.rmtree(self.dir, ignore_errors=True)

    def _manifest_files(self) -> list[Any]:
        """The per-frame files listed in ``outputs.jsonl`` (a torn last line is skipped)."""
        files: list[Any] = []
        try:
            with open(self.outputs_file, encoding="utf-8", errors="surrogateescape") as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break
                    with contextlib.suppress(ValueError, AttributeError, TypeError):
                        files.extend(dict.fromkeys(json.loads(line).get("files", [])))
        except FileNotFoundError:
            pass
        return list(dict.fromkeys(files))


def read_ledger_records(state_dir: Path) -> list[dict[str, Any]]:
    """The ledger lines of a job state folder, as :meth:`Job.record` writes them: an
    object whose ``sequence`` is a string and ``frame`` an integer. A torn, unparsable
    or foreign line (``"frame": 4.5``, ``"5"``, ``true``; a list as sequence) is
    skipped, with one warning naming the ledger and the lines: its frame is redone."""
    path = Path(state_dir) / LEDGER_FILE
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    bad: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                break  # torn write from a kill: that frame is redone
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            frame = rec.get("frame") if isinstance(rec, dict) else None
            if (
                not isinstance(rec, dict)
                or not isinstance(rec.get("sequence"), str)
                or type(frame) is not int  # not bool, not float
            ):
                bad.append(n)
                continue
            out.append(rec)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        log.warning(
            "%s: %d line(s) are not ledger records (line(s) %s); ignored, their frames are redone",
            path,
            len(bad),
            shown,
        )
    return out


def diff_identity(
    a: dict[str, Any], b: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """The keys whose values differ between two identities, flattened (``adapter.part``)."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(diff_identity(va, vb, name + "."))
        elif va != vb:
            out.append((name, va, vb))
    return out


def format_diffs(diffs: list[tuple[str, Any, Any]], a: str = "job has", b: str = "now") -> str:
    """``model: job has 'ellipse', now 'box'; crop_size: ...``"""
    return "; ".join(f"{k}: {a} {va!r}, {b} {vb!r}" for k, va, vb in diffs)
