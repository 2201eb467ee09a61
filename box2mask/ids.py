"""Frame numbers and track ids read from datasets and files: whole numbers within 2**53.

Every reader of ids (MOT rows parsed into float64, COCO JSON, review decisions)
holds them to one range, so that an id survives a float64 round trip (JSON
readers and numpy) and fits the int64 arrays of :class:`~box2mask.types.Frame`.
"""

from __future__ import annotations

from typing import Any

#: The largest frame number or track id (in magnitude). float64 holds every whole
#: number below 2**53 exactly; a longer one (2**53 + 1) reads as its neighbour, so two
#: ids could read as one.
MAX_ID = 2**53 - 1


def whole_id(value: Any) -> int | None:
    """``value`` as a frame number or track id: a JSON integer (or a float with no
    fraction) within :data:`MAX_ID` in magnitude; else ``None`` (a list, a string, a
    bool, ``1.5``, ``inf``, ``1e30``, an integer past 2**53).

    >>> whole_id(7), whole_id(7.0), whole_id(7.5), whole_id(2**70), whole_id([7]), whole_id(True)
    (7, 7, None, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) <= MAX_ID:
        return value
    return None
