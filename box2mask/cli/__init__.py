"""The ``box2mask`` command line (typer + rich).

The only place that prints, exits, or imports typer/rich: the library raises
:class:`~box2mask.errors.Box2MaskError` and this module turns it into one
message and an exit code (0 done, 1 failed, 2 bad usage or bad input).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="box2mask",
    help="Instance masks from the boxes of satellite-video tracking datasets (ROS-SAM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from box2mask import __version__

        typer.echo(f"box2mask {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the box2mask version and exit.",
    ),
) -> None:
    """Instance masks from the boxes of satellite-video tracking datasets (ROS-SAM)."""
    from box2mask.cli._common import printable_streams

    printable_streams()  # names with undecodable bytes print as \udcff, never fail


def main() -> None:
    """Console-script entry point."""
    from box2mask.cli import commands  # noqa: F401  (registers the subcommands)

    app()
