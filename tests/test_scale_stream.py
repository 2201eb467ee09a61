"""Issue 28: qa and eval stream the job and run on the executors without changing a figure.

A synthetic VISO-layout job (benchmarks/scale_data.py: 100 moving vehicles a frame,
tracks with gaps, overlapping boxes, frame-edge boxes, ground-truth maps), with
corrections applied (objects removed and box-filled, so ids shift), is ranked

- by the whole-file computation (every annotation in memory, ``signals`` and the
  rank sort by log-odds then annotation order), the reference;
- by ``box2mask qa`` reading the job's parts in one process, in several worker
  processes, and reading the job's COCO file (with its arrays in another order);

and every ranked record must be the same. ``eval --predictions`` must give the
same report from one process and from several, from the COCO file and from the
job folder, and the same figures as scoring full-frame masks (within 1e-9).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from scale_data import build  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(dataset root, job folder)``: 3 sequences x 6 frames x 100 objects, converted with
    --model box, then 5 decisions applied (2 rejects, a box, an ellipse, an accept)."""
    tmp = tmp_path_factory.mktemp("scale")
    root, out = tmp / "data", tmp / "job"
    build(root, sequences=3, frames=6)
    r = runner.invoke(app, ["convert", "-d", "viso", "--root", str(root), "--out", str(out),
                            "--model", "box", "--format", "coco"])  # fmt: skip
    assert r.exit_code == 0, r.output
    coco = json.loads((out / "annotations.json").read_text())
    ims = {im["id"]: im for im in coco["images"]}
    picks = [coco["annotations"][k] for k in (5, 250, 900, 1300, 1500)]
    decisions = [{"sequence": ims[a["image_id"]]["sequence"],
                  "frame_index": ims[a["image_id"]]["frame_index"], "track_id": a["track_id"],
                  "action": act} for a, act in zip(picks, ("reject", "box", "reject", "ellipse", "accept"),
                                                  strict=True)]  # fmt: skip
    dec = tmp / "decisions.json"
    dec.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": decisions}))
    r = runner.invoke(app, ["qa", "apply", str(dec), "--job", str(out)])
    assert r.exit_code == 0, r.output
    assert "removed 2, replaced 1 by box, 1 by ellipse, accepted 1" in r.output
    return root, out


def _reference(out: Path, root: Path) -> tuple[list[dict], list[dict]]:
    """qa's ranked records computed the whole-file way (the code before issue 28), and the
    reviewed objects' records (issue 27: scored with the others, not ranked)."""
    from box2mask.qa.score import logit
    from box2mask.qa.signals import CropGeometry, signals

    coco = json.loads((out / "annotations.json").read_text())
    ident = json.loads((out / ".box2mask" / "job.json").read_text())["identity"]
    sig, _ = signals(coco, CropGeometry.from_identity(ident), model=ident["model"],
                     image_root=root)  # fmt: skip
    order = sorted(range(len(sig)), key=lambda k: (-logit(sig[k]), k))
    reviewed = [k for k in order if coco["annotations"][k].get("review") in ("accepted", "manual")]
    ranked = [k for k in order if k not in reviewed]
    return _records(coco, sig, ranked, True), _records(coco, sig, reviewed, False)


def _records(coco: dict, sig: list, order: list[int], ranked: bool) -> list[dict]:
    from box2mask.qa.score import flags, suspicion
    from box2mask.qa.stream import SIGNAL_COLUMNS

    out = []
    for rank, k in enumerate(order, start=1):
        d = sig[k].as_dict()
        out.append({
            "rank": rank if ranked else None,
            **{key: d[key] for key in ("id", "image_id", "file_name", "sequence", "frame_index",
                                       "track_id", "category", "mask_source", "prompt_box")},
            "review": coco["annotations"][k].get("review"),
            "suspicion": round(suspicion(sig[k]), 6), "flags": flags(sig[k]),
            "signals": {c: round(d[c], 5) if isinstance(d[c], float) else d[c]
                        for c in SIGNAL_COLUMNS},
        })  # fmt: skip
    return out


def _ranked(path: Path) -> list[dict]:
    return json.loads(path.read_text())["ranked"]


def _both(path: Path) -> tuple[list[dict], list[dict]]:
    data = json.loads(path.read_text())
    return data["ranked"], data["reviewed"]


