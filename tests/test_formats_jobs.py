"""Every format resumes and shards like COCO (issue 12): a killed and resumed `convert`, and
shards joined by `box2mask merge`, write the files of an uninterrupted run, byte for byte."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from tests.data.make_viso_many import make_viso_many
from tests.kill_helpers import run_and_kill, start_convert

FORMATS = "coco,png,ytvis,davis,mots,yolo"
ASSEMBLED = ("ytvis.json", "davis", "mots", "yolo/data.yaml")
ARGS = ["--model", "ellipse", "--format", FORMATS, "--workers", "1"]
LENGTHS = (40, 25, 18, 12)  # 95 frames, 4 sequences (plane, ship, car, plane)
runner = CliRunner()


def tree(out: Path) -> dict[str, bytes | str]:
    """Every output (the job state aside): file bytes, or ``-> file`` for a symbolic link.

    A link is the file it leads to: links are relative to their own folder, so the
    same image is linked by different text from outputs in different folders.
    """
    got: dict[str, bytes | str] = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if rel.parts[0] == ".box2mask" or p.is_dir() and not p.is_symlink():
            continue
        got[rel.as_posix()] = f"-> {os.path.realpath(p)}" if p.is_symlink() else p.read_bytes()
    return got


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The dataset and the outputs of an uninterrupted run in every format."""
    d = tmp_path_factory.mktemp("formats_jobs")
    make_viso_many(d / "viso", LENGTHS, objects=4)
    box2mask.convert(dataset="viso", root=d / "viso", out=d / "ref", model="ellipse",
                     formats=FORMATS, workers=1)  # fmt: skip
    return d


def test_the_reference_run_wrote_every_format(data):
    ref = tree(data / "ref")
    for name in ("annotations.json", "ytvis.json", "mots/tracks.json", "mots/car_003.txt",
                 "davis/objects.json", "davis/ImageSets/all.txt",
                 "davis/Annotations/plane_001/000001.png", "davis/JPEGImages/plane_001/000001.jpg",
                 "yolo/data.yaml", "yolo/labels/plane/001/000001.txt",
                 "yolo/images/plane/001/000001.jpg", "plane/001/000001.png"):  # fmt: skip
        assert name in ref, name
    ytvis = json.loads(ref["ytvis.json"])
    assert [v["name"] for v in ytvis["videos"]] == ["car/003", "plane/001", "plane/004", "ship/002"]
    assert len(ytvis["annotations"]) == 4 * len(LENGTHS)
    image = data / "viso" / "mot/plane/001/img/000001.jpg"
    assert ref["davis/JPEGImages/plane_001/000001.jpg"] == f"-> {image.resolve()}"
    for name in ("davis/JPEGImages/plane_001/000001.jpg", "yolo/images/plane/001/000001.jpg"):
        # relative, so that the output moves with the dataset
        assert os.readlink(data / "ref" / name).startswith("../")


def test_ultralytics_checks_every_image_and_label_of_a_converted_job(data, tmp_path):
    import shutil

    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    # a copy (links as links): ultralytics writes its cache beside labels; beside the
    # reference run, where its relative links lead to the same images
    yolo = data / f"ultralytics-{tmp_path.name}" / "yolo"
    shutil.copytree(data / "ref" / "yolo", yolo, symlinks=True)
    cfg = check_det_dataset(str(yolo / "data.yaml"))
    ds = YOLODataset(img_path=cfg["train"], data={**cfg, "channels": 3}, task="segment",
                     imgsz=64, augment=False, cache=False)  # fmt: skip
    nf, nm, ne, nc, n = ds.cache_labels(tmp_path / "check.cache")["results"]
    assert (nf, nm, ne, nc, n) == (sum(LENGTHS), 0, 0, 0, sum(LENGTHS))  # found, none corrupt
    assert sum(len(lb["segments"]) for lb in ds.labels) == 4 * sum(LENGTHS)


