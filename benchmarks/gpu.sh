#!/usr/bin/env bash
# The GPU check in one script: on a CUDA machine it runs
#   1. the gpu-marked tests            (pytest -m gpu tests/)
#   2. the speed benchmark              (benchmarks/speed.py, vit_b and TinyViT vit_t, two
#                                        batch sizes each, with and without --compile)
#   3. a 2-process NCCL training smoke  (torchrun --nproc-per-node 2 box2mask train on
#                                        the tiny SAM of tests/tiny_sam.py; only with >= 2 GPUs)
# and writes one report, REPORT_DIR/report.md (logs and JSON next to it).
# Every step has its own time limit and the whole run a budget (default 570 s,
# so it ends within 10 minutes on one H200); a step that would not fit is skipped
# and says so. The exit status is 0 when every step that ran passed.
#
#   bash benchmarks/gpu.sh [--dry-run] [--out DIR] [--budget SECONDS]
#
# --dry-run: the same steps on CPU, shrunk (tiny model, Gloo instead of NCCL, no
# --compile: a CPU Inductor compile alone takes minutes), to prove the script works
# on a machine without a GPU (tests/test_gpu_script.py runs it).
set -u -o pipefail

DRY=0
OUT=""
BUDGET=570
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        --budget) BUDGET="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument $1 (--dry-run, --out DIR, --budget SECONDS)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python}"
OUT="${OUT:-$ROOT/gpu-report/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/report.md"
START=$(date +%s)
FAILED=0

if [ "$DRY" = 1 ]; then
    NGPU=0
else
    NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
    if [ "$NGPU" = 0 ]; then
        echo "gpu.sh: no CUDA device visible (use --dry-run on a CPU machine)" >&2
        exit 2
    fi
fi

{
    echo "# box2mask GPU check ($( [ "$DRY" = 1 ] && echo "dry run, CPU" || echo "$NGPU GPU(s)"))"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    "$PY" - <<'EOF' 2>/dev/null
import platform, torch
print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, python {platform.python_version()}")
for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
    print(f"- cuda:{i}: {torch.cuda.get_device_name(i)}")
EOF
    echo "- budget: ${BUDGET} s"
    echo
    echo "| step | result | seconds | log |"
    echo "|---|---|---|---|"
} > "$REPORT"

# step NAME LIMIT_SECONDS COMMAND...: runs it with its log in $OUT/NAME.log, one report row
step() {
    local name="$1" limit="$2"
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        echo "| $name | skipped: budget spent | 0 | |" >> "$REPORT"
        echo "[gpu.sh] $name: skipped (budget spent)"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit="$left"
    echo "[gpu.sh] $name (limit ${limit} s)"
    local t0 rc result
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    case "$rc" in
        0) result="passed" ;;
        124|137) result="**timed out** after ${limit} s"; FAILED=1 ;;
        *) result="**failed** (exit $rc)"; FAILED=1 ;;
    esac
    echo "| $name | $result | $(($(date +%s) - t0)) | $name.log |" >> "$REPORT"
    echo "[gpu.sh] $name: $result"
}

skip() {  # skip NAME REASON
    echo "| $1 | skipped: $2 | 0 | |" >> "$REPORT"
    echo "[gpu.sh] $1: skipped ($2)"
}

# 1. gpu-marked tests (on CPU they are collected and skipped by tests/conftest.py)
if [ "$DRY" = 1 ]; then
    step pytest-gpu 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_gpu_issue17.py
else
    step pytest-gpu 200 "$PY" -m pytest -q -m gpu -p no:cacheprovider -rs tests/
fi

