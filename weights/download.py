"""Download and verify checkpoint files (standard library only: urllib, hashlib).

A download streams into ``<dest>/<file>.part``, resumes a partial file with an
HTTP ``Range`` request, checks size and sha256, then fsyncs and renames the file
into place, so ``<dest>/<file>`` is either absent or complete and verified.

- A server that answers a ``Range`` request with ``200`` (ignores it) is read
  from byte 0 and the partial file is overwritten.
- A transfer cut short leaves the ``.part`` file; running again resumes it.
- A complete file with the wrong sha256 is not installed. The ``.part`` file is
  kept for inspection, and the next download starts over instead of resuming
  onto it (it is already full size, there is nothing left to fetch).
- ``BOX2MASK_WEIGHTS_MIRROR`` (or the ``mirror`` argument) replaces the
  publisher's URL with ``<mirror>/<file name>``, for air-gapped sites and tests.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from box2mask.weights.catalog import CATALOG, Catalog, WeightsEntry
from box2mask.weights.resolve import default_download_dir

from box2mask.errors import CheckpointError, UsageError
from box2mask.io import fsync_dir, sha256_file

try:  # POSIX only: an advisory lock keeps two downloads off one .part file.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``, called as bytes arrive or are hashed."""

MIRROR_ENV = "BOX2MASK_WEIGHTS_MIRROR"
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


def verify_file(path: str | Path, entry: WeightsEntry, progress: Progress | None = None) -> None:
    """Check that ``path`` is ``entry``'s file: size first (free), then sha256.

    Raises:
        CheckpointError: the file is missing, has another size, or another sha256;
            the message gives both values and the hash's source.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    size = path.stat().st_size
    if size != entry.size:
        raise CheckpointError(
            f"{path} has {size} bytes, {entry.name} has {entry.size}: incomplete or another file"
        )
    digest = sha256_file(path, progress)
    if digest != entry.sha256:
        raise CheckpointError(
            f"{path}: sha256 {digest} does not match {entry.name}'s {entry.sha256} "
            f"({entry.sha256_source}): the file is corrupt or another file"
        )


def source_url(entry: WeightsEntry, mirror: str | None = None) -> str:
    """The URL to fetch ``entry`` from: ``<mirror>/<file name>`` if a mirror is given
    (argument, else ``$BOX2MASK_WEIGHTS_MIRROR``), else ``entry.url``."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if mirror is None:
        return entry.url
    if urlparse(mirror).scheme not in ("http", "https"):
        raise UsageError(f"weights mirror {mirror!r} (${MIRROR_ENV}) must be an http(s) URL")
    return mirror.rstrip("/") + "/" + entry.file_name


