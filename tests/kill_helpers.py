"""A real ``python -m box2mask convert`` in a child process, watched through its ledger and
killed at a chosen moment (the kill-and-resume tests)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_convert(root: Path, out: Path, *args: str) -> subprocess.Popen:
    """``python -m box2mask convert --dataset viso --root ROOT --out OUT ARGS...``, one thread."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "box2mask", "convert", "--dataset", "viso", "--root", str(root),
           "--out", str(out), *args]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger_lines(out: Path) -> int:
    """Finished lines in the job's ledger (a torn last line does not count); 0 before it exists."""
    try:
        return (out / ".box2mask" / "ledger.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_frames(proc: subprocess.Popen, out: Path, n: int, timeout: float = 60) -> None:
    """Until ``n`` frames are ledgered or the process ends; fails after ``timeout`` s without."""
    t0 = time.monotonic()
    while ledger_lines(out) < n and proc.poll() is None:
        assert time.monotonic() - t0 < timeout, "the conversion made no progress"
        time.sleep(0.005)


def run_and_kill(root: Path, out: Path, args: list[str], frames: int, rng: random.Random) -> bool:
    """Start a conversion and SIGKILL it 0-20 ms after ``frames`` frames are ledgered (anywhere:
    mid-frame, mid-ledger line); True if it was killed, False if it had finished first."""
    proc = start_convert(root, out, *args)
    wait_for_frames(proc, out, frames)
    time.sleep(rng.uniform(0, 0.02))
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return killed


def disk_full_after(monkeypatch, parts: int):
    """Make the job's part writes fail with ENOSPC (disk full) after ``parts`` of them
    (every frame's files go through ``box2mask.job.state.atomic_write_bytes``); returns a
    function that gives the disk its room back."""
    import errno

    import box2mask.job.state

    real = box2mask.job.state.atomic_write_bytes
    writes: list = []

    def full_after(path, data):
        if "parts" in str(path):
            writes.append(path)
            if len(writes) > parts:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(box2mask.job.state, "atomic_write_bytes", full_after)
    return lambda: monkeypatch.setattr(box2mask.job.state, "atomic_write_bytes", real)
