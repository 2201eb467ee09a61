"""Write ``examples/viso-mini``: a small synthetic clip in VISO's real MOT layout.

Three sequences of 8 frames, 512×384 JPEG, each with a textured background
and moving objects of its class:

- ``mot/car/001``: cars (8–16 px long) on a road grid, ``gt.txt`` comma-separated
  with VISO's 10 columns, plus ``gt_centroid.txt`` as VISO has for cars;
- ``mot/plane/001``: airplanes with a fuselage-wings-tail silhouette,
  ``gt.txt`` space-separated;
- ``mot/ship/001``: elongated, rotated ships with pointed bows on water,
  ``gt.txt`` comma-separated.

Some objects enter or leave the image at its border, so their boxes are cut
by the border. The true masks are kept beside the clip as
``masks/<cat>/<NNN>/<frame>.png``: 16-bit PNGs whose pixel value is the track
id (0 = background). Boxes in ``gt.txt`` are the tight boxes of the visible
masks (top-left ``x,y,w,h`` in whole pixels), so the masks are the exact ground
truth for ``box2mask eval``; the ``viso`` adapter picks them up on its own.

Everything is drawn from one seeded generator with integer rasterisation, so
running the script again writes the same files (``--out`` elsewhere to check).

Usage::

    python examples/make_viso_clip.py [--out examples/viso-mini] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HW = (384, 512)  # (H, W) of every frame
FRAMES = 8
JPEG_QUALITY = 80
#: fillPoly's fixed-point shift: polygon corners are rasterised at 1/16 px
SHIFT = 4

README = """\
# viso-mini: a synthetic clip in VISO's MOT layout

Written by `examples/make_viso_clip.py` (seeded; running it again reproduces
these files). Nothing here comes from the real VISO dataset.

    mot/car/001/img/000001.jpg ...   8 frames, 512x384, cars on a road grid
    mot/car/001/gt/gt.txt            frame,id,x,y,w,h,1,-1,-1,-1 (comma-separated)
    mot/car/001/gt/gt_centroid.txt   the same rows with x,y = box centre
    mot/plane/001/...                airplanes; gt.txt space-separated
    mot/ship/001/...                 ships on water; gt.txt comma-separated
    masks/<cat>/<NNN>/000001.png     true masks: 16-bit, pixel value = track id, 0 = background

Boxes are the tight boxes of the visible masks, as top-left x,y,w,h in whole
pixels; objects cut by the image border have boxes cut by it too.

    box2mask convert --dataset viso --root examples/viso-mini --out out/ --model box
    box2mask eval    --dataset viso --root examples/viso-mini --model box