def download(
    name: str | WeightsEntry,
    dest_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
    mirror: str | None = None,
    catalog: Catalog | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch a registry file into ``dest_dir`` and return its verified path.

    Args:
        name: a registry name (``"sam-vit-b"``) or an entry.
        dest_dir: target directory (created if needed); default
            :func:`~box2mask.weights.resolve.default_download_dir`.
        progress: called with ``(bytes done, total bytes)``; on resume "done"
            starts at the size of the partial file.
        mirror: base URL that replaces the publisher's (see :func:`source_url`).
        catalog: registry for name lookups (default :data:`CATALOG`).
        timeout: seconds to wait for the server on connect and on each read.

    Returns:
        ``dest_dir / entry.file_name``. If it already exists and verifies,
        nothing is downloaded; if it exists and does not verify, it is
        replaced once a good copy has been downloaded.

    Raises:
        CheckpointError: HTTP error (names the URL and status), network error,
            interrupted transfer (the ``.part`` file is kept; run again to
            resume), wrong size or sha256 (the file is not installed), or
            another process downloading the same file.
    """
    entry = name if isinstance(name, WeightsEntry) else (catalog or CATALOG).entry(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else default_download_dir()
    url = source_url(entry, mirror)
    final = dest / entry.file_name
    part = dest / (entry.file_name + ".part")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the weights directory {dest}: {e}") from e

    if final.is_file():
        try:
            verify_file(final, entry, progress)
            return final
        except CheckpointError:
            pass  # a bad copy in place: download a good one and replace it.

    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as f:
        _lock(f, part)
        digest = _fetch_into(f, entry, url, part, progress, timeout)
        if digest != entry.sha256:
            raise CheckpointError(
                f"download of {url} has sha256 {digest}, expected {entry.sha256} "
                f"({entry.sha256_source}); the file was NOT installed. The download is kept "
                f"at {part} for inspection; the next download of {entry.name} starts over"
            )
        f.flush()
        os.fsync(f.fileno())
        os.replace(part, final)
    fsync_dir(dest)
    return final


def _fetch_into(
    f: BinaryIO,
    entry: WeightsEntry,
    url: str,
    part: Path,
    progress: Progress | None,
    timeout: float,
) -> str:
    """Complete the partial file ``f`` from ``url``; return the whole file's sha256."""
    have = os.fstat(f.fileno()).st_size
    if have >= entry.size:
        # Already full size (a finished download that failed its hash or was never
        # renamed) or oversized: hash it; a good one is installed without a request,
        # a bad one is fetched again from the start instead of being resumed forever.
        h = _hash_prefix(f, have)
        if have == entry.size and h.hexdigest() == entry.sha256:
            return h.hexdigest()
        have = 0
    h = _hash_prefix(f, have)

    response = _open(url, have, timeout)
    try:
        status = response.status
        if have > 0 and status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                # Content-Range must begin where we asked; anything else cannot be appended.
                raise CheckpointError(
                    f"download of {url}: asked for bytes from {have}, the server sent "
                    f"Content-Range {response.headers.get('Content-Range')!r}; delete {part} "
                    f"and try again"
                )
        elif status == 200:
            # No Range asked, or the server ignored it and sends the whole file.
            have = 0
            h = hashlib.sha256()
        else:
            raise CheckpointError(f"download of {url} failed: unexpected HTTP status {status}")
        f.seek(have)
        f.truncate(have)
        done = have
        if progress is not None:
            progress(done, entry.size)
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise _interrupted(url, part, done, entry, e) from e
            if not chunk:
                break
            done += len(chunk)
            if done > entry.size:
                raise CheckpointError(
                    f"download of {url}: the server sent more than the expected {entry.size} "
                    f"bytes; it does not serve {entry.name} (check the URL or mirror)"
                )
            f.write(chunk)
            h.update(chunk)
            if progress is not None:
                progress(done, entry.size)
    finally:
        response.close()
        f.flush()
    if done < entry.size:
        raise _interrupted(url, part, done, entry, None)
    return h.hexdigest()


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    from box2mask import __version__

    headers = {"User-Agent": f"box2mask/{__version__}", "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            # The partial file reaches past what the server has: start over.
            e.close()
            return _open(url, 0, timeout)
        e.close()
        raise CheckpointError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise CheckpointError(f"download of {url} failed: {e.reason}") from e
    except (TimeoutError, OSError, http.client.HTTPException) as e:
        raise CheckpointError(f"download of {url} failed: {e}") from e


def _range_start(content_range: str) -> int | None:
    m = _CONTENT_RANGE.match(content_range.strip())
    return int(m.group(1)) if m else None


def _hash_prefix(f: BinaryIO, n: int) -> hashlib._Hash:
    """sha256 state after the first ``n`` bytes of ``f`` (so a resume hashes each byte once)."""
    h = hashlib.sha256()
    f.seek(0)
    left = n
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h


def _interrupted(
    url: str, part: Path, done: int, entry: WeightsEntry, cause: BaseException | None
) -> CheckpointError:
    why = f" ({cause})" if cause is not None else ""
    return CheckpointError(
        f"download of {url} was interrupted after {done} of {entry.size} bytes{why}; "
        f"the partial file {part} is kept: run `box2mask weights download {entry.name}` "
        f"again to resume"
    )


def _lock(f: BinaryIO, part: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        raise CheckpointError(
            f"{part} is being written by another download; wait for it to finish"
        ) from e
