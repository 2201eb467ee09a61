"""``box2mask eval``: mask quality against ground truth, and the ablation sweep.

Two sources of predicted masks:

- a model run in memory (:func:`evaluate`): the conversion engine runs on the
  frames that carry ground-truth masks, exactly as ``box2mask convert`` would
  with the same options, but nothing is written;
- an existing COCO output (:func:`evaluate` with ``predictions=``): a
  ``box2mask convert`` JSON (or any COCO JSON with ``track_id``), matched to
  the dataset's frames by image ``sequence`` + ``frame_index`` (else
  ``file_name``) and to its objects by ``track_id``.

Both fill one :class:`~box2mask.metrics.QualityAccumulator` per convention
(DESIGN §10), so the same masks give the same numbers either way.

What is scored:

- frames whose adapter gives a ground-truth provider; within them, objects
  whose provider returns a mask (objects without one are skipped and counted);
- per object: each object's predicted mask against its own ground truth; a
  ground-truth object without a prediction scores against an empty mask;
- per frame (the ROS-SAM authors' convention): the union of the predictions
  of the scored objects against the union of their ground truths, averaged
  over frames with at least one scored object; also per category (the union
  of that category's objects in the frame);
- box-filled objects (``--box-fill-classes``, default ``car``, and boxes under
  ``--box-fill-area``) are scored as the box mask they get, as in the paper;
  the report says which policy was in force and breaks scores down by mask
  source.

:func:`sweep` runs :func:`evaluate` once per setting of the paper's Table 2
ablations (one axis changed at a time from the base options).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.adapters import open_dataset
from box2mask.adapters.base import select_sequences
from box2mask.choices import Interpolation, Window
from box2mask.errors import Box2MaskError, UsageError
from box2mask.geometry import MODEL_SIZE, crop_mask, frame_block, mask_to_xyxy, paste_mask
from box2mask.masks import MaskBlock
from box2mask.metrics import (
    DEFAULT_BIOU_RATIO,
    QualityAccumulator,
    block_ious,
    boundary_dilation,
)
from box2mask.options import ConvertOptions, job_identity
from box2mask.problems import Problems
from box2mask.types import CropWindow, Frame, FrameMasks, ObjectMask


@dataclass
class EvalProgress:
    """What a progress callback is told after each scored frame."""

    frames_total: int
    frames_done: int = 0
    objects_done: int = 0
    setting: str = ""


@dataclass
class EvalReport:
    """The outcome of one evaluation.

    Attributes:
        summary: :meth:`QualityAccumulator.summary` of all scored objects and
            frames, plus ``per_frame_by_category`` (the authors' convention
            restricted to each category) and ``per_object_by_source`` (by mask
            source: ``model``, ``box``, ``ellipse``, ...). Means in ``[0, 1]``.
        frames: frames scored (with at least one object with ground truth).
        frames_without_gt: frames read whose adapter gives no ground truth.
        objects_without_gt: objects in scored frames without a ground-truth mask.
        missing_predictions: ground-truth objects the predictions file has no
            mask for (scored against an empty mask); 0 when a model ran.
        settings: the options that determine the numbers (model, geometry,
            small-object policy, ratio).
    """

    summary: dict[str, Any]
    frames: int
    frames_without_gt: int
    objects_without_gt: int
    missing_predictions: int
    objects_by_source: Counter[str]
    settings: dict[str, Any]
    model_note: str = ""
    problems: Problems = field(default_factory=Problems)
    seconds: float = 0.0

    @property
    def objects(self) -> int:
        return int(self.summary["per_object"]["overall"]["count"])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report (NaN written as ``null``)."""
        return _nan_to_none(
            {
                "settings": self.settings,
                "model_note": self.model_note,
                "frames": self.frames,
                "frames_without_gt": self.frames_without_gt,
                "objects": self.objects,
                "objects_without_gt": self.objects_without_gt,
                "missing_predictions": self.missing_predictions,
                "objects_by_source": dict(sorted(self.objects_by_source.items())),
                "skipped_inputs": dict(sorted(self.problems.counts.items())),
                "seconds": round(self.seconds, 3),
                **self.summary,
            }
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per category plus ``overall`` (for CSV and tables).

        Keys: ``category``, ``objects``, ``iou``, ``biou``, ``iou@0.5``,
        ``iou@0.75`` (per object), ``frames``, ``frame_iou``, ``frame_biou``
        (per frame). Means in ``[0, 1]``; NaN where nothing was scored.
        """
        s = self.summary
        out = []
        names = list(s["per_object"]["by_category"]) + ["overall"]
        for name in names:
            po = (
                s["per_object"]["overall"]
                if name == "overall"
                else s["per_object"]["by_category"][name]
            )
            pf = (
                s["per_frame"]
                if name == "overall"
                else s["per_frame_by_category"].get(name, _EMPTY)
            )
            out.append({"category": name, **score_columns(po, pf)})
        return out


def score_columns(per_object: dict[str, Any], per_frame: dict[str, Any]) -> dict[str, Any]:
    """The score columns of a report row (CSV and tables): objects, IoU, BIoU, IoU@0.5/0.75
    per object, then frames and the per-frame IoU and BIoU."""
    po, pf = per_object, per_frame
    return {
        "objects": po["count"],
        "iou": po["iou"],
        "biou": po["biou"],
        "iou@0.5": po["iou@0.5"],
        "iou@0.75": po["iou@0.75"],
        "frames": pf["count"],
        "frame_iou": pf["iou"],
        "frame_biou": pf["biou"],
    }


_EMPTY = {"count": 0, "iou": math.nan, "biou": math.nan, "iou@0.5": math.nan, "iou@0.75": math.nan}


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


# -- scoring -------------------------------------------------------------------
def _enclosing_window(window: CropWindow, bbox: np.ndarray | None) -> CropWindow:
    """The smallest square window holding ``window`` and the frame box ``bbox`` (xyxy ints)."""
    if bbox is None:
        return window
    x0 = min(window.x0, int(bbox[0]))
    y0 = min(window.y0, int(bbox[1]))
    x1 = max(window.x0 + window.size, int(bbox[2]))
    y1 = max(window.y0 + window.size, int(bbox[3]))
    size = max(x1 - x0, y1 - y0)
    if (x0, y0, size) == (window.x0, window.y0, window.size):
        return window
    return CropWindow(x0, y0, size)


def _rewindow(mask: np.ndarray, src: CropWindow, dst: CropWindow) -> np.ndarray:
    """A ``src``-window mask expressed in the larger window ``dst`` (which contains ``src``)."""
    if src == dst:
        return mask
    out = np.zeros((dst.size, dst.size), dtype=bool)
    r, c = src.y0 - dst.y0, src.x0 - dst.x0
    out[r : r + src.size, c : c + src.size] = mask
    return out


@dataclass(frozen=True)
class ObjectScore:
    """One scored object (``evaluate(on_object=...)``): a plot or a notebook reads these one at a
    time, in dataset order, without the report holding them."""

    sequence: str
    frame_index: int
    track_id: int
    category: str
    source: str
    iou: float
    biou: float
    #: the prompt box's area, frame px² (where small objects fail: ``eval --plots``)
    box_area: float


@dataclass(frozen=True)
class FrameScore:
    """One scored frame (``evaluate(on_frame=...)``): the IoU and Boundary IoU of the union of
    its scored objects' masks with their ground truth's."""

    sequence: str
    frame_index: int
    objects: int
    iou: float
    biou: float


def _gt_block(frame: Frame, i: int) -> MaskBlock | None:
    """Object ``i``'s ground truth as a block in frame pixels (``None``: it has none).

    A provider with a ``block(i)`` method (VISO's instance maps) gives it at the cost of
    the object; any other provider's ``(H, W)`` mask is made a block.
    """
    provider = frame.gt_mask
    block = getattr(provider, "block", None)
    if block is not None:
        return block(i)
    gt = provider(i)  # type: ignore[misc]
    if gt is None:
        return None
    gt = np.asarray(gt, dtype=bool)
    if gt.shape != frame.image_hw:
        raise Box2MaskError(
            f"{frame.sequence} frame {frame.frame_index}: ground-truth mask of object {i} "
            f"is {gt.shape}, the frame is {frame.image_hw}"
        )
    return MaskBlock.from_mask(gt)


class Scorer:
    """Fills the accumulators frame by frame (one thread at a time), in bounded memory.

    What it holds does not grow with the objects: the accumulators' sums, and for
    the temporal consistency the last masks of each track of the current sequence
    (frames come sequence by sequence, in frame order). Scorers of separate
    sequences combine with :meth:`merge`.

    Args:
        ratio: Boundary IoU width as a share of the frame diagonal.
        on_object: called with each object's :class:`ObjectScore` as it is scored.
        on_frame: called with each frame's :class:`FrameScore` as it is scored.
    """

    def __init__(
        self,
        ratio: float = DEFAULT_BIOU_RATIO,
        on_object: Callable[[ObjectScore], None] | None = None,
        on_frame: Callable[[FrameScore], None] | None = None,
    ) -> None:
        self.ratio = ratio
        self.on_object = on_object
        self.on_frame = on_frame
        self.acc = QualityAccumulator(ratio=ratio)
        self.by_source = QualityAccumulator(ratio=ratio)
        self.frame_by_cat: dict[str, QualityAccumulator] = {}
        self.frames = 0
        self.objects_without_gt = 0
        self.missing_predictions = 0
        self.sources: Counter[str] = Counter()
        #: the current sequence's tracks: track id -> (predicted block, ground-truth block,
        #: box xyxy, paired before), blocks in frame pixels
        self._last: dict[int, tuple[MaskBlock, MaskBlock, np.ndarray, bool]] = {}
        self._sequence: str | None = None
        self.pairs = 0
        self.pred_sum = 0.0
        self.gt_sum = 0.0
        self.below = 0
        self.tracks = 0

    def merge(self, other: Scorer) -> None:
        """Add ``other``'s totals (another sequence's scorer) to this one."""
        self.acc.merge(other.acc)
        self.by_source.merge(other.by_source)
        for cat in other.frame_by_cat:
            self.frame_by_cat.setdefault(cat, QualityAccumulator(ratio=self.ratio)).merge(
                other.frame_by_cat[cat]
            )
        self.frames += other.frames
        self.objects_without_gt += other.objects_without_gt
        self.missing_predictions += other.missing_predictions
        self.sources.update(other.sources)
        self.pairs += other.pairs
        self.pred_sum += other.pred_sum
        self.gt_sum += other.gt_sum
        self.below += other.below
        self.tracks += other.tracks

    def __getstate__(self) -> dict[str, Any]:
        # sent back from a worker: its totals, not the callback or the last track masks
        return {**self.__dict__, "on_object": None, "on_frame": None, "_last": {},
                "_sequence": None}  # fmt: skip

    def score_frame(
        self,
        frame: Frame,
        objects: Sequence[int],
        predictions: Sequence[ObjectMask | np.ndarray | None],
        sources: Sequence[str] | None = None,
    ) -> int:
        """Score one frame.

        Args:
            frame: the frame, with its ``gt_mask`` provider.
            objects: indices into the frame's objects to score.
            predictions: for each of ``objects``, an :class:`ObjectMask`
                (crop-local), an ``(H, W)`` bool frame mask, or ``None`` (no
                prediction: an empty mask).
            sources: mask source of each prediction (defaults to the
                ObjectMask's ``source``, else ``"unknown"``).

        Returns:
            The number of objects scored.
        """
        if frame.gt_mask is None:
            return 0
        hw = frame.image_hw
        pred_union = np.zeros(hw, dtype=bool)
        gt_union = np.zeros(hw, dtype=bool)
        cat_unions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        scored = 0
        for k, (i, pred) in enumerate(zip(objects, predictions, strict=True)):
            gt = frame.gt_mask(int(i))
            if gt is None:
                self.objects_without_gt += 1
                continue
            gt = np.asarray(gt, dtype=bool)
            if gt.shape != hw:
                raise Box2MaskError(
                    f"{frame.sequence} frame {frame.frame_index}: ground-truth mask of object {i} "
                    f"is {gt.shape}, the frame is {hw}"
                )
            cat = str(frame.category[i])
            if isinstance(pred, ObjectMask):
                source = pred.source
                # the ground truth may reach outside the crop window: score in a
                # window that holds both, so no ground-truth pixel is dropped
                win = _enclosing_window(pred.window, mask_to_xyxy(gt))
                pm = _rewindow(pred.mask, pred.window, win)
                gm = crop_mask(gt, win)
                iou, biou = self.acc.add_object(cat, pm, gm, hw, win)
                self.by_source.add_object(source, pm, gm, hw, win)
                paste_mask(pred.mask, pred.window, hw, out=pred_union)
                pred_full: np.ndarray | None = None
            else:
                if pred is None:
                    self.missing_predictions += 1
                    source = "missing"
                    pred_full = np.zeros(hw, dtype=bool)
                else:
                    source = "unknown"
                    pred_full = np.asarray(pred, dtype=bool)
                    if pred_full.shape != hw:
                        raise Box2MaskError(
                            f"{frame.sequence} frame {frame.frame_index}: predicted mask of "
                            f"object {i} is {pred_full.shape}, the frame is {hw}"
                        )
                iou, biou = self.acc.add_object(cat, pred_full, gt, hw)
                pred_union |= pred_full
            if sources is not None:
                source = sources[k]
            if isinstance(pred, ObjectMask):
                pb = frame_block(pred.block, pred.window, hw)
            else:
                pb = MaskBlock.from_mask(pred_full)
            self._track(frame, int(i), pb, MaskBlock.from_mask(gt))
            if pred_full is not None:
                self.by_source.add_object(source, pred_full, gt, hw)
            self.sources[source] += 1
            self._tell(frame, int(i), cat, source, iou, biou)
            gt_union |= gt
            pu, gu = cat_unions.setdefault(
                cat, (np.zeros(hw, dtype=bool), np.zeros(hw, dtype=bool))
            )
            gu |= gt
            if isinstance(pred, ObjectMask):
                paste_mask(pred.mask, pred.window, hw, out=pu)
            elif pred_full is not None:
                pu |= pred_full
            scored += 1
        if scored:
            self._add_frame(frame, scored, pred_union, gt_union, cat_unions)
        return scored

    def score_frame_blocks(
        self,
        frame: Frame,
        objects: Sequence[int],
        predictions: Sequence[MaskBlock | None],
        sources: Sequence[str],
    ) -> int:
        """Score one frame whose predictions are blocks in frame pixels (``None``: missing).

        The same numbers as :meth:`score_frame` with the blocks painted into ``(H, W)``
        masks (:func:`box2mask.metrics.block_ious`), at the cost of the objects, not of the
        frame, per object.
        """
        if frame.gt_mask is None:
            return 0
        hw = frame.image_hw
        h, w = hw
        d = boundary_dilation(hw, self.ratio)
        pred_union = np.zeros(hw, dtype=bool)
        gt_union = np.zeros(hw, dtype=bool)
        scored: list[tuple[str, MaskBlock, MaskBlock]] = []
        for k, (i, pb) in enumerate(zip(objects, predictions, strict=True)):
            gb = _gt_block(frame, int(i))
            if gb is None:
                self.objects_without_gt += 1
                continue
            cat = str(frame.category[i])
            if pb is None:
                self.missing_predictions += 1
                pb = MaskBlock.empty()
            source = sources[k]
            pb = pb.clip(0, 0, h, w).tight()
            gb = gb.clip(0, 0, h, w).tight()
            iou, biou = block_ious(pb, gb, hw, dilation=d, tight=True)
            self.acc.add_scores(cat, iou, biou)
            self.by_source.add_scores(source, iou, biou)
            self._track(frame, int(i), pb, gb)
            self.sources[source] += 1
            self._tell(frame, int(i), cat, source, iou, biou)
            for blk, full in ((pb, pred_union), (gb, gt_union)):
                if blk.height:
                    full[blk.top : blk.bottom, blk.left : blk.right] |= blk.pixels()
            scored.append((cat, pb, gb))
        if not scored:
            return 0
        cat_unions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if len({c for c, _, _ in scored}) > 1:  # one category: its unions are the frame's
            for cat, pb, gb in scored:
                pu, gu = cat_unions.setdefault(
                    cat, (np.zeros(hw, dtype=bool), np.zeros(hw, dtype=bool))
                )
                for blk, own in ((pb, pu), (gb, gu)):
                    if blk.height:
                        own[blk.top : blk.bottom, blk.left : blk.right] |= blk.pixels()
        else:
            cat_unions[scored[0][0]] = (pred_union, gt_union)
        self._add_frame(frame, len(scored), pred_union, gt_union, cat_unions)
        return len(scored)

    def _add_frame(
        self,
        frame: Frame,
        objects: int,
        pred_union: np.ndarray,
        gt_union: np.ndarray,
        cat_unions: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        self.frames += 1
        iou, biou = self.acc.add_frame(pred_union, gt_union)
        if self.on_frame is not None:
            self.on_frame(FrameScore(frame.sequence, int(frame.frame_index), objects, iou, biou))
        for cat, (pu, gu) in cat_unions.items():
            acc = self.frame_by_cat.setdefault(cat, QualityAccumulator(ratio=self.ratio))
            if len(cat_unions) == 1:  # one category: its unions are the frame's
                acc.add_frame_scores(iou, biou)
            else:
                acc.add_frame(pu, gu)

    def _tell(self, frame: Frame, i: int, cat: str, source: str, iou: float, biou: float) -> None:
        if self.on_object is not None:
            x1, y1, x2, y2 = (float(v) for v in frame.xyxy[i])
            area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
            self.on_object(ObjectScore(frame.sequence, int(frame.frame_index),
                                       int(frame.track_id[i]), cat, source, iou, biou, area))  # fmt: skip

    def _track(self, frame: Frame, i: int, pred: MaskBlock, gt: MaskBlock) -> None:
        """The temporal consistency of object ``i``'s track, against its previous scored frame
        (:func:`box2mask.consistency.aligned_iou`); only the last masks of each track of the
        current sequence are kept."""
        from box2mask.consistency import aligned_iou

        if frame.sequence != self._sequence:
            self._last.clear()
            self._sequence = frame.sequence
        tid = int(frame.track_id[i])
        box = frame.xyxy[i].copy()
        hw = frame.image_hw
        prev = self._last.get(tid)
        paired = False
        if prev is not None:
            pp, pg, pbox, was_paired = prev
            p = aligned_iou(pp, pbox, pred, box, hw)
            self.pairs += 1
            self.pred_sum += p
            self.below += p < 0.5
            self.gt_sum += aligned_iou(pg, pbox, gt, box, hw)
            if not was_paired:
                self.tracks += 1
            paired = True
        self._last[tid] = (pred, gt, box, paired)

    def consistency(self) -> dict[str, Any]:
        """Temporal consistency along each track (:func:`box2mask.consistency.aligned_iou`).

        For every track, each scored frame's predicted mask against the
        previous scored frame's, moved and scaled as the track's box moved;
        the same for the ground truth (how consistent the true masks are).

        Returns:
            ``{"pairs", "mean", "below_0.5", "gt_mean", "tracks"}``; NaN without pairs.
        """
        if not self.pairs:
            nan = math.nan
            return {"pairs": 0, "mean": nan, "below_0.5": nan, "gt_mean": nan, "tracks": 0}
        return {
            "pairs": self.pairs,
            "mean": self.pred_sum / self.pairs,
            "below_0.5": self.below / self.pairs,
            "gt_mean": self.gt_sum / self.pairs,
            "tracks": self.tracks,
        }

    def summary(self) -> dict[str, Any]:
        """The accumulator's summary plus ``per_frame_by_category``, ``per_object_by_source``
        and ``temporal_consistency`` (:meth:`consistency`)."""
        s = self.acc.summary()
        s["per_frame_by_category"] = {
            cat: self.frame_by_cat[cat].summary()["per_frame"] for cat in sorted(self.frame_by_cat)
        }
        s["per_object_by_source"] = self.by_source.summary()["per_object"]["by_category"]
        s["temporal_consistency"] = self.consistency()
        return s


# -- options -------------------------------------------------------------------
def eval_options(**kwargs: Any) -> ConvertOptions:
    """:class:`ConvertOptions` for an evaluation (``out`` is unused: eval writes no job folder)."""
    kwargs.setdefault("out", Path("."))
    return ConvertOptions(**kwargs)


#: options of a convert job's identity that eval does not apply: it writes no files and
#: scores every selected sequence
NOT_EVALUATED = ("formats", "shard", "split", "split_by", "seed")


def _settings(
    opts: ConvertOptions, model: str, ratio: float, kind: str, precision: str | None = None
) -> dict[str, Any]:
    """What a report's numbers depend on: the data, the model, and every option that makes the masks.

    The options are the job identity's (:func:`box2mask.options.job_identity`:
    every field marked ``in_identity``, as a convert with this model records
    it) less :data:`NOT_EVALUATED`, so a new option that changes masks is
    reported without being named here; ``upsample`` (1024 / crop size) is
    added for prompt models. Scored predictions record the selection only:
    their masks come from the file.
    """
    settings: dict[str, Any] = {
        "dataset": opts.dataset,
        "root": None if opts.root is None else str(opts.root),
        "adapter_options": dict(opts.adapter_options),
        "model": model,
        "checkpoint": opts.checkpoint,
        "biou_ratio": ratio,
    }
    if kind == "predictions":
        settings.update(sequences=sorted(opts.sequences), classes=sorted(opts.classes))
        return settings
    identity = job_identity(opts, kind == "prompt", precision or opts.precision)
    settings.update((k, v) for k, v in identity.items() if k not in NOT_EVALUATED)
    settings["upsample"] = round(MODEL_SIZE / opts.crop_size, 4) if kind == "prompt" else None
    return settings


def _open_dataset(opts: ConvertOptions, problems: Problems) -> tuple[Any, list[str], int]:
    adapter = open_dataset(opts.dataset, opts.root, opts.adapter_options, problems)
    seqs = select_sequences(opts.dataset, adapter.list_sequences(), opts.sequences)
    return adapter, [s.name for s in seqs], sum(s.num_frames for s in seqs)


def _kept(frame: Frame, classes: tuple[str, ...]) -> list[int]:
    """The frame's objects the engine converts (``--classes``), in frame order."""
    if not classes:
        return list(range(len(frame)))
    wanted = set(classes)
    return [i for i, c in enumerate(frame.category) if c in wanted]


# -- evaluation ----------------------------------------------------------------
def evaluate(
    options: ConvertOptions | None = None,
    *,
    biou_ratio: float = DEFAULT_BIOU_RATIO,
    predictions: Path | str | None = None,
    progress: Callable[[EvalProgress], None] | None = None,
    on_object: Callable[[ObjectScore], None] | None = None,
    on_frame: Callable[[FrameScore], None] | None = None,
    **kwargs: Any,
) -> EvalReport:
    """Score masks against a dataset's ground-truth masks.

    Args:
        options: the conversion options (model, geometry, small-object policy,
            sequences, classes); or pass their fields as keyword arguments
            (``evaluate(dataset="viso", root="examples/viso-mini", model="box")``).
            ``out``, ``formats``, ``shard`` and job options are unused.
        biou_ratio: Boundary IoU width as a share of the frame diagonal.
        predictions: a COCO JSON (or a finished ``box2mask convert`` job folder, read
            through its parts) to score instead of running a model. It is read a frame
            at a time (:class:`PredictionIndex`), and the sequences are scored on the
            executors (``options.executor``, ``options.workers`` processes) when there
            are more than :data:`TASK_FRAMES` frames; the numbers are the same.
        progress: called with an :class:`EvalProgress` after each scored frame (after
            each worker's batch of frames when scored in parallel).
        on_object: called with every scored object's :class:`ObjectScore`, in dataset
            order (the per-object rows a plot reads; nothing keeps them).
        on_frame: called with every scored frame's :class:`FrameScore`, in dataset order.

    Returns:
        An :class:`EvalReport`. Raises :class:`~box2mask.errors.Box2MaskError`
        on bad usage or input, and :class:`UsageError` when nothing in the
        chosen frames has a ground-truth mask.
    """
    import box2mask.models  # noqa: F401  (registers the models)

    opts = options if options is not None else eval_options(**kwargs)
    if not 0 < biou_ratio < 1:
        raise UsageError(f"--biou-ratio must be in (0, 1), got {biou_ratio}")
    t0 = time.perf_counter()
    problems = Problems(strict=opts.strict)
    adapter, seq_names, total = _open_dataset(opts, problems)
    scorer = Scorer(biou_ratio, on_object=on_object, on_frame=on_frame)
    state = EvalProgress(frames_total=total)
    no_gt = [0]
    precision: str | None = None  # the model's, resolved (none for predictions)

    def with_gt() -> Iterator[Frame]:
        for frame in adapter.frames(seq_names):
            if frame.gt_mask is None:
                no_gt[0] += 1
                continue
            yield frame

    def done(n: int) -> None:
        state.frames_done += 1
        state.objects_done += n
        if progress:
            progress(state)

    if predictions is not None:
        matched = _score_predictions(
            opts, adapter.root, seq_names, Path(predictions), scorer, problems, state, no_gt,
            progress, on_object, on_frame,
        )  # fmt: skip
        model, note, kind = "predictions", f"scored {predictions}", "predictions"
        if matched == 0 and scorer.frames > 0:
            note += (
                " (no image of the file matched a frame of the dataset: every mask counted empty)"
            )
    else:
        from box2mask.engine import Profile
        from box2mask.runtime import (
            build_engine,
            choose_model,
            parse_devices,
            resolve_precision,
            with_model_defaults,
        )

        spec, checkpoint, note = choose_model(opts)
        opts = with_model_defaults(opts, spec)
        devices = parse_devices(opts.device, spec.kind)
        if len(devices) > 1:
            raise UsageError("eval runs on one device; pass a single --device")
        precision = resolve_precision(opts, devices[0])
        engine = build_engine(opts, spec, checkpoint, devices[0], precision, problems, Profile())

        def on_frame(fm: FrameMasks) -> None:
            keep = _kept(fm.frame, opts.classes)
            if len(keep) != len(fm.masks) or any(
                int(fm.frame.track_id[i]) != om.track_id
                for i, om in zip(keep, fm.masks, strict=False)
            ):
                raise Box2MaskError(
                    f"{fm.frame.sequence} frame {fm.frame.frame_index}: the engine returned "
                    f"{len(fm.masks)} masks for {len(keep)} objects"
                )
            done(scorer.score_frame(fm.frame, keep, list(fm.masks)))

        engine.run(with_gt(), on_frame)
        model, kind = spec.name, spec.kind
    if scorer.frames == 0:
        what = f"{len(seq_names)} sequence(s) of {opts.dataset} at {adapter.root}"
        raise UsageError(
            f"nothing to score: no object in {what} has a ground-truth mask "
            f"({no_gt[0]} frame(s) without ground truth, {scorer.objects_without_gt} object(s) "
            "without a mask). eval needs a dataset with masks (rossam, satmtb seg, coco with "
            "segmentation, viso with masks/)."
        )
    return EvalReport(
        summary=scorer.summary(),
        frames=scorer.frames,
        frames_without_gt=no_gt[0],
        objects_without_gt=scorer.objects_without_gt,
        missing_predictions=scorer.missing_predictions,
        objects_by_source=scorer.sources,
        settings=_settings(opts, model, biou_ratio, kind, precision),
        model_note=note,
        problems=problems,
        seconds=time.perf_counter() - t0,
    )


#: frames per task of ``eval --predictions``: consecutive sequences are grouped until a task
#: has this many (one task: scored in this process)
TASK_FRAMES = 200


@dataclass(frozen=True)
class _EvalTask:
    """Consecutive sequences of the dataset to score against predictions (picklable)."""

    dataset: str
    root: str
    adapter_options: dict[str, Any]
    strict: bool
    classes: tuple[str, ...]
    sequences: tuple[str, ...]
    predictions: tuple[str, str, str]
    ratio: float
    #: send back the objects' and the frames' rows (for ``on_object``, ``on_frame``)
    rows: bool
    frame_rows: bool


@dataclass
class _EvalResult:
    scorer: Scorer
    no_gt: int
    problems: Counter[str]
    matched: int
    rows: list[ObjectScore]
    frame_rows: list[FrameScore]


def _score_task(task: _EvalTask, tick: Callable[[int, int], None]) -> _EvalResult:
    """Score one task's sequences (in a worker process, or in this one)."""
    problems = Problems(strict=task.strict)
    adapter = open_dataset(task.dataset, task.root, task.adapter_options, problems)
    rows: list[ObjectScore] = []
    frame_rows: list[FrameScore] = []
    scorer = Scorer(task.ratio, on_object=rows.append if task.rows else None,
                    on_frame=frame_rows.append if task.frame_rows else None)  # fmt: skip
    preds = PredictionIndex.attach(task.predictions)
    no_gt = 0
    try:
        for frame in adapter.frames(list(task.sequences)):
            if frame.gt_mask is None:
                no_gt += 1
                tick(1, 0)
                continue
            keep = _kept(frame, task.classes)
            blocks, sources = preds.blocks_for(frame, keep)
            tick(1, scorer.score_frame_blocks(frame, keep, blocks, sources))
    finally:
        preds.close()
    return _EvalResult(scorer, no_gt, problems.counts, preds.images_matched, rows, frame_rows)


def _score_predictions(
    opts: ConvertOptions,
    root: Path,
    seq_names: list[str],
    path: Path,
    scorer: Scorer,
    problems: Problems,
    state: EvalProgress,
    no_gt: list[int],
    progress: Callable[[EvalProgress], None] | None,
    on_object: Callable[[ObjectScore], None] | None,
    on_frame: Callable[[FrameScore], None] | None,
) -> int:
    """Score the predictions file or job at ``path``, sequence groups on the executors;
    the scorers are merged in dataset order (the same numbers for any number of workers).
    Returns the number of the file's images that matched a frame."""
    import tempfile

    from box2mask.executors.tasks import map_tasks

    infos = {s.name: s.num_frames for s in open_dataset(
        opts.dataset, root, opts.adapter_options, Problems()).list_sequences()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="box2mask-eval-") as scratch:
        preds = PredictionIndex.load(path, scratch=Path(scratch),
                                     ids_are_tracks=opts.dataset == "coco")  # fmt: skip
        try:
            spec = preds.spec()
            tasks: list[_EvalTask] = []
            group: list[str] = []
            frames = 0
            for name in seq_names:
                group.append(name)
                frames += infos.get(name, 1)
                if frames >= TASK_FRAMES:
                    tasks.append(_eval_task(opts, root, group, spec, scorer.ratio, on_object, on_frame))
                    group, frames = [], 0
            if group:
                tasks.append(_eval_task(opts, root, group, spec, scorer.ratio, on_object, on_frame))

            def tick(frames: int, objects: int) -> None:
                state.frames_done += frames
                state.objects_done += objects
                if progress:
                    progress(state)

            matched = 0
            for res in map_tasks(_score_task, tasks, workers=opts.workers, executor=opts.executor,
                                 progress=tick, ray_address=opts.ray_address):  # fmt: skip
                scorer.merge(res.scorer)
                no_gt[0] += res.no_gt
                problems.counts.update(res.problems)
                matched += res.matched
                # rows of the objects first, then of the frames: each in dataset order
                for row in res.rows:
                    on_object(row)  # type: ignore[misc]
                for frow in res.frame_rows:
                    on_frame(frow)  # type: ignore[misc]
        finally:
            preds.close()
    return matched


def _eval_task(
    opts: ConvertOptions,
    root: Path,
    sequences: list[str],
    spec: tuple[str, str, str],
    ratio: float,
    on_object: Callable[[ObjectScore], None] | None,
    on_frame: Callable[[FrameScore], None] | None,
) -> _EvalTask:
    return _EvalTask(
        opts.dataset, str(root), dict(opts.adapter_options), opts.strict, tuple(opts.classes),
        tuple(sequences), spec, ratio, on_object is not None, on_frame is not None,
    )  # fmt: skip


class PredictionIndex:
    """Predicted masks, found frame by frame: a COCO JSON file or a finished job.

    A file is indexed on disk (:class:`~box2mask.cocofile.CocoFile`); a job folder is read
    through its parts (:class:`~box2mask.job.JobFolder`, the frames its annotations.json is
    assembled from). Memory holds one frame's annotations, whatever the size.

    Images are found by ``(sequence, frame_index)`` when they carry both (as
    ``box2mask convert`` writes them), else by ``file_name``; annotations by
    ``track_id``, else their ``id``. Masks are decoded per object, on demand.
    """

    def __init__(self, coco: Any = None, job: Any = None, path: Path | None = None) -> None:
        self.coco = coco
        self.job = job
        self.path = Path(path if path is not None else (coco.path if coco else job.out))
        self.categories: dict[Any, str] = (
            dict(coco.categories) if coco is not None
            else {c["id"]: str(c["name"]) for c in job.categories}
        )  # fmt: skip
        self._cat_ids = {v: k for k, v in self.categories.items()}
        self.images_matched = 0

    @classmethod
    def load(
        cls, path: Path, scratch: Path | None = None, ids_are_tracks: bool = True
    ) -> PredictionIndex:
        """A predictions file (indexed, in ``scratch``) or a finished job folder.

        A file, perhaps another tool's, is checked record by record as it is indexed
        (:func:`box2mask.coco_checks.prediction_checks`): one that cannot be scored is one
        message naming the record. ``ids_are_tracks``: an annotation's ``id`` stands in for
        a missing ``track_id`` (the ``coco`` adapter numbers its objects so).

        Raises:
            UsageError: no such file, not a COCO JSON, a record that cannot be scored, a
                job folder that is not finished.
        """
        from box2mask.coco_checks import check_indexed_predictions, prediction_checks
        from box2mask.cocofile import CocoFile

        path = Path(path)
        if path.is_dir():
            from box2mask.job import JobFileError, JobFolder

            folder = JobFolder(path)
            try:
                folder.saved  # noqa: B018
            except JobFileError:
                raise UsageError(
                    f"--predictions {path}: a folder that is not a box2mask job; give its COCO "
                    "JSON file"
                ) from None
            if not folder.finished or folder.pending or not folder.sequences:
                raise UsageError(
                    f"--predictions {path}: the job has not finished (or has no parts); run its "
                    "convert command to complete it, or give a COCO JSON file"
                )
            return cls(job=folder, path=path)
        label = f"--predictions {path}"
        coco = CocoFile(path, "--predictions", scratch, check=prediction_checks(label, ids_are_tracks))
        try:
            check_indexed_predictions(coco, label)
        except UsageError:
            coco.close()
            raise
        return cls(coco=coco, path=path)

    def spec(self) -> tuple[str, str, str]:
        """What :meth:`attach` opens in another process."""
        if self.job is not None:
            return ("job", str(self.path), "")
        return ("file", str(self.path), self.coco.index)

    @classmethod
    def attach(cls, spec: tuple[str, str, str]) -> PredictionIndex:
        kind, path, index = spec
        if kind == "job":
            from box2mask.job import JobFolder

            return cls(job=JobFolder(path), path=Path(path))
        from box2mask.cocofile import CocoFile

        return cls(coco=CocoFile.attach(path, index, "--predictions"), path=Path(path))

    def close(self) -> None:
        if self.coco is not None:
            self.coco.close()

    def keyed_sequences(self) -> set[str]:
        """The sequences of the images that carry ``sequence`` and ``frame_index``."""
        if self.job is not None:
            return set(self.job.sequences)
        return self.coco.keyed_sequences()

    def image_id(self, frame: Frame) -> Any | None:
        """The id of ``frame``'s image in the file (a job: its key), or ``None``."""
        if self.job is not None:
            ok = self.job.part_path(frame.sequence, frame.frame_index).is_file()
            return frame.key if ok else None
        im = self.coco.image_for(frame.sequence, frame.frame_index, frame.file_name)
        return None if im is None else im.get("id")

    def annotations(self, frame: Frame) -> list[dict[str, Any]]:
        """The annotations of ``frame``'s image (empty when the image is absent)."""
        if self.job is not None:
            if not self.job.part_path(frame.sequence, frame.frame_index).is_file():
                return []
            part = self.job.read_part(frame.sequence, frame.frame_index)
            return [{**a, "category_id": self._cat_ids.get(a.get("category"))}
                    for a in part["annotations"]]  # fmt: skip
        im = self.coco.image_for(frame.sequence, frame.frame_index, frame.file_name)
        return [] if im is None else [a for _, a in self.coco.annotations_of(im.get("id"))]

    def _matched(self, frame: Frame, objects: Sequence[int]) -> list[dict[str, Any] | None]:
        """Each object's annotation (``None``: none); counts the frame if its image matched."""
        if self.image_id(frame) is not None:
            self.images_matched += 1
        pool: dict[int, list[dict[str, Any]]] = {}
        for a in self.annotations(frame):
            pool.setdefault(int(a.get("track_id", a.get("id", -1))), []).append(a)
        out: list[dict[str, Any] | None] = []
        for i in objects:
            cands = pool.get(int(frame.track_id[i]))
            out.append(cands.pop(0) if cands else None)
        return out

    def masks_for(
        self, frame: Frame, objects: Sequence[int]
    ) -> tuple[list[np.ndarray | None], list[str]]:
        """Each object's predicted ``(H, W)`` bool mask (``None`` if absent) and mask source.

        Objects are matched by track id; when a track id appears several
        times in a frame, its annotations are taken in order.
        """
        blocks, sources = self.blocks_for(frame, objects)
        return [None if b is None else b.to_array(frame.image_hw) for b in blocks], sources

    def blocks_for(
        self, frame: Frame, objects: Sequence[int]
    ) -> tuple[list[MaskBlock | None], list[str]]:
        """Each object's predicted mask as a block in frame pixels (``None`` if absent) and
        its mask source (matched as :meth:`masks_for` says)."""
        blocks: list[MaskBlock | None] = []
        sources: list[str] = []
        for a in self._matched(frame, objects):
            if a is None:
                blocks.append(None)
                sources.append("missing")
                continue
            blocks.append(self.decode_block(a, frame.image_hw))
            sources.append(str(a.get("mask_source", "unknown")))
        return blocks, sources

    def decode_block(self, ann: dict[str, Any], image_hw: tuple[int, int]) -> MaskBlock:
        """An annotation's ``segmentation`` as a block in frame pixels (none: empty)."""
        seg = ann.get("segmentation")
        if not seg:
            return MaskBlock.empty()
        try:
            from box2mask.adapters.coco import decode_segmentation_block

            return decode_segmentation_block(seg, image_hw)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"--predictions {self.path}: annotation id {ann.get('id')}: bad segmentation ({exc})"
            ) from None

    def decode(self, ann: dict[str, Any], image_hw: tuple[int, int]) -> np.ndarray:
        """An annotation's ``segmentation`` as an ``(H, W)`` bool mask."""
        return self.decode_block(ann, image_hw).to_array(image_hw)


