"""Atomic file writes (finished output is never half-written), image reads, file hashes.

Every file box2mask produces is written to a temporary name in the same
folder, flushed and fsynced, then renamed over its final name, so that a
process killed at any moment (SIGKILL included) leaves either the old file or
the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    Linux shows it in ``/proc/self/status``; elsewhere it is read by setting
    and restoring it (under a lock, so that box2mask's own threads agree).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. The file ends up with the
    mode a plain ``open()`` would give it (``0o666 & ~umask``, e.g. 0644),
    not ``mkstemp``'s 0600, so that others on a shared machine can read the
    outputs when the umask says so. An ``OSError`` without a file name (a
    ``write`` or ``fsync`` hitting a full disk) is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` of ``obj`` to ``path`` atomically (a training state: a kill mid-write
    leaves the previous file whole)."""
    import io as stdio

    import torch

    buf = stdio.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


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


#: how far before the end of the file the end marker (JPEG EOI, PNG IEND) is
#: looked for first: encoders pad, some append a short trailer. A file whose
#: marker is not there is walked from its start (:func:`jpeg_end`, :func:`png_end`).
_END_MARKER_SLACK = 1024


def truncation(data: bytes | memoryview) -> str | None:
    """Why an encoded JPEG or PNG is cut short, or ``None`` if it ends properly.

    OpenCV decodes a truncated JPEG or PNG without an error (the missing rows
    come out grey or black), so the end marker is checked on the bytes before
    decoding: a JPEG (``FF D8``) must hold the EOI marker ``FF D9`` that ends
    its image, a PNG its ``IEND`` chunk. Other formats are not checked.

    Bytes after the end marker are not truncation: cameras and phones append
    a second image (MPF) or a video (motion photos), downloads and tools add
    trailers; the decoder stops at the marker. The usual file has its marker
    in its last KiB, found at no cost (entropy-coded data cannot hold
    ``FF D9``: ``FF`` is stuffed as ``FF 00``); only a file whose marker is not
    there is walked segment by segment (:func:`jpeg_end`, :func:`png_end`).
    """
    head = bytes(data[:8])
    tail = bytes(data[-_END_MARKER_SLACK:])
    if head[:2] == b"\xff\xd8":
        if b"\xff\xd9" in tail or jpeg_end(data) is not None:
            return None
        return "JPEG has no end-of-image marker (file truncated)"
    if head == b"\x89PNG\r\n\x1a\n":
        if b"IEND" in tail or png_end(data) is not None:
            return None
        return "PNG has no IEND chunk (file truncated)"
    return None


#: JPEG markers that stand alone (no length field): TEM, RST0-7, SOI
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8), 0xD8])


