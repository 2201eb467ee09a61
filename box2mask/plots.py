"""PNG plots of ``eval`` and ``qa`` (``--plots DIR``), drawn with matplotlib's headless Agg.

matplotlib is an optional extra (``pip install 'box2mask[plots]'``):
:func:`require_matplotlib` says so in one message when it is missing.

The plots are fed one row at a time and keep only fixed-size tallies, so
their memory does not grow with the number of objects (a million objects
cost what a hundred do):

- :class:`EvalPlots`: ``add_object(row)`` per scored object (``category``,
  ``iou``, ``box_area``), ``add_frame(row)`` per scored frame (``sequence``,
  ``frame_index``, ``iou``), as ``box2mask.evaluate.evaluate``'s
  ``on_object`` / ``on_frame`` callbacks give them; draws
  ``iou_histogram.png`` (per class), ``iou_vs_box_size.png`` (mean IoU per
  box-area bin, log scale, per class) and ``frame_iou.png`` (the union IoU
  of each frame along its sequence, the worst sequences first);
- :class:`QAPlots`: ``add(category, suspicion, flags)`` per ranked object;
  draws ``suspicion.png`` (the score's distribution, flagged and not) and
  ``flags_by_class.png`` (each flag's count per class).

Every figure is :data:`SIZE` pixels (``FIG_INCHES`` at ``DPI``), so pages
and docs can lay them out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import UsageError

#: figure size in inches and resolution: every PNG is SIZE pixels (width, height)
FIG_INCHES = (8.0, 4.5)
DPI = 100
SIZE = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))
#: IoU bins of the histograms (0..1)
IOU_BINS = 20
#: suspicion-score bins (0..1)
SCORE_BINS = 40
#: box-area bins: log10(px²) from 0 (1 px²) to 7 (10 Mpx²), 4 per decade
AREA_EDGES = np.linspace(0.0, 7.0, 29)
#: frames kept per sequence for the per-frame plot; past it, neighbours are averaged in pairs
FRAME_POINTS = 2048
#: sequences drawn in the per-frame plot (the lowest mean IoU first)
SEQUENCES_SHOWN = 8
#: classes drawn in the per-class plots (the most objects first); the rest are named in a note
CLASSES_SHOWN = 8

EVAL_FILES = ("iou_histogram.png", "iou_vs_box_size.png", "frame_iou.png")
QA_FILES = ("suspicion.png", "flags_by_class.png")


def require_matplotlib(option: str = "--plots") -> Any:
    """matplotlib's ``pyplot`` on the headless Agg backend, or a UsageError naming the extra.

    Raises:
        UsageError: ``option`` needs matplotlib: ``pip install 'box2mask[plots]'``.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib, an optional extra of box2mask: "
            "pip install 'box2mask[plots]'"
        ) from None
    matplotlib.use("Agg", force=True)  # no display: servers, containers, CI
    import matplotlib.pyplot as plt

    return plt


def _figure(plt: Any) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=FIG_INCHES, dpi=DPI)
    return fig, ax


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Write ``fig`` at ``path`` (atomically) at exactly :data:`SIZE` pixels."""
    import io

    from box2mask.io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox_inches="tight": the size stays SIZE
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _label(text: str, limit: int = 28) -> str:
    """A dataset name for a legend: printable, cut, no mathtext (``$``)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("$", r"\$")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _top(counts: Mapping[str, int], n: int) -> tuple[list[str], list[str]]:
    """The ``n`` names with the largest counts (ties by name), and the rest."""
    order = sorted(counts, key=lambda k: (-counts[k], k))
    return order[:n], order[n:]


