"""Atomic file writes: finished output is never half-written.

Every file box2mask produces is written to a temporary name in the same
folder, flushed and fsynced, then renamed over its final name, so that a
process killed at any moment (SIGKILL included) leaves either the old file or
the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, separators=None if indent else (",", ":"))
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    """fsync a folder so that renames inside it survive a power cut (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB uint8.

    Raises:
        AnnotationError: the file is missing or cannot be decoded (names the file).
    """
    import cv2

    from box2mask.errors import AnnotationError

    path = Path(path)
    if not path.is_file():
        raise AnnotationError("frame image is missing", path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AnnotationError("frame image cannot be decoded (corrupt or not an image)", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