def test_qa_streamed_in_parallel_ranks_as_the_whole_file(job, tmp_path: Path, monkeypatch) -> None:
    root, out = job
    want = _reference(out, root)
    assert len(want[0]) == 3 * 6 * 100 - 3 and len(want[1]) == 1
    assert any(o["signals"]["image_disagreement"] is not None for o in want[0])
    assert any(o["signals"]["track_iou"] is not None for o in want[0])
    assert {o["review"] for o in want[0]} == {None, "box", "ellipse"}
    # one process, the job's parts
    r = runner.invoke(app, ["qa", "--job", str(out), "--out", str(tmp_path / "one"),
                            "--workers", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert _both(tmp_path / "one" / "qa.json") == want
    # worker processes, one task per sequence
    monkeypatch.setattr("box2mask.qa.report.TASK_FRAMES", 6)
    r = runner.invoke(app, ["qa", "--job", str(out), "--out", str(tmp_path / "two"),
                            "--workers", "2", "--executor", "processes"])  # fmt: skip
    assert r.exit_code == 0, r.output
    for name in ("qa.json", "qa.csv"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    # the COCO file alone, its arrays in another order (categories, annotations, then images)
    coco = json.loads((out / "annotations.json").read_text())
    bare = tmp_path / "bare" / "pred.json"
    bare.parent.mkdir()
    bare.write_text(json.dumps({"categories": coco["categories"],
                                "annotations": coco["annotations"], "images": coco["images"]}))  # fmt: skip
    r = runner.invoke(app, ["qa", "--job", str(bare), "--image-root", str(root), "--workers",
                            "2", "--executor", "processes"])  # fmt: skip
    assert r.exit_code == 0, r.output
    # (its crop geometry is box2mask's default, as the job's: the same signals)
    assert _both(bare.parent / "qa" / "qa.json") == want
    # the temporary runs and index are gone
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["qa.csv", "qa.json"]
    assert sorted(p.name for p in (bare.parent / "qa").iterdir()) == ["qa.csv", "qa.json"]


def test_qa_csv_and_json_rows_agree(job, tmp_path: Path) -> None:
    import csv

    _, out = job
    r = runner.invoke(app, ["qa", "--job", str(out), "--out", str(tmp_path), "--no-images"])
    assert r.exit_code == 0, r.output
    ranked, reviewed = _both(tmp_path / "qa.json")
    with open(tmp_path / "qa.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the ranked rows, then the reviewed object, not ranked (an empty rank)
    assert len(rows) == len(ranked) + 1 and len(reviewed) == 1
    assert rows[-1]["rank"] == "" and int(rows[-1]["id"]) == reviewed[0]["id"]
    assert rows[-1]["review"] == "accepted" and "reviewed objects not ranked" in r.output
    assert {row["review"] for row in rows[:-1]} == {"", "box", "ellipse"}
    for o, row in zip(ranked[:50], rows[:50], strict=True):
        assert int(row["rank"]) == o["rank"] and int(row["id"]) == o["id"]
        assert float(row["suspicion"]) == o["suspicion"]
        assert row["flags"] == " ".join(o["flags"])
    # the records a plot reads one at a time are qa.json's
    from box2mask.qa.report import iter_ranked

    assert list(iter_ranked(tmp_path / "qa.json")) == ranked
    # --include-reviewed ranks it with the others, in its place by suspicion
    r = runner.invoke(app, ["qa", "--job", str(out), "--out", str(tmp_path / "all"),
                            "--no-images", "--include-reviewed"])  # fmt: skip
    assert r.exit_code == 0, r.output
    everything, none = _both(tmp_path / "all" / "qa.json")
    assert none == [] and len(everything) == len(ranked) + 1
    assert [o["id"] for o in everything if o["review"] == "accepted"] == [reviewed[0]["id"]]
    assert [o["id"] for o in everything if o["review"] != "accepted"] == [o["id"] for o in ranked]


def _report(tmp_path: Path, name: str, root: Path, pred: Path, *extra: str) -> dict:
    rep = tmp_path / f"{name}.json"
    r = runner.invoke(app, ["eval", "-d", "viso", "--root", str(root), "--predictions", str(pred),
                            "--report", str(rep), *extra])  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(rep.read_text())
    data.pop("seconds")
    return data


def _close(a: object, b: object, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-9, (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_eval_streamed_in_parallel_gives_the_same_report(job, tmp_path: Path, monkeypatch) -> None:
    root, out = job
    whole = _report(tmp_path, "whole", root, out / "annotations.json", "--workers", "1")
    assert whole["objects"] == 1800 and whole["missing_predictions"] == 2
    assert whole["temporal_consistency"]["pairs"] > 1000
    # one task per sequence: in this process, then on two worker processes: the same bytes
    monkeypatch.setattr("box2mask.evaluate.TASK_FRAMES", 6)
    one = _report(tmp_path, "one", root, out / "annotations.json", "--workers", "1")
    two = _report(tmp_path, "two", root, out / "annotations.json", "--workers", "2",
                  "--executor", "processes")  # fmt: skip
    assert two == one
    # tasks of other sizes add the same sums in another order
    _close(one, whole)
    folder = _report(tmp_path, "folder", root, out, "--workers", "2")
    assert folder["settings"].pop("predictions", None) is None
    _close({k: v for k, v in folder.items() if k not in ("settings", "model_note")},
           {k: v for k, v in one.items() if k not in ("settings", "model_note")})  # fmt: skip


def test_eval_blocks_score_as_full_frame_masks(job) -> None:
    """The streamed scorer (blocks, each track's last masks) against the full-frame one."""
    from box2mask.adapters import open_dataset

    from box2mask.evaluate import PredictionIndex, Scorer, evaluate

    root, out = job
    rep = evaluate(dataset="viso", root=root, predictions=out / "annotations.json", workers=1)
    full = Scorer()
    preds = PredictionIndex.load(out / "annotations.json")
    try:
        for frame in open_dataset("viso", root).frames():
            keep = list(range(len(frame)))
            masks, sources = preds.masks_for(frame, keep)
            full.score_frame(frame, keep, masks, sources)
    finally:
        preds.close()
    _close(full.summary(), rep.summary)


def test_map_tasks_keeps_task_order() -> None:
    from box2mask.executors.tasks import map_tasks

    seen: list[tuple[int, int]] = []
    got = list(map_tasks(_square, list(range(7)), workers=2, executor="processes",
                         progress=lambda f, o: seen.append((f, o))))  # fmt: skip
    assert got == [k * k for k in range(7)]
    assert sum(f for f, _ in seen) == 7 and sum(o for _, o in seen) == sum(range(7))
    assert list(map_tasks(_square, [3, 1], executor="local")) == [9, 1]


def _square(k: int, tick) -> int:  # noqa: ANN001
    tick(1, k)
    return k * k


@pytest.mark.slow
def test_qa_on_ray_ranks_as_one_process(job, tmp_path: Path) -> None:
    """``qa --executor ray``: the sequences as Ray tasks on a private local Ray, the same files."""
    pytest.importorskip("ray", reason="pip install 'box2mask[ray]' (the test extra has it)")
    import os
    import subprocess

    _, out = job
    # each run in a process of its own, as users run qa: a Ray started after another one
    # was shut down in the same process (tests/test_executor_ray.py's cluster) may time out
    # waiting for its GCS; tasks of 6 frames, so that the sequences make several tasks
    code = ("import sys, box2mask.qa.report as r; r.TASK_FRAMES = 6; "
            "from box2mask.cli import main; sys.argv[0] = 'box2mask'; main()")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    for name, extra in (("one", ["--workers", "1"]), ("ray", ["--executor", "ray"])):
        r = subprocess.run([sys.executable, "-c", code, "qa", "--job", str(out), "--out",
                            str(tmp_path / name), "--no-images", *extra],
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
    for name in ("qa.json", "qa.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_progress_lines_off_a_terminal(job, tmp_path: Path) -> None:
    """qa, eval, merge and viz print a progress line with the rate and the time left when
    stderr is not a terminal (a log, CI), the last one at 100%."""
    import re
    import subprocess

    root, out = job
    runs = {
        "qa": ["qa", "--job", str(out), "--out", str(tmp_path / "qa"), "--no-images"],
        "eval": ["eval", "-d", "viso", "--root", str(root), "--predictions", str(out)],
        "merge": ["merge", str(out), "--out", str(tmp_path / "merged")],
        "viz": ["viz", "-d", "viso", "--root", str(root), "--job", str(out), "--out",
                str(tmp_path / "viz"), "--sequences", "car/001"],
    }  # fmt: skip
    for label, args in runs.items():
        r = subprocess.run([sys.executable, "-m", "box2mask", *args], capture_output=True,
                           text=True, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
        last = [x for x in r.stderr.splitlines() if x.startswith(f"{label}: ")][-1]
        assert re.fullmatch(
            rf"{label}: frames (\d+)/\1 \(100%\), (objects|frames) \d+, \d+ (objects|frames)/s, "
            r"elapsed \d+s, ETA 0s",
            last,
        ), last