# -- sweep ---------------------------------------------------------------------
#: the sweep's axes, their option names and default values (the paper's Table 2 protocol)
SWEEP_AXES: dict[str, tuple[Any, ...]] = {
    # another model on the same frames (its own default checkpoint): the figures side by side
    "model": ("lite", "classical"),
    "crop_size": (256, 384, 512, 768),
    "interpolation": ("bicubic", "bilinear"),
    "window": ("centred", "clamped"),
    "hq_token_only": (False, True),
    "box_fill_area": (0.0, 100.0, 400.0),
    "box_fill_classes": ("car", ""),
    # SAM 2's video memory (--model sam2): per frame vs propagated along each track;
    # the prompt_every rows run with --temporal propagate
    "temporal": ("off", "propagate"),
    "prompt_every": (1, 4),
}


@dataclass
class SweepRow:
    """One setting of a sweep and its report."""

    axis: str
    value: Any
    label: str
    report: EvalReport


@dataclass
class SweepReport:
    """Every setting's report; ``notes`` say which axes were skipped and why."""

    rows: list[SweepRow]
    notes: list[str]
    base: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "notes": self.notes,
            "rows": [
                {
                    "axis": r.axis,
                    "value": r.value,
                    "setting": r.label,
                    **r.report.to_dict(),
                }
                for r in self.rows
            ],
        }


