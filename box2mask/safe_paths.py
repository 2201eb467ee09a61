"""Names from the data as safe relative paths under ``--out`` (DESIGN §8; docs/jobs.md).

A dataset gives the names box2mask builds output paths from: a COCO image's
``sequence`` and ``file_name``, MOT / VISO / SatSOT / SAT-MTB / OOTB folder
names. Any of them may be ``..``, empty, absolute, 300 bytes long, hold a
newline, a NUL or bytes that are not UTF-8. Every output path is built from
such a name only through this module (and :mod:`box2mask.layout`, which uses
it), so nothing is ever written outside ``--out``.

One component, :func:`safe_component`:

- ``%`` (the escape character itself), ``/``, ``\\``, the C0 and C1 control
  characters and DEL (NUL, tab, newline, ...) are written as ``%XX``, the
  bytes of their UTF-8 form (``a/b`` -> ``a%2Fb``, a newline -> ``%0A``);
- a lone surrogate is escaped too: ``U+DC80``..``U+DCFF`` stands for a byte
  of a file name that is not UTF-8 (Python's ``surrogateescape``) and is
  written as that byte, ``%FF``; any other one (a JSON ``"\\ud800"``) as its
  three bytes (``%ED%A0%80``); UTF-8 cannot hold them;
- the empty name is ``%``, ``.`` is ``%2E`` and ``..`` is ``%2E%2E``;
- a name longer than :data:`COMPONENT_MAX` bytes keeps its first bytes and
  ends in ``~`` and 16 hex digits of its SHA-256, so that file systems' 255
  byte limit holds with room for suffixes (``.png``, ``@2``, the temporary
  names of atomic writes).

Everything else (letters of any script, spaces, markup) is kept as it is.
The mapping is a pure function of the name, so a resumed run, each shard and
``box2mask merge`` agree without talking to each other; the job records the
names it changed in ``job.json`` (``sequence_dirs``). It is one-to-one
except where a hash was cut, and :func:`check_unique` refuses two names that
meet.

A sequence name is a relative path: :func:`safe_relpath` maps each ``/``
separated component, so ``car/001`` stays ``car/001`` (nested folders, as
the datasets have them) and ``../../x`` becomes ``%2E%2E/%2E%2E/x``; a path
longer than :data:`RELPATH_MAX` bytes becomes one hashed component.
Top-level names of box2mask's own (:data:`RESERVED`: ``.box2mask``, the
formats' files and folders) get their first character escaped, so a sequence
named ``davis`` cannot mix its PNGs into the DAVIS output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from box2mask.errors import UsageError

#: bytes one mapped component may take: the common 255-byte limit of a file name, less room
#: for what box2mask appends (``.json``, ``@2``, ``.<name>.<8 random>.tmp`` of atomic writes)
COMPONENT_MAX = 200
#: bytes a mapped relative path (a sequence's folder) may take; longer ones are one component
RELPATH_MAX = 1024
#: what ``--out`` may take, so that ``--out/<sequence>/<frame>.json`` stays under PATH_MAX
OUT_MAX = 4096 - RELPATH_MAX - 2 * 256
#: a file name's byte limit where the file system does not say (ext4, xfs, btrfs, NTFS)
NAME_MAX = 255

#: top-level names under ``--out`` that box2mask itself uses (the job's state folder and
#: the outputs of the formats assembled at the end); compared case-insensitively
RESERVED = frozenset(
    {".box2mask", "annotations.json", "davis", "mots", "yolo", "ytvis.json"}
    # the files of each --split (box2mask.split.SPLIT_NAMES), beside the two above
    | {
        f"{base}_{split}.json"
        for base in ("annotations", "ytvis")
        for split in ("train", "val", "test")
    }
)

_HASH = 16  # hex digits of the SHA-256 kept in a cut name


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"%{o - 0xDC00:02X}"
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def _needs_escape(ch: str) -> bool:
    o = ord(ch)
    return (
        ch in "%/\\" or o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF  # controls, DEL
    )


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut(escaped: str, name: str, limit: int) -> str:
    """``escaped`` cut to ``limit`` bytes with ``~`` and a hash of ``name`` at the end."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH]
    room = limit - 1 - _HASH
    head = escaped.encode("utf-8")[:room].decode("utf-8", "ignore")  # whole characters
    pct = head.rfind("%", max(0, len(head) - 2))
    if pct >= 0:  # never half an escape: "%2" would read as a different character
        head = head[:pct]
    return f"{head}~{digest}"


