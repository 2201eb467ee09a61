"""Where checkpoints live, and how ``--checkpoint`` is turned into a file.

Search order for a registry name (``--checkpoint sam-vit-b``, or no
``--checkpoint`` at all), first hit wins:

1. ``$BOX2MASK_HOME/weights/`` (only when ``BOX2MASK_HOME`` is set);
2. ``$XDG_CACHE_HOME/box2mask/weights/``, which is ``~/.cache/box2mask/weights/``
   when ``XDG_CACHE_HOME`` is not set.

``box2mask weights download`` writes to the first of these directories.
A ``--checkpoint`` that is an existing path is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from box2mask.weights.catalog import CATALOG, Catalog, WeightsEntry

from box2mask.errors import CheckpointError, UsageError


def search_dirs() -> list[Path]:
    """The directories searched for registry files, in order (see the module docstring).

    Read from the environment at each call, so a changed ``BOX2MASK_HOME`` is seen.
    """
    dirs: list[Path] = []
    home = os.environ.get("BOX2MASK_HOME")
    if home:
        dirs.append(Path(home).expanduser() / "weights")
    cache = os.environ.get("XDG_CACHE_HOME")
    cache_root = Path(cache).expanduser() if cache else Path.home() / ".cache"
    dirs.append(cache_root / "box2mask" / "weights")
    return dirs


def default_download_dir() -> Path:
    """Where ``box2mask weights download`` puts files: the first of :func:`search_dirs`."""
    return search_dirs()[0]


def find_local(entry: WeightsEntry, dirs: Sequence[Path] | None = None) -> Path | None:
    """The first ``<dir>/<entry.file_name>`` that exists, or ``None``.

    Only looks for the file; use :func:`box2mask.weights.verify_file` to check it.
    """
    for d in search_dirs() if dirs is None else dirs:
        candidate = Path(d) / entry.file_name
        if candidate.is_file():
            return candidate
    return None


def how_to_get(entry: WeightsEntry, dirs: Sequence[Path] | None = None) -> str:
    """Lines telling the user how to get ``entry``'s file and where to put it."""
    dirs = search_dirs() if dirs is None else list(dirs)
    return (
        f"Get it with:   box2mask weights download {entry.name}\n"
        f"or download:   {entry.url} ({human_size(entry.size)})\n"
        f"and put it in: {dirs[0]}/\n"
        f"(or pass the file's path with --checkpoint PATH)"
    )


def resolve_checkpoint(
    name_or_path: str | Path | None,
    model: str,
    *,
    catalog: Catalog | None = None,
    dirs: Sequence[Path] | None = None,
) -> Path:
    """Turn a ``--checkpoint`` value into an existing file or folder.

    Args:
        name_or_path: an existing path (used as is: a checkpoint file or an
            authors' training folder), a registry name (``"sam-vit-b"``, looked
            up by its file name in ``dirs``), or ``None`` for the model's
            default weights (the first of ``MODELS.get(model).default_weights``
            found in ``dirs``, in that order).
        model: the ``--model`` name, used only when ``name_or_path`` is ``None``.
            A registry name of another kind (``hq-sam-vit-b`` for ``--model
            sam``) is resolved all the same: the loader inspects the tensors
            and gives the "use --model hq-sam" message (and ``--model auto``
            relies on any kind resolving).
        catalog: the registry to look names up in (default :data:`CATALOG`).
        dirs: directories to search (default :func:`search_dirs`).

    Returns:
        The path of the checkpoint. For a registry name the file's size is
        checked (cheap); its sha256 is not (``box2mask weights verify`` does).

    Raises:
        CheckpointError: nothing found; the message names the file to get, its
            URL, the directory to put it in and the download command, or, for
            a path, the path and the places searched.
        UsageError: ``model`` is unknown or needs no checkpoint.
    """
    catalog = CATALOG if catalog is None else catalog
    dirs = search_dirs() if dirs is None else [Path(d) for d in dirs]

    if name_or_path is None:
        return _resolve_default(model, catalog, dirs)

    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if isinstance(name_or_path, str) and text in catalog:
        entry = catalog[text]
        _check_loadable(entry)
        found = find_local(entry, dirs)
        if found is None:
            raise CheckpointError(
                f"checkpoint {entry.name!r} ({entry.file_name}) was not found in "
                f"{_listing(dirs)}.\n" + how_to_get(entry, dirs)
            )
        _check_size(found, entry)
        return found
    searched = "\n".join(f"    {d}/" for d in dirs)
    raise CheckpointError(
        f"checkpoint {text!r} does not exist: it is neither a file or folder, nor a weights "
        f"name (known names: {', '.join(catalog)}); weights names are searched in\n{searched}"
    )


def _resolve_default(model: str, catalog: Catalog, dirs: Sequence[Path]) -> Path:
    from box2mask.models.registry import MODELS

    spec = MODELS.get(model)
    if not spec.needs_checkpoint:
        raise UsageError(f"model {model!r} needs no checkpoint")
    names = [n for n in spec.default_weights if n in catalog]
    if not names:
        raise CheckpointError(
            f"model {model!r} has no official weights to fall back on; pass --checkpoint PATH"
            + (
                " (a file written by `box2mask train`, or the authors' training folder)"
                if model == "ros-sam"
                else ""
            )
        )
    for name in names:
        found = find_local(catalog[name], dirs)
        if found is not None:
            _check_size(found, catalog[name])
            return found
    first = catalog[names[0]]
    others = ", ".join(names[1:])
    raise CheckpointError(
        f"no checkpoint for --model {model}: none of "
        f"{', '.join(catalog[n].file_name for n in names)} is in {_listing(dirs)}.\n"
        + how_to_get(first, dirs)
        + (f"\n(also accepted: {others})" if others else "")
    )


def _listing(dirs: Sequence[Path]) -> str:
    return " or ".join(f"{d}/" for d in dirs)


def _check_loadable(entry: WeightsEntry) -> None:
    if not entry.loadable:
        raise CheckpointError(f"{entry.name} cannot be used: {entry.note}")


def _check_size(path: Path, entry: WeightsEntry) -> None:
    # A truncated copy would fail deep inside torch.load with an unhelpful message.
    size = path.stat().st_size
    if size != entry.size:
        raise CheckpointError(
            f"{path} has {size} bytes but {entry.name} has {entry.size}: the file is incomplete "
            f"or a different file; delete it and run `box2mask weights download {entry.name}`"
        )


def human_size(n: int) -> str:
    """``375042383`` → ``"375.0 MB"`` (decimal units, as download pages give them)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"
