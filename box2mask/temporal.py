"""``--temporal propagate``: SAM 2's video memory along each track's crop video.

For a track, its prompt-centred crops in frame order are a short video at full
crop resolution. :class:`TemporalEngine` cuts a sequence into *windows* of
:data:`WINDOW` frame numbers (``frame_index // WINDOW``), and per window and
track runs ``SAM2VideoPredictor``: the track's box is the prompt on its first
frame in the window and every ``prompt_every``-th after it, the other frames
are propagated from the memory of the frames before them. Masks are pasted
back exactly as in image mode; box-filled classes and weight-free shapes are
made per frame as usual.

Memory is bounded per track: a window's frames are decoded once and held
(``WINDOW`` frames); crops are cut, encoded (in encoder batches across tracks)
and propagated track by track, so at most one window of one track's backbone
features plus one encoder batch is alive (about 17 MB per crop at 1024 px).

Same contract as :class:`~box2mask.engine.MaskEngine`: ``run(frames,
on_frame)``; a window's frames are emitted, in order, once every mask of the
window is final. Kill/resume: a window's masks depend only on the window's own
frames (a track's memory starts afresh in each window, from a prompted frame),
never on which of them were handed out. A run handed only part of a window (a
resumed run whose ledger holds the window's first frames, a stop in the middle,
frames spread over several workers) reads the window's other frames from the
dataset (``window_frames``), computes the whole window as an uninterrupted run
does, and emits only the frames it was handed.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from box2mask.engine import (
    MaskEngine,
    _frame_error,
    _frame_error_text,
    _FrameState,
    _Writer,
    classify_error,
    cuda_device_scope,
)
from box2mask.errors import AnnotationError
from box2mask.types import Frame, FrameMasks

#: frame numbers per window (``frame_index // WINDOW``): the longest video a
#: track's memory spans, and what a window holds in memory
WINDOW = 16

#: the frames of a sequence whose ``frame_index // WINDOW`` is given, from the dataset
WindowFrames = Callable[[str, int], list[Frame]]


def window_of(frame: Frame, window: int = WINDOW) -> tuple[str, int]:
    """The window a frame belongs to: ``(sequence, frame_index // window)``."""
    return frame.sequence, frame.frame_index // window


def prompted_positions(n: int, prompt_every: int) -> list[bool]:
    """Which of a track's ``n`` frames in a window get its box as a prompt.

    >>> prompted_positions(6, 4)
    [True, False, False, False, True, False]
    """
    return [j % max(1, prompt_every) == 0 for j in range(n)]


@dataclass
class _TrackItem:
    state: _FrameState
    slot: int
    crop: object  # engine._Crop (one object)


@dataclass
class _Track:
    track_id: int
    items: list[_TrackItem] = field(default_factory=list)


class TemporalEngine(MaskEngine):
    """:class:`MaskEngine` whose model objects are propagated along tracks (``sam2`` only).

    Args (beyond :class:`MaskEngine`'s):
        prompt_every: prompt a track's box on every k-th of its frames in a window.
        window_frames: the dataset's frames of a window (for windows handed out
            in part); ``None`` treats the frames handed out as the whole window.
        window: frame numbers per window.
    """

    def __init__(
        self,
        *args: object,
        prompt_every: int = 1,
        window_frames: WindowFrames | None = None,
        window: int = WINDOW,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.opts.share_crops = 0.0  # every object its own crop: a track's video is its crops
        if not hasattr(self.model, "propagate"):
            raise TypeError(f"{getattr(self.model, 'name', self.model)} has no video memory")
        self.prompt_every = max(1, int(prompt_every))
        self.window_frames = window_frames
        self.window = int(window)

    def run(self, frames: Iterable[Frame], on_frame: Callable[[FrameMasks], None]) -> None:
        with cuda_device_scope(self.device):
            writer = _Writer(on_frame, self.opts.write_queue) if self.opts.write_queue > 0 else None
            emit = writer.put if writer is not None else on_frame
            ok = False
            try:
                with ThreadPoolExecutor(max(1, self.opts.workers), "box2mask-prep") as pool:
                    for key, handed in _windows(frames, self.window):
                        self._run_window(key, handed, pool, emit)
                ok = True
            finally:
                if writer is not None:
                    writer.close(raise_error=ok)

    # -- one window -------------------------------------------------------------
    def _whole_window(self, key: tuple[str, int], handed: list[Frame]) -> list[Frame]:
        """The window's frames: those handed out, plus the dataset's others (in frame order)."""
        if self.window_frames is None:
            return handed
        have = {f.frame_index for f in handed}
        extra = [f for f in self.window_frames(*key) if f.frame_index not in have]
        if not extra:
            return handed
        return sorted([*handed, *extra], key=lambda f: f.frame_index)

    def _run_window(
        self,
        key: tuple[str, int],
        handed: list[Frame],
        pool: ThreadPoolExecutor,
        emit: Callable[[FrameMasks], None],
    ) -> None:
        wanted = {id(f) for f in handed}
        frames = self._whole_window(key, handed)
        states: list[_FrameState] = []
        for frame, fut in [(f, pool.submit(self._prepare, f)) for f in frames]:
            try:
                states.append(fut.result())
            except AnnotationError as exc:
                if id(frame) in wanted:
                    self.problems.report(exc, kind="frame")
            except Exception as exc:  # a shape model failing on one frame
                if id(frame) in wanted:
                    self.problems.report(_frame_error(frame, exc), kind="model")
        tracks: dict[int, _Track] = {}
        for st in states:
            for _window, slots in st.model_groups:
                for slot in slots:
                    tid = int(st.frame.track_id[int(st.keep[slot])])
                    tracks.setdefault(tid, _Track(tid)).items.append(_TrackItem(st, slot, None))
        self._propagate_tracks(list(tracks.values()), pool)
        for st in states:
            st.image = None
            if id(st.frame) in wanted and not st.failed:
                emit(self._finish(st))

    def _propagate_tracks(self, tracks: list[_Track], pool: ThreadPoolExecutor) -> None:
        """Encode the tracks' crops in batches (across tracks, in track order) and
        propagate each track as soon as all its crops are encoded."""
        pending: collections.deque[tuple[_Track, int]] = collections.deque()
        encoded: dict[int, dict[int, dict]] = collections.defaultdict(dict)
        waiting: collections.deque[_Track] = collections.deque()
        crops_of = {
            id(tr): pool.submit(self._track_crops, tr) for tr in tracks[:2]
        }  # cut one track ahead
        for k, tr in enumerate(tracks):
            if k + 2 < len(tracks):
                crops_of[id(tracks[k + 2])] = pool.submit(self._track_crops, tracks[k + 2])
            crops = crops_of.pop(id(tr)).result()
            for j, item in enumerate(tr.items):
                item.crop = crops[j]
                pending.append((tr, j))
            waiting.append(tr)
            while len(pending) >= self.opts.batch_size:
                self._encode_batch(pending, encoded)
                self._drain(waiting, encoded)
        while pending:
            self._encode_batch(pending, encoded)
            self._drain(waiting, encoded)
        self._drain(waiting, encoded)

    def _track_crops(self, tr: _Track) -> list[object]:
        out = []
        for item in tr.items:
            window = next(w for w, slots in item.state.model_groups if item.slot in slots)
            out.extend(self._crops(item.state, [(window, [item.slot])]))
        return out

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _encode_batch(
        self, pending: collections.deque[tuple[_Track, int]], encoded: dict[int, dict[int, dict]]
    ) -> None:
        n = min(self.opts.batch_size, len(pending))
        batch = [pending.popleft() for _ in range(n)]
        items = [tr.items[j] for tr, j in batch]
        images = torch.from_numpy(np.stack([it.crop.image for it in items]))  # type: ignore[attr-defined]
        try:
            with torch.inference_mode(), self._autocast(), self.profile.time("encoder"):
                out = self.model.backbone(images.to(self.device))  # type: ignore[attr-defined]
                self._sync()
        except Exception as exc:
            self._fail_items(items, exc)
            for tr, j in batch:
                encoded[id(tr)][j] = {}
            return
        pos = [p[:1] for p in out["vision_pos_enc"]]  # the same for every crop
        for b, (tr, j) in enumerate(batch):
            encoded[id(tr)][j] = {
                "vision_features": out["vision_features"][b : b + 1],
                "vision_pos_enc": pos,
                "backbone_fpn": [f[b : b + 1] for f in out["backbone_fpn"]],
            }
            tr.items[j].crop.image = None  # type: ignore[attr-defined]

    def _drain(self, waiting: collections.deque[_Track], encoded: dict[int, dict[int, dict]]) -> None:
        while waiting and len(encoded[id(waiting[0])]) == len(waiting[0].items):
            tr = waiting.popleft()
            outs = encoded.pop(id(tr))
            self._propagate(tr, [outs[j] for j in range(len(tr.items))])

    def _propagate(self, tr: _Track, outs: list[dict]) -> None:
        items = tr.items
        if any(not o for o in outs) or any(it.state.failed for it in items):
            self._fail_items(items, None)
            return
        boxes = np.stack([it.crop.items[0].box for it in items])  # type: ignore[attr-defined]
        prompted = prompted_positions(len(items), self.prompt_every)
        try:
            with torch.inference_mode(), self._autocast(), self.profile.time("decoder"):
                result = self.model.propagate(outs, boxes, prompted)  # type: ignore[attr-defined]
                self._sync()
        except Exception as exc:
            self._fail_items(items, exc)
            return
        with self.profile.time("postprocess"):
            sizes = [it.crop.items[0].window.size for it in items]  # type: ignore[attr-defined]
            masks = self._upsample(result.logits, sizes)
            for it, mask, score in zip(items, masks, result.scores, strict=True):
                st = it.state
                i = int(st.keep[it.slot])
                window = it.crop.items[0].window  # type: ignore[attr-defined]
                st.results[it.slot] = self._object_mask(
                    st.frame, i, window, mask, float(score), "model"
                )
                st.remaining -= 1

    def _fail_items(self, items: list[_TrackItem], exc: BaseException | None) -> None:
        """A track's model step failed: its frames are reported once and skipped."""
        if exc is not None and classify_error(exc) == "fatal":
            from box2mask.engine import DeviceFailed

            raise DeviceFailed(f"the device {self.device} failed ({type(exc).__name__}: {exc})")
        text = "an earlier step of its track failed" if exc is None else f"{type(exc).__name__}: {exc}"
        for it in items:
            if not it.state.failed:
                it.state.failed = True
                self.problems.report(_frame_error_text(it.state.frame, text), kind="model")


def _windows(frames: Iterable[Frame], window: int) -> Iterator[tuple[tuple[str, int], list[Frame]]]:
    """Consecutive frames of one window, grouped (frames come sequence by sequence, in order)."""
    key: tuple[str, int] | None = None
    buf: list[Frame] = []
    for frame in frames:
        k = window_of(frame, window)
        if k != key and buf:
            yield key, buf  # type: ignore[misc]
            buf = []
        key = k
        buf.append(frame)
    if buf:
        yield key, buf  # type: ignore[misc]


def dataset_window_frames(
    dataset: str, root: object, adapter_options: dict, window: int = WINDOW
) -> WindowFrames:
    """A :data:`WindowFrames` reading the dataset again (one sequence cached at a time).

    Frames pass the same checks as convert's (boxes wholly outside the image
    dropped); problems found again are not reported twice.
    """
    cache: dict[str, list[Frame]] = {}

    def frames_of(sequence: str, index: int) -> list[Frame]:
        if sequence not in cache:
            from box2mask.adapters import open_dataset
            from box2mask.checks import drop_outside_boxes
            from box2mask.problems import Problems

            quiet = Problems()
            adapter = open_dataset(dataset, root, adapter_options, quiet)
            cache.clear()
            cache[sequence] = list(drop_outside_boxes(adapter.frames([sequence]), quiet))
        return [f for f in cache[sequence] if f.frame_index // window == index]

    return frames_of
