"""Output formats: one module per ``--format``, each a registered :class:`~box2mask.writers.base.Writer`.

Importing this package registers every built-in format in :data:`WRITERS`;
a new format is its module plus one import line here (docs/extending.md).
"""

from box2mask.writers import coco as coco
from box2mask.writers import davis as davis
from box2mask.writers import mots as mots
from box2mask.writers import png as png
from box2mask.writers import yolo as yolo
from box2mask.writers import ytvis as ytvis
from box2mask.writers.base import (
    WRITERS,
    AssembledWriter,
    Assembly,
    EncodedFrame,
    FrameFile,
    Writer,
    WriterContext,
)

__all__ = ["WRITERS", "AssembledWriter", "Assembly", "EncodedFrame", "FrameFile", "Writer", "WriterContext"]
