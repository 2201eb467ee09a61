"""The exchange with annotation tools: export a job's masks to CVAT or Label Studio for
human correction, and bring the corrected masks back (docs/annotation-tools.md).

One module per tool (:mod:`~box2mask.exchange.cvat`, :mod:`~box2mask.exchange.labelstudio`)
writes what the tool imports and reads what it exports; objects travel with their key
``(sequence, frame_index, track_id)`` (:mod:`~box2mask.exchange.model`), and
:mod:`~box2mask.exchange.diff` sorts what comes back against the job.
"""

from box2mask.exchange.export import ExportSummary, export
from box2mask.exchange.imports import JobImport, import_review, read_review, write_corrected
from box2mask.exchange.select import Selection

__all__ = [
    "ExportSummary",
    "JobImport",
    "Selection",
    "export",
    "import_review",
    "read_review",
    "write_corrected",
]
