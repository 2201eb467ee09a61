"""``eval --plots DIR`` and ``qa --plots DIR``: PNG plots from per-object and per-frame rows.

The plots are drawn (matplotlib, Agg) in real runs on the bundled example:
every file exists, is a PNG of the documented size, and is not empty; the
rows the plots are fed are the scored objects and frames (their tallies
equal the report's); their memory stays fixed however many rows come; and
without matplotlib ``--plots`` is one message naming the extra, before any
work, while ``qa --html`` writes its page without plots and says why.
"""

from __future__ import annotations

import builtins
import json
import math
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.evaluate import FrameScore, ObjectScore, evaluate
from box2mask.plots import EVAL_FILES, FRAME_POINTS, QA_FILES, SIZE, EvalPlots, QAPlots

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"
runner = CliRunner()


def _check_pngs(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = folder / name
        assert path.stat().st_size > 5000, name  # a drawn figure, not an empty canvas
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == SIZE, name
            colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20, name  # lines, text, bars


def test_eval_plots_are_drawn_in_a_real_run(tmp_path):
    res = runner.invoke(app, ["eval", "--dataset", "viso", "--root", str(EXAMPLE),
                              "--model", "classical", "--plots", str(tmp_path / "p"),
                              "--report", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(EVAL_FILES)
    _check_pngs(tmp_path / "p", EVAL_FILES)
    # a predictions file draws the same plots
    job = tmp_path / "job"
    assert runner.invoke(app, ["convert", "-d", "viso", "--root", str(EXAMPLE), "--out",
                               str(job), "--model", "ellipse"]).exit_code == 0  # fmt: skip
    res = runner.invoke(app, ["eval", "--dataset", "viso", "--root", str(EXAMPLE),
                              "--predictions", str(job / "annotations.json"),
                              "--plots", str(tmp_path / "q")])  # fmt: skip
    assert res.exit_code == 0, res.output
    _check_pngs(tmp_path / "q", EVAL_FILES)


def test_the_plots_are_fed_the_scored_objects_and_frames():
    plots, objects, frames = EvalPlots(), [], []

    def on_object(row):
        objects.append(row)
        plots.add_object(row)

    def on_frame(row):
        frames.append(row)
        plots.add_frame(row)

    rep = evaluate(dataset="viso", root=EXAMPLE, model="classical", on_object=on_object,
                   on_frame=on_frame)  # fmt: skip
    by_cat = rep.summary["per_object"]["by_category"]
    for cat, stats in by_cat.items():
        mine = [r.iou for r in objects if r.category == cat]
        assert len(mine) == stats["count"] == plots.hist[cat].sum() == plots.objects[cat]
        assert sum(mine) / len(mine) == pytest.approx(stats["iou"])
        assert all(r.box_area > 0 for r in objects if r.category == cat)
    assert len(frames) == rep.frames == sum(s.count for s in plots.frames.values())
    assert sum(r.iou for r in frames) / len(frames) == pytest.approx(
        rep.summary["per_frame"]["iou"]
    )
    assert set(plots.frames) == {"car/001", "plane/001", "ship/001"}


def _object(category: str, iou: float, box_area: float) -> ObjectScore:
    return ObjectScore("s", 0, 1, category, "model", iou, iou, box_area)


def test_memory_stays_fixed_however_many_rows():
    plots = EvalPlots()
    for k in range(100_000):
        plots.add_frame(FrameScore("long", k, 1, (k % 10) / 10, 0.0))
        if k < 20_000:
            plots.add_object(_object(f"c{k % 3}", (k % 100) / 100, k + 1))
    series = plots.frames["long"]
    x, y = series.points()
    assert len(x) <= FRAME_POINTS and x == sorted(x)
    assert series.count == 100_000 and series.mean == pytest.approx(0.45)
    assert sum(y) / len(y) == pytest.approx(0.45, abs=0.01)
    assert all(h.shape == (20,) for h in plots.hist.values()) and len(plots.hist) == 3
    plots.add_object(_object("c0", math.nan, 3))  # not drawn
    assert sum(h.sum() for h in plots.hist.values()) == 20_000


def test_qa_plots_are_drawn_and_counted(tmp_path):
    job = tmp_path / "job"
    assert runner.invoke(app, ["convert", "-d", "viso", "--root", str(EXAMPLE), "--out",
                               str(job), "--model", "classical"]).exit_code == 0  # fmt: skip
    res = runner.invoke(app, ["qa", "--job", str(job), "--plots", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    _check_pngs(tmp_path / "p", QA_FILES)
    rep = json.loads((job / "qa" / "qa.json").read_text())
    plots = QAPlots(rep["flags"])
    for o in rep["ranked"]:
        plots.add(o["category"], o["suspicion"], o["flags"])
    assert (plots.clean + plots.flagged).sum() == rep["objects"]
    for flag, n in rep["flag_counts"].items():
        assert sum(row[flag] for row in plots.by_class.values()) == n


def _without_matplotlib(monkeypatch):
    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def test_without_matplotlib_plots_name_the_extra_and_nothing_is_written(tmp_path, monkeypatch):
    job = tmp_path / "job"
    assert runner.invoke(app, ["convert", "-d", "viso", "--root", str(EXAMPLE), "--out",
                               str(job), "--model", "box"]).exit_code == 0  # fmt: skip
    _without_matplotlib(monkeypatch)
    res = runner.invoke(app, ["eval", "--dataset", "viso", "--root", str(EXAMPLE), "--model",
                              "box", "--plots", str(tmp_path / "p"), "--report",
                              str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 2
    assert "pip install 'box2mask[plots]'" in " ".join(res.output.split())
    assert not (tmp_path / "p").exists() and not (tmp_path / "r.json").exists()
    res = runner.invoke(app, ["qa", "--job", str(job), "--plots", str(tmp_path / "p")])
    assert res.exit_code == 2 and "box2mask[plots]" in res.output
    assert not (tmp_path / "p").exists() and not (job / "qa").exists()
    # the review page is still written, without plots, and says why
    res = runner.invoke(app, ["qa", "--job", str(job), "--html", str(tmp_path / "page")])
    assert res.exit_code == 0, res.output
    assert "review page without plots" in res.output and "box2mask[plots]" in res.output
    assert (tmp_path / "page" / "index.html").is_file()
    assert not (tmp_path / "page" / "plots").exists()