def test_killed_and_resumed_job_writes_every_format_as_an_uninterrupted_run(data):
    total = sum(LENGTHS)
    out = data / "killed"
    rng = random.Random(12)
    kills = 0
    # two kills mid-frames, one once every frame is recorded (in the assembly, or just before)
    for target in [*sorted(rng.sample(range(5, total - 5), 2)), total]:
        kills += run_and_kill(data / "viso", out, ARGS, target, rng)
    assert kills >= 2
    proc = start_convert(data / "viso", out, *ARGS)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert not list(out.rglob(".*.tmp"))
    ref, got = tree(data / "ref"), tree(out)
    assert got.keys() == ref.keys()
    assert [k for k in ref if got[k] != ref[k]] == []


def test_a_rerun_rewrites_lost_or_damaged_assembled_files_identically(data, tmp_path):
    import shutil

    out = tmp_path / "job"
    shutil.copytree(data / "ref", out, symlinks=True)
    (out / "ytvis.json").write_text("{")
    shutil.rmtree(out / "davis" / "Annotations" / "car_003")
    (out / "mots" / "ship_002.txt").unlink()
    (out / "yolo" / "images" / "plane" / "004" / "000003.jpg").unlink()
    (out / "yolo" / "data.yaml").write_text("names: {}\n")
    box2mask.convert(dataset="viso", root=data / "viso", out=out, model="ellipse",
                     formats=FORMATS, workers=1)  # fmt: skip
    assert tree(out) == tree(data / "ref")


def test_an_output_moved_without_its_dataset_is_relinked_by_running_again(data, tmp_path):
    import shutil

    out = tmp_path / "moved" / "one level deeper"
    shutil.copytree(data / "ref", out, symlinks=True)  # the output alone, elsewhere
    link = out / "yolo" / "images" / "plane" / "001" / "000001.jpg"
    assert link.is_symlink() and not link.exists()  # relative links: they lead nowhere now
    box2mask.convert(dataset="viso", root=data / "viso", out=out, model="ellipse",
                     formats=FORMATS, workers=1)  # fmt: skip
    assert link.exists() and tree(out) == tree(data / "ref")


def test_merged_shards_write_every_format_as_the_unsharded_run(data, tmp_path):
    base = dict(dataset="viso", root=data / "viso", model="ellipse", formats=FORMATS, workers=1)
    for k in (1, 2, 3):
        box2mask.convert(out=tmp_path / f"s{k}", shard=f"{k}/3", **base)
    shares = [json.loads((tmp_path / f"s{k}" / "ytvis.json").read_text()) for k in (1, 2, 3)]
    assert all(0 < len(s["videos"]) < len(LENGTHS) for s in shares)  # each did a real share
    res = runner.invoke(app, ["merge", *(str(tmp_path / f"s{k}") for k in (3, 1, 2)),
                              "--out", str(tmp_path / "merged"), "--format", FORMATS])  # fmt: skip
    assert res.exit_code == 0, res.output
    ref, got = tree(data / "ref"), tree(tmp_path / "merged")
    assert got.keys() == ref.keys()
    assert [k for k in ref if got[k] != ref[k]] == []


def test_mots_past_999_tracks_stops_the_job_naming_the_sequence_and_how_to_write_the_rest(tmp_path):
    make_viso_many(tmp_path / "viso", (1,), objects=1000, hw=(64, 96))
    res = runner.invoke(app, ["convert", "--dataset", "viso", "--root", str(tmp_path / "viso"),
                              "--out", str(tmp_path / "job"), "--model", "box",
                              "--format", "coco,mots,ytvis"])  # fmt: skip
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "--format mots: sequence 'plane/001' has more than 999 'airplane' tracks" in text
    assert f"box2mask merge {tmp_path / 'job'} --force --out DIR --format coco,ytvis" in text
    res = runner.invoke(app, ["merge", str(tmp_path / "job"), "--force", "--out",
                              str(tmp_path / "rest"), "--format", "coco,ytvis"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ytvis = json.loads((tmp_path / "rest" / "ytvis.json").read_text())
    assert len(ytvis["annotations"]) == 1000
