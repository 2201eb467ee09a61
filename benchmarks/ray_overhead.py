"""What ``--executor ray`` costs against the local executor, on the same CPU job, in one run.

Generates a VISO-layout dataset in a temp folder and converts it with the
local executor, then with Ray actors on a local Ray cluster (started once by
this script, ``ray.init(num_cpus=N)``), and prints for each: objects/s over the
whole ``convert`` call (actor start-up and model loading included, cluster
start-up not), the ratio to local, the first actor's start-up and the rate
after it, and each actor's peak resident memory (VmHWM of the actor process)::

    python benchmarks/ray_overhead.py                     # ellipse (pure overhead) + tiny SAM, a few minutes on 2 cores
    python benchmarks/ray_overhead.py --sam-frames 0      # weight-free only
    python benchmarks/ray_overhead.py --frames 400 --actors 1,2

The weight-free ``ellipse`` job has almost no work per object, so its ratio is
the executor's own cost per frame (hand-out, pickling, the driver's commit);
the tiny random SAM (real 1024 px encoder input, a few-layer ViT) has work per
object, as real jobs do. "ray, 1 actor" has the local run's CPUs
(``--threads``): the same compute, so the gap is Ray's overhead. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _first_start(profile: dict[str, float]) -> float:
    """Seconds until the first actor could take frames (``actor-K start`` of --profile)."""
    starts = [v for k, v in profile.items() if k.startswith("actor-") and k.endswith(" start")]
    return min(starts, default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400, help="frames of the ellipse job")
    ap.add_argument("--objects", type=int, default=3, help="objects per frame")
    ap.add_argument(
        "--sam-frames", type=int, default=12, help="frames of the tiny-SAM job (0: skip)"
    )
    ap.add_argument("--actors", default="1,2", help="actor counts to run, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (medians printed)")
    ap.add_argument(
        "--threads", type=int, default=2, help="CPUs of the cluster and local torch threads"
    )
    args = ap.parse_args()
    counts = [int(x) for x in args.actors.split(",") if x]

    import ray
    import torch

    import box2mask
    from tests.data.make_viso_many import make_viso_many
    from tests.tiny_sam import write_sam_pth

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    jobs: list[tuple[str, Path, dict]] = []
    root = tmp / "viso"
    n_seq = max(1, args.frames // 40)
    make_viso_many(root, [args.frames // n_seq] * n_seq, objects=args.objects, hw=(96, 128))
    jobs.append(("ellipse", root, {"model": "ellipse"}))
    if args.sam_frames:
        sam_root = tmp / "viso-sam"
        make_viso_many(sam_root, [args.sam_frames], objects=2, hw=(96, 128))
        ckpt = write_sam_pth(tmp / "ckpt")
        jobs.append(
            ("tiny SAM", sam_root, {"model": "sam", "checkpoint": str(ckpt), "device": "cpu"})
        )

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False,
             object_store_memory=100 * 2**20, logging_level=logging.WARNING)  # fmt: skip
    cluster_s = time.perf_counter() - t0
    print(
        f"local Ray cluster started in {cluster_s:.1f} s ({args.threads} CPUs); not in the figures"
    )
    try:
        for label, jroot, extra in jobs:
            common = dict(dataset="viso", root=jroot, formats=("coco", "png"),
                          box_fill_classes=(), workers=2, **extra)  # fmt: skip
            names = ["local"] + [f"ray, {n} actor{'s' if n > 1 else ''}" for n in counts]
            runs: dict[str, list] = {name: [] for name in names}
            for r in range(args.repeat):  # interleaved, so a busy moment hits every executor
                runs["local"].append(
                    box2mask.convert(out=tmp / f"{label}-local-{r}", executor="local", **common)
                )
                for name, n in zip(names[1:], counts, strict=True):
                    runs[name].append(
                        box2mask.convert(
                            out=tmp / f"{label}-ray{n}-{r}",
                            executor="ray",
                            ray_actors=n,
                            profile=True,
                            **common,
                        )  # fmt: skip
                    )
            first = runs["local"][0]
            base = statistics.median(s.objects / s.seconds for s in runs["local"])
            print(f"\n{label}: {first.frames_done} frames, {first.objects} objects, "
                  f"median of {args.repeat}")  # fmt: skip
            print(f"  {'executor':<15} {'objects/s':>9} {'vs local':>8} {'seconds':>7} "
                  f"{'start':>6} {'after start':>11}  actors' peak RSS")  # fmt: skip
            for name in names:
                rate = statistics.median(s.objects / s.seconds for s in runs[name])
                secs = statistics.median(s.seconds for s in runs[name])
                # the first actor's start-up (asked for -> model loaded), and the rate after it
                starts = [_first_start(s.profile) for s in runs[name]]
                start = statistics.median(starts) if name != "local" else 0.0
                after = statistics.median(
                    s.objects / max(s.seconds - st, 1e-9) for s, st in zip(runs[name], starts, strict=True)
                ) if name != "local" else rate  # fmt: skip
                rss = [v for k, v in sorted(runs[name][-1].profile.items())
                       if k.endswith("peak RSS MiB")]  # fmt: skip
                mem = ", ".join(f"{v:.0f} MiB" for v in rss) or "-"
                print(f"  {name:<15} {rate:>9.1f} {rate / base:>7.2f}x {secs:>7.2f} "
                      f"{start:>6.2f} {after:>11.1f}  {mem}")  # fmt: skip
    finally:
        ray.shutdown()
    print(f"\ndriver peak RSS (this process, all runs): {_peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
