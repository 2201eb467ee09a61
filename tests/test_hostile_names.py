"""Hostile names in the data write and delete nothing outside ``--out`` (issue 24).

The property runs in a child process (tests/hostile_names_run.py: hypothesis draws names for
every adapter that takes names from the data, the conversion writes every format, then runs
again with ``--overwrite``). As root, the child drops to ``nobody`` before the first name, so
``/`` is not writable while names are converted: an escape to the root folder fails loudly
instead of landing there. The child checks a watched folder around ``--out`` (the dataset, a
bystander file beside ``--out``, the targets of absolute names) after each run; here the
listing of ``/`` is compared before and after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: hypothesis examples for the COCO adapter (a third of it, at least 3, for each folder adapter)
EXAMPLES = 18


@pytest.mark.slow
def test_hostile_names_write_and_delete_nothing_outside_out() -> None:
    # not pytest's tmp_path: /tmp/pytest-of-root is closed to the unprivileged user
    base = Path(tempfile.mkdtemp(prefix="b2m-hostile-"))
    root_before = sorted(os.listdir("/"))
    env = {
        **os.environ,
        "HOME": str(base),
        "BOX2MASK_HOME": str(base / ".box2mask-home"),
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
    }
    try:
        res = subprocess.run(
            [sys.executable, str(REPO / "tests" / "hostile_names_run.py"), str(base),
             str(EXAMPLES)],
            cwd=base, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        shown = f"exit {res.returncode}\n{res.stdout[-6000:]}\n{res.stderr[-10000:]}"
        assert res.returncode == 0, shown
        assert res.stdout.strip().splitlines()[-1].startswith("OK"), shown
        print(res.stdout)  # the per-adapter counts, for -s
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert sorted(os.listdir("/")) == root_before
    assert not [p for p in os.listdir("/tmp") if p.startswith("b2m-escape")]
