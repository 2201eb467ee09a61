"""The conversion engine: frames in, crop-local masks out (DESIGN §6).

``frames → per-object plan → crops → batched model → ObjectMasks``.

- Frames are decoded ahead of the model on worker threads, and so are the
  crops (cut, resized ×(1024/S) bicubic); weight-free shape models also run
  there, since OpenCV releases the GIL.
- Crops of many objects and frames are stacked into encoder batches of
  ``batch_size``; the decoder runs on the whole batch's prompts at once.
- What is in flight is bounded (a few frames, a few batches), so memory does
  not grow with the number of frames.

The engine knows nothing about files or jobs: finished frames go to a callback.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from box2mask import geometry
from box2mask.errors import AnnotationError
from box2mask.io import read_image
from box2mask.models.base import PromptModel, ShapeModel
from box2mask.problems import Problems
from box2mask.types import CropWindow, Frame, FrameMasks, ObjectMask

log = logging.getLogger("box2mask")

STAGES = ("decode", "crop", "shape", "encoder", "decoder", "postprocess", "write")


@dataclass
class EngineOptions:
    """The options the engine itself uses (a subset of :class:`~box2mask.options.ConvertOptions`)."""

    batch_size: int = 4
    crop_size: int = 512
    context: float = 1.25
    window: str = "centred"
    interpolation: str = "bicubic"
    threshold: float = 0.0
    box_fill_classes: tuple[str, ...] = ("car",)
    box_fill_area: float = 0.0
    classes: tuple[str, ...] = ()
    clip_to_obb: bool = False
    workers: int = 2
    #: frames decoded ahead of the model
    prefetch_frames: int = 4


class Profile:
    """Seconds spent per stage (thread-safe); worker-thread stages overlap the model."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def time(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds[stage] += dt

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


@dataclass
class _FrameState:
    """A frame being converted: its results fill in as batches finish."""

    frame: Frame
    keep: np.ndarray  # indices of the frame's objects that are converted
    results: list[ObjectMask | None]
    remaining: int
    image: np.ndarray | None = None
    model_objects: list[tuple[int, CropWindow]] = field(default_factory=list)
    failed: bool = False  # the model raised on one of its objects: the frame is skipped


@dataclass
class _Item:
    state: _FrameState
    slot: int  # index into state.results
    window: CropWindow
    box: np.ndarray  # (4,) model-input pixels


