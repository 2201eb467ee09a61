"""The CLI's own text: escaped user text, honest summaries, help, --version, Ctrl-C twice (issue 16)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import box2mask
from box2mask.cli import app
from box2mask.types import MASK_SOURCES
from tests.cli_helpers import cli, convert_viso, flat, runner

REPO = Path(__file__).resolve().parents[1]


def test_invalid_yaml_is_one_message_with_file_and_line(viso_root, tmp_path):
    # a '[' in the message was read by rich as markup: the error printer itself crashed
    cfg = tmp_path / "job.yaml"
    cfg.write_text("dataset: viso\nsequences: [car/001\nmodel: box\n")
    res = cli("convert", "--config", cfg, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    assert re.search(rf"--config {re.escape(str(cfg))}:\d+:\d+: not valid YAML", flat(res.output))


def test_brackets_in_user_text_are_printed_as_is(tmp_path, monkeypatch):
    monkeypatch.setenv("BOX2MASK_DATA", str(tmp_path / "[bold]x[/bold]"))
    res = cli("convert", "--dataset", "viso", "--out", tmp_path / "o", "--model", "box")
    assert res.exit_code == 2, res.output
    assert "[bold]x[/bold]" in res.output


def test_config_values_are_checked_by_type_naming_file_and_key(viso_root, tmp_path):
    root, _ = viso_root
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"dataset: viso\nroot: {root}\nbatch_size: many\n")
    res = cli("convert", "--config", cfg, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert f"--config {cfg}: key 'batch_size' must be a whole number, got 'many'" in flat(
        res.output
    )


def test_numeric_options_are_checked_at_start(viso_root, tmp_path):
    root, _ = viso_root
    for value in ("nan", "inf", "-inf"):
        res = convert_viso(root, tmp_path / value, "--model", "box", "--context", value)
        assert res.exit_code == 2, res.output
        assert "--context must be a finite number" in res.output
        assert not (tmp_path / value).exists()  # refused before anything is written


def test_out_that_is_a_file_is_a_usage_error(viso_root, tmp_path):
    root, _ = viso_root
    (tmp_path / "f").write_text("x")
    res = convert_viso(root, tmp_path / "f", "--model", "box")
    assert res.exit_code == 2, res.output
    assert f"--out {tmp_path / 'f'}" in flat(res.output) and "is a file" in res.output


def test_summary_says_which_objects_got_box_masks_and_why(viso_root, tmp_path):
    root, _ = viso_root
    # the weight-free model's policy (the SAM family's too): cars box-filled; lite segments
    # them by default (tests/test_lite_model.py)
    res = convert_viso(root, tmp_path / "o", "--sequences", "car/001", "--model", "classical")
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "classical: not used, every object got a box mask" in text
    assert (
        "box 6: box masks, not segmented by classical: class car (--box-fill-classes car, the default)"
        in text
    )
    assert "--box-fill-classes '' to segment them with classical" in text
    # the policy turned off: the same cars are segmented, and the summary says so
    res = convert_viso(root, tmp_path / "o2", "--sequences", "car/001", "--box-fill-classes", "",
                       "--model", "classical")
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "not used" not in text and "box masks, not segmented" not in text
    assert "masks by classical" in text
    res = convert_viso(root, tmp_path / "o3", "--sequences", "plane/001", "--box-fill-area", "400",
                       "--model", "classical")
    text = flat(res.output)
    assert "boxes under 400 px² (--box-fill-area)" in text and "--box-fill-area 0" in text


def test_help_marks_required_options_and_states_measured_int8_speed():
    res = runner.invoke(app, ["convert", "--help"], env={"COLUMNS": "200"})
    text = flat(res.output)
    assert res.exit_code == 0
    assert "docs/speed.md" not in text and "~2x" not in text
    assert "int8 (int8 encoder matrix products) 3.9x" in text
    assert "docs/engine.md, Speed" in text
    assert (REPO / "docs" / "engine.md").read_text().count("## Speed") == 1
    assert re.search(r"--dataset .*?Required \(here or in --config\)", text)
    assert re.search(r"--out .*?Required \(here or in --config\)", text)


def test_version():
    res = cli("--version")
    assert res.exit_code == 0 and res.output.strip() == f"box2mask {box2mask.__version__}"


def test_readme_lists_every_mask_source():
    line = next(s for s in (REPO / "README.md").read_text().splitlines() if "`mask_source` (" in s)
    listed = set(re.findall(r"`(\w+)`", line.split("`mask_source` (", 1)[1].split(")")[0]))
    assert listed == set(MASK_SOURCES)


_SLOW = """
import sys, time
import box2mask.engine as e
_prepare = e.MaskEngine._prepare
def slow(self, frame):
    time.sleep(0.4)
    return _prepare(self, frame)
e.MaskEngine._prepare = slow
from box2mask.cli import main
sys.argv = ["box2mask", *sys.argv[1:]]
main()
"""


def test_second_ctrl_c_stops_at_once_and_keeps_the_resume_hint(tmp_path):
    from tests.data.make_viso import write_big_mot

    root = tmp_path / "viso"
    write_big_mot(root, frames=60, per_frame=2)
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, "convert", "--dataset", "viso", "--root", str(root),
         "--out", str(out), "--model", "box", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    ledger = out / ".box2mask" / "ledger.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (ledger.exists() and ledger.read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    text = flat(output)
    assert proc.returncode == 130, output
    assert "stopped at once" in text, output
    assert "Run the same command again to resume" in text
    assert "Traceback" not in output
    done = [json.loads(s) for s in ledger.read_text().splitlines() if s.strip()]
    assert 0 < len(done) < 60


def test_paths_with_brackets_print_as_is_in_convert_and_merge(viso_root, tmp_path):
    root, _ = viso_root
    job = tmp_path / "job[red]1"
    res = convert_viso(root, job, "--model", "box")
    assert res.exit_code == 0, res.output
    assert str(job / "annotations.json") in flat(res.output)
    dest = tmp_path / "all[bold].json"
    res = cli("merge", job, "--out", dest)
    assert res.exit_code == 0, res.output
    assert str(dest) in flat(res.output)
