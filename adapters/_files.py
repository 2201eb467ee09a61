"""The adapters' toolkit for a dataset's files: frame images, name order, image sizes, categories.

One way, used by every adapter, to:

- list the frame images of a folder: :func:`list_frame_images` (the file
  stem is the frame number: VISO, SatSOT, OOTB), :func:`scan_frames` with a
  name pattern (:func:`printf_regex`, :data:`FRAME_IMAGE`: mot, satmtb);
  image files are those with a suffix in :data:`IMAGE_SUFFIXES` (any case);
- list sub-folders (:func:`subfolders`, hidden ones left out on request) and
  say what a folder holds in an error message (:func:`folder_listing`);
- order names naturally (:func:`natural_key`: ``car_2`` before ``car_10``);
- read an image's size from its header, cached (:func:`image_hw`), and the
  size of a sequence from its first readable frame (:func:`first_image_hw`);
- map dataset class names onto the shared categories
  (:data:`SHARED_CATEGORIES`, :func:`shared_category`) and declare the shared
  categories followed by a dataset's own (:func:`with_shared`).

Hidden files need no rule of their own in frame listings: a name such as
``._000001.jpg`` (macOS metadata) has no number for a stem and is not a
frame; :func:`subfolders` leaves out hidden folders where asked.

Two category tables stay with their adapters on purpose: COCO keeps a user's
category names as written except the airplane synonyms
(``coco.CATEGORY_ALIASES``), and SAT-MTB maps its fine classes onto coarse ones
(``satmtb.FINE_TO_COARSE``); folding them into :data:`CATEGORY_ALIASES` would
rename categories in their outputs (``vehicle`` would become ``car``).

Nothing here reports by itself: the callers word their own reports (the
messages are part of each adapter's behaviour), through callbacks where a
loop needs one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from box2mask.errors import AnnotationError

# -- image files ----------------------------------------------------------------

#: Suffixes of frame image files (compared lower-cased).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

#: A frame image named by its number alone (``000001.png``, any suffix of
#: :data:`IMAGE_SUFFIXES`, any case), for :func:`scan_frames`.
FRAME_IMAGE = re.compile(
    r"(\d+)(?:" + "|".join(re.escape(s) for s in sorted(IMAGE_SUFFIXES)) + ")", re.IGNORECASE
)

_DIGITS = re.compile(r"(\d+)")


def is_image_name(name: str) -> bool:
    """Whether a file name has an image suffix (:data:`IMAGE_SUFFIXES`, any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders ``car_2`` before ``car_10``."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(name))


def list_frame_images(folder: Path) -> list[tuple[int, str]]:
    """``(frame_number, file_name)`` of the images in ``folder``, by frame number.

    The frame number is the integer value of the file stem (``000012.jpg`` →
    12); files whose stem is not a number, and non-image files, are ignored.
    One directory scan, no file is opened. A missing folder gives ``[]``.
    """
    out: list[tuple[int, str]] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return out
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit():
            out.append((int(stem), entry.name))
    out.sort()
    return out


def count_frame_images(folder: Path) -> int:
    """How many frame images ``folder`` holds (see :func:`list_frame_images`)."""
    return len(list_frame_images(folder))


def printf_regex(pattern: str) -> re.Pattern[str]:
    """A regex for file names made by a printf pattern with one integer field.

    ``%06d.jpg`` matches ``000001.jpg`` (group 1 = the number); ``%d`` and
    ``%0Nd``/``%Nd`` are accepted; ``%%`` is a literal ``%``.

    >>> printf_regex("img%04d.png").fullmatch("img0012.png").group(1)
    '0012'

    Raises:
        ValueError: the pattern has no integer field, or more than one.
    """
    fields = list(re.finditer(r"%(0?)(\d*)d", pattern.replace("%%", "\0")))
    if len(fields) != 1:
        raise ValueError(f"frame pattern {pattern!r} must hold exactly one %d field (such as %06d)")
    f = fields[0]
    text = pattern.replace("%%", "\0")
    width = f.group(2)
    if f.group(1) == "0" and width:
        num = rf"(\d{{{width}}}|\d{{{int(width) + 1},}})"
    else:
        num = r"\s*(\d+)"
    before = re.escape(text[: f.start()].replace("\0", "%"))
    after = re.escape(text[f.end() :].replace("\0", "%"))
    return re.compile(before + num + after)


def scan_frames(folder: Path, regex: re.Pattern[str]) -> dict[int, str]:
    """``{frame number: file name}`` of the files in ``folder`` whose names match ``regex``.

    Group 1 of the match is the number; of two names with the same number the
    first in name order is kept. One directory listing, no per-file stat. A
    missing folder gives ``{}``.
    """
    try:
        names = [e.name for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[int, str] = {}
    for name in sorted(names):
        m = regex.fullmatch(name)
        if m:
            out.setdefault(int(m.group(1)), name)
    return out


# -- folders ----------------------------------------------------------------------


def subfolders(
    folder: Path | str,
    *,
    hidden: bool = True,
    key: Callable[[str], object] = natural_key,
) -> list[os.DirEntry[str]]:
    """The sub-folders of ``folder`` ordered by ``key`` of their names (natural order).

    ``hidden=False`` leaves out names starting with ``.``.
    """
    return [
        e
        for e in sorted(os.scandir(folder), key=lambda e: key(e.name))  # type: ignore[arg-type,return-value]
        if e.is_dir() and (hidden or not e.name.startswith("."))
    ]


def folder_listing(folder: Path, limit: int = 10) -> str:
    """What ``folder`` holds, for an error message: its first names, or ``nothing``."""
    return ", ".join(sorted(p.name for p in folder.iterdir())[:limit]) or "nothing"


# -- image sizes ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def image_hw(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header (no decode), cached per path.

    A FIFO, socket or device is refused without being opened (it would block
    the run forever), as a missing file is: :class:`AnnotationError`.
    """
    from PIL import UnidentifiedImageError

    from box2mask.io import header_size, open_regular

    with open_regular(path, "frame image") as fh:
        try:
            w, h = header_size(fh)
        except Exception as exc:  # PIL raises many types for corrupt files
            why = (
                "not an image format PIL reads" if isinstance(exc, UnidentifiedImageError) else exc
            )
            raise AnnotationError(f"cannot read image size: {why}", path) from exc
    return int(h), int(w)


def error_reason(exc: BaseException) -> str:
    """The reason of an error without the path the report adds (``frame image is missing``)."""
    if isinstance(exc, AnnotationError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def first_image_hw(
    folder: Path,
    images: Iterable[tuple[int, str | None]],
    unreadable: Callable[[int, Path, Exception], None],
) -> tuple[int, int] | None:
    """``(H, W)`` of the first image of a sequence whose header can be read, or ``None``.

    A video's frames share one size, so one header is read. Each image whose
    header cannot be read before that is passed to ``unreadable(number, path,
    error)`` (the caller reports it, and may drop the frame) and the next one
    is tried.
    """
    for k, name in list(images):
        if name is None:
            continue
        path = folder / name
        try:
            return image_hw(path)
        except (AnnotationError, OSError) as exc:
            unreadable(k, path, exc)
    return None


# -- categories -------------------------------------------------------------------

#: Category names shared across datasets, with their COCO supercategory, in the
#: order of their COCO ids (1-based). Adapters map their classes onto these so
#: that outputs of different datasets merge; other names get ids after these.
SHARED_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("airplane", "vehicle"),
    ("ship", "vessel"),
    ("train", "vehicle"),
    ("car", "vehicle"),
)

#: Class names of folders and name prefixes (VISO, SatSOT, OOTB, ROS-SAM) → shared category.
CATEGORY_ALIASES: dict[str, str] = {
    "car": "car",
    "cars": "car",
    "vehicle": "car",
    "plane": "airplane",
    "planes": "airplane",
    "airplane": "airplane",
    "aircraft": "airplane",
    "ship": "ship",
    "ships": "ship",
    "boat": "ship",
    "train": "train",
    "trains": "train",
}


def shared_category(name: str) -> str:
    """The shared category for a dataset class name (``plane`` → ``airplane``).

    Unknown names are kept (lower-cased), so a dataset's extra classes still
    come through.

    >>> shared_category("Plane"), shared_category("bus")
    ('airplane', 'bus')
    """
    key = name.strip().lower()
    return CATEGORY_ALIASES.get(key, key)


def with_shared(names: Iterable[str]) -> list[tuple[str, str]]:
    """:data:`SHARED_CATEGORIES`, then each other name of ``names`` once as ``(name, name)``."""
    cats = list(SHARED_CATEGORIES)
    known = {c for c, _ in cats}
    for name in names:
        if name not in known:
            known.add(name)
            cats.append((name, name))
    return cats
