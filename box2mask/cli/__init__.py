"""The ``box2mask`` command line (typer + rich).

The only place that prints, exits, or imports typer/rich: the library raises
:class:`~box2mask.errors.Box2MaskError` and this module turns it into one
message and an exit code (0 done, 1 failed, 2 bad usage or bad input).
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _switch_shows_no_type(self: TyperOption, ctx: object) -> str | None:
    """A switch (``--strict``, ``--help``) shows no value placeholder in ``--help``.

    typer >= 0.2x writes ``<bool>`` beside every flag, which reads as a value to
    give (users typed ``--strict true``, which click refuses); a switch takes none.
    """
    if getattr(self, "is_flag", False) and self.metavar is None:
        return ""
    return _display_type_rich(self, ctx)  # type: ignore[arg-type]


TyperOption.display_type_rich = _switch_shows_no_type  # type: ignore[method-assign]

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
