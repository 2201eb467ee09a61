"""``--executor ray`` on a real local Ray cluster (issue 13): two CPU actors give the local
executor's output byte for byte; an actor killed mid-job (``ray.kill``) has its frames redone
elsewhere; a driver SIGKILLed mid-job is resumed by running the same command; a job started
locally is finished on Ray.

The in-process tests share one local cluster (``ray.init(num_cpus=2)``), shut down at the end;
the driver-kill test runs the CLI in its own session (its private Ray instance is a child of
it), and that whole process group is killed at the end. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray", reason="pip install 'box2mask[ray]' (CI installs it: the test extra)"
)

import box2mask  # noqa: E402
import tests.ray_cli  # noqa: E402,F401  (registers the slow-fill test model)
from box2mask.job import JobInterrupted  # noqa: E402
from tests.data.make_viso_many import make_viso_many  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / "tests" / "ray_cli.py"
EXAMPLE = REPO / "examples" / "viso-mini"
STATE = ".box2mask"


def _files(out: Path) -> dict[str, bytes]:
    """Every output file, by path under --out; in the job folder only the parts (the ledger's
    order and its worker ids differ between executors)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and (STATE not in p.parts or "parts" in p.parts)
    }


def _ledger(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / STATE / "ledger.jsonl").read_text().splitlines()]


def _wait_for_lines(path: Path, n: int, deadline: float, alive=lambda: True) -> None:
    t0 = time.monotonic()
    while not path.is_file() or path.read_bytes().count(b"\n") < n:
        assert alive(), "the job ended before it got that far"
        assert time.monotonic() - t0 < deadline, f"fewer than {n} frames after {deadline} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster with 2 CPUs for the in-process tests.

    Its processes take the environment at ``ray.init``: actors import ``tests.*`` and the
    slow-fill model sleeps 0.3 s per object in them, and die-fill kills them on a ship; not in
    this process (local runs are fast and whole).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("BOX2MASK_TEST_SLOW", "0.3")
        mp.setenv("BOX2MASK_TEST_DIE_CATEGORY", "ship")
        ray.init(
            address="local",  # a new cluster, even where `ray start` runs one or RAY_ADDRESS is set
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 2**20,
            logging_level="warning",
        )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory):
    """22 frames of one non-car object each (every object goes to the model)."""
    root = tmp_path_factory.mktemp("slow") / "viso"
    make_viso_many(root, (12, 10), objects=1)
    return root


