"""A real `python -m box2mask convert` killed (SIGKILL) at random moments, or stopped with Ctrl-C,
then resumed, writes exactly the files of an uninterrupted run."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

import box2mask
from tests.data.make_viso_many import make_viso_many
from tests.kill_helpers import run_and_kill, start_convert, wait_for_frames

LENGTHS = (50, 35, 25, 20, 10)  # 140 frames, 420 objects
ARGS = ["--model", "ellipse", "--format", "coco,png", "--workers", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The dataset and the outputs of an uninterrupted run."""
    d = tmp_path_factory.mktemp("kill")
    make_viso_many(d / "viso", LENGTHS)
    box2mask.convert(
        dataset="viso",
        root=d / "viso",
        out=d / "ref",
        model="ellipse",
        formats="coco,png",
        workers=1,
    )
    return d


def _files(out: Path) -> dict[str, bytes]:
    """Every output file (the job state folder aside), by relative path."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".box2mask" not in p.parts
    }


def _assert_consistent(out: Path) -> None:
    """Every ledgered frame has its part; no frame is ledgered twice."""
    state = out / ".box2mask"
    lines = (state / "ledger.jsonl").read_text().split("\n")
    recs = [json.loads(x) for x in lines[:-1]]  # the last element is "" or a torn line
    keys = [(r["sequence"], r["frame"]) for r in recs]
    assert len(keys) == len(set(keys))
    for seq, f in keys:
        assert (state / "parts" / seq / f"{f:06d}.json").is_file()


def test_ctrl_c_then_sigkills_at_random_moments_then_resume_gives_the_uninterrupted_output(
    dataset,
):
    """One job, interrupted four times (one launch each, to keep the test short):

    Ctrl-C first (exit 130, a message saying how to resume, every written
    frame recorded), then SIGKILL at three random moments; the last run
    completes it, and every output file equals the uninterrupted run's.
    """
    total = sum(LENGTHS)
    out = dataset / "interrupted"
    proc = start_convert(dataset / "viso", out, *ARGS)
    wait_for_frames(proc, out, 10)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    text = " ".join((stdout + stderr).split())
    assert "interrupted (SIGINT)" in text and "Run the same command again to resume" in text
    assert "Traceback" not in text
    # stopped cleanly: the frames in flight were finished and recorded, nothing half-done
    state = out / ".box2mask"
    ledgered = {(r["sequence"], r["frame"]) for r in map(json.loads, (state / "ledger.jsonl").read_text().splitlines())}  # fmt: skip
    parts = {(str(p.parent.relative_to(state / "parts")), int(p.stem)) for p in (state / "parts").rglob("*.json")}  # fmt: skip
    assert parts == ledgered and 10 <= len(ledgered) < total
    assert not (out / "annotations.json").exists()

    rng = random.Random(4)
    kills = 0
    for target in sorted(rng.sample(range(len(ledgered) + 5, total - 5), 3)):
        kills += run_and_kill(dataset / "viso", out, ARGS, target, rng)
        _assert_consistent(out)
    assert kills == 3
    proc = start_convert(dataset / "viso", out, *ARGS)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "already done" in stdout
    assert not list(out.rglob("*.tmp"))  # temp files of killed writes are cleaned up
    ref, got = _files(dataset / "ref"), _files(out)
    assert got.keys() == ref.keys()
    assert got["annotations.json"] == ref["annotations.json"]
    assert all(got[k] == ref[k] for k in ref)  # PNG maps and sidecars too
