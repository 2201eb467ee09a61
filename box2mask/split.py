"""Train / val / test splits of a job, by sequence or by track (``--split``, docs/formats.md).

A split never cuts a sequence by frame: consecutive frames of a video are
near copies, so frames of one sequence in train and val would leak the
validation data into training. Two units:

- ``sequence`` (the default): whole sequences go to one split. The job's
  sequences (``--sequences``, before ``--shard``, so every shard agrees) are
  put in a seeded order, the SHA-256 of ``"<seed>\\0<name>"``; the first
  ``round(val * N)`` (at least one) are ``val``, the next ``round(test * N)``
  (at least one) ``test``, the rest ``train``, which must keep one. The
  assignment is saved in ``job.json`` (``split``), so ``qa apply``, a resumed
  run and ``merge`` write the same split files.
- ``track``: each track (its sequence, track id and category, as the track
  formats count tracks) goes to ``val`` when ``u < val``, to ``test`` when
  ``u < val + test``, else to ``train``, where ``u`` in ``[0, 1)`` comes from
  the SHA-256 of ``"<seed>\\0<sequence>\\0<track id>\\0<category>"``. A
  track's split depends on nothing else (not on which shard saw it, nor on
  tracks a person added later); the shares are those fractions in
  expectation. The frames are shared between splits, so only formats that
  can mark the other splits' objects as ignored hold a track split (COCO
  and YouTube-VIS, with ``iscrowd: 1``); YOLO, DAVIS and MOTS refuse it.

Fractions are of the units (sequences or tracks), not of frames: the run's
summary and ``convert --dry-run`` give each split's frames and objects.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from box2mask.errors import UsageError

#: the splits ``--split`` may name (``train`` is what is left)
HELD_OUT = ("val", "test")
#: every split, in the order files and tables list them
SPLIT_NAMES = ("train", *HELD_OUT)
#: ``--split-by`` values
UNITS = ("sequence", "track")


def parse_split(text: str) -> dict[str, float]:
    """``"val=0.1,test=0.05"`` → ``{"val": 0.1, "test": 0.05}`` (val first, then test).

    Raises:
        UsageError: a name other than ``val``/``test``, a name twice, a fraction not
            in ``(0, 1)``, or fractions whose sum leaves nothing for ``train``.

    >>> parse_split("test=0.2, val=0.1")
    {'val': 0.1, 'test': 0.2}
    """
    out: dict[str, float] = {}
    items = [p.strip() for p in str(text).split(",") if p.strip()]
    if not items:
        raise UsageError("--split takes val=F[,test=F], e.g. val=0.1 or val=0.1,test=0.1")
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name not in HELD_OUT:
            raise UsageError(f"--split takes val=F[,test=F] (train is the rest), got {item!r}")
        if name in out:
            raise UsageError(f"--split names {name} twice")
        try:
            frac = float(value)
        except ValueError:
            raise UsageError(f"--split {name}={value.strip()!r}: not a number") from None
        if not (math.isfinite(frac) and 0 < frac < 1):
            raise UsageError(f"--split {name}={value.strip()}: must be a fraction in (0, 1)")
        out[name] = frac
    if sum(out.values()) >= 1:
        raise UsageError(f"--split {format_split(out)}: nothing is left for train")
    return {name: out[name] for name in HELD_OUT if name in out}


def format_split(fractions: dict[str, float]) -> str:
    """The canonical ``--split`` text (the job identity's value).

    >>> format_split({"val": 0.1, "test": 0.25})
    'val=0.1,test=0.25'
    """
    return ",".join(f"{name}={fractions[name]:g}" for name in HELD_OUT if name in fractions)


def _digest(*parts: object) -> bytes:
    text = "\0".join(str(p) for p in parts)
    # a lone surrogate (a name from undecodable bytes) is kept, not an encoding error
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def assign_sequences(
    names: Sequence[str], fractions: dict[str, float], seed: int
) -> dict[str, str]:
    """``{sequence: split}`` for whole sequences (see the module docstring).

    Raises:
        UsageError: too few sequences for one in every split.

    >>> a = assign_sequences(["a", "b", "c", "d"], {"val": 0.25}, seed=0)
    >>> sorted(a.values())
    ['train', 'train', 'train', 'val']
    """
    names = list(dict.fromkeys(names))
    counts = {s: max(1, math.floor(f * len(names) + 0.5)) for s, f in fractions.items()}
    if len(names) - sum(counts.values()) < 1:
        need = 1 + len(counts)
        raise UsageError(
            f"--split {format_split(fractions)} --split-by sequence needs a sequence in every "
            f"split (train, {', '.join(counts)}): the job has {len(names)} sequence(s), at least "
            f"{need} are needed; lower the fractions, or use --split-by track"
        )
    order = sorted(names, key=lambda n: _digest(seed, n))
    out = dict.fromkeys(names, "train")
    k = 0
    for split, n in counts.items():
        for name in order[k : k + n]:
            out[name] = split
        k += n
    return out


def track_split(
    fractions: dict[str, float], seed: int, sequence: str, track: tuple[int, str]
) -> str:
    """The split of one track (its id and category) of ``sequence`` (see the module docstring)."""
    u = int.from_bytes(_digest(seed, sequence, track[0], track[1])[:8], "big") / 2.0**64
    edge = 0.0
    for split, frac in fractions.items():
        edge += frac
        if u < edge:
            return split
    return "train"


@dataclass(frozen=True)
class Split:
    """A job's split: what the formats write one file (or list) per split from.

    Attributes:
        fractions: ``{"val": f[, "test": f]}``; ``train`` is the rest.
        by: ``"sequence"`` or ``"track"``.
        seed: ``--seed``.
        sequences: ``{sequence: split}`` (``by == "sequence"``; empty for tracks).
    """

    fractions: dict[str, float]
    by: str = "sequence"
    seed: int = 0
    sequences: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """``["train", "val"[, "test"]]``."""
        return ["train", *self.fractions]

    def of_sequence(self, sequence: str) -> str:
        """A sequence's split (``by == "sequence"``); a sequence the assignment lacks (a
        COCO file merged in) is ``train``."""
        return self.sequences.get(sequence, "train")

    def of_track(self, sequence: str, track: tuple[int, str]) -> str:
        """A track's split: its sequence's, or its own (``by == "track"``)."""
        if self.by == "track":
            return track_split(self.fractions, self.seed, sequence, track)
        return self.of_sequence(sequence)

    def to_json(self) -> dict[str, Any]:
        """What ``job.json`` keeps (``split``): the spec, and the sequences of each split."""
        out: dict[str, Any] = {
            "split": format_split(self.fractions),
            "by": self.by,
            "seed": self.seed,
        }
        if self.by == "sequence":
            out["sequences"] = {
                s: [q for q, v in self.sequences.items() if v == s] for s in self.names
            }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Split | None:
        """The split ``job.json`` saved (``None`` when it has none)."""
        if not data:
            return None
        seqs = {q: s for s, names in (data.get("sequences") or {}).items() for q in names}
        return cls(
            parse_split(data["split"]), data.get("by", "sequence"), int(data.get("seed", 0)), seqs
        )

    def counts(self, frames: dict[str, int]) -> dict[str, dict[str, int]]:
        """``{split: {"sequences": n, "frames": n}}`` of a sequence split, from each
        sequence's frame count; ``{}`` for a track split (its shares are per object)."""
        if self.by != "sequence":
            return {}
        out = {s: {"sequences": 0, "frames": 0} for s in self.names}
        for seq, n in frames.items():
            row = out[self.of_sequence(seq)]
            row["sequences"] += 1
            row["frames"] += n
        return out


