"""Helpers the track formats share (their masks are read with box2mask.masks: tests/test_masks.py)."""

from __future__ import annotations

from box2mask.writers.davis import video_name


def test_video_names_are_flat():
    assert video_name("car/001") == "car_001" and video_name("plain") == "plain"