"""


@dataclass
class Obj:
    """A moving object: a polygon in object coordinates (x forward), a start and a velocity."""

    track_id: int
    shape: np.ndarray  # (K, 2) float polygon, object-local, x along the heading
    centre: tuple[float, float]  # at frame 1, frame pixels
    velocity: tuple[float, float]  # px per frame
    colour: tuple[int, int, int]
    shadow: float  # shadow offset in px (0: none)

    def polygon(self, t: int) -> np.ndarray:
        """``(K, 2)`` int32 fixed-point corners (``SHIFT``) at frame ``t`` (0-based)."""
        vx, vy = self.velocity
        a = math.atan2(vy, vx)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = self.shape @ rot.T + np.array([self.centre[0] + vx * t, self.centre[1] + vy * t])
        return np.round(pts * (1 << SHIFT)).astype(np.int32)


def car_shape(length: float, width: float) -> np.ndarray:
    """A rectangle with cut corners, ``length`` × ``width`` px."""
    lx, wy, c = length / 2, width / 2, min(length, width) * 0.2
    return np.array(
        [(-lx + c, -wy), (lx - c, -wy), (lx, -wy + c), (lx, wy - c), (lx - c, wy), (-lx + c, wy),
         (-lx, wy - c), (-lx, -wy + c)]
    )  # fmt: skip


def plane_shape(length: float) -> np.ndarray:
    """Fuselage, swept wings and tailplane, nose at +x; wingspan about the length."""
    s = length / 2
    half = [
        (1.00, 0.00), (0.85, 0.07), (0.20, 0.08), (-0.15, 0.90), (-0.30, 0.90), (-0.15, 0.08),
        (-0.70, 0.07), (-0.90, 0.35), (-1.00, 0.35), (-0.95, 0.00),
    ]  # fmt: skip
    top = [(x * s, y * s) for x, y in half]
    bottom = [(x * s, -y * s) for x, y in reversed(half[1:-1])]
    return np.array(top + bottom)


def ship_shape(length: float, width: float) -> np.ndarray:
    """An elongated hull with a pointed bow at +x and a square stern."""
    lx, wy = length / 2, width / 2
    return np.array(
        [(lx, 0), (lx * 0.55, -wy), (-lx, -wy * 0.85), (-lx, wy * 0.85), (lx * 0.55, wy)]
    )


def smooth_noise(rng: np.random.Generator, cell: int, lo: float, hi: float) -> np.ndarray:
    """``(H, W)`` float32 low-frequency noise in ``[lo, hi]``."""
    h, w = HW
    coarse = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    big = cv2.resize(coarse, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    return lo + (hi - lo) * np.clip(big[cell : cell + h, cell : cell + w], 0, 1)


def background(kind: str, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB background: land with roads and blocks, or water with a shore."""
    h, w = HW
    if kind == "ship":
        base = smooth_noise(rng, 48, 0.0, 1.0)
        img = np.stack([30 + 20 * base, 60 + 25 * base, 85 + 30 * base], axis=-1)
        shore = (np.arange(w)[None, :] > 430 + 25 * smooth_noise(rng, 64, -1, 1)).astype(np.float32)
        land = np.stack([110 + 40 * base, 105 + 30 * base, 85 + 20 * base], axis=-1)
        img = img * (1 - shore[..., None]) + land * shore[..., None]
        return img.astype(np.float32)
    base = smooth_noise(rng, 32, 0.0, 1.0)
    img = np.stack([95 + 50 * base, 100 + 40 * base, 80 + 30 * base], axis=-1).astype(np.float32)
    for _ in range(14):  # buildings / fields
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        bw, bh = int(rng.integers(12, 60)), int(rng.integers(12, 50))
        tone = float(rng.integers(70, 200))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (tone, tone * 0.95, tone * 0.9), -1)
    if kind == "car":
        for y in (96, 250):
            cv2.rectangle(img, (0, y - 12), (w, y + 12), (70, 72, 75), -1)
        for x in (150, 380):
            cv2.rectangle(img, (x - 12, 0), (x + 12, h), (70, 72, 75), -1)
    else:  # apron and a taxiway for planes
        cv2.rectangle(img, (0, 150), (w, 330), (150, 150, 148), -1)
        cv2.rectangle(img, (0, 60), (w, 100), (120, 120, 118), -1)
    return img


def objects(kind: str, rng: np.random.Generator) -> list[Obj]:
    """The objects of one sequence; ids 1..N."""
    out: list[Obj] = []
    if kind == "car":
        # (centre at frame 1, velocity): lanes at y 90/102, 244/256, x 144/156, 374/386
        lanes = [
            ((30, 90), (7, 0)), ((200, 90), (6, 0)), ((500, 102), (-6, 0)), ((320, 102), (-7, 0)),
            ((120, 244), (5, 0)), ((470, 244), (8, 0)), ((60, 256), (-6, 0)), ((290, 256), (-5, 0)),
            ((144, 20), (0, 6)), ((156, 330), (0, -7)), ((374, 370), (0, -6)), ((386, 160), (0, 5)),
            ((505, 90), (6, 0)), ((150, 380), (0, 5)),
        ]  # fmt: skip
        for i, (c, v) in enumerate(lanes):
            length = float(rng.integers(8, 17))
            width = float(max(4.0, round(length * 0.45)))
            tone = [(220, 220, 225), (30, 30, 35), (190, 40, 40), (40, 70, 160), (200, 200, 60)][
                i % 5
            ]
            out.append(Obj(i + 1, car_shape(length, width), c, v, tone, 1.5))
    elif kind == "plane":
        specs = [((120, 240), (9, -1), 60.0), ((330, 200), (-6, 2), 44.0), ((480, 80), (10, 0), 36.0),
                 ((250, 300), (0, 0.5), 52.0)]  # fmt: skip
        for i, (c, v, length) in enumerate(specs):
            out.append(Obj(i + 1, plane_shape(length), c, v, (235, 235, 238), 5.0))
    else:
        specs = [((100, 100), (8, 3), 56.0, 12.0), ((300, 250), (-7, -2), 40.0, 9.0),
                 ((200, 340), (6, 5), 30.0, 8.0), ((380, 60), (-3, -8), 46.0, 11.0)]  # fmt: skip
        for i, (c, v, length, width) in enumerate(specs):
            tone = (225, 225, 220) if i % 2 == 0 else (150, 150, 155)
            out.append(Obj(i + 1, ship_shape(length, width), c, v, tone, 0.0))
    return out