class _Series:
    """One sequence's per-frame values in frame order, at most :data:`FRAME_POINTS` points:
    when full, neighbouring points are averaged in pairs (each point then stands for twice
    as many frames), so memory stays fixed however long the sequence."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []
        self.per_point = 1
        self._acc: list[tuple[float, float]] = []
        self.total = 0.0
        self.count = 0

    def add(self, x: float, y: float) -> None:
        self.total += y
        self.count += 1
        self._acc.append((x, y))
        if len(self._acc) < self.per_point:
            return
        xs, ys = zip(*self._acc, strict=True)
        self.x.append(float(np.mean(xs)))
        self.y.append(float(np.mean(ys)))
        self._acc = []
        if len(self.x) >= FRAME_POINTS:
            self.x = [(a + b) / 2 for a, b in zip(self.x[::2], self.x[1::2], strict=False)]
            self.y = [(a + b) / 2 for a, b in zip(self.y[::2], self.y[1::2], strict=False)]
            self.per_point *= 2

    def points(self) -> tuple[list[float], list[float]]:
        x, y = list(self.x), list(self.y)
        if self._acc:
            xs, ys = zip(*self._acc, strict=True)
            x.append(float(np.mean(xs)))
            y.append(float(np.mean(ys)))
        order = np.argsort(x, kind="stable")
        return [x[i] for i in order], [y[i] for i in order]

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


class EvalPlots:
    """The plots of one ``eval``, fed per object and per frame (fixed memory per class and
    sequence: histograms, binned sums, at most :data:`FRAME_POINTS` points a sequence)."""

    def __init__(self) -> None:
        self.hist: dict[str, np.ndarray] = {}
        self.size_sum: dict[str, np.ndarray] = {}
        self.size_n: dict[str, np.ndarray] = {}
        self.objects: Counter[str] = Counter()
        self.frames: dict[str, _Series] = {}

    def add_object(self, row: Any) -> None:
        """One scored object (:class:`box2mask.evaluate.ObjectScore`): its ``category``,
        ``iou`` in [0, 1] and ``box_area`` (px², the prompt box's)."""
        cat, iou = str(row.category), float(row.iou)
        if not math.isfinite(iou):
            return
        if cat not in self.hist:
            self.hist[cat] = np.zeros(IOU_BINS, np.int64)
            self.size_sum[cat] = np.zeros(len(AREA_EDGES) - 1)
            self.size_n[cat] = np.zeros(len(AREA_EDGES) - 1, np.int64)
        self.objects[cat] += 1
        self.hist[cat][min(int(iou * IOU_BINS), IOU_BINS - 1)] += 1
        area = float(row.box_area or 0.0)
        if area > 0 and math.isfinite(area):
            k = int(np.clip(np.searchsorted(AREA_EDGES, math.log10(max(area, 1.0)), "right") - 1,
                            0, len(AREA_EDGES) - 2))  # fmt: skip
            self.size_sum[cat][k] += iou
            self.size_n[cat][k] += 1

    def add_frame(self, row: Any) -> None:
        """One scored frame (:class:`box2mask.evaluate.FrameScore`): its ``sequence``,
        ``frame_index`` and ``iou`` (of the union of its masks)."""
        iou = float(row.iou)
        if math.isfinite(iou):
            self.frames.setdefault(str(row.sequence), _Series()).add(float(row.frame_index), iou)

    def write(self, dest: Path, title: str = "") -> list[Path]:
        """Draw :data:`EVAL_FILES` into ``dest``; returns their paths."""
        plt = require_matplotlib()
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        shown, rest = _top(self.objects, CLASSES_SHOWN)
        more = f" ({len(rest)} more classes not drawn)" if rest else ""
        edges = np.linspace(0, 1, IOU_BINS + 1)
        out = []

        fig, ax = _figure(plt)
        for cat in shown:
            ax.stairs(self.hist[cat], edges, label=f"{_label(cat)} ({self.objects[cat]})")
        ax.set(xlabel="mask IoU with the ground truth", ylabel="objects", xlim=(0, 1),
               title=f"{title}IoU per object, by class{more}")  # fmt: skip
        _legend(ax, shown)
        out.append(_save(plt, fig, dest / EVAL_FILES[0]))

        fig, ax = _figure(plt)
        centres = 10 ** ((AREA_EDGES[:-1] + AREA_EDGES[1:]) / 2)
        for cat in shown:
            n = self.size_n[cat]
            keep = n > 0
            if keep.any():
                mean = self.size_sum[cat][keep] / n[keep]
                ax.plot(centres[keep], mean, marker="o", ms=3, label=_label(cat))
        ax.set_xscale("log")
        ax.set(xlabel="box area (px², log scale)", ylabel="mean mask IoU", ylim=(0, 1.02),
               title=f"{title}IoU against box size{more}")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax, shown)
        out.append(_save(plt, fig, dest / EVAL_FILES[1]))

        fig, ax = _figure(plt)
        worst = sorted(self.frames, key=lambda s: (self.frames[s].mean, s))[:SEQUENCES_SHOWN]
        for seq in worst:
            x, y = self.frames[seq].points()
            ax.plot(x, y, lw=1.2, label=f"{_label(seq)} (mean {self.frames[seq].mean:.2f})")
        hidden = len(self.frames) - len(worst)
        ax.set(xlabel="frame (the dataset's number)", ylabel="union IoU of the frame's masks",
               ylim=(0, 1.02),
               title=f"{title}per-frame union IoU along each sequence"
               + (f" (the {len(worst)} lowest of {len(self.frames)})" if hidden else ""))  # fmt: skip
        ax.grid(True, alpha=0.3)
        _legend(ax, worst)
        out.append(_save(plt, fig, dest / EVAL_FILES[2]))
        return out


