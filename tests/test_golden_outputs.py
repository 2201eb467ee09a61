"""Golden outputs: the bundled example converted by four models, byte for byte.

Written before the seams redesign (issue 11) so that refactors of writers,
executors, models and options are held to the exact bytes users already have.
The manifest ``tests/golden/viso-mini.json`` maps every user-visible output
file (the COCO JSON, the PNG instance maps and their sidecars; not the job's
own state under ``.box2mask/``) to its sha256.

A deliberate change of output (a new field, a fixed value) regenerates the
manifest with ``BOX2MASK_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_outputs.py``
and says why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"
MANIFEST = Path(__file__).resolve().parent / "golden" / "viso-mini.json"
MODELS = ["box", "ellipse", "classical", "sam"]


def _digest(out: Path) -> dict[str, str]:
    files = sorted(
        p for p in out.rglob("*") if p.is_file() and ".box2mask" not in p.relative_to(out).parts
    )
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def _convert(model: str, out: Path, tiny_checkpoints) -> dict[str, str]:
    args = ["convert", "--dataset", "viso", "--root", str(EXAMPLE), "--out", str(out)]
    args += ["--format", "coco,png", "--model", model]
    if model == "sam":
        args += ["--checkpoint", str(tiny_checkpoints["sam"]), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return _digest(out)


@pytest.mark.slow
def test_example_outputs_are_byte_identical_to_the_golden_manifest(tmp_path, tiny_checkpoints):
    got = {m: _convert(m, tmp_path / m, tiny_checkpoints) for m in MODELS}
    if os.environ.get("BOX2MASK_UPDATE_GOLDEN") == "1":
        MANIFEST.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"golden manifest rewritten: {MANIFEST}")
    want = json.loads(MANIFEST.read_text())
    for model in MODELS:
        assert sorted(got[model]) == sorted(want[model]), f"{model}: other files"
        changed = [f for f in want[model] if got[model][f] != want[model][f]]
        assert not changed, f"{model}: {len(changed)} files differ, first {changed[:3]}"
