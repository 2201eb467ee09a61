"""``box2mask qa``: read an output, rank its objects, write ``qa.json`` and ``qa.csv``.

An output is a job folder (``<out>/annotations.json`` and
``<out>/.box2mask/job.json``) or a COCO file; a COCO file beside a job's
``.box2mask/`` folder takes that job's identity. The identity gives the crop
geometry (``crop_size``, ``context``, ``window``), the model (``fallback``)
and the dataset root the images' ``file_name`` is relative to (the image
signal); without it box2mask's defaults apply and the image signal needs
``image_root``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.io import atomic_open
from box2mask.layout import COCO_NAME, JOB_FILE, state_dir
from box2mask.qa.score import DEFAULT, FLAGS, Calibration, flags, logit, suspicion
from box2mask.qa.signals import CropGeometry, ObjectSignals, signals

QA_JSON = "qa.json"
QA_CSV = "qa.csv"

#: signal columns of qa.csv / qa.json, in order
SIGNAL_COLUMNS = (
    "score", "box_area", "aspect", "area", "area_ratio", "box_iou", "outside", "components",
    "fragment", "touches_crop", "at_image_edge", "nested", "box_overlap", "mask_overlap",
    "fallback", "image_disagreement", "prev_iou", "next_iou", "track_iou",
)  # fmt: skip


@dataclass
class Output:
    """A COCO output and, when it belongs to a job, the job's saved state."""

    coco_path: Path
    coco: dict[str, Any]
    job_dir: Path | None = None
    job: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self.job.get("identity", {}))


def load_output(path: Path | str) -> Output:
    """A job folder or a COCO file (see the module docstring)."""
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
    try:
        coco = json.loads(coco_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--job {coco_path}: not readable JSON ({exc})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("annotations"), list):
        raise UsageError(f"--job {coco_path}: not a COCO JSON (no annotations list)")
    job: dict[str, Any] = {}
    jf = state_dir(job_dir) / JOB_FILE if job_dir is not None else None
    if jf is not None and jf.is_file():
        try:
            job = json.loads(jf.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{jf}: not readable JSON ({exc})") from None
    else:
        job_dir = path if path.is_dir() else None
    return Output(coco_path, coco, job_dir, job)


@dataclass
class RankedObject:
    rank: int
    suspicion: float
    logit: float
    flags: list[str]
    signals: ObjectSignals

    def as_dict(self) -> dict[str, Any]:
        s = self.signals.as_dict()
        keys = ("id", "image_id", "file_name", "sequence", "frame_index", "track_id",
                "category", "mask_source", "prompt_box")  # fmt: skip
        head = {k: s.pop(k) for k in keys}
        return {
            "rank": self.rank,
            **head,
            "suspicion": round(self.suspicion, 6),
            "flags": self.flags,
            "signals": {k: _round(s[k]) for k in SIGNAL_COLUMNS},
        }


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 5)
    return v


@dataclass
class QAReport:
    source: Path
    model: str | None
    objects: list[RankedObject]
    image_root: Path | None
    unread_images: int
    calibration: str

    def flag_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FLAGS, 0)
        for o in self.objects:
            for f in o.flags:
                counts[f] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "model": self.model,
            "calibration": self.calibration,
            "image_root": None if self.image_root is None else str(self.image_root),
            "unread_images": self.unread_images,
            "objects": len(self.objects),
            "flags": FLAGS,
            "flag_counts": self.flag_counts(),
            "ranked": [o.as_dict() for o in self.objects],
        }


def run_qa(
    output: Output,
    *,
    image_root: Path | None = None,
    images: bool = True,
    cal: Calibration = DEFAULT,
) -> QAReport:
    """Signals, score and flags of every object of ``output``, most suspicious first.

    Args:
        output: from :func:`load_output`.
        image_root: where the images' ``file_name`` is relative to (default:
            the job's dataset root).
        images: read the images for the image signal.
        cal: the calibration of the score.
    """
    ident = output.identity
    root = image_root
    if root is None and ident.get("root"):
        root = Path(ident["root"])
    if not images:
        root = None
    geom = CropGeometry.from_identity(ident)
    try:
        sig, unread = signals(output.coco, geom, model=ident.get("model"), image_root=root)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--job {output.coco_path}: {exc}") from None
    scored = [(suspicion(s, cal), logit(s, cal), s) for s in sig]
    # most suspicious first; ties by annotation order
    order = sorted(range(len(scored)), key=lambda k: (-scored[k][1], k))
    ranked = [
        RankedObject(r + 1, scored[k][0], scored[k][1], flags(scored[k][2]), scored[k][2])
        for r, k in enumerate(order)
    ]
    return QAReport(output.coco_path, ident.get("model"), ranked, root, unread, cal.source)


def write_reports(report: QAReport, dest: Path) -> list[Path]:
    """``dest/qa.json`` and ``dest/qa.csv`` (atomically); returns their paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    jp, cp = dest / QA_JSON, dest / QA_CSV
    with atomic_open(jp) as fh:
        json.dump(report.to_dict(), fh, indent=1)
        fh.write("\n")
    head = ["rank", "id", "image_id", "file_name", "sequence", "frame_index", "track_id",
            "category", "mask_source", "suspicion", "flags", *SIGNAL_COLUMNS]  # fmt: skip
    with atomic_open(cp) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(head)
        for o in report.objects:
            d = o.as_dict()
            row = [d[k] for k in head[:9]] + [d["suspicion"], " ".join(d["flags"])]
            cells = row + ["" if d["signals"][k] is None else d["signals"][k]
                           for k in SIGNAL_COLUMNS]  # fmt: skip
            w.writerow([_csv_text(v) for v in cells])
    return [jp, cp]


def _csv_text(value: Any) -> Any:
    """A CSV cell: a name holding lone surrogates (a file name's undecodable bytes, a JSON
    ``\\udcff``) is written with them as ``\\udcff`` text; UTF-8 cannot hold them."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