def jpeg_end(data: bytes | memoryview) -> int | None:
    r"""The offset just past the EOI marker that ends a JPEG's image, or ``None`` (cut short).

    Walks the file as a decoder reads it: from SOI, each marker segment is
    skipped by its length (so an EXIF thumbnail's own EOI inside ``APP1`` is
    not taken for the image's), and after each SOS the entropy-coded data runs
    to the next marker (``FF`` followed by anything but ``00`` stuffing,
    ``FF`` fill or a restart marker). Whatever follows the EOI is not looked at.

    >>> jpeg_end(b"\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34\xff\xd9trailer")
    12
    >>> jpeg_end(b"\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34") is None
    True
    """
    import numpy as np

    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf)
    # every place where a marker may start, found at once: FF, then a code other
    # than 00 (stuffing), FF (fill) and D0-D7 (restarts, inside entropy-coded data)
    ff = np.flatnonzero(buf[:-1] == 0xFF)
    code = buf[ff + 1]
    markers = ff[(code != 0x00) & (code != 0xFF) & ((code < 0xD0) | (code > 0xD7))]
    pos, scan = 2, False  # after SOI; scan: inside entropy-coded data
    while True:
        if scan:  # the scan's data runs to the next marker
            i = int(np.searchsorted(markers, pos))
            if i == len(markers):
                return None
            pos, scan = int(markers[i]), False
        while pos < n and buf[pos] == 0xFF and pos + 1 < n and buf[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n or buf[pos] != 0xFF:
            return None  # cut short, or not a marker where one must be
        marker = int(buf[pos + 1])
        if marker == 0xD9:
            return pos + 2
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return None
        pos += 2 + (int(buf[pos + 2]) << 8 | int(buf[pos + 3]))
        if pos > n:
            return None
        scan = marker == 0xDA  # SOS: its header, then entropy-coded data


def png_end(data: bytes | memoryview) -> int | None:
    r"""The offset just past a PNG's ``IEND`` chunk, walking its chunks, or ``None`` (cut short).

    >>> png_end(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x00IEND\xaeB`\x82" + b"trailer")
    20
    """
    view = memoryview(data).cast("B")
    n, pos = len(view), 8
    while pos + 12 <= n:
        length = int.from_bytes(view[pos : pos + 4], "big")
        if bytes(view[pos + 4 : pos + 8]) == b"IEND":
            return pos + 12
        pos += 12 + length  # length, type, data, CRC
    return None


def _file_kind(mode: int) -> str:
    """What a non-regular file is, for a message (``a FIFO``, ``a folder`` ...)."""
    import stat

    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


@contextlib.contextmanager
def open_regular(path: Path, what: str = "file") -> Iterator[IO[bytes]]:
    """Open ``path`` for binary reading only if it is a regular file (symlinks followed).

    A FIFO, socket or device given as a frame or an annotation file would block a
    read forever (a FIFO's ``open`` waits for a writer) or never end: it is
    refused after a ``stat``, without being opened; the file is then opened
    non-blocking and checked again on its descriptor, so that one swapped in
    between cannot block either.

    Raises:
        AnnotationError: ``path`` is missing, not a regular file, or cannot be
            opened (the message names ``what`` and ``path``).
    """
    import stat

    from box2mask.errors import AnnotationError

    def refuse(mode: int) -> AnnotationError:
        return AnnotationError(f"{what} is {_file_kind(mode)}, not a regular file; not read", path)

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AnnotationError(f"{what} is missing", path) from None
    except OSError as exc:
        raise AnnotationError(f"{what} cannot be read ({exc.strerror or exc})", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(st.st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise AnnotationError(f"{what} cannot be read ({exc.strerror or exc})", path) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise refuse(mode)
    with os.fdopen(fd, "rb") as fh:
        yield fh


#: the image formats a frame's header is read as (PIL's names for what OpenCV decodes:
#: box2mask's frame suffixes jpg, png, bmp, tif, and webp, JPEG 2000 and PNM that COCO files
#: can name)
FRAME_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "JPEG2000", "PPM")


def header_size(fh: IO[bytes]) -> tuple[int, int]:
    """``(width, height)`` from an open image file's header (nothing decoded).

    Tries PIL's own openers of :data:`FRAME_FORMATS` as ``PIL.Image.open`` does, but
    not through ``PIL.Image.open``, which other packages replace in the process
    (ultralytics swaps in a version that tries to install a HEIF plugin on any file
    it cannot identify: a text file named ``.jpg`` then read as a missing module).

    Raises:
        PIL.UnidentifiedImageError: no format's header fits.
    """
    from PIL import Image, UnidentifiedImageError

    Image.init()  # registers the TIFF, WEBP and JPEG 2000 openers
    prefix = fh.read(16)
    for name in FRAME_FORMATS:
        opener = Image.OPEN.get(name)
        if opener is None:
            continue
        factory, accept = opener
        if accept is not None and not accept(prefix):
            continue
        fh.seek(0)
        try:
            im = factory(fh, "")
        except (SyntaxError, IndexError, TypeError, ValueError, OSError):
            continue
        return im.size
    raise UnidentifiedImageError("no known image header")


def check_frame_file(path: Path, image_hw: tuple[int, int] | None = None) -> None:
    """Check a frame whose pixels are not needed (every object box-filled) without
    decoding it: a regular, non-empty file whose header is an image's (PIL reads
    the header only) of size ``image_hw`` when given. A 0-byte frame, a text file
    named ``.jpg`` or a FIFO is bad input whether or not it is decoded.

    Raises:
        AnnotationError: as :func:`read_image` (names the file).
    """
    from PIL import UnidentifiedImageError

    from box2mask.errors import AnnotationError

    with open_regular(path, "frame image") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise AnnotationError("frame image is an empty file", path)
        try:
            w, h = header_size(fh)
        except UnidentifiedImageError:
            raise AnnotationError(
                "frame image cannot be decoded (not an image: no known image header)", path
            ) from None
        except Exception as exc:  # PIL raises many types for corrupt headers
            raise AnnotationError(f"frame image cannot be read ({exc})", path) from None
    if image_hw is not None and (h, w) != tuple(image_hw):
        raise AnnotationError(
            f"image is {h}x{w} (HxW) but the annotation says {image_hw[0]}x{image_hw[1]}", path
        )


def imread(path: Path, flags: int | None = None) -> np.ndarray | None:
    """``cv2.imread`` for any path: the file is read by Python and decoded from memory.

    OpenCV's own file functions crash the process (segmentation fault) on a path
    holding bytes that are not UTF-8 (a folder of a dataset named in another
    encoding: Python gives them as lone surrogates). ``flags`` defaults to
    ``cv2.IMREAD_COLOR``; ``None`` when the file cannot be read or decoded.
    """
    import cv2
    import numpy as np

    from box2mask.errors import AnnotationError

    try:  # a FIFO or device is refused unopened (open_regular), never read
        with open_regular(Path(path), "image") as fh:
            data = np.frombuffer(fh.read(), dtype=np.uint8)
    except (AnnotationError, OSError, ValueError):
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags)


def write_png_file(path: Path, image: np.ndarray) -> bool:
    """``cv2.imwrite`` of a PNG for any path (see :func:`imread`), atomically; False when
    OpenCV cannot encode ``image``."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        return False
    atomic_write_bytes(Path(path), buf.tobytes())
    return True


def read_image(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB uint8.

    The file is read once and decoded from memory; a truncated JPEG or PNG
    (see :func:`truncation`) is refused rather than decoded into a partial
    image.

    Raises:
        AnnotationError: the file is missing, not a regular file (a FIFO is not
            opened), truncated or cannot be decoded (names the file).
    """
    import cv2
    import numpy as np

    from box2mask.errors import AnnotationError

    path = Path(path)
    with open_regular(path, "frame image") as fh:  # a FIFO or device is refused, not opened
        data = np.frombuffer(fh.read(), dtype=np.uint8)
    if data.size == 0:
        raise AnnotationError("frame image is an empty file", path)
    cut = truncation(memoryview(data))
    if cut is not None:
        raise AnnotationError(f"frame image cannot be read: {cut}", path)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise AnnotationError("frame image cannot be decoded (corrupt or not an image)", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sha256_file(path: Path | str, progress: Callable[[int, int], None] | None = None) -> str:
    """The lowercase hex sha256 of a file; of a folder, of its files one after the other.

    The one sha256 helper of box2mask (a checkpoint's hash in the job
    identity, a training run's base weights, ``weights verify``). A folder
    (the authors' checkpoint folder) is hashed as its files' bytes in sorted
    path order. Read in 1 MiB chunks; ``progress(done, total)`` is called
    after each with the bytes read so far and in all.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    total = sum(p.stat().st_size for p in files)
    h = hashlib.sha256()
    done = 0
    for p in files:
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    return h.hexdigest()