def make_split(text: str | None, by: str, seed: int, sequences: Iterable[str]) -> Split | None:
    """The split of ``--split text --split-by by --seed seed`` over ``sequences`` (dataset
    order), or ``None`` without ``--split``.

    Raises:
        UsageError: see :func:`parse_split` and :func:`assign_sequences`; an unknown unit.
    """
    if text is None:
        return None
    if by not in UNITS:
        raise UsageError(f"--split-by must be sequence or track, got {by!r}")
    fractions = parse_split(text)
    names = list(sequences)
    assigned = assign_sequences(names, fractions, seed) if by == "sequence" else {}
    return Split(fractions, by, seed, assigned)


def merged_split(saved: Sequence[dict[str, Any] | None]) -> Split | None:
    """The split of several jobs merged without ``--split``: the first job's spec, and each
    sequence in the split its job gave it (shards of one job agree)."""
    splits = [Split.from_json(s) for s in saved]
    found = [s for s in splits if s is not None]
    if not found:
        return None
    seqs: dict[str, str] = {}
    for s in found:
        for q, v in s.sequences.items():
            seqs.setdefault(q, v)
    first = found[0]
    return Split(first.fractions, first.by, first.seed, seqs)


def check_formats(
    split: Split | None, units: dict[str, tuple[str, ...] | None], option: str = "--split-by"
) -> None:
    """Refuse a format that cannot hold the split's unit (before anything is written).

    Args:
        split: the split, or ``None`` (nothing to check).
        units: ``{format: its writer's split_units}``.

    Raises:
        UsageError: names the format and what it can hold.
    """
    if split is None:
        return
    for name, can in units.items():
        if can is not None and split.by not in can:
            raise UsageError(
                f"{option} {split.by}: --format {name} cannot hold a split by {split.by} "
                f"(it splits by {', '.join(can)}; docs/formats.md, 'Splits'); use "
                f"--split-by sequence, or leave {name} out of --format"
            )


__all__ = [
    "HELD_OUT",
    "SPLIT_NAMES",
    "UNITS",
    "Split",
    "assign_sequences",
    "check_formats",
    "format_split",
    "make_split",
    "merged_split",
    "parse_split",
    "track_split",
]
