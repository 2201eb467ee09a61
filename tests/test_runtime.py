"""box2mask.runtime: what a run is built from."""

from __future__ import annotations


def test_engine_options_come_from_the_convert_options_of_the_same_name():
    from dataclasses import fields
    from pathlib import Path

    from box2mask.engine import EngineOptions
    from box2mask.options import ConvertOptions
    from box2mask.runtime import engine_options

    opts = ConvertOptions(
        dataset="viso", out=Path("o"), batch_size=3, context=1.5, threshold=0.25,
        box_fill_classes=("ship",), box_fill_area=12.0, classes=("car",), workers=1,
    )  # fmt: skip
    eng = engine_options(opts)
    shared = {f.name for f in fields(EngineOptions)} & {f.name for f in fields(ConvertOptions)}
    assert len(shared) >= 12
    for name in shared:
        assert getattr(eng, name) == getattr(opts, name), name
    assert eng.prefetch_frames == EngineOptions().prefetch_frames
