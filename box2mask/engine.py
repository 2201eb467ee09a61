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

Every mask is kept as its :class:`~box2mask.types.MaskBlock` (the rectangle
that holds its pixels): a box-filled or shape-fitted small object costs in
proportion to its box, not to its 512×512 window, from the fill to the RLE.
torch is imported only by what uses it (prompt models, CUDA devices), so a
weight-free job never loads it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from box2mask import geometry
from box2mask.device_errors import classify_error
from box2mask.errors import AnnotationError, Box2MaskError
from box2mask.hostmem import keep_freed_memory
from box2mask.io import read_image
from box2mask.models.base import CropModel, PromptModel, ShapeModel
from box2mask.models.classical import ellipse_block
from box2mask.options import EngineOptions
from box2mask.problems import Problems
from box2mask.types import CropWindow, Frame, FrameMasks, MaskBlock, ObjectMask

if TYPE_CHECKING:
    import torch

log = logging.getLogger("box2mask")

#: profile stages, in pipeline order; ``model`` stages are :data:`MODEL_STAGES`
STAGES = (
    "decode",
    "crop",
    "resize",
    "shape",
    "stage",
    "encoder",
    "decoder",
    "postprocess",
    "encode-rle",
    "write",
)
MODEL_STAGES = ("encoder", "decoder")
#: objects per network call of a crop model (``lite``), at least
CROP_BATCH = 256


class DeviceFailed(Box2MaskError):
    """The device cannot run anything more in this process (a sticky CUDA error).

    An illegal memory access, a device-side assert, an ECC error...: every later
    CUDA call in the process fails too, so the engine stops at once instead of
    reporting every remaining frame as skipped. Frames finished before are
    kept; a new process (running the same command again) resumes.
    """

    exit_code = 1


@contextlib.contextmanager
def cuda_device_scope(device: torch.device | None) -> Iterator[None]:
    """Make ``device`` this thread's current CUDA device while inside; no-op off CUDA.

    Without it a process on ``cuda:1`` has GPU 0 as its current device: events,
    streams and pinned memory would be made there (and a CUDA context with
    them). On leaving, the previous device is restored only if it already
    has a context (``torch.cuda._maybe_exchange_device``), so none is created.
    """
    if device is None or device.type != "cuda":
        yield
        return
    import torch

    previous = torch.cuda.current_device()
    index = previous if device.index is None else device.index
    torch.cuda.set_device(index)
    try:
        yield
    finally:
        if previous != index:
            restore = getattr(torch.cuda, "_maybe_exchange_device", None)
            if restore is not None:
                restore(previous)


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
    #: the model's crops: a window and the result slots of the objects prompted in it
    model_groups: list[tuple[CropWindow, list[int]]] = field(default_factory=list)
    failed: bool = False  # the model raised on one of its objects: the frame is skipped
    #: a crop model's objects: their inputs, made on the worker thread
    crop_items: list[_CropItem] = field(default_factory=list)


@dataclass
class _Item:
    """One object prompted in a crop."""

    state: _FrameState
    slot: int  # index into state.results
    window: CropWindow  # the crop's window (shared by the objects of one crop)
    box: np.ndarray  # (4,) model-input pixels


@dataclass
class _CropItem:
    """One object of a :class:`~box2mask.models.base.CropModel`: its window and its input."""

    state: _FrameState
    slot: int
    window: CropWindow
    input: np.ndarray


@dataclass
class _Crop:
    """One encoder input: a resized crop and the objects prompted in it."""

    image: np.ndarray  # (image_size, image_size, 3) uint8 RGB
    items: list[_Item]


