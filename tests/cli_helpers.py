"""The CLI in-process through typer's CliRunner, as the CLI tests call it."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

runner = CliRunner()


def cli(*args: object) -> Result:
    """``box2mask ARGS...``; paths and numbers may be passed as they are."""
    return runner.invoke(app, [str(a) for a in args])


def convert_viso(root: object, out: object, *args: object) -> Result:
    """``box2mask convert --dataset viso --root ROOT --out OUT ARGS...``."""
    return cli("convert", "--dataset", "viso", "--root", root, "--out", out, *args)


def flat(text: str) -> str:
    """The output on one line, whitespace and rich's table borders collapsed to single spaces."""
    return " ".join(text.replace("│", " ").split())
