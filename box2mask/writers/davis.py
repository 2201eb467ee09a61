"""DAVIS 2017 layout: palette PNGs whose object index is stable along a track (docs/formats.md).

``--format davis`` writes, under ``<out>/davis/``::

    JPEGImages/<video>/<stem><ext>    symbolic links (relative) to the dataset's frame images
    Annotations/<video>/<stem>.png    8-bit palette PNG ("P" mode, the DAVIS palette):
                                      0 background, k the video's k-th object
    ImageSets/all.txt                 the videos, one per line, dataset order
    ImageSets/<split>.txt             with --split: the videos of train, val (and test)
    objects.json                      per video: its sequence and index -> track id, category

``<video>`` is the sequence name with ``/`` replaced by ``_``, made safe for a
folder name (:func:`box2mask.layout.video_name`):
DAVIS readers (XMem, Cutie, SAM 2's VOS loader) take every entry of
``JPEGImages/`` as one video, so a nested ``car/001`` would read as a video
``car`` whose frames are folders. ``<stem>`` is the frame's image stem as in
the PNG writer (:func:`box2mask.layout.output_stem`).

Object indices are given in the order tracks first appear in the sequence
(frame order, then the frame's object order) and hold for the whole
sequence. A palette PNG holds 255 objects: a sequence with more tracks is
split into several videos, ``<video>`` (tracks 1-255), ``<video>@2`` (tracks
256-510), ... each with every frame of the sequence (image links and PNGs),
so that no index ever wraps; ``objects.json`` says which track is which
index of which video.

Where masks overlap the smaller object stays visible: the masks are decoded
(:func:`box2mask.masks.decode`) and painted (:func:`box2mask.masks.paint`) by
the rule every format shares (the fewest pixels inside the frame on top, ties
to the later object). A track id that occurs twice in one frame (and
category) is one object: its masks are united.

The assembly reads the job's COCO parts; it holds one sequence's parts at a
time. The sequence and track helpers here (:func:`by_sequence`,
:func:`track_order`, :func:`check_video_names`, :func:`link`) are shared with
the MOTS, YouTube-VIS and YOLO writers.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from box2mask.errors import UsageError
from box2mask.io import atomic_write_bytes
from box2mask.layout import image_suffix, output_stem, video_name
from box2mask.masks import decode, paint
from box2mask.split import Split
from box2mask.types import Frame
from box2mask.writers._json import write_json_sidecar
from box2mask.writers.base import WRITERS, AssembledWriter, Assembly

DAVIS_DIR = "davis"
#: objects one palette PNG can hold (index 0 is the background)
MAX_OBJECTS = 255

TrackKey = tuple[int, str]


def davis_palette() -> list[int]:
    """The DAVIS (PASCAL VOC) palette: 256 RGB triples, flattened (768 ints).

    Index 0 is black, 1 dark red, 2 dark green, 3 olive, ...: the colours of
    the DAVIS 2017 annotation PNGs, built by the VOC bit-spreading rule.

    >>> davis_palette()[:12]
    [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    """
    pal: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = davis_palette()


def check_video_names(sequences: Iterable[str], fmt: str) -> dict[str, str]:
    """``{sequence: video name}``; two sequences with one flat name are refused.

    Raises:
        UsageError: names both sequences and the format.
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for seq in sequences:
        name = video_name(seq)
        if name in seen and seen[name] != seq:
            raise UsageError(
                f"--format {fmt}: sequences {seen[name]!r} and {seq!r} both flatten to the "
                f"video name {name!r}; convert them in separate jobs"
            )
        seen[name] = seq
        out[seq] = name
    return out


def by_sequence(parts: Iterable[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(sequence, its parts)`` for runs of consecutive parts of one sequence (dataset order)."""
    for seq, group in itertools.groupby(parts, key=lambda p: str(p["image"]["sequence"])):
        yield seq, list(group)


def track_key(ann: dict[str, Any]) -> TrackKey:
    """A track: its id and category (a track id seen with two categories is two tracks)."""
    return (int(ann["track_id"]), str(ann["category"]))


def track_order(parts: Iterable[dict[str, Any]]) -> dict[TrackKey, int]:
    """``{track key: 0-based rank}`` in order of first appearance (frame order, then object order)."""
    order: dict[TrackKey, int] = {}
    for part in parts:
        for ann in part["annotations"]:
            order.setdefault(track_key(ann), len(order))
    return order


def part_hw(part: dict[str, Any]) -> tuple[int, int]:
    return (int(part["image"]["height"]), int(part["image"]["width"]))


def part_stem(part: dict[str, Any]) -> str:
    """The per-frame output stem of a part's frame (as the PNG and YOLO writers name it)."""
    img = part["image"]
    name = str(img["file_name"])
    frame = Frame(str(img["sequence"]), int(img["frame_index"]), name, part_hw(part), [], [], [],
                  file_name=name)  # fmt: skip
    return output_stem(frame)


def link_value(target: Path, folder: Path) -> str:
    """What a link in ``folder`` to ``target`` holds: the relative path from one to the other.

    ``os.path.relpath`` between the real folders (the kernel walks a link's
    ``..`` from the folder the link physically is in, so a symlinked ``--out``
    or dataset path must not be taken at its word); the image's own name is
    kept, so a dataset whose images are links is linked to as it is. Relative
    links also work across filesystems (a link is a path, resolved when it is
    read). Where there is no relative path (Windows: the image on another
    drive than the output), the link holds the absolute path.
    """
    target = Path(os.path.abspath(target))
    real = os.path.join(os.path.realpath(target.parent), target.name)
    try:
        return os.path.relpath(real, os.path.realpath(folder))
    except ValueError:
        return str(target)


def link(target: Path, path: Path) -> None:
    """Make ``path`` a symbolic link to ``target`` (:func:`link_value`), replacing what is there atomically.

    The links are relative so that the output and the dataset can move
    together (a project folder moved or mounted elsewhere, a container);
    moving the output alone to another place breaks them (docs/formats.md).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    value = link_value(target, path.parent)
    if path.is_symlink() and os.readlink(path) == value:
        return
    tmp = Path(tempfile.mktemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.symlink(value, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def palette_png(index_map: np.ndarray) -> bytes:
    """An ``(H, W)`` uint8 index map as PNG bytes in "P" mode with the DAVIS palette."""
    h, w = index_map.shape
    img = Image.frombytes("P", (w, h), np.ascontiguousarray(index_map, dtype=np.uint8).tobytes())
    img.putpalette(_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # mostly background: level 1 is half the time
    return buf.getvalue()


def write_davis(
    parts: Iterable[dict[str, Any]],
    root: Path,
    dest: Path,
    split: Split | None = None,
) -> tuple[int, int]:
    """Write the DAVIS layout for the parts (dataset order) under ``dest/davis``.

    Args:
        parts: COCO parts (:mod:`box2mask.job.parts`), dataset order.
        root: the dataset root (part ``file_name`` is relative to it), for the image links.
        dest: the output folder.
        split: ``--split`` (by sequence): ``ImageSets/<split>.txt`` lists each split's videos.

    Returns:
        ``(videos, PNG files)``. Files are written atomically; running again
        rewrites the same bytes (idempotent).
    """
    base = Path(dest) / DAVIS_DIR
    videos: list[dict[str, Any]] = []
    n_png = 0
    names: dict[str, str] = {}
    for seq, seq_parts in by_sequence(parts):
        names.update(check_video_names([*names, seq], "davis"))
        order = track_order(seq_parts)
        n_groups = max(1, -(-len(order) // MAX_OBJECTS))
        groups = [names[seq] if g == 0 else f"{names[seq]}@{g + 1}" for g in range(n_groups)]
        for part in seq_parts:
            hw = part_hw(part)
            stem = part_stem(part)
            anns = part["annotations"]
            blocks = [decode(a["segmentation"], hw) for a in anns]
            ranks = [order[track_key(a)] for a in anns]
            image = Path(root) / str(part["image"]["file_name"])
            for g, video in enumerate(groups):
                sel = [i for i, r in enumerate(ranks) if r // MAX_OBJECTS == g]
                index_map = paint(
                    hw,
                    [blocks[i] for i in sel],
                    [ranks[i] % MAX_OBJECTS + 1 for i in sel],
                    np.uint8,
                )
                png = palette_png(index_map)
                atomic_write_bytes(base / "Annotations" / video / f"{stem}.png", png)
                link(image, base / "JPEGImages" / video / f"{stem}{image_suffix(image.name)}")
                n_png += 1
        keys = sorted(order, key=order.__getitem__)
        for g, video in enumerate(groups):
            videos.append(
                {
                    "name": video,
                    "sequence": seq,
                    "objects": [
                        {"index": r % MAX_OBJECTS + 1, "track_id": k[0], "category": k[1]}
                        for r, k in enumerate(keys)
                        if r // MAX_OBJECTS == g
                    ],
                }
            )
    atomic_write_bytes(
        base / "ImageSets" / "all.txt", "".join(v["name"] + "\n" for v in videos).encode("utf-8")
    )
    for name in split.names if split is not None else ():
        mine = [v["name"] for v in videos if split.of_sequence(v["sequence"]) == name]  # type: ignore[union-attr]
        text = "".join(v + "\n" for v in mine)
        atomic_write_bytes(base / "ImageSets" / f"{name}.txt", text.encode("utf-8"))
    write_json_sidecar(base / "objects.json", {"videos": videos})
    return len(videos), n_png


@WRITERS.register("davis")
class DavisWriter(AssembledWriter):
    """DAVIS 2017 layout: davis/Annotations palette PNGs (an index per track), JPEGImages links.

    ``<out>/davis/``, assembled at the end from the parts.
    """

    output = DAVIS_DIR
    split_units = ("sequence",)

    def assemble(self, assembly: Assembly, path: Path) -> None:
        write_davis(assembly.parts(), self.ctx.root, path.parent, self.ctx.split)
