"""``box2mask import``: a reviewer's file from CVAT or Label Studio, matched against the job.

:func:`read_review` reads the tool's file and sorts its objects against the
job (:func:`box2mask.exchange.diff.diff`); nothing is written. Where the result
goes:

- :func:`write_corrected`: a corrected COCO file at ``--out`` (the job's COCO
  with the changes applied), and the import's report beside it;
- into the job itself, as its corrections layer (changed and added masks, removed
  objects, keyed by ``(sequence, frame, track id)``), from which every format is
  re-derived: that writes the job folder, so it goes through the module that
  owns it (issue 25) and is wired when that lands. :func:`apply` is the pure
  step it will call.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from box2mask.errors import UsageError
from box2mask.exchange import cvat, labelstudio
from box2mask.exchange.diff import ImportResult, apply, diff
from box2mask.exchange.model import TOOLS
from box2mask.exchange.plan import MANIFEST, identity_sha, read_manifest
from box2mask.exchange.source import JobData, read_job
from box2mask.io import atomic_open
from box2mask.safe_paths import check_out_path

__all__ = ["apply", "read_review", "write_corrected"]


def read_review(
    tool: str,
    file: Path | str,
    job_dir: Path | str,
    *,
    manifest: Path | str | None = None,
    now: dt.datetime | None = None,
) -> tuple[JobData, ImportResult]:
    """Read ``file`` (a tool's export) and sort its objects against the job at ``job_dir``.

    Args:
        tool: ``cvat`` or ``labelstudio``.
        file: CVAT: its export of a task or job (XML or zip); Label Studio: its JSON export
            of the project.
        job_dir: the job the objects were exported from.
        manifest: CVAT: the export's ``box2mask-export.json`` (default: beside ``file`` or
            in a folder above it). Label Studio's tasks carry what it holds.
        now: the import's time (default: now, UTC).

    Raises:
        UsageError: an unreadable file, a missing manifest, a file from another job.
    """
    if tool not in TOOLS:
        raise UsageError(f"--from must be one of {', '.join(TOOLS)}, got {tool!r}")
    file = Path(file)
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    job = read_job(job_dir)
    sha = identity_sha(job)
    if tool == "cvat":
        mpath = Path(manifest) if manifest is not None else _find_manifest(file)
        man = read_manifest(mpath)
        if man.tool != "cvat":
            raise UsageError(f"--manifest {mpath}: the manifest of a {man.tool} export, not cvat")
        if man.identity_sha256 != sha:
            raise UsageError(
                f"--manifest {mpath}: exported from another job (its identity differs from "
                f"--job {job_dir}'s); import a file into the job it was exported from"
            )
        hw = {k: (int(img["height"]), int(img["width"])) for k, img in job.frames.items()}
        tf = cvat.read_export(file, man, hw)
    else:
        tf = labelstudio.read_export(file, sha)
    when = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return job, diff(job, tf, when)


def _find_manifest(file: Path) -> Path:
    for folder in file.resolve().parents:
        if (folder / MANIFEST).is_file():
            return folder / MANIFEST
    raise UsageError(
        f"{file}: no {MANIFEST} in its folder or any above it; pass --manifest, the file "
        "`box2mask export --to cvat` wrote into its --out"
    )


def write_corrected(job: JobData, res: ImportResult, out: Path | str) -> list[Path]:
    """The job's COCO with ``res`` applied, at ``out`` (a ``.json`` file), and the report at
    ``out`` with ``.import.json`` for ``.json``. Returns both paths.

    Raises:
        UsageError: ``out`` is the job's own ``annotations.json``, a folder, or not a .json.
    """
    out = Path(out)
    check_out_path(out)
    if out.suffix.lower() != ".json" or out.is_dir():
        raise UsageError(f"--out {out}: give a .json file for the corrected COCO")
    if out.exists() and out.resolve() == (job.job_dir / "annotations.json").resolve():
        raise UsageError(
            f"--out {out}: that is the job's own COCO; the job's files are rewritten through "
            "its corrections layer, not here"
        )
    report = out.with_name(out.stem + ".import.json")
    coco = apply(job.coco, res)
    with atomic_open(out) as fh:
        json.dump(coco, fh)
    with atomic_open(report) as fh:
        json.dump(res.to_dict(), fh, indent=1)
        fh.write("\n")
    return [out, report]
