"""What a command prints into a log or a CI job (no terminal): tables fit 100 columns, and
no progress line comes before a table of a short run (issue 24: eval printed a stray
'frames 1 objects 14', and every summary table was 160 columns wide)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "viso-mini"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # as in a plain shell pipe
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "box2mask", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


COMMON = ("--dataset", "viso", "--root", str(EXAMPLE), "--model", "classical")


@pytest.mark.parametrize(
    "args", [("eval", *COMMON), ("convert", *COMMON, "--out", "out")], ids=["eval", "convert"]
)
def test_piped_tables_fit_100_columns_and_no_stray_progress(tmp_path: Path, args) -> None:
    res = _run(tmp_path, *args)
    assert res.returncode == 0, res.stderr
    widths = [len(line.rstrip()) for line in res.stdout.splitlines()]
    assert max(widths) <= 100, res.stdout
    assert max(widths) >= 60  # a table was printed
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("frames ")]
    if args[0] == "eval":
        assert progress == [], res.stderr  # a run of seconds prints no progress line
    else:
        assert progress == ["frames 24/24 objects 159"], res.stderr  # the last, forced line