def parse_sweep(axes: str | None, values: Sequence[str] = ()) -> dict[str, tuple[Any, ...]]:
    """``--sweep crop_size,window`` and ``--sweep-values crop_size=256,512`` → axes and values.

    ``axes`` ``None``, ``""`` or ``"all"`` means every axis. Values are typed
    like the option (ints for ``crop_size``, floats for ``box_fill_area``,
    booleans for ``hq_token_only``; for ``box_fill_classes`` each value is a
    class list with ``+`` between classes and ``none`` for no class).
    """
    names = (
        list(SWEEP_AXES)
        if not axes or axes.strip() == "all"
        else [a.strip().replace("-", "_") for a in axes.split(",") if a.strip()]
    )
    for n in names:
        if n not in SWEEP_AXES:
            raise UsageError(f"--sweep: unknown axis {n!r}; axes: {', '.join(SWEEP_AXES)}")
    chosen = {n: SWEEP_AXES[n] for n in names}
    for item in values:
        if "=" not in item:
            raise UsageError(f"--sweep-values takes AXIS=V1,V2, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in SWEEP_AXES:
            raise UsageError(f"--sweep-values: unknown axis {key!r}; axes: {', '.join(SWEEP_AXES)}")
        parts = [p.strip() for p in text.split(",")]
        try:
            typed = tuple(_typed(key, p) for p in parts if p or key == "box_fill_classes")
        except ValueError:
            raise UsageError(f"--sweep-values {item!r}: bad value for {key}") from None
        if not typed:
            raise UsageError(f"--sweep-values {item!r}: no values")
        chosen[key] = typed
    return chosen


def _typed(axis: str, text: str) -> Any:
    if axis == "model":
        import box2mask.models  # noqa: F401  (registers the models)
        from box2mask.models.registry import MODELS

        if text == "auto" or text not in MODELS:
            raise ValueError(text)
        return text
    if axis == "crop_size":
        return int(text)
    if axis == "box_fill_area":
        return float(text)
    if axis == "hq_token_only":
        low = text.lower()
        if low in ("true", "1", "yes", "on", "hq"):
            return True
        if low in ("false", "0", "no", "off", "summed"):
            return False
        raise ValueError(text)
    if axis == "box_fill_classes":
        return "" if text.lower() in ("", "none", "off") else text.replace("+", ",")
    if axis == "prompt_every":
        if int(text) < 1:
            raise ValueError(text)
        return int(text)
    if axis == "temporal" and text not in ("off", "propagate"):
        raise ValueError(text)
    if axis == "interpolation" and text not in Interpolation.values():
        raise ValueError(text)
    if axis == "window" and text not in Window.values():
        raise ValueError(text)
    return text


def setting_label(axis: str, value: Any, upsampled: bool = True) -> str:
    """How a setting is shown in the sweep table (``upsampled``: the model resizes crops to 1024).

    >>> setting_label("crop_size", 384)
    'crop 384 (x2.67 upsample)'
    >>> setting_label("crop_size", 384, upsampled=False)
    'crop 384'
    >>> setting_label("box_fill_classes", "")
    'box-fill classes: none'
    """
    if axis == "crop_size":
        return (
            f"crop {value} (x{MODEL_SIZE / value:.3g} upsample)" if upsampled else f"crop {value}"
        )
    if axis == "model":
        return f"model {value}"
    if axis == "hq_token_only":
        return "HQ token only" if value else "SAM + HQ summed"
    if axis == "box_fill_area":
        return f"box-fill area < {value:g} px²"
    if axis == "box_fill_classes":
        return f"box-fill classes: {value or 'none'}"
    if axis == "prompt_every":
        return f"propagate, prompt every {value}"
    return f"{axis.replace('_', ' ')} {value}"


def _has_hq_token_option(model: str) -> bool:
    from box2mask.models.registry import MODELS

    return model in MODELS and MODELS.get(model).hq_token_only


def _applies(axis: str, model: str, kind: str, needs_image: bool) -> str | None:
    """``None`` when ``axis`` changes what ``model`` does, else why it is skipped."""
    if axis == "hq_token_only" and not _has_hq_token_option(model):
        from box2mask.models.registry import MODELS

        takes = [n for n, s in MODELS.items() if s.hq_token_only]
        return f"hq_token_only applies to {', '.join(takes)} only"
    if axis in ("crop_size", "window", "interpolation") and kind == "crop":
        return f"{axis}: {model} cuts its own windows (docs/lite.md)"
    if axis == "interpolation" and kind != "prompt":
        return f"interpolation: {model} reads the crop at frame resolution (no upsampling)"
    if axis in ("crop_size", "window") and kind != "prompt" and not needs_image:
        return f"{axis}: {model} draws a shape from the box alone, whatever the window"
    if axis in ("box_fill_area", "box_fill_classes") and model == "box":
        return f"{axis}: the box model fills every box anyway"
    if axis in ("temporal", "prompt_every"):
        from box2mask.models.registry import MODELS

        if not (model in MODELS and MODELS.get(model).temporal):
            takes = [n for n, s in MODELS.items() if s.temporal]
            return f"{axis} applies to {', '.join(takes)} only (a video memory)"
    return None


def _option_value(axis: str, value: Any) -> Any:
    if axis == "box_fill_classes":
        return tuple(p for p in str(value).split(",") if p)
    return value


def sweep(
    options: ConvertOptions,
    axes: dict[str, tuple[Any, ...]] | None = None,
    *,
    biou_ratio: float = DEFAULT_BIOU_RATIO,
    progress: Callable[[EvalProgress], None] | None = None,
) -> SweepReport:
    """Ablations, one axis at a time from ``options`` (the paper's Table 2 protocol).

    The first row is the base setting (``options`` as given); then, for each
    axis, one row per value that differs from the base. Axes that do not
    change the chosen model's output are skipped, with a note.

    Args:
        options: the base options (a model must be chosen: ``auto`` is resolved first).
        axes: ``{axis: values}`` (see :data:`SWEEP_AXES`, :func:`parse_sweep`);
            default every axis with its default values.
        biou_ratio: Boundary IoU width as a share of the frame diagonal.
        progress: called after each frame, with ``setting`` set.
    """
    import box2mask.models  # noqa: F401  (registers the models)
    from box2mask.runtime import choose_model, with_model_defaults

    axes = dict(SWEEP_AXES) if axes is None else axes
    spec, _, note = choose_model(options)
    if options.model == "auto":
        options = replace(options, model=spec.name)
    needs_image = spec.on_device or bool(getattr(spec.build(), "needs_image", False))
    notes = [note] if note else []
    plan: list[tuple[str, Any, ConvertOptions]] = [("base", None, options)]
    for axis, values in axes.items():
        why = _applies(axis, spec.name, spec.kind, needs_image)
        if why:
            notes.append(f"skipped {why}")
            continue
        base_value = getattr(with_model_defaults(options, spec), axis)
        if axis == "box_fill_classes":
            base_value = ",".join(base_value)
        for v in values:
            changed = {axis: _option_value(axis, v)}
            if axis == "model":
                changed["checkpoint"] = None  # the other model's own default weights
            if axis == "prompt_every":  # prompting every K-th frame means propagating
                changed["temporal"] = "propagate"
                if v == base_value and options.temporal == "propagate":
                    continue
            elif v == base_value:
                continue
            elif axis == "temporal" and v == "off":
                changed["prompt_every"] = 1  # per frame: every frame is prompted
            new = replace(options, **changed)
            if any(o == new for _, _, o in plan):
                continue  # the same run as a row already planned (temporal / prompt_every 1)
            plan.append((axis, v, new))
    rows: list[SweepRow] = []
    for axis, value, opts in plan:
        label = "base" if axis == "base" else setting_label(axis, value, spec.kind == "prompt")

        def tell(p: EvalProgress, label: str = label) -> None:
            p.setting = label
            if progress:
                progress(p)

        report = evaluate(opts, biou_ratio=biou_ratio, progress=tell)
        rows.append(SweepRow(axis, value, label, report))
    base = rows[0].report.settings
    return SweepReport(rows=rows, notes=notes, base=base)
