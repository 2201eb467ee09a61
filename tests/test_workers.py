"""Several worker processes (``--device cpu,cpu``): the job always ends, in a subprocess with a
hard deadline: frames slower than any timeout, a worker SIGKILLed mid-run, a worker dying while
loading, a bad ``--device`` entry (issue 16.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.data.make_viso_many import make_viso_many

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / "tests" / "workers_cli.py"  # the CLI with the slow test model registered
EXAMPLE = REPO / "examples" / "viso-mini"


def _cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(CLI), *map(str, args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of hanging it
    )


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".box2mask" not in p.parts
    }


def test_two_workers_on_the_example_finish_and_match_one_worker(tmp_path):
    """The reported hang: viso-mini with the weight-free default on cpu,cpu."""
    base = ["convert", "--dataset", "viso", "--root", EXAMPLE, "--format", "coco,png"]
    one = _cli(*base, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    t0 = time.monotonic()
    two = _cli(*base, "--out", tmp_path / "two", "--device", "cpu,cpu", timeout=90)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "24 converted" in " ".join(two.stdout.split())
    ref, got = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert "annotations.json" in got and got.keys() == ref.keys()
    assert all(got[k] == ref[k] for k in ref)
    print(f"cpu,cpu on viso-mini: {time.monotonic() - t0:.1f} s")


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory):
    """22 frames of one non-car object each (every object goes to the model)."""
    root = tmp_path_factory.mktemp("slow") / "viso"
    make_viso_many(root, (12, 10), objects=1)
    return root


def _slow_args(root: Path, out: Path, device: str = "cpu,cpu") -> list:
    return ["convert", "--dataset", "viso", "--root", root, "--out", out, "--model", "slow-ellipse",
            "--format", "coco,png", "--device", device, "--workers", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def slow_ref(slow_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("slowref") / "ref"
    res = _cli(*_slow_args(slow_root, out, "cpu"))
    assert res.returncode == 0, res.stderr
    return _files(out)


def test_frames_slower_than_every_timeout_still_finish(slow_root, slow_ref, tmp_path):
    """1.1 s per frame, more frames than the workers and the read-ahead hold: the end of
    input reaches both workers, the job ends and equals a one-worker run."""
    out = tmp_path / "two"
    res = _cli(*_slow_args(slow_root, out), env={"BOX2MASK_TEST_SLOW": "1.1"}, timeout=150)
    assert res.returncode == 0, res.stdout + res.stderr
    ledger = [json.loads(x) for x in (out / ".box2mask" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 22 and {r["worker"] for r in ledger} == {0, 1}
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def _workers_of(pid: int) -> list[int]:
    """The worker processes (not multiprocessing's resource tracker) of process ``pid``."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_worker_killed_mid_run_stops_the_job_and_a_rerun_resumes(slow_root, slow_ref, tmp_path):
    out = tmp_path / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "BOX2MASK_TEST_SLOW": "0.3",
    }
    proc = subprocess.Popen([sys.executable, str(CLI), *map(str, _slow_args(slow_root, out))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        ledger = out / ".box2mask" / "ledger.jsonl"
        t0 = time.monotonic()
        while not ledger.is_file() or ledger.read_bytes().count(b"\n") < 3:
            assert proc.poll() is None and time.monotonic() - t0 < 90, "no progress"
            time.sleep(0.05)
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)  # stops: no hang
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    text = " ".join((stdout + stderr).split())
    assert "died with exit code -9 while converting" in text
    assert "run the same command again to resume" in text and "Traceback" not in text
    assert not (out / "annotations.json").exists()
    res = _cli(*_slow_args(slow_root, out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "already done" in res.stdout
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def test_a_worker_dying_while_loading_stops_the_job_with_a_message(slow_root, tmp_path):
    t0 = time.monotonic()
    res = _cli(*_slow_args(slow_root, tmp_path / "o"), env={"BOX2MASK_TEST_DIE_LOADING": "3"}, timeout=60)  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    text = " ".join((res.stdout + res.stderr).split())
    assert "died with exit code 3 while loading the model" in text, text
    assert time.monotonic() - t0 < 60


def test_an_unknown_device_entry_exits_2_at_once_naming_the_option(tmp_path):
    t0 = time.monotonic()
    res = _cli("convert", "--dataset", "viso", "--root", EXAMPLE, "--out", tmp_path / "o",
               "--device", "cpu,tpu", timeout=60)  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--device 'tpu' is not a device" in " ".join(res.stderr.split())
    assert time.monotonic() - t0 < 30
