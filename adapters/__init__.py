"""Dataset adapters (installed as ``box2mask.adapters``).

Importing this package registers every built-in adapter in :data:`ADAPTERS`.
"""

# Built-in adapters register themselves on import (one line each).
from box2mask.adapters import coco as coco
from box2mask.adapters import mot as mot
from box2mask.adapters import ootb as ootb
from box2mask.adapters import rossam as rossam
from box2mask.adapters import satmtb as satmtb
from box2mask.adapters import satsot as satsot
from box2mask.adapters import viso as viso
from box2mask.adapters import yolo as yolo
from box2mask.adapters.base import (
    ADAPTERS,
    Adapter,
    Option,
    SequenceInfo,
    open_dataset,
    resolve_root,
)

__all__ = ["ADAPTERS", "Adapter", "Option", "SequenceInfo", "open_dataset", "resolve_root"]
