"""Which objects of a job go to the annotation tool.

All of them by default; ``sequences`` and ``classes`` narrow the set; ``top``
and ``min_suspicion`` keep the objects ``box2mask qa`` ranks most suspicious
(``<job>/qa/qa.json``, or the ``qa`` file given). The ranking is matched by key
``(sequence, frame_index, track_id)``, so a qa file made before the job was
changed still points at the right objects; its rows whose object is gone are
counted (``stale``), not guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import UsageError
from box2mask.exchange.model import ObjectKey
from box2mask.exchange.source import QA_JSON, JobData


@dataclass(frozen=True)
class Selection:
    """The objects to export.

    Attributes:
        top: only the ``top`` most suspicious (after ``sequences``/``classes``).
        min_suspicion: only those whose qa suspicion is at least this.
        sequences: only these sequences (empty: all).
        classes: only these category names (empty: all).
        qa: the qa.json to rank by (default ``<job>/qa/qa.json``; needed only with
            ``top`` or ``min_suspicion``).
    """

    top: int | None = None
    min_suspicion: float | None = None
    sequences: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    qa: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "min_suspicion": self.min_suspicion,
            "sequences": list(self.sequences),
            "classes": list(self.classes),
            "qa": None if self.qa is None else str(self.qa),
        }


@dataclass
class Selected:
    """The chosen objects, in the job's order, and what the choice noted.

    Attributes:
        keys: the objects' keys, in the order of the job's annotations.
        suspicion: ``{key: (rank, suspicion)}`` for objects qa ranked.
        stale: qa rows whose object is not in the job (the job changed since qa ran).
        ambiguous: keys the job holds twice, left out (they cannot be matched back).
    """

    keys: list[ObjectKey]
    suspicion: dict[ObjectKey, tuple[int, float]] = field(default_factory=dict)
    stale: int = 0
    ambiguous: list[ObjectKey] = field(default_factory=list)


def select(job: JobData, sel: Selection) -> Selected:
    """The keys of the objects ``sel`` picks from ``job``.

    Raises:
        UsageError: a bad value, an unknown sequence or class, or a ranking asked for
            without a readable qa.json.
    """
    if sel.top is not None and sel.top < 1:
        raise UsageError(f"--top must be at least 1, got {sel.top}")
    if sel.min_suspicion is not None and not 0.0 <= sel.min_suspicion <= 1.0:
        raise UsageError(f"--min-suspicion is a score in [0, 1], got {sel.min_suspicion}")
    known_seqs = {k.sequence for k in job.frames}
    unknown = [s for s in sel.sequences if s not in known_seqs]
    if unknown:
        raise UsageError(f"--sequences: the job has no sequence {unknown[0]!r}")
    names = {str(c.get("name")): cid for cid, c in job.categories.items()}
    unknown = [c for c in sel.classes if c not in names]
    if unknown:
        raise UsageError(
            f"--classes: the job has no category {unknown[0]!r} (it has: "
            f"{', '.join(sorted(names))})"
        )
    seqs = set(sel.sequences)
    cats = {names[c] for c in sel.classes}
    keys: list[ObjectKey] = []
    ambiguous: list[ObjectKey] = []
    for ann in job.coco["annotations"]:
        key = job.key_of(ann)
        if seqs and key.sequence not in seqs:
            continue
        if cats and int(ann["category_id"]) not in cats:
            continue
        if len(job.objects[key]) > 1:
            if key not in ambiguous:
                ambiguous.append(key)
            continue
        keys.append(key)
    out = Selected(keys, ambiguous=ambiguous)
    if sel.top is None and sel.min_suspicion is None:
        return out
    ranked, out.stale = _ranking(job, sel.qa)
    out.suspicion = ranked
    chosen = [k for k in keys if k in ranked]
    if sel.min_suspicion is not None:
        chosen = [k for k in chosen if ranked[k][1] >= sel.min_suspicion]
    chosen.sort(key=lambda k: ranked[k][0])
    if sel.top is not None:
        chosen = chosen[: sel.top]
    keep = set(chosen)
    out.keys = [k for k in keys if k in keep]
    return out


def _ranking(job: JobData, qa: Path | None) -> tuple[dict[ObjectKey, tuple[int, float]], int]:
    path = Path(qa) if qa is not None else job.job_dir / QA_JSON
    option = "--qa" if qa is not None else "--top/--min-suspicion"
    if not path.is_file():
        raise UsageError(
            f"{option}: no qa ranking at {path}; run `box2mask qa --job {job.job_dir}` first, "
            "or pass --qa FILE"
        )
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
        rows = rep["ranked"]
        ranked: dict[ObjectKey, tuple[int, float]] = {}
        stale = 0
        for row in rows:
            key = ObjectKey(row["sequence"], int(row["frame_index"]), int(row["track_id"]))
            if key not in job.objects:
                stale += 1
                continue
            ranked.setdefault(key, (int(row["rank"]), float(row["suspicion"])))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{option}: {path} is not a qa.json of `box2mask qa` ({exc})") from None
    return ranked, stale