# 2. speed benchmark: ViT-B and TinyViT (vit_t) at two batch sizes each, with and without
#    --compile. The runs are named speed-bs<N>[-compile] (vit_b) and speed-vit_t-bs<N>[-compile].
#    speed_runs ARCH PREFIX NOCOMPILE_LIMIT COMPILE_LIMIT ARGS -- SIZES...
speed_runs() {
    local arch="$1" prefix="$2" lim0="$3" lim1="$4"
    shift 4
    local args=() sizes=()
    while [ "$1" != "--" ]; do args+=("$1"); shift; done
    shift
    sizes=("$@")
    local ref=$REF c bs name extra limit
    for c in "${COMPILES[@]}"; do
        for bs in "${sizes[@]}"; do
            name="speed-$prefix""bs$bs$( [ "$c" = 1 ] && echo -compile)"
            extra=()
            [ "$c" = 1 ] && extra+=(--compile)
            [ "$ref" = 1 ] || extra+=(--skip-reference)
            limit=$( [ "$c" = 1 ] && echo "$lim1" || echo "$lim0" )
            step "$name" "$limit" "$PY" benchmarks/speed.py --arch "$arch" "${args[@]}" \
                --batch-size "$bs" --json "$OUT/$name.json" ${extra[@]+"${extra[@]}"}
            ref=0
        done
    done
}
if [ "$DRY" = 1 ]; then
    COMPILES=(0)
    REF=0
    speed_runs tiny "" 90 90 --device cpu --objects 2 --threads 2 -- 1 2
    # the real TinyViT-5M shape on CPU, two objects: proves the vit_t path
    speed_runs vit_t vit_t- 150 150 --device cpu --objects 2 --threads 2 -- 2
else
    COMPILES=(0 1)
    REF=1  # the authors' pipeline once per arch (it does not depend on batch size or --compile)
    # a vit_b Inductor compile: about a minute; TinyViT's: less, its runs take seconds
    speed_runs vit_b "" 90 150 --device cuda --objects 96 -- 8 32
    speed_runs vit_t vit_t- 60 120 --device cuda --objects 192 -- 8 64
fi
[ "$DRY" = 1 ] && skip speed-compile "dry run (a CPU Inductor compile takes minutes)"

# 3. 2-process training smoke: NCCL on 2 GPUs (Gloo on CPU in the dry run)
if [ "$DRY" = 1 ] || [ "$NGPU" -ge 2 ]; then
    DATA="$OUT/train-data"
    "$PY" - "$DATA" <<'EOF' > "$OUT/train-data.log" 2>&1
import sys
from pathlib import Path
from tests.data.make_rossam import make_rossam
from tests.tiny_sam import write_hq_sam_pth, write_sam_pth
d = Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True)
write_sam_pth(d); write_hq_sam_pth(d); make_rossam(d / "ros")
EOF
    if [ "$DRY" = 1 ]; then DEV=cpu; EPOCHS=1; else DEV=cuda; EPOCHS=2; fi
    export OMP_NUM_THREADS=1
    step train-2proc-$( [ "$DRY" = 1 ] && echo gloo || echo nccl) 150 \
        "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 \
        -m box2mask train --dataset rossam --root "$DATA/ros" --opt split=train \
        --sam "$DATA/sam_tiny.pth" --hq "$DATA/sam_hq_tiny.pth" --out "$OUT/train-run" \
        --lora-rank 4 --epochs "$EPOCHS" --grad-accum 2 --frame-fraction 1.0 \
        --lsj-scale 0.5,1.5 --workers 0 --device "$DEV"
else
    skip train-2proc-nccl "needs 2 GPUs, $NGPU visible"
fi

# the speed figures, one row per run
{
    echo
    echo "## Speed (benchmarks/speed.py)"
    echo
    "$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
rows = sorted(Path(sys.argv[1]).glob("speed-*.json"))
if not rows:
    print("no speed figures (the runs failed or were skipped)")
else:
    print("| run | arch | batch (used) | compile | objects/s | peak MB | vs reference |")
    print("|---|---|---|---|---|---|---|")
    for p in rows:
        r = json.loads(p.read_text())
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        print(f"| {p.stem} | {r['arch']} | {r['batch_size']} ({r.get('batch_size_used', '?')}) | "
              f"{r['compile']} | {r['box2mask_objects_per_s']:.2f} | {r['box2mask_peak_mb']:.0f} | "
              f"{sp} |")
EOF
    for log in pytest-gpu train-2proc-nccl train-2proc-gloo; do
        if [ -f "$OUT/$log.log" ]; then
            echo
            echo "## $log (last lines)"
            echo
            echo '```'
            tail -n 5 "$OUT/$log.log"
            echo '```'
        fi
    done
    echo
    echo "total: $(($(date +%s) - START)) s; $( [ "$FAILED" = 0 ] && echo "all steps that ran passed" || echo "**some steps failed**: see their logs")"
} >> "$REPORT"

echo "[gpu.sh] report: $REPORT"
exit "$FAILED"
