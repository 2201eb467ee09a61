"""benchmarks/gpu.sh: its --dry-run (CPU, tiny model, Gloo) runs every step and writes the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.sh"


def test_gpu_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.slow
def test_gpu_script_dry_run_writes_one_report(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}  # this venv's python
    res = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=500, env=env)  # fmt: skip
    report = (tmp_path / "rep" / "report.md").read_text()
    assert res.returncode == 0, res.stdout + res.stderr + report
    for row in ("| pytest-gpu | passed", "| speed-bs1 | passed", "| speed-bs2 | passed",
                "| speed-vit_t-bs2 | passed", "| train-2proc-gloo | passed"):  # fmt: skip
        assert row in report, report
    assert "| speed-bs2 | tiny | 2 (2) |" in report  # the speed figures, batch size used
    assert "| speed-vit_t-bs2 | vit_t | 2 (2) |" in report  # TinyViT-5M, the real shape
    assert (tmp_path / "rep" / "train-run" / "model.safetensors").is_file()


def test_gpu_script_refuses_without_cuda_unless_dry(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert res.returncode == 2 and "--dry-run" in res.stderr
