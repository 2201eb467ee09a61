"""What the speed benchmarks share (``speed.py`` for SAM, ``speed_sam2.py`` for SAM 2): the
synthetic clip, peak memory, the authors' per-object procedure's inputs, one timed engine
run, and the agreement of two runs' masks. Imported by both; imports neither."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from box2mask import geometry
from box2mask.engine import MaskEngine
from box2mask.types import Frame


def make_clip(
    folder: Path, n_objects: int, seed: int = 0, hw: tuple[int, int] = (720, 1280)
) -> list[Frame]:
    """Synthetic frames (PNG) with ``n_objects`` boxes, two per frame.

    Textured background, objects as filled rotated ellipses/rectangles of 20 to
    200 px; every second object sits a few pixels from the previous one (as
    vehicles in a queue do), so ``--share-crops`` has pairs to share; one
    object per frame is placed near the border on odd frames.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = hw
    frames = []
    n_frames = math.ceil(n_objects / 2)
    left = n_objects
    for f in range(n_frames):
        img = cv2.GaussianBlur(rng.integers(40, 120, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        boxes = []
        for j in range(min(2, left)):
            size = rng.uniform(20, 200, 2)
            if j == 0:
                cx = rng.uniform(20, 120) if f % 2 else rng.uniform(300, w - 300)
                cy = rng.uniform(200, h - 200)
            else:
                px, py = (boxes[0][0] + boxes[0][2]) / 2, (boxes[0][1] + boxes[0][3]) / 2
                cx, cy = px + rng.uniform(-12, 12), py + rng.uniform(-12, 12)
            x1, y1 = max(cx - size[0] / 2, 0), max(cy - size[1] / 2, 0)
            x2, y2 = min(cx + size[0] / 2, w), min(cy + size[1] / 2, h)
            boxes.append([x1, y1, x2, y2])
            colour = tuple(int(c) for c in rng.integers(120, 255, 3))
            centre = (int((x1 + x2) / 2), int((y1 + y2) / 2))
            axes = (max(int((x2 - x1) / 2), 2), max(int((y2 - y1) / 2), 2))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 30)), 0, 360, colour, -1)
        left -= len(boxes)
        path = folder / f"{f + 1:06d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        k = len(boxes)
        frames.append(
            Frame("bench", f + 1, path, hw, np.array(boxes), np.arange(k) + 2 * f, ["ship"] * k)
        )
    return frames


class PeakMemory:
    """Peak memory during a ``with`` block: RSS sampled every 20 ms (CPU) or CUDA's allocator peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @contextmanager
    def measure(self) -> Any:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        stop = threading.Event()
        peak = [self.rss()]

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], self.rss())

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
            self.peak_bytes = max(peak[0], self.rss())


def reference_crops(
    frames: list[Frame], context: float, window: str
) -> Iterator[tuple[tuple[int, int], Frame, np.ndarray, geometry.CropWindow, np.ndarray]]:
    """The authors' procedure's inputs, object by object, as it makes them: each frame decoded,
    each box's 512 px window cut and resized bicubic to 1024. Yields ``((frame, track),
    frame, box xyxy, window, 1024x1024 RGB crop)``; the work happens as it is consumed."""
    fill = geometry.fill_for_mode(window)  # type: ignore[arg-type]
    for fr in frames:
        image = cv2.cvtColor(cv2.imread(str(fr.image_path)), cv2.COLOR_BGR2RGB)
        for i in range(len(fr)):
            box = fr.xyxy[i]
            win = geometry.window_for_box(box, fr.image_hw, 512, context, window)  # type: ignore[arg-type]
            up = cv2.resize(geometry.crop_image(image, win, fill), (1024, 1024),
                            interpolation=cv2.INTER_CUBIC)  # fmt: skip
            yield (fr.frame_index, int(fr.track_id[i])), fr, box, win, up


def reference_window_mask(
    mask_1024: np.ndarray, win: geometry.CropWindow, fr: Frame
) -> tuple[geometry.CropWindow, np.ndarray]:
    """A reference mask (1024x1024, crop frame) back in its window: nearest resize to the
    window, pasted into the frame and cut again (what is outside the frame is dropped)."""
    small = cv2.resize(
        mask_1024.astype(np.uint8), (win.size, win.size), interpolation=cv2.INTER_NEAREST
    )
    full = geometry.paste_mask(small.astype(bool), win, fr.image_hw)
    return win, geometry.crop_mask(full, win)


def time_engine(
    engine: MaskEngine, frames: list[Frame], device: torch.device
) -> tuple[dict[tuple[int, int], tuple[geometry.CropWindow, np.ndarray]], float, int, float]:
    """One timed run of ``engine`` over ``frames``: the masks by ``(frame, track)`` (window,
    window mask clipped to the frame), the seconds (CUDA synchronised), the peak memory, and
    the CPU seconds of this process over the run (all its threads: on a machine shared with
    other jobs, the work done, which time-sharing does not stretch as it does wall time)."""
    masks: dict[tuple[int, int], tuple[geometry.CropWindow, np.ndarray]] = {}

    def on_frame(fm: Any) -> None:
        for om in fm.masks:
            masks[(fm.frame.frame_index, om.track_id)] = (
                om.window,
                geometry.clip_to_image(om.mask, om.window, fm.frame.image_hw),
            )

    mem = PeakMemory(device)
    with mem.measure():
        t0, c0 = time.perf_counter(), time.process_time()
        engine.run(frames, on_frame)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return masks, seconds, mem.peak_bytes, cpu


def mask_iou(
    a: tuple[geometry.CropWindow, np.ndarray], b: tuple[geometry.CropWindow, np.ndarray]
) -> float:
    """IoU of two window masks (possibly different windows), in frame pixels; empty vs empty is 1."""
    (wa, ma), (wb, mb) = a, b
    x0, y0 = min(wa.x0, wb.x0), min(wa.y0, wb.y0)
    side = max(wa.x0 + wa.size, wb.x0 + wb.size) - x0, max(wa.y0 + wa.size, wb.y0 + wb.size) - y0
    canvas = np.zeros((2, side[1], side[0]), dtype=bool)
    canvas[0, wa.y0 - y0 : wa.y0 - y0 + wa.size, wa.x0 - x0 : wa.x0 - x0 + wa.size] = ma
    canvas[1, wb.y0 - y0 : wb.y0 - y0 + wb.size, wb.x0 - x0 : wb.x0 - x0 + wb.size] = mb
    union = np.count_nonzero(canvas[0] | canvas[1])
    return 1.0 if union == 0 else np.count_nonzero(canvas[0] & canvas[1]) / union


def agreement(ref: dict, got: dict) -> tuple[float, float]:
    """Mean and min IoU over the objects of ``ref`` (window masks)."""
    ious = [mask_iou(ref[k], got[k]) for k in ref]
    return float(np.mean(ious)), float(np.min(ious))
