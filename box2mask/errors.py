"""The exceptions box2mask raises.

The library never prints, exits or asserts on user input: it raises one of
these, and ``cli.py`` turns it into one message and an exit code
(0 done, 1 failed, 2 bad usage or bad input).
"""

from __future__ import annotations

from pathlib import Path


class Box2MaskError(Exception):
    """Base class of every error box2mask raises on purpose."""

    exit_code = 1


class UsageError(Box2MaskError):
    """An option or argument is wrong (bad value, bad combination)."""

    exit_code = 2


class DatasetNotFound(Box2MaskError):
    """The dataset root (or a file the layout requires) does not exist."""

    exit_code = 2


class AnnotationError(Box2MaskError):
    """A malformed annotation, with the file and (1-based) line it came from."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class CheckpointError(Box2MaskError):
    """A checkpoint is missing, corrupt, or of the wrong kind for the model."""

    exit_code = 2


class JobMismatch(Box2MaskError):
    """An existing job in ``--out`` was started with different options."""

    exit_code = 2
