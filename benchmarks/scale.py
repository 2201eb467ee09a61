"""A million objects: wall time, objects/s and peak memory of each step (issue 28).

Builds the synthetic VISO-layout dataset of ``benchmarks/scale_data.py`` (100
small vehicles a frame, 250 frames a sequence, frames hard-linked to one JPEG),
then runs, each step in its own child process::

    convert      box2mask convert --model box --format coco
    qa           box2mask qa --job JOB --workers W
    eval         box2mask eval --predictions JOB/annotations.json --workers W
                 (the job's masks against the dataset's own ground-truth maps)
    shard 1/2    box2mask convert --shard 1/2 (and 2/2)
    merge        box2mask merge SHARD1 SHARD2 --out MERGED
    qa apply     box2mask qa apply of 1,000 decisions (400 reject, 300 box, 200 ellipse,
                 100 accept, the top of qa.json) to the job

and prints, per step and size, the wall time, objects per second and peak RSS.
Peak RSS is the child's own ``ru_maxrss`` from ``wait4`` (the largest of the
step's processes: the command, or one of its worker processes), and the
largest sum over the step's processes, sampled every 0.2 s. This parent
imports nothing heavy (no numpy), because a child forked from a large parent
reports the parent's pages as its own peak::

    python benchmarks/scale.py --sizes 10k,100k,1m --work /tmp/b2m-scale [--workers 2]

``--check DIR`` also compares qa's ranking and eval's report with those of
another box2mask (``--record DIR --rev REV`` writes them with the code of git
revision REV, on the 100k job): the same objects in the same order with the same
suspicion and signals, and eval's figures within 1e-9. Measured figures:
docs/qa.md and docs/eval.md (section "A million objects").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: size name -> (sequences, frames per sequence); 100 objects a frame
SIZES = {"10k": (4, 25), "100k": (4, 250), "1m": (40, 250)}


def _tree_rss_kib(pgid: int) -> int:
    """Resident memory (KiB) of every process in the process group ``pgid``."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5: pgrp
                continue
            with open(f"/proc/{d}/statm") as fh:
                total += int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_step(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` in a new process group; wall time, exit code, peak RSS (MiB)."""
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO)  # fmt: skip
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        th.join()
    wall = time.monotonic() - t0
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "peak_tree_mib": round(peak[0] / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }


def _box2mask(*args: str) -> list[str]:
    return [sys.executable, "-m", "box2mask", *args]


def decisions(qa_json: Path, dest: Path, n: int = 1000) -> int:
    """A decisions file for the top ``n`` objects of qa.json (read as a stream)."""
    import ijson

    actions = ["reject"] * 4 + ["box"] * 3 + ["ellipse"] * 2 + ["accept"]
    out = []
    with open(qa_json, "rb") as fh:
        for k, o in enumerate(ijson.items(fh, "ranked.item", use_float=True)):
            if k >= n:
                break
            out.append({"id": o["id"], "image_id": o["image_id"], "sequence": o["sequence"],
                        "frame_index": o["frame_index"], "track_id": o["track_id"],
                        "category": o["category"], "action": actions[k % 10]})  # fmt: skip
    dest.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": out}))
    return len(out)


def bench_size(name: str, work: Path, workers: int, steps: set[str]) -> list[dict]:
    seqs, frames = SIZES[name]
    n = seqs * frames * 100
    data, job = work / f"data-{name}", work / f"job-{name}"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    res = run_step([sys.executable, str(REPO / "benchmarks" / "scale_data.py"), str(data),
                    "--sequences", str(seqs), "--frames", str(frames)], logs / f"{name}-data.log")  # fmt: skip
    assert res["rc"] == 0, (logs / f"{name}-data.log").read_text()
    rows = []

    def step(label: str, cmd: list[str], objects: int = n) -> dict:
        r = run_step(cmd, logs / f"{name}-{label.replace(' ', '_').replace('/', '_')}.log")
        r.update(size=name, step=label, objects=objects,
                 objects_per_s=round(objects / max(r["wall_s"], 1e-9)))  # fmt: skip
        rows.append(r)
        print(json.dumps(r), flush=True)
        return r

    w = str(workers)
    if "convert" in steps:
        for p in (job, work / f"merged-{name}"):
            shutil.rmtree(p, ignore_errors=True)
        step("convert", _box2mask("convert", "-d", "viso", "--root", str(data), "--out", str(job),
                                  "--model", "box", "--format", "coco"))  # fmt: skip
    if "qa" in steps:
        step("qa", _box2mask("qa", "--job", str(job), "--workers", w))
    if "eval" in steps:
        step("eval", _box2mask("eval", "-d", "viso", "--root", str(data), "--predictions",
                               str(job / "annotations.json"), "--workers", w,
                               "--report", str(work / f"eval-{name}.json")))  # fmt: skip
    if "merge" in steps:
        shards = []
        for k in (1, 2):
            sj = work / f"shard{k}-{name}"
            shutil.rmtree(sj, ignore_errors=True)
            step(f"shard {k}/2", _box2mask("convert", "-d", "viso", "--root", str(data), "--out",
                                           str(sj), "--model", "box", "--format", "coco",
                                           "--shard", f"{k}/2"), objects=n // 2)  # fmt: skip
            shards.append(str(sj))
        merged = work / f"merged-{name}"
        shutil.rmtree(merged, ignore_errors=True)
        step("merge", _box2mask("merge", *shards, "--out", str(merged)))
    if "apply" in steps:
        dec = work / f"decisions-{name}.json"
        k = decisions(job / "qa" / "qa.json", dec)
        step("qa apply", _box2mask("qa", "apply", str(dec), "--job", str(job)), objects=k)
    return rows


#: qa.json record fields added after the recorded revision (issue 27: the object's review mark)
ADDED = frozenset({"review"})


def _walk(a: object, b: object, path: str, tol: float, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in ("seconds", "root", "model_note"):  # the time, the folders: no figure
                continue
            if k not in a and k in ADDED and b[k] is None:
                continue  # a field added since the recorded revision, empty here
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in one")
                continue
            _walk(a[k], b[k], f"{path}/{k}", tol, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", tol, out)
    elif isinstance(a, float) and isinstance(b, float):
        if abs(a - b) > tol:
            out.append(f"{path}: {a} != {b}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def check(baseline: Path, job: Path, eval_report: Path) -> bool:
    """qa's ranking and eval's report against the recorded ones; prints what differs."""
    import ijson

    problems: list[str] = []
    n = 0
    with open(baseline / "qa" / "qa.json", "rb") as fa, open(job / "qa" / "qa.json", "rb") as fb:
        for a, b in zip(ijson.items(fa, "ranked.item", use_float=True),
                        ijson.items(fb, "ranked.item", use_float=True), strict=True):  # fmt: skip
            n += 1
            if a != b:
                before = len(problems)
                _walk(a, b, f"ranked[{n - 1}]", 1e-9, problems)
                if len(problems) > before + 20:
                    break
    want = json.loads((baseline / "eval.json").read_text())
    _walk(want, json.loads(Path(eval_report).read_text()), "eval", 1e-9, problems)
    print(f"qa: {n} ranked objects compared; eval report compared (tolerance 1e-9)")
    for p in problems[:40]:
        print("  DIFFERS", p)
    print("same figures" if not problems else f"{len(problems)} difference(s)")
    return not problems


def record(rev: str, work: Path, dest: Path, workers: int) -> None:
    """qa's and eval's outputs of git revision ``rev`` on the 100k job (the job is built and
    converted first if missing), into ``dest``."""
    seqs, frames = SIZES["100k"]
    data, job = work / "data-100k", work / "job-100k"
    if not (job / "annotations.json").is_file():
        bench_size("100k", work, workers, {"convert"})
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        for pkg in ("adapters", "weights"):  # installed as box2mask.adapters / .weights
            (tree / "box2mask" / pkg).symlink_to(f"../{pkg}")
        env = {**os.environ, "PYTHONPATH": str(tree)}
        dest.mkdir(parents=True, exist_ok=True)
        for cmd in (
            ["qa", "--job", str(job), "--out", str(dest / "qa")],
            ["eval", "-d", "viso", "--root", str(data), "--predictions",
             str(job / "annotations.json"), "--report", str(dest / "eval.json")],
        ):  # fmt: skip
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "box2mask", *cmd], env=env, check=True,
                           stdout=subprocess.DEVNULL, cwd=tmp)  # fmt: skip
            print(f"{rev} {cmd[0]}: {time.monotonic() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--sizes", default="10k,100k", help="comma-separated: 10k, 100k, 1m")
    ap.add_argument("--work", type=Path, required=True, help="folder for data, jobs and logs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", default="convert,qa,eval,merge,apply")
    ap.add_argument("--record", type=Path, help="write qa/eval outputs of --rev here (100k)")
    ap.add_argument("--rev", default="a9fc034", help="git revision for --record")
    ap.add_argument("--check", type=Path, help="compare the 100k qa/eval with these outputs")
    ap.add_argument("--check-only", action="store_true", help="--check the outputs already there")
    a = ap.parse_args()
    work = a.work.resolve()
    if a.record:
        record(a.rev, work, a.record.resolve(), a.workers)
        return
    if a.check_only:
        sys.exit(0 if check(a.check.resolve(), work / "job-100k", work / "eval-100k.json") else 1)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"cores {os.cpu_count()}; parent RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")  # fmt: skip
    rows = []
    for name in a.sizes.split(","):
        rows += bench_size(name.strip(), work, a.workers, set(a.steps.split(",")))
    print()
    print(
        "| size | step | wall | objects/s | peak RSS (largest process) | peak RSS (all processes) | CPU s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['step']} | {r['wall_s']:.1f} s | {r['objects_per_s']} | "
              f"{r['peak_rss_mib']:.0f} MiB | {r['peak_tree_mib']:.0f} MiB | {r['cpu_s']} |"
              + ("" if r["rc"] == 0 else f" exit {r['rc']}"))  # fmt: skip
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if a.check:
        ok = check(a.check.resolve(), work / "job-100k", work / "eval-100k.json")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
