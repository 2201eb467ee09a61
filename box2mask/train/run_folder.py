"""A training run's folder (``--out`` of ``train`` and ``train lite``): its ``run.json``.

``run.json`` holds the run's identity (the options that determine the weights).
The same command resumes the run; other options are refused, naming what
differs, unless ``--overwrite`` deletes the run's own files first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from box2mask.errors import JobMismatch
from box2mask.io import atomic_write_json
from box2mask.job import diff_identity, format_diffs


def open_run_folder(
    out: Path, identity: dict[str, Any], files: Iterable[str], overwrite: bool, what: str
) -> bool:
    """Create the run folder ``out`` or check that it holds this run.

    Args:
        out: the run folder.
        identity: the run's identity, compared with the one ``run.json`` holds.
        files: the run's own files, deleted by ``overwrite`` (``run.json`` among them).
        overwrite: ``--overwrite``: start afresh.
        what: the kind of run, for messages (``"box2mask lite run"``).

    Returns:
        Whether the folder held this run already (a resume).

    Raises:
        JobMismatch: ``run.json`` is unreadable, or holds other options.
    """
    run_file = out / "run.json"
    if overwrite:
        for name in files:
            (out / name).unlink(missing_ok=True)
    if run_file.is_file():
        try:
            saved = json.loads(run_file.read_text(encoding="utf-8"))["identity"]
        except (json.JSONDecodeError, KeyError, OSError) as exc:
            raise JobMismatch(f"{run_file} is not a {what} ({exc}); use --overwrite") from None
        diffs = diff_identity(saved, identity)
        if diffs:
            raise JobMismatch(
                f"run folder {out} holds a run with other options ({format_diffs(diffs, 'run has')}); "
                "use the same options to resume, another --out, or --overwrite"
            )
        return True
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_file, {"identity": identity, "created": time.time()}, indent=2)
    return False
