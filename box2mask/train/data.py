"""Training data: frames with ground-truth masks → augmented 1024×1024 samples.

Any adapter whose frames carry :attr:`Frame.gt_mask` works (``rossam``,
``satmtb`` with ``source=seg``, ``coco`` with masks). Per sequence a fixed
random share of the frames is kept (the paper keeps a quarter of each video:
neighbouring frames are near duplicates); objects of excluded classes (cars,
which get box masks at conversion) are left out.

Two views:

- ``frame`` (the paper's recipe): the whole frame with up to ``max_objects``
  of its objects, through rotation + LSJ (:mod:`box2mask.train.augment`);
- ``crop``: one object per sample, cut and resized exactly as at inference
  (window of side ``max(512, 1.25 × long side)`` centred on the box, bicubic
  to 1024), then the same augmentation when enabled.

A sample's randomness comes from ``np.random.default_rng([seed, epoch,
index])``, so samples do not depend on the number of loader workers, ranks, or
on whether training was resumed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from box2mask import geometry
from box2mask.io import read_image
from box2mask.train.augment import AugmentConfig, Augmented, augment, no_augment
from box2mask.types import Frame

View = Literal["frame", "crop"]
#: side of SAM's low-res mask logits, where the loss is computed
LOWRES = 256


@dataclass(frozen=True)
class DataConfig:
    """How samples are made.

    Attributes:
        view: ``"frame"`` or ``"crop"`` (module docstring).
        exclude_classes: categories left out (default ``car``, as the paper).
        max_objects: prompts per image in the ``frame`` view (a random subset).
        augment: apply rotation + LSJ; without it, the image is fitted to
            1024 and padded bottom-right.
        aug: augmentation settings.
        crop_size, context, window, interpolation: the ``crop`` view's
            inference geometry (DESIGN §4).
        retries: new augmentation draws when every object fell out.
        seed: the base of every sample's random generator.
    """

    view: View = "frame"
    exclude_classes: tuple[str, ...] = ("car",)
    max_objects: int = 16
    augment: bool = True
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    crop_size: int = 512
    context: float = 1.25
    window: geometry.WindowMode = "centred"
    interpolation: geometry.Interpolation = "bicubic"
    retries: int = 5
    seed: int = 0


def sample_frames(
    frames_by_sequence: Iterable[tuple[str, Sequence[Frame]]],
    fraction: float,
    seed: int,
    always: Callable[[Frame], bool] | None = None,
) -> list[Frame]:
    """A fixed random share of each sequence's frames, in frame order.

    Args:
        frames_by_sequence: ``(sequence, frames)`` pairs.
        fraction: share kept per sequence, in ``(0, 1]``; at least one frame
            of a non-empty sequence is kept.
        seed: with the sequence name, decides which frames: the same on every
            run, rank and machine.
        always: frames to keep whatever the share (those holding an object a
            person reviewed: :func:`has_reviewed`); the share is drawn from the
            others. ``None``: every frame is drawn.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"frame fraction must be in (0, 1], got {fraction}")
    out: list[Frame] = []
    for name, frames in frames_by_sequence:
        kept = [f for f in frames if always(f)] if always is not None else []
        rest = [f for f in frames if not always(f)] if always is not None else list(frames)
        n = len(rest)
        chosen = []
        if n:
            k = n if fraction >= 1 else max(1, int(round(fraction * n)))
            if kept and fraction < 1:
                k = int(round(fraction * n))  # the kept frames already stand for the sequence
            rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
            chosen = [rest[int(i)] for i in np.sort(rng.choice(n, size=k, replace=False))]
        order = {id(f): i for i, f in enumerate(frames)}
        out.extend(sorted([*kept, *chosen], key=lambda f: order[id(f)]))
    return out


def reviewed_objects(frame: Frame) -> list[bool]:
    """Per object, whether a person reviewed it (``attributes["reviewed"]``, set by a job's
    frames: :func:`box2mask.job.frames.training_frames`); all ``False`` without it."""
    marks = frame.attributes.get("reviewed")
    return [bool(v) for v in marks] if marks is not None else [False] * len(frame)


def has_reviewed(frame: Frame) -> bool:
    """The frame holds an object a person reviewed."""
    return any(reviewed_objects(frame))


def eligible_objects(frame: Frame, exclude: Sequence[str]) -> list[int]:
    """Indices of the objects not in ``exclude`` with a non-empty box."""
    ex = set(exclude)
    x1, y1, x2, y2 = frame.xyxy.T
    return [
        i
        for i in range(len(frame))
        if frame.category[i] not in ex and x2[i] > x1[i] and y2[i] > y1[i]
    ]


def _resize_soft(masks: np.ndarray, size: int) -> np.ndarray:
    """``(K, S, S)`` bool → ``(K, size, size)`` float32 pixel coverage (area average)."""
    out = np.empty((masks.shape[0], size, size), dtype=np.float32)
    for k, m in enumerate(masks):
        out[k] = cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return out


