"""box2mask: instance masks from the boxes of satellite-video tracking datasets."""

from __future__ import annotations

__version__ = "0.1.0"

from box2mask.errors import (  # noqa: E402
    AnnotationError,
    Box2MaskError,
    CheckpointError,
    DatasetNotFound,
    JobMismatch,
    UsageError,
)


def convert(*args, **kwargs):  # noqa: ANN002, ANN003
    """Convert a dataset's boxes into masks; see :func:`box2mask.convert.convert`."""
    from box2mask.pipeline import convert as _convert

    return _convert(*args, **kwargs)


__all__ = [
    "AnnotationError",
    "Box2MaskError",
    "CheckpointError",
    "DatasetNotFound",
    "JobMismatch",
    "UsageError",
    "__version__",
    "convert",
]
