"""Frames across process (and Ray) boundaries: a plain, picklable dict."""

from __future__ import annotations

from typing import Any

from box2mask.types import Frame


def frame_to_wire(frame: Frame) -> dict[str, Any]:
    """A picklable copy of a frame (no ground-truth provider: conversion does not use it)."""
    return {
        "sequence": frame.sequence,
        "frame_index": frame.frame_index,
        "image_path": str(frame.image_path),
        "image_hw": frame.image_hw,
        "xyxy": frame.xyxy,
        "track_id": frame.track_id,
        "category": [str(c) for c in frame.category],
        "file_name": frame.file_name,
        "obb": frame.obb,
        "attributes": {k: list(v) for k, v in frame.attributes.items()},
    }


def frame_from_wire(d: dict[str, Any]) -> Frame:
    return Frame(**d)