def render(
    kind: str, bg: np.ndarray, objs: list[Obj], t: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` (0-based): ``(RGB uint8 (H, W, 3), instance map uint16 (H, W))``."""
    img = bg.copy()
    inst = np.zeros(HW, np.uint16)
    for o in objs:
        poly = o.polygon(t)
        if o.shadow:
            off = int(round(o.shadow * (1 << SHIFT)))
            cv2.fillPoly(img, [poly + off], (40.0, 40.0, 40.0), lineType=cv2.LINE_8, shift=SHIFT)
        cv2.fillPoly(inst, [poly], int(o.track_id), lineType=cv2.LINE_8, shift=SHIFT)
    for o in objs:
        m = inst == o.track_id
        # light from the top-left: a brighter half along the object's heading
        shade = np.ones(HW, np.float32)
        ys, xs = np.nonzero(m)
        if len(xs):
            shade[ys, xs] = np.where(xs + ys < xs.mean() + ys.mean(), 1.08, 0.9)
        img[m] = np.array(o.colour, np.float32) * shade[m][:, None]
    grain = rng.integers(-6, 7, (*HW, 1)).astype(np.float32)
    out = np.clip(cv2.GaussianBlur(img, (3, 3), 0) + grain, 0, 255).astype(np.uint8)
    return out, inst


def boxes_of(inst: np.ndarray, objs: list[Obj]) -> list[tuple[int, int, int, int, int]]:
    """``(track_id, x, y, w, h)`` tight boxes of the visible masks (absent objects left out)."""
    out = []
    for o in objs:
        m = inst == o.track_id
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size:
            out.append(
                (
                    o.track_id,
                    int(cols[0]),
                    int(rows[0]),
                    int(cols[-1] - cols[0] + 1),
                    int(rows[-1] - rows[0] + 1),
                )
            )
    return out


def make_clip(out: Path, seed: int = 0) -> list[Path]:
    """Write the clip under ``out``; return the files written (relative paths)."""
    written: list[Path] = []

    def put(rel: str, data: bytes) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(Path(rel))

    for k, (kind, sep) in enumerate((("car", ","), ("plane", " "), ("ship", ","))):
        rng = np.random.default_rng([seed, k])
        bg = background(kind, rng)
        objs = objects(kind, rng)
        seq = f"mot/{kind}/001"
        gt, centroid = [], []
        for t in range(FRAMES):
            frame = t + 1
            rgb, inst = render(kind, bg, objs, t, rng)
            img_path = out / seq / "img" / f"{frame:06d}.jpg"
            img_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(img_path, quality=JPEG_QUALITY)
            written.append(img_path.relative_to(out))
            ok, png = cv2.imencode(".png", inst)
            if not ok:
                raise RuntimeError("PNG encoding failed")
            put(f"masks/{kind}/001/{frame:06d}.png", png.tobytes())
            for tid, x, y, w, h in boxes_of(inst, objs):
                gt.append(sep.join(str(v) for v in (frame, tid, x, y, w, h, 1, -1, -1, -1)))
                centroid.append(
                    sep.join(
                        str(v) for v in (frame, tid, x + w // 2, y + h // 2, w, h, 1, -1, -1, -1)
                    )
                )
        put(f"{seq}/gt/gt.txt", ("\n".join(gt) + "\n").encode())
        if kind == "car":
            put(f"{seq}/gt/gt_centroid.txt", ("\n".join(centroid) + "\n").encode())
    put("README.md", README.encode())
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "viso-mini")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    files = make_clip(args.out, args.seed)
    size = sum((args.out / f).stat().st_size for f in files)
    print(f"wrote {len(files)} files, {size / 1024:.0f} KiB, under {args.out}")


if __name__ == "__main__":
    main()
