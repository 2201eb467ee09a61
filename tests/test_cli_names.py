"""One naming rule for the options of every command (docs/extending.md, "Command-line names").

- the job a command reads is ``--job`` (viz, qa, qa apply); what it writes is ``--out``;
- a switch takes no value: ``--help`` shows no ``<bool>`` placeholder, ``--strict true``
  is refused, ``--strict`` works;
- the former spellings (``viz --out JOB --viz-out DIR``, ``qa --out JOB --report DIR``,
  ``qa apply --out JOB``) still work for one release, hidden from ``--help``, and say
  that they were renamed; a former and a current name for one option at once is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import cli, flat

from box2mask.cli import app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"


def _commands() -> list[tuple[str, ...]]:
    """Every command path of the CLI (``("qa", "apply")`` ...), groups included."""
    root = typer.main.get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:  # typer's own click: no click.Group
        out.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(root, ())
    return out


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("names") / "job"
    res = cli("convert", "-d", "viso", "--root", EXAMPLE, "--out", out, "--model", "ellipse",
              "--sequences", "plane/001")  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "box2mask")
def test_help_shows_no_value_placeholder_for_a_switch(path: tuple[str, ...]) -> None:
    res = cli(*path, "--help")
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output


def test_a_switch_takes_no_value(tmp_path: Path) -> None:
    res = cli("convert", "-d", "viso", "--root", EXAMPLE, "--out", tmp_path / "o", "--model",
              "box", "--sequences", "plane/001", "--strict", "true")  # fmt: skip
    assert res.exit_code == 2 and "unexpected extra argument" in flat(res.output).lower()
    assert not (tmp_path / "o").exists()
    res = cli("convert", "-d", "viso", "--root", EXAMPLE, "--out", tmp_path / "o", "--model",
              "box", "--sequences", "plane/001", "--strict")  # fmt: skip
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("path", "current", "former"),
    [
        (("viz",), ["--job", "--out"], ["--viz-out"]),
        (("qa",), ["--job", "--out"], ["--report"]),
        (("qa", "apply"), ["--job"], []),
        (("merge",), ["--out", "--overwrite", "--force"], []),
    ],
)
def test_help_lists_the_current_names_only(path, current, former) -> None:
    text = cli(*path, "--help").output
    for name in current:
        assert f" {name} " in text, text
    for name in former:
        assert f" {name} " not in text, text


def test_qa_reads_the_job_from_job_and_writes_to_out(job: Path, tmp_path: Path) -> None:
    res = cli("qa", "--job", job, "--out", tmp_path / "rep", "--no-images")
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    assert (tmp_path / "rep" / "qa.json").is_file() and (tmp_path / "rep" / "qa.csv").is_file()


def test_qa_former_spelling_still_works_and_says_so(job: Path, tmp_path: Path) -> None:
    res = cli("qa", "--out", job, "--report", tmp_path / "old", "--no-images")
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "warning: --out JOB is now --job JOB" in text
    assert "warning: --report is now --out" in text
    assert (tmp_path / "old" / "qa.json").is_file()
    res = cli("qa", "--job", job, "--out", tmp_path / "a", "--report", tmp_path / "b")
    assert res.exit_code == 2 and "--report is the former name of --out" in flat(res.output)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_viz_reads_job_and_writes_out_former_spelling_too(job: Path, tmp_path: Path) -> None:
    common = ["viz", "-d", "viso", "--root", EXAMPLE, "--max-frames", "1", "--sheet-frames", "1"]
    res = cli(*common, "--job", job, "--out", tmp_path / "new")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "plane" / "001" / "000001.png").is_file()
    res = cli(*common, "--out", job, "--viz-out", tmp_path / "old")
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "warning: --viz-out is now --out" in text and "--out JOB is now --job JOB" in text
    assert (tmp_path / "old" / "plane" / "001" / "000001.png").is_file()
    res = cli(*common, "--job", job)
    assert res.exit_code == 2 and "--out is required" in flat(res.output)


def test_qa_apply_takes_job_and_its_former_out(job: Path, tmp_path: Path) -> None:
    decisions = tmp_path / "d.json"
    decisions.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": []}))
    res = cli("qa", "apply", decisions, "--job", job)
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    res = cli("qa", "apply", decisions, "--out", job)
    assert res.exit_code == 0, res.output
    assert "warning: --out is now --job" in flat(res.output)
    res = cli("qa", "apply", decisions, "--out", job, "--job", job)
    assert res.exit_code == 2 and "--out is the former name of --job" in flat(res.output)