def safe_component(name: str, reserved: Iterable[str] = (), limit: int = COMPONENT_MAX) -> str:
    """One dataset-given name as one safe file or folder name (the rules in the module doc).

    Args:
        name: any string (lone surrogates included).
        reserved: names to keep clear of (case-insensitive): their first character is escaped.
        limit: the most UTF-8 bytes the result may take.

    >>> safe_component("car_001"), safe_component(".."), safe_component("")
    ('car_001', '%2E%2E', '%')
    >>> safe_component("a/b\\n%"), safe_component("x\\udcffy")
    ('a%2Fb%0A%25', 'x%FFy')
    >>> safe_component("davis", reserved=RESERVED)
    '%64avis'
    >>> len(safe_component("L" * 300).encode()), safe_component("L" * 300)[-17:-16]
    (200, '~')
    """
    out = "".join(_escape_char(c) if _needs_escape(c) else c for c in name)
    if out in ("", ".", ".."):
        out = {"": "%", ".": "%2E", "..": "%2E%2E"}[out]
    elif out.casefold() in {r.casefold() for r in reserved}:
        out = _escape_char(out[0]) + out[1:]
    if _utf8_len(out) > limit:
        out = _cut(out, name, limit)
    return out


def safe_relpath(name: str, reserved: Iterable[str] = RESERVED) -> str:
    """A dataset-given path-like name (a sequence) as a safe posix path relative to ``--out``.

    Each ``/``-separated component goes through :func:`safe_component` (the first one
    kept clear of ``reserved``); the result has no empty, ``.`` or ``..`` component, is
    never absolute, and takes at most :data:`RELPATH_MAX` bytes (a longer one is mapped
    as a single component, ``/`` escaped).

    >>> safe_relpath("car/001"), safe_relpath("../../ESC1"), safe_relpath("/abs/x")
    ('car/001', '%2E%2E/%2E%2E/ESC1', '%/abs/x')
    >>> safe_relpath("."), safe_relpath(""), safe_relpath("a//b/")
    ('%2E', '%', 'a/%/b/%')
    """
    parts = name.split("/")
    mapped = [safe_component(p, reserved if k == 0 else ()) for k, p in enumerate(parts)]
    rel = "/".join(mapped)
    if _utf8_len(rel) > RELPATH_MAX:
        rel = safe_component(name, reserved)
    return rel


def check_unique(mapping: dict[str, str], what: str) -> None:
    """Refuse two names that map to one path (``mapping``: name -> mapped path).

    Args:
        what: what the names are, for the message (``"sequences"``).

    Raises:
        UsageError: names both names and the path they share.
    """
    seen: dict[str, str] = {}
    for name, path in mapping.items():
        if path in seen and seen[path] != name:
            raise UsageError(
                f"{what} {seen[path]!r} and {name!r} both map to the path {path!r} under --out "
                "(names are made safe for the file system; docs/jobs.md); rename one of them "
                "or convert them in separate jobs"
            )
        seen[path] = name


def check_relpath(rel: object) -> PurePosixPath:
    """A recorded path (a job manifest's entry) as a relative path with only plain components.

    Raises:
        ValueError: ``rel`` is not a string, is empty or absolute, or has an empty, ``.``
            or ``..`` component or a NUL.
    """
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise ValueError("not a non-empty string")
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("not a plain relative path")
    return PurePosixPath(rel)


def resolve_inside(out: Path, rel: object) -> Path:
    """``out / rel`` for deleting: ``rel`` passes :func:`check_relpath` and the folder it
    is in, symbolic links resolved, is ``out`` or inside it (the entry itself may be a link:
    deleting it removes the link only).

    Raises:
        ValueError: why ``rel`` is refused.
    """
    path = Path(out) / check_relpath(rel)
    real_out = Path(os.path.realpath(out))
    real_parent = Path(os.path.realpath(path.parent))
    if not real_parent.is_relative_to(real_out):
        raise ValueError(f"its folder is {real_parent}, outside {real_out} (a symbolic link)")
    return path


def check_out_path(out: Path, option: str = "--out") -> None:
    """``out`` can name the files box2mask writes inside it, else a :class:`UsageError`.

    Refused: a component longer than the file system's name limit (``ENAMETOOLONG``
    otherwise, after the adapter has read the dataset), a path so long that
    ``out/<sequence>/<frame>.json`` would pass ``PATH_MAX``, and characters the file
    system cannot take (NUL; lone surrogates that are not a file name's undecodable bytes).
    """
    text = os.fspath(out)
    if "\0" in text:
        raise UsageError(f"{option} {text!r}: a path cannot hold a NUL character")
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise UsageError(
            f"{option} {shown}: holds characters no file name can (lone surrogates)"
        ) from None
    limit = _name_max(Path(text))
    for part in raw.split(b"/"):
        if len(part) > limit:
            shown = os.fsdecode(part)[:40]
            raise UsageError(
                f"{option} {text}: the name {shown!r}... is {len(part)} bytes, over the "
                f"file system's {limit}-byte limit for a file or folder name"
            )
    absolute = len(os.fsencode(os.path.abspath(text)))
    if absolute > OUT_MAX:
        raise UsageError(
            f"{option} {text}: the path is {absolute} bytes; box2mask needs it at most "
            f"{OUT_MAX} bytes, to name the files it writes inside (the limit is 4096)"
        )


def _name_max(path: Path) -> int:
    """The file-name byte limit of the nearest existing folder of ``path`` (255 if unknown)."""
    for parent in (path, *path.parents):
        try:
            if parent.is_dir():
                return int(os.pathconf(parent, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return NAME_MAX
