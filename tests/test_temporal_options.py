"""``--temporal`` / ``--prompt-every``: validation, sam2 only, the job identity, eval's sweep axes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import UsageError
from box2mask.evaluate import parse_sweep, setting_label, sweep
from box2mask.options import ConvertOptions
from tests.data.make_eval_coco import make_eval_coco

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("evalcoco")
    make_eval_coco(r)
    return r


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"temporal": "forward"}, "--temporal must be off or propagate"),
        ({"temporal": "propagate", "prompt_every": 0}, "--prompt-every must be at least 1"),
        ({"prompt_every": 4}, "--prompt-every 4 needs --temporal propagate"),
    ],
)
def test_bad_values_are_refused(kw, message) -> None:
    with pytest.raises(UsageError, match=message):
        ConvertOptions(dataset="coco", out=Path("x"), **kw)


def test_other_models_refuse_temporal_with_exit_2(root, tmp_path) -> None:
    r = runner.invoke(
        app, ["convert", "--dataset", "coco", "--root", str(root), "--out", str(tmp_path / "j"),
              "--model", "ellipse", "--temporal", "propagate"],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "--temporal propagate needs a model with a video memory (--model sam2)" in r.output
    assert "Traceback" not in r.output


def test_temporal_options_are_part_of_the_job_identity(root, tmp_path) -> None:
    pytest.importorskip("sam2")
    from tiny_sam2 import write_sam2_pt

    ckpt = write_sam2_pt(tmp_path)
    base = ["convert", "--dataset", "coco", "--root", str(root), "--out", str(tmp_path / "j"),
            "--model", "sam2", "--checkpoint", str(ckpt), "--box-fill-classes",
            "airplane,ship,car", "--temporal", "propagate"]  # fmt: skip
    r = runner.invoke(app, base)  # every object box-filled: no model pass, a real job
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "--prompt-every", "4"])
    assert r.exit_code == 2, r.output
    assert "prompt_every" in r.output
    r = runner.invoke(app, base)  # the same options resume (nothing left to do)
    assert r.exit_code == 0, r.output


def test_sweep_axes() -> None:
    axes = parse_sweep("temporal,prompt_every", ["prompt_every=2,8"])
    assert axes == {"temporal": ("off", "propagate"), "prompt_every": (2, 8)}
    assert setting_label("prompt_every", 8) == "propagate, prompt every 8"
    assert setting_label("temporal", "propagate") == "temporal propagate"
    with pytest.raises(UsageError, match="bad value for prompt_every"):
        parse_sweep("prompt_every", ["prompt_every=0"])


def test_sweep_skips_the_temporal_axes_for_other_models(root) -> None:
    opts = ConvertOptions(dataset="coco", root=root, out=Path("."), model="ellipse")
    result = sweep(opts, parse_sweep("temporal,prompt_every"))
    assert [r.axis for r in result.rows] == ["base"]
    assert any("temporal applies to sam2 only" in n for n in result.notes)
    assert "temporal_consistency" in result.rows[0].report.summary


@pytest.mark.parametrize("temporal", ["off", "propagate"])
def test_convert_with_sam2_writes_model_masks(root, tmp_path, temporal) -> None:
    """--model sam2 through the whole convert (image mode, and --temporal propagate):
    a COCO file pycocotools reads, the ships' masks from the model."""
    pytest.importorskip("sam2")
    from pycocotools.coco import COCO
    from tiny_sam2 import write_sam2_pt

    ckpt = write_sam2_pt(tmp_path)
    out = tmp_path / "job"
    args = ["convert", "--dataset", "coco", "--root", str(root), "--out", str(out),
            "--model", "sam2", "--checkpoint", str(ckpt), "--classes", "ship",
            "--sequences", "s1", "--temporal", temporal, "--batch-size", "3"]  # fmt: skip
    if temporal == "propagate":
        args += ["--prompt-every", "2"]  # frame 2 propagated from frame 1
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    coco = COCO(str(out / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 6  # 3 ship tracks x 2 frames
    assert {a["mask_source"] for a in anns} == {"model"}
    assert {a["track_id"] for a in anns} == {2, 4, 5}
    assert all(0.0 <= a["score"] <= 1.0 for a in anns)
    for a in anns:
        assert coco.annToMask(a).shape == (64, 96)
    if temporal == "propagate":
        # killed after frame 1 of the window was recorded: the resumed run is handed frame 2
        # alone, reads frame 1 from the dataset, and writes the same file byte for byte
        # (frame 2 computed alone would be prompted: another mask, another score)
        import json

        before = (out / "annotations.json").read_bytes()
        ledger = out / ".box2mask" / "ledger.jsonl"
        lines = ledger.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if json.loads(ln)["frame"] != 2]
        assert len(kept) == len(lines) - 1
        ledger.write_text("".join(kept))
        (out / "annotations.json").unlink()
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert (out / "annotations.json").read_bytes() == before
