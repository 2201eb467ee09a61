"""`box2mask convert` end to end: files a trainer reads, resume, refusals, errors and exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pycocotools.coco import COCO

import box2mask
from box2mask.options import ConvertOptions
from tests.cli_helpers import cli, convert_viso


def _present(truth):
    return {
        (seq, f, tid): (cat, box)
        for seq, frames in truth.items()
        for f, objs in frames.items()
        for tid, cat, box in objs
    }


def test_ellipse_conversion_writes_one_annotation_per_visible_box(viso_root, tmp_path):
    root, truth = viso_root
    res = convert_viso(root, tmp_path / "o", "--model", "ellipse", "--format", "coco,png")
    assert res.exit_code == 0, res.output
    coco = COCO(str(tmp_path / "o" / "annotations.json"))
    imgs = {i["id"]: i for i in coco.dataset["images"]}
    got = {}
    for a in coco.dataset["annotations"]:
        img = imgs[a["image_id"]]
        x, y, w, h = a["prompt_box"]
        got[(img["sequence"], img["frame_index"], a["track_id"])] = (
            coco.cats[a["category_id"]]["name"],
            (x, y, x + w, y + h),
        )
        # the mask lies inside its prompt box and is not empty
        m = coco.annToMask(a).astype(bool)
        ys, xs = np.nonzero(m)
        assert (
            m.any()
            and xs.min() >= x - 1
            and xs.max() < x + w + 1
            and ys.min() >= y - 1
            and ys.max() < y + h + 1
        )
        assert a["mask_source"] == ("box" if img["sequence"].startswith("car") else "ellipse")
    assert got.keys() == _present(truth).keys()
    for key, (cat, box) in _present(truth).items():
        assert got[key][0] == cat
        np.testing.assert_allclose(got[key][1], box)
    n_frames = sum(len(v) for v in truth.values())
    assert len(imgs) == n_frames  # frames without boxes are images too
    assert all(not i["file_name"].startswith("/") for i in imgs.values())
    assert (tmp_path / "o" / "car" / "001" / "000001.png").is_file()
    assert "ellipse" in res.output and "converted" in res.output


def test_rerun_resumes_and_gives_identical_json(viso_root, tmp_path):
    root, _ = viso_root
    args = ["--model", "ellipse"]
    assert convert_viso(root, tmp_path, *args).exit_code == 0
    first = (tmp_path / "annotations.json").read_bytes()
    # lose the last two finished frames, as a kill would, plus a torn ledger line
    ledger = tmp_path / ".box2mask" / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    for rec in map(json.loads, lines[-2:]):
        (tmp_path / ".box2mask" / "parts" / rec["sequence"] / f"{rec['frame']:06d}.json").unlink()
    ledger.write_text("".join(lines[:-2]) + '{"sequence": "car/0')
    (tmp_path / "annotations.json").unlink()
    res = convert_viso(root, tmp_path, *args)
    assert res.exit_code == 0, res.output
    assert "2 converted" in res.output
    assert (tmp_path / "annotations.json").read_bytes() == first
    again = convert_viso(root, tmp_path, *args)
    assert "0 converted" in again.output
    assert (tmp_path / "annotations.json").read_bytes() == first


def test_changed_options_are_refused_and_overwrite_starts_afresh(viso_root, tmp_path):
    root, _ = viso_root
    assert convert_viso(root, tmp_path, "--model", "ellipse").exit_code == 0
    res = convert_viso(root, tmp_path, "--model", "box", "--crop-size", "256")
    assert res.exit_code == 2
    assert "model: job has 'ellipse', now 'box'" in res.output
    assert "crop_size: job has 512, now 256" in res.output
    res = convert_viso(root, tmp_path, "--model", "box", "--overwrite")
    assert res.exit_code == 0, res.output
    anns = json.loads((tmp_path / "annotations.json").read_text())["annotations"]
    assert {a["mask_source"] for a in anns} == {"box"}


def test_a_job_that_finished_no_frame_does_not_lock_its_options(viso_root, tmp_path):
    """A first run that fails before any frame (a bad checkpoint) must not make the
    corrected command refuse to run; a job with finished frames still refuses."""
    root, _ = viso_root
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    res = convert_viso(root, out, "--model", "sam", "--checkpoint", bad)
    assert res.exit_code == 2 and "bad.pth" in res.output
    res = convert_viso(root, out, "--model", "ellipse")
    assert res.exit_code == 0, res.output
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    assert "ellipse" in {a["mask_source"] for a in anns}  # (cars get boxes by default)
    assert convert_viso(root, out, "--model", "box").exit_code == 2  # now there is work to protect


def test_sam_batches_give_the_same_masks_as_batch_1(viso_root, tiny_checkpoints, tmp_path):
    root, _ = viso_root
    out = {}
    for bs in (1, 5):
        opts = ConvertOptions(
            dataset="viso", root=root, out=tmp_path / f"b{bs}", model="sam", checkpoint=str(tiny_checkpoints["sam"]),
            batch_size=bs, box_fill_classes=(), sequences=("plane/001", "ship/001"),
        )  # fmt: skip
        summary = box2mask.convert(opts)
        assert summary.objects_by_source["model"] == summary.objects > 0
        out[bs] = COCO(str(tmp_path / f"b{bs}" / "annotations.json"))
    a1, a5 = out[1].dataset["annotations"], out[5].dataset["annotations"]
    assert len(a1) == len(a5)
    for x, y in zip(a1, a5, strict=True):
        m1, m5 = out[1].annToMask(x).astype(bool), out[5].annToMask(y).astype(bool)
        union = (m1 | m5).sum()
        assert union == 0 or (m1 & m5).sum() / union >= 0.99
        assert x["score"] == pytest.approx(y["score"], abs=1e-3)


def test_hq_sam_and_ros_sam_checkpoints_run_through_convert(viso_root, tiny_checkpoints, tmp_path):
    root, _ = viso_root
    for model, ckpt in [
        ("hq-sam", "hq-sam"),
        ("ros-sam", "ros-sam"),
        ("ros-sam", "ros-sam-folder"),
    ]:
        res = convert_viso(root, tmp_path / ckpt, "--model", model,
                           "--checkpoint", tiny_checkpoints[ckpt], "--sequences", "plane/001")  # fmt: skip
        assert res.exit_code == 0, res.output
        anns = json.loads((tmp_path / ckpt / "annotations.json").read_text())["annotations"]
        assert len(anns) == 4 and {a["mask_source"] for a in anns} == {"model"}


def _strict(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON (RFC 8259)")


def test_a_nan_model_score_is_written_as_null_in_strict_json(viso_root, tmp_path):
    """A model whose IoU head gives NaN (its last bias NaN; the masks are untouched):
    every JSON file written is strict JSON (``json.dumps`` would write ``NaN``), the
    scores are null, and pycocotools loads the COCO file."""
    import torch

    from tests.tiny_sam import tiny_state_dict

    root, _ = viso_root
    state = tiny_state_dict(hq=False)
    state["mask_decoder.iou_prediction_head.layers.2.bias"].fill_(float("nan"))
    ckpt = tmp_path / "sam_nan_iou.pth"
    torch.save(state, ckpt)
    out = tmp_path / "o"
    res = convert_viso(root, out, "--model", "sam", "--checkpoint", ckpt,
                       "--format", "coco,png,ytvis", "--sequences", "plane/001")  # fmt: skip
    assert res.exit_code == 0, res.output
    files = [out / "annotations.json", out / "ytvis.json", *sorted((out / "plane").rglob("*.json"))]
    assert len(files) == 5  # and three PNG sidecars
    data = {p.name: json.loads(p.read_text(), parse_constant=_strict) for p in files}
    anns = data["annotations.json"]["annotations"]
    assert len(anns) == 4 and {(a["mask_source"], a["score"]) for a in anns} == {("model", None)}
    sidecars = [data[p.name]["instances"] for p in files[2:]]
    assert [i["score"] for inst in sidecars for i in inst] == [None] * 4
    tracks = data["ytvis.json"]["annotations"]
    assert all(s is None for t in tracks for s in t["scores"])
    assert any(seg is not None for t in tracks for seg in t["segmentations"])
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getAnnIds()) == 4 and coco.anns[1]["score"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "/nonexistent/viso"], "tried: /nonexistent/viso (--root)"),
        (["--model", "sam", "--checkpoint", "/nonexistent/sam.pth"], "/nonexistent/sam.pth"),
        (["--model", "sam"], "sam_vit_h_4b8939.pth"),
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (
            ["--format", "tiff"],
            "--format must be one or more of coco, davis, mots, png, yolo, ytvis",
        ),
        (["--shard", "4/3"], "--shard K/N needs 1 <= K <= N"),
        (["--sequences", "car/999"], "viso has no sequence 'car/999'"),
        (["--opt", "part=xyz"], "part='xyz' is not one of"),
        (["--device", "cuda:7", "--model", "sam", "--checkpoint", "SAM"], None),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(
    viso_root, tiny_checkpoints, tmp_path, args, message
):
    root, _ = viso_root
    full = ["convert", "--dataset", "viso", "--out", tmp_path / "o", *args]
    if "--root" not in args:
        full += ["--root", str(root)]
    full = [str(tiny_checkpoints["sam"]) if a == "SAM" else a for a in full]
    res = cli(*full)
    if message is None:  # CUDA present: nothing to check here
        import torch

        if torch.cuda.is_available():
            return
        message = "CUDA is not available"
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_wrong_kind_and_corrupt_checkpoints_exit_2(viso_root, tiny_checkpoints, tmp_path):
    root, _ = viso_root

    def run(*args):
        return convert_viso(root, tmp_path / "o", "--sequences", "plane/001", *args)

    res = run("--model", "sam", "--checkpoint", tiny_checkpoints["hq-sam"])
    assert res.exit_code == 2 and "hq-sam" in res.output
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(tiny_checkpoints["sam"].read_bytes()[:5000])
    res = run("--model", "sam", "--checkpoint", bad, "--overwrite")
    assert res.exit_code == 2 and "corrupt.pth" in res.output
    assert "Traceback" not in res.output


def test_missing_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BOX2MASK_DATA", str(tmp_path))
    res = cli("convert", "--dataset", "viso", "--out", tmp_path / "o", "--model", "box")
    assert res.exit_code == 2
    assert f"{tmp_path}/viso ($BOX2MASK_DATA/viso)" in " ".join(res.output.split())


def test_one_way_to_open_a_dataset(viso_root, tmp_path, monkeypatch):
    """``open_dataset``, which convert, eval, viz, qa, the temporal memory and train use."""
    from box2mask.adapters import open_dataset

    from box2mask.errors import UsageError

    root, _ = viso_root
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "viso").symlink_to(root)
    monkeypatch.setenv("BOX2MASK_DATA", str(tmp_path / "data"))
    assert open_dataset("viso", None).root == root.resolve()  # $BOX2MASK_DATA/<dataset>
    monkeypatch.chdir(root.parent)
    rel = open_dataset("viso", root.name)  # a relative --root is made absolute
    assert rel.root == root.resolve() and rel.root.is_absolute()
    with pytest.raises(UsageError, match="known: .*viso"):
        open_dataset("nope", root)
    with pytest.raises(UsageError, match="no option 'bogus'"):
        open_dataset("viso", root, {"bogus": 1})
    res = cli("eval", "--model", "box", "--dataset", "viso", "--root", tmp_path / "missing")
    assert res.exit_code == 2 and "(--root)" in res.output, res.output


def test_config_file_and_command_line_precedence(viso_root, tmp_path):
    root, _ = viso_root
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"dataset: viso\nroot: {root}\nmodel: ellipse\nbatch-size: 2\nformat: png\n")
    res = cli("convert", "--config", cfg, "--out", tmp_path / "o", "--model", "box")
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "o" / ".box2mask" / "job.json").read_text())["identity"]
    assert saved["model"] == "box" and saved["formats"] == ["png"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: viso\nbatchsize: 2\n")
    res = cli("convert", "--config", bad, "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "unknown option 'batchsize'" in res.output


def test_auto_model_without_sam_weights_uses_lite_and_says_so(viso_root, tmp_path):
    root, _ = viso_root
    res = convert_viso(root, tmp_path / "o", "--sequences", "plane/001")
    assert res.exit_code == 0, res.output
    assert "used box2mask's trained 'lite' model" in " ".join(res.output.split())
    finished = json.loads((tmp_path / "o" / ".box2mask" / "finished.json").read_text())
    assert finished["model"]["name"] == "lite"


def test_auto_model_without_any_weights_uses_weight_free_default_and_says_so(
    viso_root, tmp_path, monkeypatch
):
    """An installation without lite's file (a trimmed copy): the weight-free default."""
    import box2mask.models.lite

    root, _ = viso_root
    monkeypatch.setattr(box2mask.models.lite, "SHIPPED", tmp_path / "gone.safetensors")
    res = convert_viso(root, tmp_path / "o", "--sequences", "plane/001")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "weight-free" in text and "no lite weights in this installation" in text


