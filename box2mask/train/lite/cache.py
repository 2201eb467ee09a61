"""The object cache ``lite`` training reads: one patch per object, cut once.

Training draws thousands of objects a second from all over a dataset; decoding
their frames and rasterising their masks each time would cost more than the
network. So every object with a ground-truth mask is cut once, with room for
the augmentations, into one memory-mapped file:

- the patch: a square around the object's box of side
  ``Sc = max(2 × min_side, ceil(CACHE_CONTEXT × L))`` frame pixels (``L`` the
  box's long side), at most :data:`MAX_PATCH` pixels stored (shrunk by area
  averaging beyond that: large objects), RGB uint8, outside the frame filled
  with the normalisation mean;
- the mask: the object's ground truth on the same grid, uint8 0..255 (the
  share of each stored pixel inside the mask);
- per object: the patch's origin and side in frame pixels, the stored side,
  the box, the frame's size, the category, the sampling weight and the source.

``cache.npz`` holds the per-object table; ``pixels.u8`` all patches, end to end.
The cache is built deterministically (objects in the sources' order), so a
resumed run reads the same objects at the same indices; its ``key`` (sources,
their options and the cache constants) is checked when it is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.geometry import crop_rect
from box2mask.io import read_image
from box2mask.models.lite.crops import FILL_U8, resize, window_side
from box2mask.types import Frame

log = logging.getLogger("box2mask")

#: patch side / box long side: room for the window (context up to 2) and box jitter
CACHE_CONTEXT = 3.0
#: the largest patch side stored; larger patches are shrunk (area averaging). A window of
#: the nominal context (1.5) holds 192 x 1.5 / 3 = 96 stored pixels of an object over 64 px,
#: enlarged to its 128-px input: large objects train a little blurred. Storing up to 256 px
#: (so that window holds 128) was measured and gained nothing on the development tiles
#: (per object 79.78 against 79.95, the same fine-tune; docs/lite.md), so the cache stays
#: at 192, a quarter smaller on disk.
MAX_PATCH = 192
CACHE_VERSION = 1


@dataclass(frozen=True)
class Source:
    """One training data source: frames with ground-truth masks, and its description.

    Attributes:
        name: how the metadata and the logs name it (``"isaid-train"``).
        frames: a callable giving the frames (called once, when the cache is built).
        describe: what the checkpoint's metadata records (dataset, root, options, commit...).
        weight: sampling weight of its objects (a user's reviewed objects count more).
        reviewed: optional ``frame, i -> bool``: whether an object was reviewed by a person
            (its weight is multiplied by ``reviewed_weight``).
    """

    name: str
    frames: Callable[[], Iterable[Frame]]
    describe: dict[str, Any]
    weight: float = 1.0
    reviewed: Callable[[Frame, int], bool] | None = None


@dataclass
class ObjectCache:
    """The cache, opened (see the module docstring).

    Attributes (arrays of length ``N``, one row per object):
        offset: int64 byte offset of the patch in :attr:`pixels`.
        stored: int32 stored side ``P`` (patch ``P × P × 3`` then mask ``P × P``).
        origin: ``(N, 2)`` float64 patch origin ``(x0, y0)``, frame pixels.
        side: int32 patch side ``Sc`` in frame pixels.
        box: ``(N, 4)`` float64 the object's box, frame pixels.
        frame_hw: ``(N, 2)`` int32 the frame's size.
        category: int32 index into :attr:`categories`.
        weight: float64 sampling weight (before class balancing).
        reviewed: bool, the object was reviewed or corrected by a person.
        source: int32 index into :attr:`sources`.
        pixels: the memory-mapped patches.
    """

    offset: np.ndarray
    stored: np.ndarray
    origin: np.ndarray
    side: np.ndarray
    box: np.ndarray
    frame_hw: np.ndarray
    category: np.ndarray
    weight: np.ndarray
    reviewed: np.ndarray
    source: np.ndarray
    categories: list[str]
    sources: list[str]
    pixels: np.ndarray
    key: str

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def patch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Object ``i``'s stored patch ``(P, P, 3)`` uint8 RGB and mask ``(P, P)`` uint8."""
        p = int(self.stored[i])
        o = int(self.offset[i])
        image = self.pixels[o : o + p * p * 3].reshape(p, p, 3)
        mask = self.pixels[o + p * p * 3 : o + p * p * 4].reshape(p, p)
        return image, mask


def cache_key(sources: list[Source], min_side: int) -> str:
    """What the cache's content depends on (sha256 of a canonical JSON)."""
    desc = {
        "version": CACHE_VERSION,
        "context": CACHE_CONTEXT,
        "max_patch": MAX_PATCH,
        "min_side": min_side,
        "sources": [{"name": s.name, "describe": s.describe, "weight": s.weight} for s in sources],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def patch_of(
    image: np.ndarray, mask: np.ndarray, xyxy: np.ndarray, min_side: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], int]:
    """One object's patch and mask, their origin and side in frame pixels.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        mask: ``(H, W)`` bool ground truth.
        xyxy: the box, frame pixels.
        min_side: the smallest model window side (the patch is at least twice it).
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    sc = max(2 * min_side, window_side(max(x2 - x1, y2 - y1), CACHE_CONTEXT, 1))
    x0 = math.floor((x1 + x2) / 2 - sc / 2 + 0.5)
    y0 = math.floor((y1 + y2) / 2 - sc / 2 + 0.5)
    img = crop_rect(image, y0, x0, sc, sc, FILL_U8)
    m = crop_rect(mask[..., None], y0, x0, sc, sc, (False,))[..., 0].astype(np.uint8) * 255
    if sc > MAX_PATCH:
        img = resize(img, MAX_PATCH)
        m = resize(m, MAX_PATCH)
    return img, m, (x0, y0), sc


def build_cache(
    folder: Path,
    sources: list[Source],
    min_side: int,
    progress: Callable[[int, int], None] | None = None,
) -> ObjectCache:
    """Build (or reuse) the cache in ``folder``; see the module docstring.

    A cache whose key differs (other sources or constants) is rebuilt. Objects
    without a ground-truth mask, or whose mask is empty, are counted and left
    out (``cache.npz`` records the counts).
    """
    folder = Path(folder)
    key = cache_key(sources, min_side)
    table = folder / "cache.npz"
    if table.is_file():
        with np.load(table, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return _open(folder)
        log.info("lite cache in %s was built from other data: rebuilding", folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_pixels = folder / "pixels.u8.tmp"
    rows: dict[str, list[Any]] = {k: [] for k in (
        "offset", "stored", "origin", "side", "box", "frame_hw", "category", "weight",
        "reviewed", "source")}  # fmt: skip
    categories: dict[str, int] = {}
    skipped = {"no_mask": 0, "empty_mask": 0}
    offset = 0
    done = 0
    with open(tmp_pixels, "wb") as fh:
        for si, src in enumerate(sources):
            for frame in src.frames():
                if frame.gt_mask is None or len(frame) == 0:
                    skipped["no_mask"] += len(frame)
                    continue
                image = read_image(frame.image_path)
                for i in range(len(frame)):
                    gt = frame.gt_mask(i)
                    if gt is None:
                        skipped["no_mask"] += 1
                        continue
                    if not gt.any():
                        skipped["empty_mask"] += 1
                        continue
                    img, m, origin, sc = patch_of(image, gt, frame.xyxy[i], min_side)
                    fh.write(img.tobytes())
                    fh.write(m.tobytes())
                    p = img.shape[0]
                    cat = categories.setdefault(str(frame.category[i]), len(categories))
                    for k, v in (
                        ("offset", offset), ("stored", p), ("origin", origin), ("side", sc),
                        ("box", frame.xyxy[i]), ("frame_hw", frame.image_hw), ("category", cat),
                        ("weight", src.weight),
                        ("reviewed", bool(src.reviewed(frame, i)) if src.reviewed else False),
                        ("source", si),
                    ):  # fmt: skip
                        rows[k].append(v)
                    offset += p * p * 4
                done += 1
                if progress is not None:
                    progress(done, len(rows["offset"]))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_pixels, folder / "pixels.u8")
    arrays = {
        "offset": np.asarray(rows["offset"], np.int64),
        "stored": np.asarray(rows["stored"], np.int32),
        "origin": np.asarray(rows["origin"], np.float64).reshape(-1, 2),
        "side": np.asarray(rows["side"], np.int32),
        "box": np.asarray(rows["box"], np.float64).reshape(-1, 4),
        "frame_hw": np.asarray(rows["frame_hw"], np.int32).reshape(-1, 2),
        "category": np.asarray(rows["category"], np.int32),
        "weight": np.asarray(rows["weight"], np.float64),
        "reviewed": np.asarray(rows["reviewed"], bool),
        "source": np.asarray(rows["source"], np.int32),
    }
    tmp_table = folder / "cache.tmp.npz"
    np.savez(
        tmp_table,
        key=np.array(key),
        categories=np.array(list(categories), dtype=str),
        sources=np.array([s.name for s in sources], dtype=str),
        skipped=np.array(json.dumps(skipped)),
        **arrays,
    )
    os.replace(tmp_table, table)
    log.info("lite cache: %d objects (%s skipped) in %s", len(arrays["offset"]), skipped, folder)
    return _open(folder)


def _open(folder: Path) -> ObjectCache:
    with np.load(folder / "cache.npz", allow_pickle=False) as z:
        fields = {k: z[k] for k in (
            "offset", "stored", "origin", "side", "box", "frame_hw", "category", "weight",
            "reviewed", "source")}  # fmt: skip
        categories = [str(c) for c in z["categories"]]
        sources = [str(s) for s in z["sources"]]
        key = str(z["key"])
    size = (folder / "pixels.u8").stat().st_size
    pixels = (
        np.memmap(folder / "pixels.u8", dtype=np.uint8, mode="r", shape=(size,))
        if size
        else np.zeros(0, np.uint8)
    )
    return ObjectCache(categories=categories, sources=sources, pixels=pixels, key=key, **fields)
