"""Every format of a job, derived from its frames through the writer registry.

Two halves, as a writer has (:class:`~box2mask.writers.base.Writer`):

- :func:`finalize`: each format's files assembled from the frames (parts with
  their corrections): ``convert``'s last step, a resumed run's, a change's
  (``qa apply``, an import), and ``merge``'s over several jobs. The one place a
  job's formats are assembled.
- :func:`frame_files`: a frame's own files of every per-frame format, encoded
  from its part (:func:`~box2mask.job.parts.frame_masks`) by the writer's own
  ``encode_frame``: what a change rewrites for the frames it touches, and what a
  frame with corrections gets when ``convert`` converts it again.

So a format the package does not know, registered by a plugin or a test, stays
right after a change without any code of its own (docs/extending.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from box2mask.job.corrections import layer_path, overlay, read_entry
from box2mask.job.parts import Part, frame_masks, part_relpath
from box2mask.writers.base import Assembly, EncodedFrame, FrameFile, Writer


def finalize(writers: Iterable[Writer], assembly: Assembly, dest: Path) -> list[Path]:
    """Run every writer's ``finalize`` over ``assembly`` into ``dest``; the files written."""
    written: list[Path] = []
    for w in writers:
        written += w.finalize(assembly, Path(dest))
    return written


def frame_files(part: Part, writers: Iterable[Writer], root: Path) -> list[FrameFile]:
    """A frame's own files of the per-frame formats among ``writers``, from its part.

    Args:
        part: the frame as the job holds it (corrections applied).
        writers: the job's writers; those with ``per_frame`` encode the frame.
        root: the dataset root (the frame's image is ``root / file_name``).
    """
    per_frame = [w for w in writers if w.per_frame]
    if not per_frame:
        return []
    fm = frame_masks(part, root)
    return [f for w in per_frame for f in w.encode_frame(fm)]


def with_corrections(
    enc: EncodedFrame, state: Path, writers: list[Writer], root: Path
) -> EncodedFrame:
    """A converted frame's files when the frame has corrections: its per-frame files
    encoded from its new part with the corrections applied (the part itself stays the
    model's). Used by the sink when ``convert`` converts such a frame again (its part
    was lost), so the frame's files are those of the job, not of the model alone."""
    entry = read_entry(layer_path(state, enc.sequence, enc.frame_index))
    rel = part_relpath(enc.sequence, enc.frame_index)
    own = [f for f in enc.files if f.path == rel]
    if entry is None or not own:
        return enc
    part = overlay(json.loads(own[0].data), entry)
    files = own + frame_files(part, writers, root)
    return EncodedFrame(enc.sequence, enc.frame_index, files, enc.sources, enc.classes)


__all__ = ["finalize", "frame_files", "with_corrections"]
