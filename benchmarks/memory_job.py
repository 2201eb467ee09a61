"""Peak memory of a conversion job does not grow with its length.

Generates a VISO-layout dataset of small frames (48x64, 3 objects each) in a
temp folder and converts it, in a fresh process per model, sampling the
process's resident memory (VmRSS) and its peak so far (VmHWM, from
/proc/self/status) when 200, 1000 and 2000 frames are done::

    python benchmarks/memory_job.py                # box + ellipse on 2,000 frames, grabcut on 500
    python benchmarks/memory_job.py --frames 5000  # longer
    python benchmarks/memory_job.py --sam-frames 150   # also a tiny random SAM (prompt model)

Flat figures across the checkpoints mean nothing grows with the job but the
output files (DESIGN §6). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(root: Path, out: Path, model: str, checkpoints: list[int]) -> None:
    """Convert in this process and print one JSON line of memory figures."""
    import torch

    torch.set_num_threads(1)
    import box2mask

    marks = set(checkpoints)
    rows: list[dict[str, float]] = []

    def progress(p) -> None:  # noqa: ANN001
        if p.frames_done in marks:
            rows.append(
                {
                    "frames": p.frames_done,
                    "rss_mib": _status_kib("VmRSS") / 1024,
                    "peak_mib": _status_kib("VmHWM") / 1024,
                }
            )

    # "sam:PATH" is a prompt model from a checkpoint: the engine then also keeps
    # freed heap memory (box2mask.hostmem), which must not make memory grow
    model, _, checkpoint = model.partition(":")
    summary = box2mask.convert(
        dataset="viso", root=root, out=out, model=model, formats="coco", workers=2,
        box_fill_classes=(), progress=progress, checkpoint=checkpoint or None, device="cpu",
    )  # fmt: skip
    # the final COCO JSON is merged from the parts after the last frame
    rows.append({"frames": -summary.frames_done, "rss_mib": _status_kib("VmRSS") / 1024,
                 "peak_mib": _status_kib("VmHWM") / 1024})  # fmt: skip
    print(json.dumps(rows))


def _run_child(root: Path, out: Path, model: str, checkpoints: list[int]) -> list[dict[str, float]]:
    cmd = [sys.executable, __file__, "--child", str(root), str(out), model, ",".join(map(str, checkpoints))]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--grabcut-frames", type=int, default=500)
    ap.add_argument("--sam-frames", type=int, default=0,
                    help="also convert this many frames with a tiny random-weight SAM (slow: ~1 s/frame)")  # fmt: skip
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        root, out, model, marks = args.child
        child(Path(root), Path(out), model, [int(m) for m in marks.split(",")])
        return

    sys.path.insert(0, str(REPO))
    from tests.data.make_viso_many import make_viso_many

    with tempfile.TemporaryDirectory(prefix="box2mask-mem-") as tmp:
        tmp_path = Path(tmp)
        # sequences of 200 frames; the grabcut dataset is a prefix-sized one
        n = args.frames
        make_viso_many(tmp_path / "viso", [200] * (n // 200) + ([n % 200] if n % 200 else []))
        g = args.grabcut_frames
        make_viso_many(tmp_path / "viso-g", [100] * (g // 100) + ([g % 100] if g % 100 else []))
        marks = sorted({m for m in (200, 1000, 2000, n) if m <= n})
        gmarks = sorted({m for m in (100, g // 2, g) if m <= g})
        print(f"{'model':8} {'frames':>7} {'RSS MiB':>9} {'peak MiB':>9}", flush=True)
        runs = [
            ("box", tmp_path / "viso", marks),
            ("ellipse", tmp_path / "viso", marks),
            ("grabcut", tmp_path / "viso-g", gmarks),
        ]
        if args.sam_frames:
            from benchmarks.speed import TINY, write_random_sam

            k = args.sam_frames
            make_viso_many(tmp_path / "viso-s", [50] * (k // 50) + ([k % 50] if k % 50 else []))
            ckpt = write_random_sam(tmp_path / "sam_tiny_random.pth", TINY)
            smarks = sorted({m for m in (k // 5, k // 2, k) if m > 0})
            runs.append((f"sam:{ckpt}", tmp_path / "viso-s", smarks))
        for model, root, ms in runs:
            name = model.partition(":")[0]
            for row in _run_child(root, tmp_path / f"out-{name}", model, ms):
                frames = f"{row['frames']:7d}" if row["frames"] >= 0 else f"{'merged':>7}"
                print(f"{name:8} {frames} {row['rss_mib']:9.1f} {row['peak_mib']:9.1f}", flush=True)


if __name__ == "__main__":
    main()
