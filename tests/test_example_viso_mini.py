"""The bundled clip examples/viso-mini: reproducible, in VISO's layout, masks match boxes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
from box2mask.adapters import ADAPTERS
from PIL import Image

from box2mask.geometry import mask_to_xyxy
from box2mask.problems import Problems

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIP = EXAMPLES / "viso-mini"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_viso_clip", EXAMPLES / "make_viso_clip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_viso_clip"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generator_reproduces_the_committed_clip(tmp_path: Path) -> None:
    written = _generator().make_clip(tmp_path, seed=0)
    committed = sorted(p.relative_to(CLIP) for p in CLIP.rglob("*") if p.is_file())
    assert sorted(written) == committed
    for rel in written:
        new, old = tmp_path / rel, CLIP / rel
        if rel.suffix in (".txt", ".md"):
            assert new.read_bytes() == old.read_bytes(), rel
        elif rel.suffix == ".png":  # compare pixels: PNG bytes depend on the zlib build
            a = cv2.imread(str(new), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(old), cv2.IMREAD_UNCHANGED)
            assert a.dtype == np.uint16 and np.array_equal(a, b), rel
        else:  # JPEG: identical with the same libjpeg, near-identical with another
            if new.read_bytes() != old.read_bytes():
                a = np.asarray(Image.open(new), np.float64)
                b = np.asarray(Image.open(old), np.float64)
                assert np.abs(a - b).mean() < 1.0, rel


def test_clip_is_small_and_in_viso_layout() -> None:
    size = sum(p.stat().st_size for p in CLIP.rglob("*") if p.is_file())
    assert size < 1.5 * 1024 * 1024
    car = (CLIP / "mot/car/001/gt/gt.txt").read_text().splitlines()
    plane = (CLIP / "mot/plane/001/gt/gt.txt").read_text().splitlines()
    assert car[0].count(",") == 9 and "," not in plane[0] and len(plane[0].split()) == 10


def test_adapter_reads_clip_with_masks_matching_boxes() -> None:
    problems = Problems()
    viso = ADAPTERS.get("viso")(CLIP, problems)
    names = [s.name for s in viso.list_sequences()]
    assert names == ["car/001", "plane/001", "ship/001"]
    cats: set[str] = set()
    at_border = 0
    sizes = []
    for name in names:
        for frame in viso.read_sequence(name):
            assert frame.image_hw == (384, 512) and frame.gt_mask is not None
            cats.update(frame.category.tolist())
            for i in range(len(frame)):
                mask = frame.gt_mask(i)
                np.testing.assert_array_equal(mask_to_xyxy(mask), frame.xyxy[i])
                x1, y1, x2, y2 = frame.xyxy[i]
                at_border += bool(x1 == 0 or y1 == 0 or x2 == 512 or y2 == 384)
                sizes.append(max(x2 - x1, y2 - y1))
    assert cats == {"car", "airplane", "ship"}
    assert at_border > 0  # some objects are cut by the image border
    assert min(sizes) <= 16 and max(sizes) >= 40  # small cars and large planes/ships
    assert len(problems) == 0