def group_windows(
    windows: list[CropWindow], boxes: np.ndarray, min_iou: float
) -> list[tuple[CropWindow, list[int]]]:
    """Group objects whose windows nearly coincide, so that they share one crop.

    An object joins the first group whose window has its own window's side,
    overlaps it with IoU >= ``min_iou`` and contains its whole box; the group
    keeps its first object's window. ``min_iou <= 0`` disables sharing.

    Args:
        windows: each object's own crop window (frame pixels).
        boxes: ``(N, 4)`` float xyxy frame pixels, the objects' boxes.
        min_iou: window IoU threshold in (0, 1].

    Returns:
        ``[(window, [object indices])]`` in first-object order; every index once.

    >>> w = [CropWindow(0, 0, 512), CropWindow(8, 0, 512), CropWindow(300, 0, 512)]
    >>> b = np.array([[200, 200, 300, 300], [210, 200, 310, 300], [500, 200, 600, 300]])
    >>> group_windows(w, b, 0.9)
    [(CropWindow(x0=0, y0=0, size=512), [0, 1]), (CropWindow(x0=300, y0=0, size=512), [2])]
    """
    groups: list[tuple[CropWindow, list[int]]] = []
    for i, win in enumerate(windows):
        if min_iou > 0:
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            for gwin, members in groups:
                s = gwin.size
                if s != win.size:
                    continue
                inside = gwin.x0 <= x1 and gwin.y0 <= y1 and x2 <= gwin.x0 + s and y2 <= gwin.y0 + s
                if inside and window_iou(gwin, win) >= min_iou:
                    members.append(i)
                    break
            else:
                groups.append((win, [i]))
        else:
            groups.append((win, [i]))
    return groups


def window_iou(a: CropWindow, b: CropWindow) -> float:
    """IoU of two square windows (frame pixels).

    >>> window_iou(CropWindow(0, 0, 10), CropWindow(5, 0, 10))
    0.3333333333333333
    """
    iw = max(0, min(a.x0 + a.size, b.x0 + b.size) - max(a.x0, b.x0))
    ih = max(0, min(a.y0 + a.size, b.y0 + b.size) - max(a.y0, b.y0))
    inter = iw * ih
    return inter / (a.size * a.size + b.size * b.size - inter)


