"""Per-frame PNG instance maps (DESIGN §7).

For each frame, ``<out>/<sequence>/<frame>.png`` (``<sequence>``: the sequence's
safe folder name, :func:`box2mask.layout.sequence_dir`; ``<frame>``: the stem of the
frame's own image file, see :func:`box2mask.layout.output_stem`) is a 16-bit single-channel
PNG of instance indices (0 = background, ``k`` = the frame's ``k``-th object,
1-based, in the frame's object order), and ``<frame>.json`` beside it maps
each index to track id, category, score and mask source. Where masks
overlap the smaller object stays visible (:func:`box2mask.masks.paint`: the
fewest pixels inside the frame on top, ties to the later object).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from box2mask.errors import Box2MaskError
from box2mask.geometry import frame_block
from box2mask.io import atomic_write_bytes
from box2mask.layout import output_stem, sequence_dir
from box2mask.masks import paint
from box2mask.types import FrameMasks
from box2mask.writers.base import WRITERS, FrameFile, Writer, sequence_tops
from box2mask.writers.coco import output_score

MAX_INSTANCES = 65535


def instance_map(fm: FrameMasks) -> np.ndarray:
    """``(H, W)`` uint16 instance indices of a frame's masks (:func:`box2mask.masks.paint`'s rule)."""
    h, w = fm.frame.image_hw
    if len(fm.masks) > MAX_INSTANCES:
        raise Box2MaskError(
            f"{fm.frame.sequence} frame {fm.frame.frame_index}: more than {MAX_INSTANCES} objects for a 16-bit PNG"
        )
    # each mask's block in frame pixels, cut to the frame: O(object), not O(window)
    return paint((h, w), [frame_block(om.block, om.window, (h, w)) for om in fm.masks])


def png_frame_files(fm: FrameMasks) -> list[FrameFile]:
    """A frame's PNG and JSON sidecar as :class:`FrameFile` s (paths relative to ``--out``)."""
    stem = f"{sequence_dir(fm.frame.sequence)}/{output_stem(fm.frame)}"
    ok, buf = cv2.imencode(".png", instance_map(fm))
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise Box2MaskError(
            f"could not encode PNG for {fm.frame.sequence} frame {fm.frame.frame_index}"
        )
    sidecar = {
        "file_name": fm.frame.file_name,
        "sequence": fm.frame.sequence,
        "frame_index": int(fm.frame.frame_index),
        "instances": [
            {
                "index": k + 1,
                "track_id": int(om.track_id),
                "category": om.category,
                "score": output_score(om.score),
                "mask_source": om.source,
            }
            for k, om in enumerate(fm.masks)
        ],
    }
    return [
        FrameFile(f"{stem}.png", buf.tobytes()),
        FrameFile(f"{stem}.json", (json.dumps(sidecar, indent=1) + "\n").encode("utf-8")),
    ]


def write_png_frame(fm: FrameMasks, out_dir: Path) -> list[Path]:
    """Write a frame's PNG and JSON sidecar atomically; returns the paths written."""
    paths = []
    for f in png_frame_files(fm):
        atomic_write_bytes(Path(out_dir) / f.path, f.data)
        paths.append(Path(out_dir) / f.path)
    return paths


@WRITERS.register("png")
class PngWriter(Writer):
    """Per-frame 16-bit instance-index PNG + JSON sidecar (track id, category, score).

    ``<out>/<sequence>/<frame>.png`` and ``.json``, written with each frame.
    """

    per_frame = True

    def encode_frame(self, fm: FrameMasks) -> list[FrameFile]:
        return png_frame_files(fm)

    def outputs(self) -> list[str]:
        return sequence_tops(self.ctx.sequences)
