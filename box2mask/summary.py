"""A conversion's summary as JSON: ``convert --summary-json FILE`` and ``.box2mask/finished.json``.

One record, versioned (:data:`SCHEMA_VERSION`), described by the JSON Schema
shipped beside this module (:func:`schema_path`, ``box2mask/schemas/``) and in
docs/jobs.md ("The run's summary as JSON"). A pipeline (Slurm, Airflow, a
notebook) reads what was done, what was skipped and why, the model and why
it was chosen, the timings and the outputs, without parsing the table the CLI
prints. Paths are as the run saw them; ``outputs`` are relative to ``out``.

The record is built from the run's :class:`box2mask.pipeline.Summary` (read
by attribute here, so this module does not import the entry point).
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import box2mask

#: the record's ``version``: raised when a field changes meaning or goes; added fields keep it
SCHEMA_VERSION = 1
#: the record's ``schema``: what the file is
SCHEMA_NAME = "box2mask/convert-summary"
#: statuses a record can have
STATUSES = ("finished", "interrupted", "stopped")
#: how many skip reports a record lists in full (all are counted)
REPORTS_KEPT = 200


def schema_path() -> Path:
    """The JSON Schema (draft 2020-12) of the record, shipped in the package."""
    return Path(__file__).with_name("schemas") / "convert-summary.schema.json"


def load_schema() -> dict[str, Any]:
    """The schema as a dict (for ``jsonschema.validate``)."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


def _counts(counter: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(dict(counter).items())}


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _report(kind: str, error: Any) -> dict[str, Any]:
    path = getattr(error, "path", None)
    text = str(getattr(error, "reason", None) or error)
    return {
        "kind": kind,
        "file": None if path is None else _text(str(path)),
        "line": getattr(error, "line", None),
        "reason": _text(text),
    }


def _text(value: str) -> str:
    """A name that may hold lone surrogates (undecodable bytes) as JSON-safe text."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def summary_record(
    summary: Any,
    options: Any,
    status: str = "finished",
    message: str | None = None,
    started: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The summary record of a run.

    Args:
        summary: the run's :class:`box2mask.pipeline.Summary` (so far, for a run
            that was interrupted or stopped).
        options: its :class:`box2mask.options.ConvertOptions`.
        status: ``finished``, ``interrupted`` (Ctrl-C / SIGTERM: exit 130 / 143) or
            ``stopped`` (a full disk, a lost device, a dead worker: exit 1).
        message: what stopped it (the error's text), else ``None``.
        started: when the run started (UTC); the record's ``finished`` is now.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    problems = summary.problems
    kinds = list(getattr(problems, "kinds", []))
    reports = [
        _report(kinds[k] if k < len(kinds) else "input", err)
        for k, err in enumerate(problems.reports[:REPORTS_KEPT])
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    by_class = {
        str(cat): _counts(sources) for cat, sources in sorted(summary.objects_by_class.items())
    }
    out = Path(summary.out)
    outputs = []
    for path in summary.outputs:
        try:
            rel = Path(path).relative_to(out).as_posix()
        except ValueError:
            rel = str(path)
        outputs.append(_text(rel))
    seconds = float(summary.seconds)
    return {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "status": status,
        "message": None if message is None else _text(message),
        "box2mask_version": box2mask.__version__,
        "started": None if started is None else started.isoformat(timespec="seconds"),
        "finished": now.isoformat(timespec="seconds"),
        "out": _text(str(out)),
        "dataset": {
            "name": options.dataset,
            "root": _text(str(summary.root)) if summary.root is not None else None,
            "options": dict(options.adapter_options),
            "sequences": int(summary.sequences),
        },
        "model": {
            "name": summary.model,
            "kind": summary.model_kind,
            "requested": options.model,
            "why": summary.model_note or f"--model {options.model} was given",
            "checkpoint": None if summary.checkpoint is None else _text(str(summary.checkpoint)),
            "device": summary.device,
            "precision": summary.precision if summary.model_kind == "prompt" else None,
        },
        "frames": {
            "total": int(summary.frames_total),
            "converted": int(summary.frames_done),
            "already_done": int(summary.frames_resumed),
            "skipped": int(problems.counts.get("frame", 0) + problems.counts.get("image", 0)),
        },
        "objects": {
            "total": int(summary.objects),
            "by_source": _counts(summary.objects_by_source),
            "by_class": {cat: sum(src.values()) for cat, src in by_class.items()},
            "by_class_and_source": by_class,
        },
        "skipped": {
            "total": len(problems),
            "by_kind": _counts(problems.counts),
            "reports": reports,
            "reports_listed": len(reports),
        },
        "split": summary.split,
        "timings": {
            "seconds": _finite(seconds),
            "objects_per_second": _finite(summary.objects / seconds) if seconds > 0 else None,
            "phases": {k: _finite(v) for k, v in summary.phases.items()},
            "stages": {k: _finite(v) for k, v in sorted(summary.profile.items())},
        },
        "formats": list(options.formats),
        "outputs": outputs,
        "notes": [_text(n) for n in summary.notes],
    }


def check_summary_path(path: Path) -> None:
    """``--summary-json`` can be written (a file, in a folder that can be made there), else a
    :class:`~box2mask.errors.UsageError` naming it; nothing is created."""
    from box2mask.errors import UsageError
    from box2mask.options import check_folder_option

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--summary-json {path}: is a folder; give a file name (summary.json)")
    check_folder_option(path.parent, "--summary-json")


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` at ``path`` (atomically; its folder made if needed)."""
    from box2mask.io import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


__all__ = [
    "REPORTS_KEPT",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "check_summary_path",
    "load_schema",
    "schema_path",
    "summary_record",
    "write_record",
]
