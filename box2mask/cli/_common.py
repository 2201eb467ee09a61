"""What every subcommand shares: error handling, consoles, logging, progress.

The options that several commands take are declared in :mod:`box2mask.cli._flags`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from box2mask.errors import Box2MaskError

T = TypeVar("T")


#: the width of the tables off a terminal (a file, a CI log): the eval table (81
#: columns) fits, long cells wrap; rich's own 80 would clip it
PIPED_WIDTH = 100


def _console(stderr: bool = False) -> Console:
    """A rich console: the terminal's width on a terminal; piped into a file or a CI
    log :data:`PIPED_WIDTH` columns; ``COLUMNS`` wins over both."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH
    return Console(stderr=stderr, width=wide)


console = _console()
err_console = _console(stderr=True)


def printable_streams() -> None:
    """Let stdout and stderr print any name a dataset gives.

    A folder name with bytes that are not UTF-8 reaches Python as lone surrogates
    (``\\udcff``), and a JSON file can hold them as escapes; printing one to a UTF-8
    stream raised ``UnicodeEncodeError`` (an internal error, after the work was done).
    They are printed as ``\\udcff`` instead.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="backslashreplace")


def setup_logging(verbose: bool = False) -> None:
    """Log lines through rich on a terminal, plain lines otherwise."""
    level = logging.INFO if verbose else logging.WARNING
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger("box2mask")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_safely(fn: Callable[[], T], debug: bool = False) -> T:
    """Run ``fn``; a :class:`Box2MaskError` becomes one red line and its exit code.

    Anything else is a bug: one line saying so (the traceback with ``--debug``), exit 1.
    ``KeyboardInterrupt`` exits 130.
    """
    try:
        return fn()
    except Box2MaskError as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (run again with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def print_every(seconds: float) -> Callable[..., None]:
    """A progress printer for logs and CI (no terminal): ``say(text, force=False)``
    prints ``text`` to stderr when ``force`` or when ``seconds`` have passed since
    the last line (or the start), so a week-long job writes a line every few seconds,
    not one per frame, and a run shorter than ``seconds`` prints none but the forced
    (eval printed a stray 'frames 1 objects 14' before its table)."""
    import time

    last = [time.monotonic()]

    def say(text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - last[0] < seconds:
            return
        if not force:  # a forced line (an epoch's, the last frame's) keeps the rhythm
            last[0] = now
        print(text, file=sys.stderr, flush=True)

    return say


def progress_bar(field: str, eta: bool = False, transient: bool = False) -> Any:
    """The rich progress bar of a long command, on stderr: description, bar, done/total,
    the task's ``field`` (a rate, a count), elapsed time and, with ``eta``, the time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(field),
        TimeElapsedColumn(),
    ]
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=err_console, transient=transient)


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Progress of a long command (qa, eval, merge, viz) with its rate and time left.

    On a terminal: a rich bar on stderr (description, bar, done/total, the rate of
    ``counted`` per second, elapsed time, ETA). Off one (a log, CI): a plain line on
    stderr every ``every`` seconds, as ``convert`` prints, and a last one when the work
    is done::

        qa: frames 1200/10000 (12%), objects 120000, 4130 objects/s, elapsed 29s, ETA 3m33s

    Use as a context manager; :meth:`update` takes the totals so far.

    Args:
        label: what runs (``qa``, ``eval``...).
        unit: what ``done``/``total`` count (``frames``).
        counted: what the rate counts (``objects``).
        every: seconds between the plain lines.
    """

    def __init__(
        self, label: str, unit: str = "frames", counted: str = "objects", every: float = 10.0
    ) -> None:
        import time

        self.label, self.unit, self.counted = label, unit, counted
        self.t0 = time.monotonic()
        self._clock = time.monotonic
        self.terminal = err_console.is_terminal
        self._say = print_every(every)
        self._bar: Any = None
        self._task: Any = None
        self._last: tuple[int, int | None, int] | None = None

    def __enter__(self) -> Progress:
        if self.terminal:
            self._bar = progress_bar("{task.fields[rate]}", eta=True, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=None, rate="")
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, *rest)
        elif exc_type is None and self._last is not None:
            self._say(self.line(*self._last), force=True)

    def rate(self, counted: int) -> float:
        return counted / max(self._clock() - self.t0, 1e-6)

    def line(self, done: int, total: int | None, counted: int) -> str:
        """The plain progress line."""
        elapsed = self._clock() - self.t0
        text = f"{self.label}: {self.unit} {done}"
        if total:
            text += f"/{total} ({100 * done / total:.0f}%)"
        text += f", {self.counted} {counted}, {self.rate(counted):.0f} {self.counted}/s"
        text += f", elapsed {_duration(elapsed)}"
        if total and done:
            text += f", ETA {_duration(elapsed * (total - done) / done)}"
        return text

    def update(
        self, done: int, total: int | None, counted: int, description: str | None = None
    ) -> None:
        """``done`` of ``total`` (``None``: unknown) units, ``counted`` objects so far."""
        self._last = (done, total, counted)
        if self._bar is not None:
            self._bar.update(
                self._task, total=total, completed=done,
                rate=f"{self.rate(counted):.0f} {self.counted}/s",
                description=description or self.label,
            )  # fmt: skip
        else:
            self._say(self.line(done, total, counted))
