"""Pictures of masks: overlays on frames, prediction vs ground truth, contact sheets, MP4s.

Pure functions on arrays (images RGB uint8 ``(H, W, 3)``, masks ``(H, W)``
bool, boxes ``xyxy`` float frame pixels) plus :func:`visualize`, which reads
a dataset and a COCO predictions file and writes, per sequence:

- ``<out>/<sequence>/<frame_index:06d>.png``: masks filled translucent
  with their contour, boxes, ``category #track`` labels; with ground truth
  (``gt=True``) three panels side by side: prediction, ground truth (the
  adapter's ``Frame.gt_mask``, the masks ``box2mask eval`` scores against),
  and the errors (pixels in both unions, in the prediction only, in the
  ground truth only, in :data:`ERROR_COLOURS`);
- ``<out>/<sequence>/contact-sheet.png``: a grid of thumbnails of up to
  ``sheet_frames`` frames evenly spread over the sequence;
- ``<out>/<sequence>.mp4`` with ``mp4=True`` (OpenCV's ``mp4v`` writer).

A track keeps its colour across frames and runs (:func:`track_colour`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.errors import Box2MaskError, UsageError
from box2mask.geometry import mask_to_xyxy
from box2mask.io import write_png_file
from box2mask.layout import sequence_dir as layout_sequence_dir

#: pixel classes of the error panel (RGB): both masks, prediction only, ground truth only
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "tp": (60, 180, 75),
    "fp": (230, 25, 75),
    "fn": (0, 130, 200),
}

MaskLike = np.ndarray | Callable[[], "np.ndarray | None"] | None


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour for a track id, the same in every frame, run and process.

    The hue steps by the golden ratio of a turn per id, so ids that are close
    (the objects of one frame usually are) get hues far apart: any two ids
    less than 8 apart differ by at least 30° of hue. Saturation and value
    alternate with the id too, to tell apart ids far apart whose hues meet.

    >>> track_colour(7) == track_colour(7)
    True
    >>> track_colour(1) != track_colour(2)
    True
    """
    k = int(track_id)
    hue = (k * 0.6180339887498949) % 1.0
    sat = (0.95, 0.7, 0.5)[k % 3]
    val = (1.0, 0.85)[(k // 3) % 2]
    return _hsv_to_rgb(hue, sat, val)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


@dataclass
class VizObject:
    """One object to draw.

    Attributes:
        track_id: its track id (chooses the colour).
        category: its category name (label).
        xyxy: ``(4,)`` box in frame pixels, or ``None`` (no box drawn).
        mask: ``(H, W)`` bool frame mask, a callable returning one (decoded
            only when drawn, so a frame's masks are never all in memory), or ``None``.
        in_errors: whether the mask counts in the error panel's union (a
            prediction for an object without a ground-truth mask does not:
            it would show as false positive pixels that eval never scores).
    """

    track_id: int
    category: str
    xyxy: np.ndarray | None = None
    mask: MaskLike = None
    in_errors: bool = True

    def get_mask(self) -> np.ndarray | None:
        m = self.mask() if callable(self.mask) else self.mask
        return None if m is None else np.asarray(m, dtype=bool)


def overlay_masks(
    image: np.ndarray,
    objects: Iterable[VizObject],
    alpha: float = 0.45,
    contour: bool = True,
    union: np.ndarray | None = None,
    present: set[int] | None = None,
) -> np.ndarray:
    """Fill each object's mask with its track colour at ``alpha`` and outline it.

    Args:
        image: ``(H, W, 3)`` RGB uint8 (not modified).
        objects: objects with masks (those without are skipped).
        alpha: opacity of the fill; a mask pixel becomes
            ``(1 - alpha) * image + alpha * colour`` (rounded); later objects
            cover earlier ones.
        contour: draw each mask's outline (1 px, full colour).
        union: optional ``(H, W)`` bool array that receives the union of the
            masks of the objects with ``in_errors`` set.
        present: optional set that receives the track ids of the objects
            that have a mask (possibly empty), as opposed to ``None``.

    Returns:
        A new ``(H, W, 3)`` RGB uint8 image.
    """
    img = _check_image(image)
    layer = img.copy()
    covered = np.zeros(img.shape[:2], dtype=bool)
    outlines: list[tuple[np.ndarray, tuple[int, int, int], tuple[int, int]]] = []
    for obj in objects:
        m = obj.get_mask()
        if m is None:
            continue
        if present is not None:
            present.add(int(obj.track_id))
        if m.shape != img.shape[:2]:
            raise ValueError(
                f"mask of track {obj.track_id} is {m.shape}, the image {img.shape[:2]}"
            )
        box = mask_to_xyxy(m)
        if box is None:
            continue
        x0, y0, x1, y1 = (int(v) for v in box)
        colour = track_colour(obj.track_id)
        sub = m[y0:y1, x0:x1]
        layer[y0:y1, x0:x1][sub] = colour
        covered[y0:y1, x0:x1] |= sub
        if union is not None and obj.in_errors:
            union[y0:y1, x0:x1] |= sub
        if contour:
            outlines.append((sub, colour, (x0, y0)))
    out = img.copy()
    if covered.any():
        blend = (
            img[covered].astype(np.float32) * (1 - alpha)
            + layer[covered].astype(np.float32) * alpha
        )
        out[covered] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    for sub, colour, (x0, y0) in outlines:
        contours, _ = cv2.findContours(
            sub.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x0, y0)
        )
        cv2.drawContours(out, contours, -1, colour, 1, lineType=cv2.LINE_8)
    return out


def draw_boxes(image: np.ndarray, objects: Iterable[VizObject], labels: bool = True) -> np.ndarray:
    """Draw each object's box and a ``category #track`` label in its track colour, in place.

    Returns:
        ``image`` (``(H, W, 3)`` RGB uint8, modified).
    """
    img = _check_image(image)
    scale = max(0.3, min(img.shape[:2]) / 1200)
    for obj in objects:
        if obj.xyxy is None:
            continue
        colour = track_colour(obj.track_id)
        x1, y1, x2, y2 = (float(v) for v in obj.xyxy)
        p1 = (int(math.floor(x1)), int(math.floor(y1)))
        p2 = (max(p1[0], int(math.ceil(x2)) - 1), max(p1[1], int(math.ceil(y2)) - 1))
        cv2.rectangle(img, p1, p2, colour, 1, lineType=cv2.LINE_8)
        if labels:
            _label(img, f"{obj.category} #{obj.track_id}", p1, colour, scale)
    return img


def _label(
    img: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int], scale: float
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    # keep the label inside the image: boxes at the right edge get it shifted left
    x, y = max(0, min(at[0], img.shape[1] - tw - 1)), at[1] - 2
    if y - th - base < 0:  # no room above the box: write below its top edge
        y = at[1] + th + base + 2
    cv2.rectangle(img, (x, y - th - base), (x + tw, y + 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y - base + 1), font, scale, colour, 1, cv2.LINE_AA)


def error_image(
    image: np.ndarray, pred: np.ndarray, gt: np.ndarray, alpha: float = 0.6
) -> np.ndarray:
    """The errors of a prediction, coloured over a dimmed frame.

    Args:
        image: ``(H, W, 3)`` RGB uint8.
        pred, gt: ``(H, W)`` bool unions of the predicted and ground-truth masks.
        alpha: opacity of the colours.

    Returns:
        A new image: pixels in both masks in ``ERROR_COLOURS["tp"]``, only in
        the prediction (false positive) in ``"fp"``, only in the ground truth
        (false negative) in ``"fn"``, blended at ``alpha``; the rest is the
        frame in grey at half brightness.
    """
    img = _check_image(image)
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) // 2
    out = grey.copy()
    p, g = np.asarray(pred, bool), np.asarray(gt, bool)
    for name, sel in (("tp", p & g), ("fp", p & ~g), ("fn", ~p & g)):
        if sel.any():
            colour = np.array(ERROR_COLOURS[name], dtype=np.float32)
            blend = img[sel].astype(np.float32) * (1 - alpha) + colour * alpha
            out[sel] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return out


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` with a black title bar on top (white text sized to the image's width).

    The bar is ``round(22 * scale)`` px high with ``scale = clip(W / 640, 0.8, 3)``.
    """
    img = _check_image(image)
    scale = min(3.0, max(0.8, img.shape[1] / 640))
    bar = int(round(22 * scale))
    out = np.zeros((img.shape[0] + bar, img.shape[1], 3), dtype=np.uint8)
    out[bar:] = img
    org = (int(6 * scale), bar - int(7 * scale))
    cv2.putText(
        out, title, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return out


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels of equal height joined left to right with ``gap`` px of white between."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    h = panels[0].shape[0]
    if any(p.shape[0] != h for p in panels):
        raise ValueError(f"panels must share their height, got {[p.shape[0] for p in panels]}")
    sep = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            parts.append(sep)
        parts.append(_check_image(p))
    return np.concatenate(parts, axis=1)


def thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` resized to ``width`` px wide, aspect kept (INTER_AREA)."""
    img = _check_image(image)
    h, w = img.shape[:2]
    height = max(1, int(round(h * width / w)))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def contact_sheet(
    images: Sequence[np.ndarray],
    columns: int = 6,
    labels: Sequence[str] | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Images (thumbnails, see :func:`thumbnail`) in a grid on white, row by row.

    A cell is as wide as the widest image and as high as the highest; images
    sit at their cell's top-left corner. With ``n`` images the grid has
    ``c = min(columns, n)`` columns and ``r = ceil(n / c)`` rows, so the sheet
    is ``(r * (cell_h + gap) + gap, c * (cell_w + gap) + gap, 3)`` uint8.

    Args:
        images: RGB uint8 images.
        labels: optional text written in each cell's bottom-left corner
            (the bottom, so a panel title at the top stays readable).
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    thumbs = [_check_image(im) for im in images]
    n = len(thumbs)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cell_h = max(t.shape[0] for t in thumbs)
    cell_w = max(t.shape[1] for t in thumbs)
    sheet = np.full(
        (rows * (cell_h + gap) + gap, cols * (cell_w + gap) + gap, 3), 255, dtype=np.uint8
    )
    for k, t in enumerate(thumbs):
        r, c = divmod(k, cols)
        y, x = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
        sheet[y : y + t.shape[0], x : x + t.shape[1]] = t
        if labels is not None:
            _label(sheet, str(labels[k]), (x + 2, y + t.shape[0] - 2), (255, 255, 255), 0.45)
    return sheet


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (folders made as needed)."""
    # not cv2.imwrite: it crashes on a --viz-out path with bytes that are not UTF-8
    ok = write_png_file(path, cv2.cvtColor(_check_image(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise Box2MaskError(f"could not write {path}")


class Mp4Writer:
    """Frames (RGB uint8, any size: resized to the first frame's) to an MP4 with OpenCV's ``mp4v``.

    Raises :class:`Box2MaskError` at the first frame when this OpenCV build
    cannot encode ``mp4v``, saying so.
    """

    def __init__(self, path: Path, fps: float = 10.0) -> None:
        self.path = path
        self.fps = fps
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        #: where OpenCV writes: ``path``, or a temp file when ``path`` is not UTF-8 (OpenCV
        #: crashes on such names), moved to ``path`` on close
        self._target: Path | None = None

    def write(self, image: np.ndarray) -> None:
        img = _check_image(image)
        if self._writer is None:
            h, w = img.shape[:2]
            # mp4v wants even sides
            self._size = (w - w % 2, h - h % 2)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._target = self.path
            try:
                str(self.path).encode("utf-8")
            except UnicodeEncodeError:
                fd, tmp = tempfile.mkstemp(suffix=".mp4")
                os.close(fd)
                self._target = Path(tmp)
            writer = cv2.VideoWriter(
                str(self._target), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size
            )
            if not writer.isOpened():
                raise Box2MaskError(
                    f"cannot write {self.path}: this OpenCV build ({cv2.__version__}) has no working "
                    "'mp4v' MP4 encoder; run again without --mp4 for the PNGs and contact sheets"
                )
            self._writer = writer
        assert self._size is not None
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self._target is not None and self._target != self.path:
                shutil.move(self._target, self.path)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"images must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    return img


def sequence_dir(out: Path, sequence: str) -> Path:
    """Where a sequence's pictures go: ``out/<sequence>`` (``car/001`` → ``out/car/001``).

    The sequence's safe folder name, as a convert job's (:func:`box2mask.layout.sequence_dir`):
    names that would leave ``out`` (absolute, ``..``, empty) or are too long are escaped.

    >>> sequence_dir(Path("v"), "car/001").as_posix()
    'v/car/001'
    >>> sequence_dir(Path("v"), "../x").as_posix()
    'v/%2E%2E/x'
    """
    return out / layout_sequence_dir(sequence)


# -- the driver ----------------------------------------------------------------
@dataclass
class VizSummary:
    """What :func:`visualize` wrote."""

    out: Path
    frames: int = 0
    sequences: list[str] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    frames_without_predictions: int = 0
    frames_without_gt: int = 0
    notes: list[str] = field(default_factory=list)


def find_predictions(path: Path) -> Path:
    """A COCO JSON path from ``--predictions FILE`` or a convert job folder (``--out DIR``)."""
    path = Path(path)
    if path.is_dir():
        coco = path / "annotations.json"
        if not coco.is_file():
            raise UsageError(
                f"--out {path}: no annotations.json in this folder; --out takes a finished "
                "`box2mask convert --format coco` job folder (run the same convert command again "
                "to finish one), --predictions a COCO JSON file"
            )
        return coco
    if not path.is_file():
        raise UsageError(f"--predictions {path}: no such file")
    return path


def visualize(
    dataset: str,
    root: Path | str | None,
    predictions: Path | str,
    out: Path | str,
    *,
    adapter_options: dict[str, Any] | None = None,
    sequences: Sequence[str] = (),
    gt: bool = False,
    mp4: bool = False,
    fps: float = 10.0,
    every: int = 1,
    max_frames: int | None = None,
    sheet_frames: int = 24,
    columns: int = 6,
    thumb_width: int = 320,
    alpha: float = 0.45,
    boxes: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> VizSummary:
    """Draw a predictions file's masks over a dataset's frames (see the module docstring).

    Args:
        dataset, root, adapter_options: the dataset the predictions were made from.
        predictions: a COCO JSON (``box2mask convert`` output) or a convert job folder.
        out: the folder to write into.
        sequences: only these; default every sequence the predictions cover.
        gt: add the ground-truth and error panels, with the ground truth the
            adapter gives ``box2mask eval`` (:attr:`Frame.gt_mask`); frames
            without any ground-truth mask get the prediction panel alone,
            counted in the summary.
        mp4: also write one MP4 per sequence.
        every: draw every ``every``-th frame of a sequence.
        max_frames: at most this many frames per sequence.
        sheet_frames: frames on a sequence's contact sheet (evenly spread).
        columns: contact-sheet columns, counted in panels: with ``gt`` a frame
            takes three, so the sheet has ``max(1, columns // 3)`` columns.
        thumb_width: width of one panel on the contact sheet, px.
        alpha: opacity of the mask fill.
        boxes: draw boxes and ``category #track`` labels.
        progress: called with ``(sequence, frames drawn so far, frames planned)`` after each
            frame (all sequences; the planned count is every ``every``-th frame up to
            ``max_frames`` of each chosen sequence).

    Raises:
        UsageError: bad options, an unknown sequence, or predictions that match
            no frame of the dataset.
    """
    from box2mask.adapters import open_dataset
    from box2mask.evaluate import PredictionIndex
    from box2mask.io import read_image

    for name, value in (("--every", every), ("--sheet-frames", sheet_frames)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {max_frames}")
    if thumb_width < 16:
        raise UsageError(f"--thumb-width must be >= 16, got {thumb_width}")
    if not 0 <= alpha <= 1:
        raise UsageError(f"--alpha must be in [0, 1], got {alpha}")
    if fps <= 0:
        raise UsageError(f"--fps must be > 0, got {fps}")
    source = find_predictions(Path(predictions))
    preds = PredictionIndex.load(source)
    try:
        adapter = open_dataset(dataset, root, adapter_options)
        ds_root = adapter.root
        infos = {s.name: s for s in adapter.list_sequences()}
        if sequences:
            missing = [s for s in sequences if s not in infos]
            if missing:
                sample = ", ".join(sorted(infos)[:8]) + (" ..." if len(infos) > 8 else "")
                raise UsageError(
                    f"--sequences: {dataset} has no sequence {missing[0]!r}; it has: {sample}"
                )
            chosen = list(sequences)
        else:
            # files written by convert name each image's sequence; others are matched by file name
            covered = preds.keyed_sequences()
            chosen = [s for s in infos if s in covered] if covered else list(infos)
            if not chosen:
                raise UsageError(
                    f"--predictions {source}: no sequence of {dataset} at {ds_root} appears in it "
                    "(its images' 'sequence' fields); is it from this dataset?"
                )
        out = Path(out)
        panels = 3 if gt else 1
        summary = VizSummary(out=out)
        planned = 0
        for seq in chosen:
            count = max(1, math.ceil(infos[seq].num_frames / every))
            planned += count if max_frames is None else min(count, max_frames)
        done_all = 0
        for seq in chosen:
            n_frames = infos[seq].num_frames
            stride_count = max(1, math.ceil(n_frames / every))
            if max_frames is not None:
                stride_count = min(stride_count, max_frames)
            # frames are counted before they are read, so the sheet's picks are fixed up front
            pick = set(
                np.linspace(0, stride_count - 1, min(sheet_frames, stride_count))
                .round()
                .astype(int)
                .tolist()
            )
            thumbs: list[np.ndarray] = []
            labels: list[str] = []
            seq_dir = sequence_dir(out, seq)
            writer = Mp4Writer(seq_dir.parent / f"{seq_dir.name}.mp4", fps) if mp4 else None
            drawn = 0
            try:
                for k, frame in enumerate(adapter.read_sequence(seq)):
                    if k % every:
                        continue
                    if max_frames is not None and drawn >= max_frames:
                        break
                    if preds.image_id(frame) is None:
                        summary.frames_without_predictions += 1
                        continue
                    image = read_image(frame.image_path)
                    picture, with_gt = render_frame(
                        image, frame, preds, gt=gt, alpha=alpha, boxes=boxes
                    )
                    if gt and not with_gt:
                        summary.frames_without_gt += 1
                    write_png(seq_dir / f"{frame.frame_index:06d}.png", picture)
                    if writer is not None:
                        writer.write(picture)
                    if drawn in pick:
                        # the same scale for every frame: thumb_width px per panel
                        width = max(1, round(picture.shape[1] * thumb_width / image.shape[1]))
                        thumbs.append(thumbnail(picture, width))
                        labels.append(f"#{frame.frame_index}")
                    drawn += 1
                    done_all += 1
                    summary.frames += 1
                    if progress:
                        progress(seq, done_all, planned)
            finally:
                if writer is not None:
                    writer.close()
            if drawn:
                summary.sequences.append(seq)
                sheet = seq_dir / "contact-sheet.png"
                write_png(sheet, contact_sheet(thumbs, max(1, columns // panels), labels))
                summary.sheets.append(sheet)
                if writer is not None:
                    summary.videos.append(writer.path)
        if summary.frames == 0:
            raise UsageError(
                f"--predictions {source}: none of its images matches a frame of "
                f"{', '.join(chosen[:4])}{' ...' if len(chosen) > 4 else ''} in {dataset} at {ds_root} "
                "(by sequence and frame_index, else file_name); is it from this dataset?"
            )
        if summary.frames_without_predictions:
            summary.notes.append(
                f"{summary.frames_without_predictions} frame(s) of the chosen sequences are not in the "
                "predictions file; skipped"
            )
        if summary.frames_without_gt:
            summary.notes.append(
                f"{summary.frames_without_gt} frame(s) have no ground-truth mask: prediction panel only"
            )
        return summary
    finally:
        preds.close()


#: the error panel's title (its colours are :data:`ERROR_COLOURS`)
ERROR_TITLE = "errors: green = both, red = prediction only, blue = ground truth only"


def render_frame(
    image: np.ndarray,
    frame: Any,
    preds: Any,
    gt: bool = False,
    alpha: float = 0.45,
    boxes: bool = True,
) -> tuple[np.ndarray, bool]:
    """One frame's picture: the prediction overlay, and with ``gt`` the GT and error panels.

    Predicted objects are drawn in the colour of their ``track_id`` (else
    their annotation ``id``), ground-truth objects in that of the frame's
    track id, so an object matched by track has one colour in both panels.
    The error panel compares the union of the predicted masks with the union
    of the ground-truth masks; predictions of objects whose ground truth has
    no mask are left out of it (``box2mask eval`` skips those objects too).

    Args:
        image: the frame, ``(H, W, 3)`` RGB uint8.
        frame: its :class:`~box2mask.types.Frame` (boxes, track ids, ``gt_mask``).
        preds: a :class:`~box2mask.evaluate.PredictionIndex`.

    Returns:
        ``(picture, with_gt)``: ``picture`` is ``(H, W, 3)``, or with ground
        truth ``(H + bar, 3 W + 8, 3)`` (three titled panels, 4-px gaps);
        ``with_gt`` says whether the ground-truth panels were drawn (``gt``
        and at least one object of the frame has a ground-truth mask).
    """
    hw = frame.image_hw
    if image.shape[:2] != tuple(hw):
        raise Box2MaskError(
            f"{frame.image_path}: the image is {image.shape[1]}x{image.shape[0]}, "
            f"the dataset says {hw[1]}x{hw[0]}"
        )
    middle = None
    gt_union = np.zeros(hw, dtype=bool)
    with_mask: set[int] = set()
    if gt and frame.gt_mask is not None:
        provider = frame.gt_mask
        gt_objs = [
            VizObject(
                track_id=int(frame.track_id[i]),
                category=str(frame.category[i]),
                xyxy=frame.xyxy[i],
                mask=lambda i=i: provider(i),
            )
            for i in range(len(frame))
        ]
        middle = overlay_masks(image, gt_objs, alpha, union=gt_union, present=with_mask)
        if not with_mask:
            middle = None
        elif boxes:
            draw_boxes(middle, gt_objs)
    gt_tracks = {int(t) for t in frame.track_id}

    def pred_object(a: dict[str, Any]) -> VizObject:
        box = a.get("prompt_box") or a.get("bbox")
        xyxy = (
            None if not box else np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], float)
        )
        tid = int(a.get("track_id", a.get("id", 0)))
        return VizObject(
            track_id=tid,
            category=preds.categories.get(a.get("category_id"), "?"),
            xyxy=xyxy,
            mask=lambda a=a: preds.decode(a, hw),
            # an unmatched prediction is a real false positive; one of an object
            # without a ground-truth mask cannot be judged
            in_errors=tid in with_mask or tid not in gt_tracks,
        )

    pred_objs = [pred_object(a) for a in preds.annotations(frame)]
    pred_union = np.zeros(hw, dtype=bool)
    left = overlay_masks(image, pred_objs, alpha, union=pred_union)
    if boxes:
        draw_boxes(left, pred_objs)
    if middle is None:
        return left, False
    right = error_image(image, pred_union, gt_union)
    picture = side_by_side(
        [titled(left, "prediction"), titled(middle, "ground truth"), titled(right, ERROR_TITLE)]
    )
    return picture, True