def _slow(root: Path, out: Path, **kw) -> dict:
    return dict(dataset="viso", root=root, out=out, model="slow-fill", formats=("coco", "png"),
                workers=1, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def slow_ref(slow_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("slowref") / "ref"
    box2mask.convert(**_slow(slow_root, out, executor="local"))
    return _files(out)


def test_two_cpu_actors_write_the_local_executors_files_byte_for_byte(cluster, tmp_path):
    """The example clip with one frame's image cut short: the actor's engine reports it, and the
    driver's summary counts it as a local run does."""
    root = tmp_path / "viso-mini"
    shutil.copytree(EXAMPLE, root)
    bad = root / "mot" / "plane" / "001" / "img" / "000003.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    common = dict(dataset="viso", root=root, formats=("coco", "png"))
    local = box2mask.convert(out=tmp_path / "local", executor="local", **common)
    got = box2mask.convert(out=tmp_path / "ray", executor="ray", ray_actors=2, **common)
    assert got.frames_done == local.frames_done == 23 and got.frames_resumed == 0
    assert got.objects_by_source == local.objects_by_source
    assert dict(got.problems.counts) == dict(local.problems.counts) == {"frame": 1}
    assert "000003.jpg" in str(got.problems.reports[0])
    ref, files = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert "annotations.json" in files and any(k.endswith(".png") for k in files)
    assert files.keys() == ref.keys() and all(files[k] == ref[k] for k in ref)
    ledger = _ledger(tmp_path / "ray")
    assert len(ledger) == 23 and len({(r["sequence"], r["frame"]) for r in ledger}) == 23
    assert {r["worker"] for r in ledger} == {0, 1}  # both actors took frames
    # per-actor throughput for --profile
    assert got.profile["actor-0 frames/s"] > 0 and got.profile["actor-1 objects/s"] > 0


def test_an_actor_killed_mid_job_has_its_frames_redone_elsewhere(
    cluster, slow_root, slow_ref, tmp_path, caplog
):
    out = tmp_path / "killed"
    result: dict = {}

    def job() -> None:
        try:
            result["summary"] = box2mask.convert(
                **_slow(slow_root, out, executor="ray", ray_actors=2)
            )
        except BaseException as exc:  # noqa: BLE001 - the main thread asserts on it
            result["error"] = exc

    t = threading.Thread(target=job)
    t.start()
    try:
        _wait_for_lines(out / STATE / "ledger.jsonl", 3, 60, alive=t.is_alive)
        mine = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("box2mask-")]  # fmt: skip
        assert mine, "no box2mask actor is running"
        ray.kill(ray.get_actor(mine[0]["name"], namespace=mine[0]["namespace"]))
    finally:
        t.join(timeout=120)
    assert not t.is_alive(), "the job did not end"
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary.frames_done == 22 and len(summary.problems) == 0
    assert "lost" in caplog.text
    ledger = _ledger(out)
    assert (
        sorted((r["sequence"], r["frame"]) for r in ledger)
        == sorted({(r["sequence"], r["frame"]) for r in ledger})
        and len(ledger) == 22
    )  # every frame recorded once
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def test_a_job_started_locally_is_finished_on_ray(cluster, slow_root, slow_ref, tmp_path):
    """Executor options are not part of the job: a local job cut short (its ledger cut after
    5 frames, as a kill leaves it) resumes on Ray, to the same files."""
    out = tmp_path / "mixed"
    box2mask.convert(**_slow(slow_root, out, executor="local"))
    ledger = out / STATE / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:5]))
    (out / STATE / "finished.json").unlink(missing_ok=True)
    (out / "annotations.json").unlink()
    summary = box2mask.convert(**_slow(slow_root, out, executor="ray", ray_actors=2))
    assert summary.frames_resumed == 5 and summary.frames_done == 17
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def _session(args: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run the CLI in a session of its own; whatever it leaves (its Ray processes) is killed."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return proc.returncode, out


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_a_driver_killed_mid_job_is_resumed_by_the_same_command(slow_root, slow_ref, tmp_path):
    out = tmp_path / "driver"
    args = [sys.executable, str(CLI), "convert", "--dataset", "viso", "--root", str(slow_root),
            "--out", str(out), "--model", "slow-fill", "--format", "coco,png", "--workers", "1",
            "--executor", "ray", "--ray-actors", "2", "--profile"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)  # a private local Ray instance, a child of the driver
    proc = subprocess.Popen(args, env={**env, "BOX2MASK_TEST_SLOW": "0.3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_for_lines(out / STATE / "ledger.jsonl", 3, 90, alive=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, at once
        proc.wait(timeout=30)
    finally:
        # the killed driver's Ray processes (its session): stopped by their group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = len(_ledger(out))
    assert 3 <= done < 22
    code, text = _session(args, env, timeout=150)
    assert code == 0, text
    text = " ".join(text.split())
    assert f"{22 - done} converted, {done} already done" in text, text
    assert "Ray actors" in text and "actor-" in text, text  # --profile: the per-actor table
    assert len(_ledger(out)) == 22
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def test_ctrl_c_finishes_the_frames_in_flight_and_the_job_resumes_locally(
    cluster, slow_root, slow_ref, tmp_path
):
    """SIGINT as Ctrl-C sends it: no new frames, those in flight committed, exit 130; the rest
    is then done by the local executor (a Ray job resumed without Ray), to the same files."""
    out = tmp_path / "stopped"

    def interrupt() -> None:
        _wait_for_lines(out / STATE / "ledger.jsonl", 3, 60)
        os.kill(os.getpid(), signal.SIGINT)  # convert's handler is in place while it runs

    t = threading.Thread(target=interrupt, daemon=True)
    t.start()
    with pytest.raises(JobInterrupted) as info:
        box2mask.convert(**_slow(slow_root, out, executor="ray", ray_actors=2))
    t.join(timeout=10)
    assert info.value.exit_code == 130 and "finished the frames in flight" in str(info.value)
    done = len(_ledger(out))
    assert 3 < done < 22  # more than when it was sent: the frames in flight were committed
    summary = box2mask.convert(**_slow(slow_root, out, executor="local"))
    assert summary.frames_resumed == done and summary.frames_done == 22 - done
    got = _files(out)
    assert got.keys() == slow_ref.keys() and all(got[k] == slow_ref[k] for k in slow_ref)


def test_a_frame_that_kills_every_actor_is_skipped_and_listed(cluster, tmp_path):
    """The ship frame kills each actor it is given (os._exit): after 3 lost actors it is
    skipped and listed as a frame problem; the plane frames are converted."""
    root = tmp_path / "viso"
    make_viso_many(root, (6, 1), objects=1)  # plane/001: 6 frames, ship/002: 1 frame
    out = tmp_path / "out"
    summary = box2mask.convert(dataset="viso", root=root, out=out, model="die-fill",
                               executor="ray", ray_actors=2)  # fmt: skip
    assert summary.frames_done == 6 and dict(summary.problems.counts) == {"frame": 1}
    text = str(summary.problems.reports[0])
    assert "ship/002 frame 1" in text and "3 Ray actors that were lost" in text, text
    assert {r["sequence"] for r in _ledger(out)} == {"plane/001"} and len(_ledger(out)) == 6


def test_ray_options_without_ray_and_an_address_nothing_answers_at_are_usage_errors(
    tmp_path, monkeypatch
):
    from box2mask.errors import UsageError

    common = dict(dataset="viso", root=EXAMPLE, out=tmp_path / "o")
    with pytest.raises(UsageError, match="--ray-actors is an option of --executor ray"):
        box2mask.convert(ray_actors=2, **common)
    with pytest.raises(UsageError, match="--ray-address is an option of --executor ray"):
        box2mask.convert(executor="processes", ray_address="auto", **common)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UsageError, match=r"pip install 'box2mask\[ray\]'") as info:
        box2mask.convert(executor="ray", **common)
    assert info.value.exit_code == 2
    import socket

    with socket.socket() as s:  # a port nothing listens on: refused at once, not retried
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a fresh process: this one may hold the tests' cluster, which convert would use
    t0 = time.monotonic()
    code, text = _session(
        [sys.executable, str(CLI), "convert", "--dataset", "viso", "--root", str(EXAMPLE),
         "--out", str(tmp_path / "p"), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"],
        {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        timeout=60,
    )  # fmt: skip
    assert code == 2, text
    assert f"127.0.0.1:{port}: no Ray cluster answers there" in " ".join(text.split())
    assert "Traceback" not in text and time.monotonic() - t0 < 30
