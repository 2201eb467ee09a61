"""Dataset adapters (installed as ``box2mask.adapters``).

Importing this package registers every built-in adapter in :data:`ADAPTERS`.
"""

from box2mask.adapters.base import ADAPTERS, Adapter, Option, SequenceInfo, resolve_root

# Built-in adapters register themselves on import (one line each).

__all__ = ["ADAPTERS", "Adapter", "Option", "SequenceInfo", "resolve_root"]