class MaskEngine:
    """Runs one model over frames.

    Args:
        model: a :class:`PromptModel` (on ``device``) or a :class:`ShapeModel`.
        options: engine options.
        box_filler: the ``box`` shape model, used for the small-object policy.
        device: torch device of a prompt model.
        autocast_dtype: ``torch.bfloat16`` to run the model under autocast, or ``None`` (fp32).
        problems: where unreadable frames are reported.
        profile: optional stage timer.
    """

    def __init__(
        self,
        model: PromptModel | ShapeModel,
        options: EngineOptions,
        box_filler: ShapeModel,
        device: torch.device | None = None,
        autocast_dtype: torch.dtype | None = None,
        problems: Problems | None = None,
        profile: Profile | None = None,
    ) -> None:
        self.model = model
        self.is_prompt = isinstance(model, PromptModel) and not isinstance(model, ShapeModel)
        self.opts = options
        self.box_filler = box_filler
        self.device = device or torch.device("cpu")
        self.autocast_dtype = autocast_dtype
        self.problems = problems if problems is not None else Problems()
        self.profile = profile if profile is not None else Profile()
        self.image_size = getattr(model, "image_size", geometry.MODEL_SIZE)
        self.fill = geometry.fill_for_mode(options.window)  # type: ignore[arg-type]

    # -- planning ----------------------------------------------------------
    def _keep(self, frame: Frame) -> np.ndarray:
        if not self.opts.classes:
            return np.arange(len(frame))
        wanted = set(self.opts.classes)
        return np.array([i for i, c in enumerate(frame.category) if c in wanted], dtype=np.int64)

    def _box_filled(self, frame: Frame, i: int) -> bool:
        if frame.category[i] in self.opts.box_fill_classes:
            return True
        x1, y1, x2, y2 = frame.xyxy[i]
        return (x2 - x1) * (y2 - y1) < self.opts.box_fill_area

    def _needs_image(self, frame: Frame, keep: np.ndarray) -> bool:
        if self.is_prompt:
            return any(not self._box_filled(frame, int(i)) for i in keep)
        return bool(getattr(self.model, "needs_image", False)) and any(
            not self._box_filled(frame, int(i)) for i in keep
        )

    def _prepare(self, frame: Frame) -> _FrameState:
        """Worker thread: decode the frame, make shape masks, list the model's objects."""
        keep = self._keep(frame)
        state = _FrameState(frame, keep, [None] * len(keep), 0)
        if self._needs_image(frame, keep):
            with self.profile.time("decode"):
                state.image = read_image(frame.image_path)
            if state.image.shape[:2] != frame.image_hw:
                raise AnnotationError(
                    f"image is {state.image.shape[0]}x{state.image.shape[1]} (HxW) but the annotation "
                    f"says {frame.image_hw[0]}x{frame.image_hw[1]}",
                    frame.image_path,
                )
        hw = frame.image_hw
        for slot, i in enumerate(int(k) for k in keep):
            box = frame.xyxy[i]
            window = geometry.window_for_box(
                box, hw, self.opts.crop_size, self.opts.context, self.opts.window
            )  # type: ignore[arg-type]
            if self._box_filled(frame, i):
                model: ShapeModel | None = self.box_filler
            elif self.is_prompt:
                model = None
                state.model_objects.append((slot, window))
            else:
                model = self.model  # type: ignore[assignment]
            if model is not None:
                with self.profile.time("shape"):
                    crop = None
                    if getattr(model, "needs_image", False):
                        crop = geometry.crop_image(state.image, window, self.fill)  # type: ignore[arg-type]
                    obb = None if frame.obb is None else frame.obb[i] - (window.x0, window.y0)
                    mask, score, source = model.segment(
                        crop,
                        window.box_to_crop(box),
                        window.size,
                        obb=obb,
                        category=str(frame.category[i]),
                    )
                state.results[slot] = self._object_mask(frame, i, window, mask, score, source)
        state.remaining = len(state.model_objects)
        if not state.model_objects:
            state.image = None
        return state

    def _crops(
        self, state: _FrameState, objects: list[tuple[int, CropWindow]]
    ) -> tuple[np.ndarray, list[_Item]]:
        """Worker thread: cut and resize the crops of some of a frame's model objects."""
        n = len(objects)
        size = self.image_size
        out = np.empty((n, size, size, 3), dtype=np.uint8)
        items = []
        with self.profile.time("crop"):
            for j, (slot, window) in enumerate(objects):
                crop = geometry.crop_image(state.image, window, self.fill)  # type: ignore[arg-type]
                out[j] = geometry.resize_crop(crop, size, self.opts.interpolation)  # type: ignore[arg-type]
                i = int(state.keep[slot])
                items.append(
                    _Item(
                        state,
                        slot,
                        window,
                        geometry.box_to_model(state.frame.xyxy[i], window, size),
                    )
                )
        return out, items

    def _object_mask(
        self,
        frame: Frame,
        i: int,
        window: CropWindow,
        mask: np.ndarray,
        score: float | None,
        source: str,
    ) -> ObjectMask:
        if self.opts.clip_to_obb and frame.obb is not None and source not in ("obb", "box"):
            poly = np.round((frame.obb[i] - (window.x0, window.y0)) * 16).astype(np.int32)
            clip = np.zeros(mask.shape, dtype=np.uint8)
            cv2.fillPoly(clip, [poly], 1, lineType=cv2.LINE_8, shift=4)
            mask = mask & clip.astype(bool)
        return ObjectMask(
            track_id=int(frame.track_id[i]),
            category=str(frame.category[i]),
            window=window,
            mask=mask,
            prompt_xyxy=frame.xyxy[i],
            score=score,
            source=source,  # type: ignore[arg-type]
        )

    # -- running -----------------------------------------------------------
    def run(self, frames: Iterable[Frame], on_frame: Callable[[FrameMasks], None]) -> None:
        """Convert ``frames``; ``on_frame`` gets each finished frame (in input order
        for frames without model objects relative to each other; a frame is
        passed as soon as all its objects are done).

        A frame whose image cannot be read is reported to ``problems`` and skipped.
        """
        workers = max(1, self.opts.workers)
        with ThreadPoolExecutor(workers, thread_name_prefix="box2mask-prep") as pool:
            batch_crops: list[np.ndarray] = []
            batch_items: list[_Item] = []
            for event in self._events(frames, pool):
                if isinstance(event, _FrameState):
                    if event.remaining == 0:
                        on_frame(self._finish(event))
                    continue
                crops, items = event
                batch_crops.append(crops)
                batch_items.extend(items)
                while len(batch_items) >= self.opts.batch_size:
                    self._run_batch(batch_crops, batch_items, on_frame)
            if batch_items:
                self._run_batch(batch_crops, batch_items, on_frame)

    def _events(
        self, frames: Iterable[Frame], pool: ThreadPoolExecutor
    ) -> Iterator[_FrameState | tuple[np.ndarray, list[_Item]]]:
        """Prepared frames and crop chunks, in frame order, computed ahead on ``pool``."""
        frame_iter = iter(frames)
        pending: collections.deque[tuple[Frame, Future[_FrameState]]] = collections.deque()

        def refill() -> None:
            while len(pending) < self.opts.prefetch_frames:
                try:
                    frame = next(frame_iter)
                except StopIteration:
                    return
                pending.append((frame, pool.submit(self._prepare, frame)))

        refill()
        chunk = max(1, self.opts.batch_size)
        while pending:
            frame, fut = pending.popleft()
            try:
                state = fut.result()
            except AnnotationError as exc:
                refill()
                self.problems.report(exc, kind="frame")
                continue
            except Exception as exc:  # a shape model failing on one frame: skip that frame only
                refill()
                self.problems.report(_frame_error(frame, exc), kind="model")
                continue
            refill()
            yield state
            objs = state.model_objects
            chunks = [objs[k : k + chunk] for k in range(0, len(objs), chunk)]
            # crop one chunk ahead of the model; the frame image is freed after the last
            futs = collections.deque(pool.submit(self._crops, state, c) for c in chunks[:2])
            nxt = 2
            while futs:
                result = futs.popleft().result()
                if nxt < len(chunks):
                    futs.append(pool.submit(self._crops, state, chunks[nxt]))
                    nxt += 1
                yield result
            state.image = None

    def _run_batch(
        self,
        batch_crops: list[np.ndarray],
        batch_items: list[_Item],
        on_frame: Callable[[FrameMasks], None],
    ) -> None:
        """Run the model on the first ``batch_size`` queued crops (in place)."""
        n = min(self.opts.batch_size, len(batch_items))
        crops = np.concatenate(batch_crops, axis=0) if len(batch_crops) > 1 else batch_crops[0]
        take, rest = crops[:n], crops[n:]
        items, batch_items[:] = batch_items[:n], batch_items[n:]
        batch_crops[:] = [rest] if len(rest) else []
        self._infer_items(take, items, on_frame)

    def _infer_items(
        self, crops: np.ndarray, items: list[_Item], on_frame: Callable[[FrameMasks], None]
    ) -> None:
        """Run the model on ``crops`` (one per item); on failure, retry in halves.

        A CUDA out-of-memory also lowers the batch size for the rest of the run.
        A single crop that still fails marks its frame failed: reported once,
        skipped, not recorded (a resumed run tries it again).
        """
        try:
            logits, iou = self._infer(crops, items)
        except Exception as exc:
            oom = isinstance(exc, torch.cuda.OutOfMemoryError)
            if oom and self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(items) > 1:
                half = len(items) // 2
                if oom and self.opts.batch_size > half:
                    log.warning(
                        "out of memory on a batch of %d crops: batch size now %d", len(items), half
                    )
                    self.opts.batch_size = half
                self._infer_items(crops[:half], items[:half], on_frame)
                self._infer_items(crops[half:], items[half:], on_frame)
                return
            st = items[0].state
            if not st.failed:
                st.failed = True
                self.problems.report(_frame_error(st.frame, exc), kind="model")
            self._object_done(st, on_frame)
            return
        with self.profile.time("postprocess"):
            masks = self._upsample(logits.float(), [it.window.size for it in items])
            scores = iou.float().cpu().numpy()
        done: list[_FrameState] = []
        for it, mask, score in zip(items, masks, scores, strict=True):
            st = it.state
            i = int(st.keep[it.slot])
            st.results[it.slot] = self._object_mask(
                st.frame, i, it.window, mask, float(score), "model"
            )
            st.remaining -= 1
            if st.remaining == 0:
                done.append(st)
        for st in done:
            if not st.failed:
                on_frame(self._finish(st))

    def _object_done(self, st: _FrameState, on_frame: Callable[[FrameMasks], None]) -> None:
        st.remaining -= 1
        if st.remaining == 0 and not st.failed:
            on_frame(self._finish(st))

    def _infer(self, take: np.ndarray, items: list[_Item]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder + decoder on ``(n, S, S, 3)`` uint8 crops → ``(n, 256, 256)`` logits, ``(n,)`` IoU."""
        n = len(items)
        images = torch.from_numpy(np.ascontiguousarray(take))
        if self.device.type == "cuda":
            images = images.pin_memory().to(self.device, non_blocking=True)
        boxes = torch.as_tensor(
            np.stack([it.box for it in items]), dtype=torch.float32, device=self.device
        )
        index = torch.arange(n, device=self.device)
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        model: PromptModel = self.model  # type: ignore[assignment]
        with torch.inference_mode(), autocast:
            with self.profile.time("encoder"):
                feats = model.encode(images)
                self._sync()
            with self.profile.time("decoder"):
                logits, iou = model.decode(feats, boxes, index)
                self._sync()
        return logits, iou

    def _upsample(self, logits: torch.Tensor, sizes: list[int]) -> list[np.ndarray]:
        """``(M, 256, 256)`` logits → ``(S_m, S_m)`` bool masks: bilinear (align_corners=False), > threshold."""
        out: list[np.ndarray | None] = [None] * len(sizes)
        by_size: dict[int, list[int]] = collections.defaultdict(list)
        for k, s in enumerate(sizes):
            by_size[s].append(k)
        for s, ks in by_size.items():
            up = F.interpolate(
                logits[ks].unsqueeze(1), size=(s, s), mode="bilinear", align_corners=False
            )
            masks = (up[:, 0] > self.opts.threshold).cpu().numpy()
            for k, m in zip(ks, masks, strict=True):
                out[k] = m
        return out  # type: ignore[return-value]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @staticmethod
    def _finish(state: _FrameState) -> FrameMasks:
        state.image = None
        return FrameMasks(state.frame, tuple(r for r in state.results if r is not None))


def _frame_error(frame: Frame, exc: BaseException) -> AnnotationError:
    """A model failure on one frame, as a skipped-input report naming the frame."""
    return AnnotationError(
        f"{frame.sequence} frame {frame.frame_index}: the model failed "
        f"({type(exc).__name__}: {exc}); frame skipped",
        frame.image_path,
    )
