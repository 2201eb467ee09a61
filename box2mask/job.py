"""A conversion job's own state in ``<out>/.box2mask/``: identity, ledger, per-frame parts.

- ``job.json``: everything that determines the output (DESIGN §8), written
  when the job starts. Running again with the same identity resumes; with a
  different one it is refused (:class:`JobMismatch` names each difference).
- ``ledger.jsonl``: one line per finished frame, appended only after that
  frame's files are atomically in place. A torn last line (killed mid-write)
  is ignored.
- ``parts/<sequence>/<frame>.json``: the frame's COCO image and annotations
  without ids; ids are given when the parts are merged, in (sequence, frame)
  order, so a resumed run and an uninterrupted one write identical files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from box2mask.errors import JobMismatch
from box2mask.io import atomic_write_json

STATE_DIR = ".box2mask"


def frame_stem(frame_index: int) -> str:
    """File stem of a frame's per-frame outputs: ``000042``."""
    return f"{frame_index:06d}"


class Job:
    """The state folder of one conversion job.

    Args:
        out: the ``--out`` folder.
        identity: the output-determining options (JSON-serialisable).
    """

    def __init__(self, out: Path, identity: dict[str, Any]) -> None:
        self.out = Path(out)
        self.dir = self.out / STATE_DIR
        self.identity = identity
        self._ledger_fh = None

    @property
    def job_file(self) -> Path:
        return self.dir / "job.json"

    @property
    def ledger_file(self) -> Path:
        return self.dir / "ledger.jsonl"

    def part_path(self, sequence: str, frame_index: int) -> Path:
        return self.dir / "parts" / sequence / f"{frame_stem(frame_index)}.json"

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
        if overwrite and self.dir.exists():
            self._remove_outputs()
        if self.job_file.exists():
            try:
                saved = json.loads(self.job_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise JobMismatch(
                    f"{self.job_file} is unreadable ({exc}); use --overwrite to start afresh"
                ) from None
            diffs = diff_identity(saved.get("identity", {}), self.identity)
            if diffs:
                lines = "; ".join(f"{k}: job has {a!r}, now {b!r}" for k, a, b in diffs)
                raise JobMismatch(
                    f"{self.out} holds a job started with other options ({lines}). "
                    "Run with the same options to resume it, use another --out, or --overwrite to start afresh."
                )
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.job_file, {"identity": self.identity, **(extra or {})}, indent=2)
        done = self.read_ledger()
        self._ledger_fh = open(self.ledger_file, "a", encoding="utf-8")  # noqa: SIM115
        return done

    def saved(self) -> dict[str, Any]:
        return json.loads(self.job_file.read_text(encoding="utf-8"))

    def read_ledger(self) -> set[tuple[str, int]]:
        """Finished frames; a torn (unterminated or unparsable) last line is ignored."""
        done: set[tuple[str, int]] = set()
        if not self.ledger_file.exists():
            return done
        with open(self.ledger_file, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn write from a kill: that frame is redone
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done.add((rec["sequence"], int(rec["frame"])))
        return done

    def record(self, sequence: str, frame_index: int) -> None:
        """Append a finished frame to the ledger (call after its files are in place)."""
        assert self._ledger_fh is not None, "Job.open() first"
        fh = self._ledger_fh
        # a kill can leave a torn last line; start ours on a fresh line
        line = json.dumps({"sequence": sequence, "frame": frame_index}) + "\n"
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())

    def close(self) -> None:
        if self._ledger_fh is not None:
            self._ledger_fh.close()
            self._ledger_fh = None

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

    def _remove_outputs(self) -> None:
        """Remove what a previous job wrote: its state folder and the files it lists."""
        try:
            saved = self.saved()
        except (OSError, json.JSONDecodeError):
            saved = {}
        for rel in saved.get("outputs", []):
            p = self.out / rel
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)


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