class TrainDataset(Dataset):
    """Augmented samples from frames with ground-truth masks.

    Args:
        frames: the frames to sample from (after :func:`sample_frames`).
        cfg: how samples are made.

    Item ``i`` is a dict: ``image`` ``(1024, 1024, 3)`` uint8 RGB; ``boxes``
    ``(K, 4)`` float32 xyxy in model pixels (tight boxes of the transformed
    masks); ``targets`` ``(K, 256, 256)`` float32 mask coverage; ``masks``
    ``(K, 1024, 1024)`` bool only when ``keep_full_masks`` is set (pictures,
    tests); ``frame`` ``"sequence:index"``.
    """

    def __init__(self, frames: Sequence[Frame], cfg: DataConfig, keep_full_masks: bool = False):
        self.frames = list(frames)
        self.cfg = cfg
        self.keep_full_masks = keep_full_masks
        self.epoch = 0
        self.items: list[tuple[int, int]] = []
        for fi, frame in enumerate(self.frames):
            objs = eligible_objects(frame, cfg.exclude_classes)
            if not objs:
                continue
            if cfg.view == "crop":
                self.items.extend((fi, i) for i in objs)
            else:
                self.items.append((fi, -1))

    def set_epoch(self, epoch: int) -> None:
        """Samples of epoch ``e`` differ from those of other epochs, identically on every run."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _base(
        self, frame: Frame, obj: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The image and ``(K, H, W)`` GT masks before augmentation."""
        image = read_image(frame.image_path)
        provider = frame.gt_mask
        if obj >= 0:
            chosen = [obj]
        else:
            objs = eligible_objects(frame, self.cfg.exclude_classes)
            if len(objs) > self.cfg.max_objects:
                objs = _pick(objs, reviewed_objects(frame), self.cfg.max_objects, rng)
            chosen = objs
        masks = []
        for i in chosen:
            m = provider(int(i)) if provider is not None else None
            if m is not None:
                masks.append(np.asarray(m, dtype=bool))
        full = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), dtype=bool)
        if obj < 0:
            return image, full
        window = geometry.window_for_box(
            frame.xyxy[obj], frame.image_hw, self.cfg.crop_size, self.cfg.context, self.cfg.window
        )
        crop = geometry.crop_image(image, window, geometry.fill_for_mode(self.cfg.window))
        size = self.cfg.aug.out_size
        crop = geometry.resize_crop(crop, size, self.cfg.interpolation)
        cm = np.zeros((full.shape[0], size, size), dtype=bool)
        for k, m in enumerate(full):
            win = geometry.crop_mask(m, window).astype(np.uint8) * 255
            cm[k] = cv2.resize(win, (size, size), interpolation=cv2.INTER_LINEAR) >= 128
        return crop, cm

    def sample(self, index: int) -> tuple[Augmented, Frame]:
        """Item ``index`` before conversion to tensors (pictures, tests)."""
        fi, obj = self.items[index]
        frame = self.frames[fi]
        rng = np.random.default_rng([self.cfg.seed, self.epoch, index])
        image, masks = self._base(frame, obj, rng)
        if not self.cfg.augment:
            return no_augment(image, masks, self.cfg.aug.out_size), frame
        out = augment(image, masks, rng, self.cfg.aug)
        tries = 0
        while len(out.keep) == 0 and masks.shape[0] and tries < self.cfg.retries:
            out = augment(image, masks, rng, self.cfg.aug)
            tries += 1
        return out, frame

    def __getitem__(self, index: int) -> dict[str, Any]:
        aug, frame = self.sample(index)
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(aug.image)),
            "boxes": torch.from_numpy(aug.boxes.astype(np.float32)),
            "targets": torch.from_numpy(_resize_soft(aug.masks, LOWRES)),
            "frame": f"{frame.sequence}:{frame.frame_index}",
        }
        if self.keep_full_masks:
            item["masks"] = torch.from_numpy(aug.masks)
        return item


def _pick(objs: list[int], reviewed: list[bool], k: int, rng: np.random.Generator) -> list[int]:
    """``k`` of ``objs`` at random, the reviewed ones first: all of them when they are at
    most ``k``, the others filling the rest (sorted)."""
    first = [i for i in objs if reviewed[i]]
    if not first:
        return sorted(rng.choice(objs, size=k, replace=False).tolist())
    if len(first) >= k:
        return sorted(rng.choice(first, size=k, replace=False).tolist())
    others = [i for i in objs if not reviewed[i]]
    return sorted(first + rng.choice(others, size=k - len(first), replace=False).tolist())


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples: ``images`` ``(B, 1024, 1024, 3)`` uint8; ``boxes`` ``(M, 4)``;
    ``image_index`` ``(M,)`` long; ``targets`` ``(M, 256, 256)``; ``frames`` list of str."""
    images = torch.stack([it["image"] for it in items])
    boxes = torch.cat([it["boxes"] for it in items]).reshape(-1, 4)
    targets = torch.cat([it["targets"] for it in items]).reshape(-1, LOWRES, LOWRES)
    index = torch.cat(
        [torch.full((it["boxes"].shape[0],), b, dtype=torch.long) for b, it in enumerate(items)]
    )
    return {
        "images": images,
        "boxes": boxes,
        "image_index": index,
        "targets": targets,
        "frames": [it["frame"] for it in items],
    }


def restrict_frame(frame: Frame, keep: Sequence[int]) -> Frame:
    """``frame`` with only the objects ``keep`` (its GT-mask provider re-indexed)."""
    keep = list(keep)
    provider = frame.gt_mask

    def gt(i: int) -> np.ndarray | None:
        return None if provider is None else provider(keep[i])

    return Frame(
        sequence=frame.sequence,
        frame_index=frame.frame_index,
        image_path=frame.image_path,
        image_hw=frame.image_hw,
        xyxy=frame.xyxy[keep],
        track_id=frame.track_id[keep],
        category=frame.category[keep],
        file_name=frame.file_name,
        obb=None if frame.obb is None else frame.obb[keep],
        gt_mask=gt,
        attributes={k: [v[i] for i in keep] for k, v in frame.attributes.items()},
    )
