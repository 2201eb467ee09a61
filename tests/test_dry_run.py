"""``convert --dry-run``: the plan, nothing written, and the real run's counts.

The dry run reads the dataset as ``convert`` does and measures a sample of
frames with the chosen model; these tests check that it writes nothing (no
``--out``, no file changed anywhere under the test's folder but the plan JSON
asked for), that its counts are those the real run then reports (sequences,
frames, boxes per class, box-filled objects, unreadable frames, a shard and a
split), that its model is :func:`box2mask.runtime.choose_model`'s, and that it
reads an existing job without touching it. The time estimate is compared
with real runs by ``benchmarks/dry_run.py`` (timings are not unit-tested).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import box2mask.runtime
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.options import ConvertOptions
from box2mask.plan import PLAN_SCHEMA, plan
from tests.data.make_viso_many import make_viso_many

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "viso-mini"
runner = CliRunner()


def _snapshot(base: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(base)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(base.rglob("*"))}  # fmt: skip


def _run(root: Path, out: Path, *extra: str):
    args = ["convert", "--dataset", "viso", "--root", str(root), "--out", str(out), *extra]
    return runner.invoke(app, args)


def _agree(plan_json: dict, record: dict) -> None:
    """The plan's counts are the real run's (its --summary-json record)."""
    assert plan_json["frames"]["total"] == record["frames"]["total"]
    assert plan_json["frames"]["to_convert"] == record["frames"]["converted"]
    assert plan_json["frames"]["already_done"] == record["frames"]["already_done"]
    assert plan_json["frames"]["unreadable"] == record["frames"]["skipped"]
    assert plan_json["sequences"]["count"] == record["dataset"]["sequences"]
    assert plan_json["boxes"]["by_class"] == record["objects"]["by_class"]
    assert plan_json["boxes"]["total"] == record["objects"]["total"]
    assert plan_json["boxes"]["box_filled"] == record["objects"]["by_source"].get("box", 0)
    assert plan_json["model"]["name"] == record["model"]["name"]
    assert plan_json["model"]["why"] == record["model"]["why"]


def test_the_dry_run_writes_nothing_and_agrees_with_the_real_run(tmp_path):
    root = tmp_path / "viso"
    shutil.copytree(EXAMPLE, root)
    out, plan_path = tmp_path / "job", tmp_path / "plan.json"
    before = _snapshot(tmp_path)
    res = _run(root, out, "--format", "coco,png,yolo", "--dry-run",
               "--summary-json", str(plan_path))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not out.exists()
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != "plan.json"} == before
    text = " ".join(res.output.split())
    # --model auto without SAM-family weights: lite, which segments the cars too
    assert "nothing written" in text and "box-filled │ 0" in text.replace("  ", " ")
    p = json.loads(plan_path.read_text())
    assert p["schema"] == PLAN_SCHEMA and p["version"] == 1
    assert p["model"]["name"] == "lite" and p["model"]["kind"] == "crop"
    assert p["boxes"]["by_model"] == 159
    assert 0 < p["sample"]["frames"] <= 8 and p["estimate"]["seconds"] > 0
    assert p["estimate"]["disk_bytes"] > 0

    summary = tmp_path / "summary.json"
    res = _run(root, out, "--format", "coco,png,yolo", "--summary-json", str(summary))
    assert res.exit_code == 0, res.output
    real = json.loads(summary.read_text())
    _agree(p, real)
    assert p["boxes"]["by_class"] == {"airplane": 29, "car": 98, "ship": 32}
    # disk: the files the real run wrote, within a factor of 2 of the estimate
    written = sum(f.lstat().st_size for f in out.rglob("*") if f.is_file() or f.is_symlink())
    assert 0.5 < p["estimate"]["disk_bytes"] / written < 2


def test_counts_agree_with_unreadable_frames_bad_lines_classes_shards_and_a_split(tmp_path):
    root = tmp_path / "viso"
    make_viso_many(root, (9, 6, 8, 5, 7), objects=4)
    (root / "mot" / "ship" / "002" / "img" / "000003.jpg").write_bytes(b"")
    gt = root / "mot" / "car" / "003" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "2,9,x,y,1,1,1,-1,-1,-1\n4,7,9000,9000,5,5,1,-1,-1,-1\n")
    for extra in (["--shard", "1/2", "--split", "val=0.4"],
                  ["--shard", "2/2", "--split", "val=0.4", "--classes", "car,ship"],
                  ["--box-fill-area", "60", "--box-fill-classes", "", "--model", "ellipse"]):  # fmt: skip
        out = tmp_path / f"job{len(list(tmp_path.iterdir()))}"
        plan_path, summary = tmp_path / "p.json", tmp_path / "s.json"
        args = ["--model", "ellipse", *extra] if "--model" not in extra else extra
        assert _run(root, out, *args, "--dry-run", "--summary-json", str(plan_path)).exit_code == 0
        assert not out.exists()
        res = _run(root, out, *args, "--summary-json", str(summary))
        assert res.exit_code == 0, res.output
        p, real = json.loads(plan_path.read_text()), json.loads(summary.read_text())
        _agree(p, real)
        assert p["skipped_inputs"] == real["skipped"]["by_kind"]
        if "--split" in extra:
            assert (
                p["split"]["sequences"]
                == json.loads((out / ".box2mask" / "job.json").read_text())["split"]["sequences"]
            )


def test_the_model_is_what_choose_model_picks_and_why(tmp_path, monkeypatch):
    from box2mask.models.registry import MODELS

    calls = []

    def pick(opts):
        calls.append(opts.model)
        return MODELS.get("ellipse"), None, "the test's choice: ellipse"

    monkeypatch.setattr(box2mask.runtime, "choose_model", pick)
    p = plan(ConvertOptions(dataset="viso", root=EXAMPLE, out=tmp_path / "o"))
    assert calls == ["auto"] and p.model == "ellipse"
    assert p.model_why == "the test's choice: ellipse"
    assert p.sample.frames > 0 and p.sample.objects > 0


def test_a_prompt_model_sample_runs_and_auto_says_why(tmp_path, tiny_checkpoints):
    ckpt = str(tiny_checkpoints["sam"])
    p = plan(ConvertOptions(dataset="viso", root=EXAMPLE, out=tmp_path / "o", checkpoint=ckpt,
                            device="cpu", sequences=("plane/001",)))  # fmt: skip
    assert p.model == "sam" and "is a sam checkpoint" in p.model_why
    assert p.precision == "fp32" and p.sample.model_objects > 0
    assert p.sample.load_seconds > 0 and p.estimate_seconds > p.sample.load_seconds
    assert not (tmp_path / "o").exists()


def test_an_existing_job_is_read_not_touched(tmp_path):
    out = tmp_path / "job"
    assert _run(EXAMPLE, out, "--model", "box", "--sequences", "car/001").exit_code == 0
    before = _snapshot(out)
    res = _run(EXAMPLE, out, "--model", "box", "--sequences", "car/001", "--dry-run")
    assert res.exit_code == 0 and "resume" in res.output
    p = plan(ConvertOptions(dataset="viso", root=EXAMPLE, out=out, model="box",
                            sequences=("car/001",)))  # fmt: skip
    assert p.job == "resume" and p.frames_done == 8 and p.frames == 0
    res = _run(EXAMPLE, out, "--model", "ellipse", "--sequences", "car/001", "--dry-run")
    assert res.exit_code == 2, res.output
    assert "refused" in res.output and "model" in res.output
    res = _run(EXAMPLE, out, "--model", "ellipse", "--sequences", "car/001", "--dry-run",
               "--overwrite")  # fmt: skip
    assert res.exit_code == 0 and "would be deleted first" in " ".join(res.output.split())
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--split", "val=0.9,test=0.09"], "needs a sequence in every split"),
        (["--format", "yolo", "--split", "val=0.2", "--split-by", "track"], "cannot hold"),
        (["--classes", "tank"], "tank"),
    ],
)
def test_what_convert_would_refuse_the_dry_run_refuses(tmp_path, extra, msg):
    res = _run(EXAMPLE, tmp_path / "o", "--model", "box", "--dry-run", *extra)
    assert res.exit_code == 2 and msg in res.output, res.output
    assert not (tmp_path / "o").exists()