class QAPlots:
    """The plots of one ``qa`` ranking, fed per object (a histogram and flag counts)."""

    def __init__(self, flags: Iterable[str] = ()) -> None:
        self.flag_names = list(flags)
        self.flagged = np.zeros(SCORE_BINS, np.int64)
        self.clean = np.zeros(SCORE_BINS, np.int64)
        self.by_class: dict[str, Counter[str]] = {}
        self.objects: Counter[str] = Counter()

    def add(self, category: str, suspicion: float, flags: Iterable[str]) -> None:
        """One ranked object: its class, suspicion score in [0, 1], and its flags."""
        flags = list(flags)
        s = float(suspicion)
        if math.isfinite(s):
            k = min(max(int(s * SCORE_BINS), 0), SCORE_BINS - 1)
            (self.flagged if flags else self.clean)[k] += 1
        cat = str(category)
        self.objects[cat] += 1
        row = self.by_class.setdefault(cat, Counter())
        row.update(flags)
        for f in flags:
            if f not in self.flag_names:
                self.flag_names.append(f)

    def write(self, dest: Path, title: str = "") -> list[Path]:
        """Draw :data:`QA_FILES` into ``dest``; returns their paths."""
        plt = require_matplotlib()
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        edges = np.linspace(0, 1, SCORE_BINS + 1)
        out = []

        fig, ax = _figure(plt)
        ax.stairs(self.clean + self.flagged, edges, fill=True, alpha=0.35, label="all objects")
        ax.stairs(self.flagged, edges, fill=True, alpha=0.8, label="with a flag")
        # most objects are fine: a log count scale (linear below 1) keeps the tail visible
        ax.set_yscale("symlog", linthresh=1)
        ax.set(xlabel="suspicion score (higher: check first)", ylabel="objects (log scale)",
               xlim=(0, 1),
               title=f"{title}suspicion score of {int((self.clean + self.flagged).sum())} "
               "objects")  # fmt: skip
        ax.legend(loc="upper right", fontsize=8)
        out.append(_save(plt, fig, dest / QA_FILES[0]))

        fig, ax = _figure(plt)
        shown, rest = _top(self.objects, CLASSES_SHOWN)
        flags = [f for f in self.flag_names if any(self.by_class[c][f] for c in shown)]
        width = 0.8 / max(len(flags), 1)
        x = np.arange(len(shown))
        for j, f in enumerate(flags):
            ax.bar(x + (j - (len(flags) - 1) / 2) * width,
                   [self.by_class[c][f] for c in shown], width, label=f)  # fmt: skip
        ax.set_xticks(x, [f"{_label(c, 16)}\n({self.objects[c]})" for c in shown], fontsize=8)
        more = f" ({len(rest)} more classes not drawn)" if rest else ""
        ax.set(ylabel="flagged objects", title=f"{title}flags by class{more}")
        if flags:
            ax.legend(loc="upper right", fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "no object is flagged", ha="center", transform=ax.transAxes)
        out.append(_save(plt, fig, dest / QA_FILES[1]))
        return out


def _legend(ax: Any, items: list[str]) -> None:
    if items:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "nothing scored", ha="center", transform=ax.transAxes)


__all__ = [
    "EVAL_FILES",
    "QA_FILES",
    "SIZE",
    "EvalPlots",
    "QAPlots",
    "require_matplotlib",
]