class _Writer:
    """Calls ``on_frame`` on its own thread, in the order frames are put.

    Writing (RLE encoding, JSON, PNG, fsync, the ledger) then overlaps the
    model. The queue is bounded, so a slow disk slows the model instead of
    filling memory. The first exception ``on_frame`` raises stops further
    calls and is raised again in the engine's thread (at the next :meth:`put`
    or at :meth:`close`), so a full disk still stops the job.
    """

    def __init__(self, on_frame: Callable[[FrameMasks], None], maxsize: int) -> None:
        self._on_frame = on_frame
        self._queue: queue.Queue[FrameMasks | None] = queue.Queue(maxsize)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="box2mask-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fm = self._queue.get()
            if fm is None:
                return
            if self.error is not None:
                continue  # keep draining so that put() never blocks forever
            try:
                self._on_frame(fm)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the engine's thread
                self.error = exc

    def put(self, fm: FrameMasks) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(fm)

    def close(self, raise_error: bool = True) -> None:
        """Write what is queued, stop the thread; raise the writer's error if any."""
        self._queue.put(None)
        self._thread.join()
        if raise_error and self.error is not None:
            raise self.error


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
        self.is_crop = not self.is_prompt and isinstance(model, CropModel)
        self.opts = options
        self.box_filler = box_filler
        if device is None:
            import torch

            device = torch.device("cpu")
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.problems = problems if problems is not None else Problems()
        self.profile = profile if profile is not None else Profile()
        self.image_size = getattr(model, "image_size", geometry.MODEL_SIZE)
        self.fill = geometry.fill_for_mode(options.window)  # type: ignore[arg-type]
        self._buffers: list[torch.Tensor | None] = [None, None]
        self._copied: list[torch.cuda.Event | None] = [None, None]
        self._next_buffer = 0
        self._current_buffer = 0
        if self.is_prompt:
            keep_freed_memory()  # an encoder pass's big tensors reuse mapped pages

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
        if self.is_prompt or self.is_crop:
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
        model_slots: list[int] = []
        model_windows: list[CropWindow] = []
        # plain Python numbers per object (a dense frame has hundreds): same values
        # as the arrays' float64, without a numpy scalar per operation
        boxes = frame.xyxy.tolist()
        categories = frame.category.tolist()
        fill_classes, fill_area = self.opts.box_fill_classes, self.opts.box_fill_area
        opts = self.opts
        shape_seconds, shaped = 0.0, False
        for slot, i in enumerate(keep.tolist()):
            box = boxes[i]
            window = geometry.window_for_box(box, hw, opts.crop_size, opts.context, opts.window)  # type: ignore[arg-type]
            x1, y1, x2, y2 = box
            if categories[i] in fill_classes or (x2 - x1) * (y2 - y1) < fill_area:  # _box_filled
                model: ShapeModel | None = self.box_filler
            elif self.is_crop:
                model = None
                cwin = self.model.window(box)  # type: ignore[union-attr]
                state.crop_items.append(
                    _CropItem(state, slot, cwin, self.model.make_input(state.image, box, cwin))  # type: ignore[union-attr]
                )
                continue
            elif self.is_prompt:
                model = None
                model_slots.append(slot)
                model_windows.append(window)
            else:
                model = self.model  # type: ignore[assignment]
            if model is not None:
                t0 = time.perf_counter()
                mask, score, source = self._segment_shape(model, state.image, frame, i, window, box)
                shape_seconds += time.perf_counter() - t0
                shaped = True
                state.results[slot] = self._object_mask(frame, i, window, mask, score, source)
        if shaped:
            self.profile.add("shape", shape_seconds)
        if self.is_crop:
            state.remaining = len(state.crop_items)
            state.image = None  # the inputs are cut: the frame is not needed any more
            return state
        if model_slots:
            boxes = frame.xyxy[keep[model_slots]]
            state.model_groups = [
                (win, [model_slots[j] for j in members])
                for win, members in group_windows(model_windows, boxes, self.opts.share_crops)
            ]
        state.remaining = len(model_slots)
        if not model_slots:
            state.image = None
        return state

    def _segment_shape(
        self,
        model: ShapeModel,
        image: np.ndarray | None,
        frame: Frame,
        i: int,
        window: CropWindow,
        xyxy: list[float],
    ) -> tuple[MaskBlock | np.ndarray, float | None, str]:
        """One object's weight-free mask: a block from ``segment_block`` where the model
        has it (fills, grabcut, classical: the window's pixels are cut only where the
        model looks), else the ``(S, S)`` mask of ``segment`` (any third-party ShapeModel).

        ``xyxy``: the object's box in frame pixels (``frame.xyxy[i]`` as floats).
        """
        obb = None if frame.obb is None else frame.obb[i] - (window.x0, window.y0)
        x0, y0 = window.x0, window.y0
        box = np.array([xyxy[0] - x0, xyxy[1] - y0, xyxy[2] - x0, xyxy[3] - y0])  # box_to_crop
        category = str(frame.category[i])
        needs_image = getattr(model, "needs_image", False)
        segment_block = getattr(model, "segment_block", None)
        if segment_block is not None:
            pixels = geometry.WindowPixels(image, window, self.fill) if needs_image else None  # type: ignore[arg-type]
            return segment_block(pixels, box, window.size, obb=obb, category=category)
        crop = geometry.crop_image(image, window, self.fill) if needs_image else None  # type: ignore[arg-type]
        return model.segment(crop, box, window.size, obb=obb, category=category)

    def _crops(self, state: _FrameState, groups: list[tuple[CropWindow, list[int]]]) -> list[_Crop]:
        """Worker thread: cut and resize the crops of some of a frame's model objects."""
        size = self.image_size
        out = []
        for window, slots in groups:
            with self.profile.time("crop"):
                crop = geometry.crop_image(state.image, window, self.fill)  # type: ignore[arg-type]
            with self.profile.time("resize"):
                image = geometry.resize_crop(crop, size, self.opts.interpolation)  # type: ignore[arg-type]
            items = [
                _Item(
                    state,
                    slot,
                    window,
                    geometry.box_to_model(state.frame.xyxy[int(state.keep[slot])], window, size),
                )
                for slot in slots
            ]
            out.append(_Crop(image, items))
        return out

    def _object_mask(
        self,
        frame: Frame,
        i: int,
        window: CropWindow,
        mask: MaskBlock | np.ndarray,
        score: float | None,
        source: str,
    ) -> ObjectMask:
        """The :class:`ObjectMask` of object ``i``, kept as its block.

        ``mask`` is a :class:`MaskBlock` in window pixels, or an ``(S, S)`` bool
        mask (the model's, a third-party shape model's), whose block is found
        here: one pass over the window, then only the block is kept.
        """
        if isinstance(mask, MaskBlock):
            block = mask
        else:
            m = np.asarray(mask)
            s = window.size
            if m.shape != (s, s):
                raise ValueError(f"mask must have the window's shape ({s}, {s}), got {m.shape}")
            block = MaskBlock.from_mask(m)
        if self.opts.clip_to_obb and frame.obb is not None and source not in ("obb", "box"):
            block = _clip_block_to_polygon(
                block, frame.obb[i] - (window.x0, window.y0), window.size
            )
        return ObjectMask.from_block(
            int(frame.track_id[i]),
            str(frame.category[i]),
            window,
            block,
            frame.xyxy[i],
            score,
            source,
        )

    # -- running -----------------------------------------------------------
    def run(self, frames: Iterable[Frame], on_frame: Callable[[FrameMasks], None]) -> None:
        """Convert ``frames``; ``on_frame`` gets each finished frame (in input order
        for frames without model objects relative to each other; a frame is
        passed as soon as all its objects are done).

        ``on_frame`` is called from one thread (the writer thread unless
        ``write_queue`` is 0), in the order frames finish; an exception it
        raises is raised here and stops the run.

        A frame whose image cannot be read is reported to ``problems`` and skipped.
        """
        with cuda_device_scope(self.device if self.is_prompt else None):
            self._run(frames, on_frame)

    def _run(self, frames: Iterable[Frame], on_frame: Callable[[FrameMasks], None]) -> None:
        workers = max(1, self.opts.workers)
        writer = _Writer(on_frame, self.opts.write_queue) if self.opts.write_queue > 0 else None
        emit = writer.put if writer is not None else on_frame
        ok = False
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="box2mask-prep") as pool:
                pending: collections.deque = collections.deque()
                run_batch = self._run_crop_batch if self.is_crop else self._run_batch
                for event in self._events(frames, pool):
                    if isinstance(event, _FrameState):
                        if event.remaining == 0:
                            emit(self._finish(event))
                        continue
                    pending.extend(event)
                    while len(pending) >= self._batch_size():
                        run_batch(pending, emit, self._batch_size())
                while pending:
                    run_batch(pending, emit, self._batch_size())
            ok = True
        finally:
            if writer is not None:
                # on success, a writer error (disk full) is raised here; after another
                # exception, the frames already queued are still written, then it propagates
                writer.close(raise_error=ok)

    def _events(
        self, frames: Iterable[Frame], pool: ThreadPoolExecutor
    ) -> Iterator[_FrameState | list[_Crop]]:
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
            if state.crop_items:
                yield state.crop_items
                continue
            groups = state.model_groups
            chunks = [groups[k : k + chunk] for k in range(0, len(groups), chunk)]
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

    def _staging(self, n: int) -> torch.Tensor:
        """A reused host buffer ``(>= n, S, S, 3)`` uint8 (pinned on CUDA).

        Two buffers alternate, so filling batch k+1 never overwrites batch k
        while its non-blocking host→device copy may still be running; an event
        recorded after each copy is waited on before a buffer is refilled.
        """
        import torch

        size = self.image_size
        k = self._next_buffer
        self._next_buffer ^= 1
        buf = self._buffers[k]
        if buf is None or buf.shape[0] < n:
            pin = self.device.type == "cuda"
            buf = torch.empty((max(n, self.opts.batch_size), size, size, 3), dtype=torch.uint8)
            self._buffers[k] = buf.pin_memory() if pin else buf
            self._copied[k] = None
        elif self._copied[k] is not None:
            self._copied[k].synchronize()  # type: ignore[union-attr]
        self._current_buffer = k
        return self._buffers[k]  # type: ignore[return-value]

    def _batch_size(self) -> int:
        """Objects (crop model) or crops (prompt model) per model call, read at each call: an
        out-of-memory lowers ``opts.batch_size`` during the run. A crop model's inputs are
        small, so it gathers at least :data:`CROP_BATCH` objects per call."""
        if self.is_crop:
            return max(self.opts.batch_size, CROP_BATCH)
        return self.opts.batch_size

    def _run_crop_batch(
        self, pending: collections.deque[_CropItem], emit: Callable[[FrameMasks], None], batch: int
    ) -> None:
        """Run a crop model on the first ``batch`` queued objects (removed from ``pending``).

        A failure fails the frames of the batch's objects: each is reported once and
        skipped, not recorded (a resumed run tries them again).
        """
        items = [pending.popleft() for _ in range(min(batch, len(pending)))]
        model: CropModel = self.model  # type: ignore[assignment]
        try:
            with self.profile.time("encoder"):
                outputs, iou = model.predict([it.input for it in items])
        except Exception as exc:  # the model failing on a batch: its frames are skipped
            failure = f"{type(exc).__name__}: {exc}"
            if classify_error(exc) == "fatal":
                raise DeviceFailed(
                    f"the device {self.device} failed ({failure}); it cannot be used by this process any more"
                ) from None
            self._fail_items(items, failure, emit)
            return
        done: list[_FrameState] = []
        with self.profile.time("postprocess"):
            for it, out, score in zip(items, outputs, iou.tolist(), strict=True):
                st = it.state
                it.input = None  # type: ignore[assignment]  # free the input as soon as it is used
                i = int(st.keep[it.slot])
                block = model.mask_block(out, it.window, st.frame.xyxy[i])
                source = "model"
                if block.height == 0:
                    # an empty answer to a box prompt: the inscribed ellipse, marked as such
                    w = it.window
                    box = st.frame.xyxy[i] - (w.x0, w.y0, w.x0, w.y0)
                    block, source = ellipse_block(box, w.size), "ellipse"
                self._slot_done(
                    st,
                    it.slot,
                    self._object_mask(st.frame, i, it.window, block, score, source),
                    done,
                )
        for st in done:
            if not st.failed:
                emit(self._finish(st))

    def _run_batch(
        self, pending: collections.deque[_Crop], emit: Callable[[FrameMasks], None], batch: int
    ) -> None:
        """Run the model on the first ``batch`` queued crops (removed from ``pending``)."""
        n = min(batch, len(pending))
        crops = [pending.popleft() for _ in range(n)]
        with self.profile.time("stage"):
            buf = self._staging(n)
            host = buf.numpy()
            for j, c in enumerate(crops):
                host[j] = c.image  # one copy into the reused (pinned) buffer, no concatenate
        self._infer_items(buf[:n], crops, emit)

    def _infer_items(
        self, images: torch.Tensor, crops: list[_Crop], on_frame: Callable[[FrameMasks], None]
    ) -> None:
        """Run the model on ``images`` (one per crop, host uint8); on failure, retry in halves.

        A CUDA out-of-memory also lowers the batch size for the rest of the run.
        A single crop that still fails marks its frames failed: reported once,
        skipped, not recorded (a resumed run tries them again).
        """
        items = [it for c in crops for it in c.items]
        failed: str | None = None
        kind = "error"
        try:
            logits, iou = self._infer(images, crops)
        except Exception as exc:
            # only a summary leaves this block: the exception's traceback holds the failed
            # attempt's tensors (activations, features), which must be freed before a retry
            kind = classify_error(exc)
            failed = f"{type(exc).__name__}: {exc}"
        if failed is not None:
            if kind == "fatal":
                raise DeviceFailed(
                    f"the device {self.device} failed ({failed}); it cannot be used by this "
                    "process any more"
                )
            oom = kind == "oom"
            if oom and self.device.type == "cuda":
                import torch

                torch.cuda.empty_cache()
            if len(crops) > 1:
                half = len(crops) // 2
                if oom and self.opts.batch_size > half:
                    log.warning(
                        "out of memory on a batch of %d crops: batch size now %d", len(crops), half
                    )
                    self.opts.batch_size = half
                self._infer_items(images[:half], crops[:half], on_frame)
                self._infer_items(images[half:], crops[half:], on_frame)
                return
            self._fail_items(items, failed, on_frame)
            return
        with self.profile.time("postprocess"):
            masks = self._upsample(logits, [it.window.size for it in items])
            scores = iou.float().cpu().numpy()
            done: list[_FrameState] = []
            for it, mask, score in zip(items, masks, scores, strict=True):
                st = it.state
                i = int(st.keep[it.slot])
                mask = self._object_mask(st.frame, i, it.window, mask, float(score), "model")
                self._slot_done(st, it.slot, mask, done)
        for st in done:
            if not st.failed:
                on_frame(self._finish(st))

    def _fail_items(
        self, items: list[Any], failure: str, emit: Callable[[FrameMasks], None]
    ) -> None:
        """A batch the model failed on: each frame of its items is reported once and skipped."""
        for it in items:
            st = it.state
            if not st.failed:
                st.failed = True
                self.problems.report(_frame_error_text(st.frame, failure), kind="model")
            self._object_done(st, emit)

    @staticmethod
    def _slot_done(st: _FrameState, slot: int, mask: ObjectMask, done: list[_FrameState]) -> None:
        """One object's mask in place; a frame whose every object is done joins ``done``."""
        st.results[slot] = mask
        st.remaining -= 1
        if st.remaining == 0:
            done.append(st)

    def _object_done(self, st: _FrameState, on_frame: Callable[[FrameMasks], None]) -> None:
        st.remaining -= 1
        if st.remaining == 0 and not st.failed:
            on_frame(self._finish(st))

    def _infer(self, images: torch.Tensor, crops: list[_Crop]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder + decoder on ``(B, S, S, 3)`` uint8 host crops → ``(M, 256, 256)`` logits, ``(M,)`` IoU.

        ``M`` is the number of prompts (objects) in ``crops``, crop by crop.
        """
        import torch

        boxes_np = np.stack([it.box for c in crops for it in c.items]).astype(np.float32)
        index_np = np.repeat(np.arange(len(crops)), [len(c.items) for c in crops])
        if self.device.type == "cuda":
            images = images.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))  # not GPU 0's stream
            self._copied[self._current_buffer] = event
            boxes = torch.from_numpy(boxes_np).pin_memory().to(self.device, non_blocking=True)
            index = torch.from_numpy(index_np).pin_memory().to(self.device, non_blocking=True)
        else:
            boxes = torch.from_numpy(boxes_np)
            index = torch.from_numpy(index_np)
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
        """``(M, 256, 256)`` logits → ``(S_m, S_m)`` bool masks: bilinear (align_corners=False), > threshold.

        One interpolation per distinct window side (nearly always one: every
        object smaller than the crop has the same side), on the model's device;
        only the thresholded bool masks come back to the host.
        """
        import torch.nn.functional as F

        out: list[np.ndarray | None] = [None] * len(sizes)
        by_size: dict[int, list[int]] = collections.defaultdict(list)
        for k, s in enumerate(sizes):
            by_size[s].append(k)
        for s, ks in by_size.items():
            sel = logits if len(ks) == len(sizes) else logits[ks]
            up = F.interpolate(
                sel.float().unsqueeze(1), size=(s, s), mode="bilinear", align_corners=False
            )
            masks = (up[:, 0] > self.opts.threshold).cpu().numpy()
            for k, m in zip(ks, masks, strict=True):
                out[k] = m
        return out  # type: ignore[return-value]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    @staticmethod
    def _finish(state: _FrameState) -> FrameMasks:
        state.image = None
        return FrameMasks(state.frame, tuple(r for r in state.results if r is not None))


def _frame_error(frame: Frame, exc: BaseException) -> AnnotationError:
    """A model failure on one frame, as a skipped-input report naming the frame."""
    return _frame_error_text(frame, f"{type(exc).__name__}: {exc}")


def _frame_error_text(frame: Frame, failure: str) -> AnnotationError:
    return AnnotationError(
        f"{frame.sequence} frame {frame.frame_index}: the model failed ({failure}); frame skipped",
        frame.image_path,
    )


def _clip_block_to_polygon(block: MaskBlock, poly_xy: np.ndarray, size: int) -> MaskBlock:
    """``block`` AND the polygon (window pixels), as ``cv2.fillPoly`` on the whole window gives it.

    The corners are rounded to OpenCV's 1/16-pixel fixed point in window
    pixels first, as before. OpenCV draws the polygon's outline with lines
    clipped to the canvas, so a canvas that cut the polygon where the window
    does not would move a few outline pixels: the canvas here is the
    polygon's own bounding pixels (a pixel of margin) within the window, moved
    by whole pixels; its sides are either the window's or clear of the polygon.
    Costs in proportion to the polygon, not the window.
    """
    if block.height == 0 or block.width == 0:
        return block
    poly = np.round(np.asarray(poly_xy, dtype=np.float64) * 16).astype(np.int32)
    lo, hi = poly.min(axis=0) // 16, poly.max(axis=0) // 16
    x0, y0 = max(int(lo[0]) - 1, 0), max(int(lo[1]) - 1, 0)
    x1, y1 = min(int(hi[0]) + 2, size), min(int(hi[1]) + 2, size)
    if x1 <= x0 or y1 <= y0:
        return MaskBlock.empty()
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(canvas, [poly - np.array([x0 * 16, y0 * 16], np.int32)], 1,
                 lineType=cv2.LINE_8, shift=4)  # fmt: skip
    clip = MaskBlock(y0, x0, y1 - y0, x1 - x0, canvas.astype(bool))
    part = block.clip(clip.top, clip.left, clip.bottom, clip.right)
    if part.height == 0:
        return part
    inside = clip.data[part.top - y0 : part.bottom - y0, part.left - x0 : part.right - x0]  # type: ignore[index]
    return MaskBlock(part.top, part.left, part.height, part.width, part.pixels() & inside)