@pytest.fixture
def own_viso(tmp_path):
    """A fresh copy of the tiny VISO layout for this test to damage."""
    from tests.data.make_viso import make_viso_mot

    root = tmp_path / "viso"
    make_viso_mot(root)
    return root


def test_unreadable_frame_is_reported_and_the_rest_converted(own_viso, tmp_path):
    root = own_viso
    (root / "mot" / "plane" / "001" / "img" / "000002.jpg").write_bytes(b"not a jpeg")
    res = convert_viso(root, tmp_path / "o", "--model", "grabcut", "--sequences", "plane/001")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "000002.jpg: frame image cannot be decoded" in text
    assert "frame 1" in text  # the summary counts it among skipped inputs
    images = json.loads((tmp_path / "o" / "annotations.json").read_text())["images"]
    assert [i["frame_index"] for i in images] == [1, 3]


def test_strict_fails_before_writing_anything(own_viso, tmp_path):
    root = own_viso
    gt = root / "mot" / "plane" / "001" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "2 9 x y 1 1\n")
    out = tmp_path / "o"
    res = convert_viso(root, out, "--model", "box", "--strict")
    assert res.exit_code == 2, res.output
    assert "gt.txt:" in res.output
    assert not (out / "annotations.json").exists() and not (out / ".box2mask" / "parts").exists()
    shutil.rmtree(out, ignore_errors=True)
    res = convert_viso(root, out, "--model", "box")
    assert res.exit_code == 0 and "annotation 1" in res.output
