"""What the adapter tests share.

open_adapter(name, root, sequences, **options)   the adapter over a written fixture, with its own
                                                 Problems, checked to list ``sequences`` first
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from box2mask.adapters import ADAPTERS
from box2mask.adapters.base import Adapter, SequenceInfo

from box2mask.problems import Problems


def open_adapter(
    name: str, root: Path, sequences: dict[str, int], **options: Any
) -> tuple[Adapter, Problems]:
    """Adapter ``name`` over ``root`` with a fresh :class:`Problems`; returns both.

    Checks first that it lists exactly ``sequences`` (``{name: frame count}``, in order).
    """
    problems = Problems()
    adapter = ADAPTERS.get(name)(root, problems, **options)
    listed = adapter.list_sequences()
    want = [SequenceInfo(s, n) for s, n in sequences.items()]
    assert listed == want, f"{name} lists {listed}, expected {want}"
    return adapter, problems
