"""``--split``: train / val / test by sequence or by track, read by each format's consumers.

A VISO-layout dataset of eight sequences goes through ``convert --split`` in
every format; then ultralytics' own dataset builder loads the YOLO train and
val lists (disjoint, by sequence), pycocotools each COCO split, TrackEval the
YouTube-VIS val split and the MOTS seqmaps, and the DAVIS image sets list the
same sequences. The split is recorded in the job, the same for every shard,
kept by ``merge`` and by ``qa apply``'s re-derivation, and refused where a
format cannot hold it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import JobMismatch, UsageError
from box2mask.split import assign_sequences, make_split, parse_split, track_split
from tests.data.make_viso_many import make_viso_many
from tests.test_formats_consumers import youtube_vis_scores
from tests.test_formats_jobs import tree

FORMATS = "coco,png,ytvis,davis,mots,yolo"
LENGTHS = (9, 6, 8, 5, 7, 6, 4, 5)  # 8 sequences, 50 frames
SPLIT = "val=0.25,test=0.125"
runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The dataset, and a run split by sequence in every format (``ref``)."""
    d = tmp_path_factory.mktemp("split")
    make_viso_many(d / "viso", LENGTHS, objects=3)
    box2mask.convert(dataset="viso", root=d / "viso", out=d / "ref", model="ellipse",
                     formats=FORMATS, workers=1, split=SPLIT, seed=7)  # fmt: skip
    return d


def _sequences_of(coco: dict) -> set[str]:
    return {im["sequence"] for im in coco["images"]}


# -- the split itself --------------------------------------------------------------------


def test_split_text_is_checked_and_written_canonically():
    assert parse_split("test=0.2,val=0.1") == {"val": 0.1, "test": 0.2}
    for bad, msg in [("train=0.5", "train is the rest"), ("val=0", r"\(0, 1\)"),
                     ("val=nan", r"\(0, 1\)"), ("val=x", "not a number"),
                     ("val=0.5,test=0.5", "nothing is left for train"),
                     ("val=0.1,val=0.2", "twice"), ("", "val=F"), ("val", "train is the rest"),
                     ("../x=0.1", "train is the rest")]:  # fmt: skip
        with pytest.raises(UsageError, match=msg):
            parse_split(bad)


def test_sequences_are_dealt_by_a_seeded_order_with_at_least_one_per_split():
    names = [f"s{k}" for k in range(10)]
    a = assign_sequences(names, {"val": 0.2, "test": 0.1}, seed=3)
    assert a == assign_sequences(list(reversed(names)), {"val": 0.2, "test": 0.1}, seed=3)
    assert sorted(a.values()).count("val") == 2 and list(a.values()).count("test") == 1
    seeds = {tuple(sorted(k for k, v in assign_sequences(names, {"val": 0.2}, s).items()
                          if v == "val")) for s in range(6)}  # fmt: skip
    assert len(seeds) > 1  # the seed changes which sequences are held out
    # few sequences: each held-out split still gets one, train keeps one, else refused
    assert sorted(assign_sequences(["a", "b", "c"], {"val": 0.1, "test": 0.1}, 0).values()) == [
        "test", "train", "val"]  # fmt: skip
    with pytest.raises(UsageError, match="needs a sequence in every split"):
        assign_sequences(["a", "b"], {"val": 0.1, "test": 0.1}, 0)


def test_a_tracks_split_depends_on_the_track_alone_and_follows_the_fractions():
    fr = {"val": 0.2, "test": 0.1}
    got = [track_split(fr, 0, f"seq{k % 7}", (k, "car")) for k in range(4000)]
    share = {s: got.count(s) / len(got) for s in ("train", "val", "test")}
    assert share["val"] == pytest.approx(0.2, abs=0.03)
    assert share["test"] == pytest.approx(0.1, abs=0.03)
    assert track_split(fr, 0, "seq1", (8, "car")) == track_split(fr, 0, "seq1", (8, "car"))
    assert make_split(None, "sequence", 0, ["a"]) is None


# -- by sequence, read by each consumer --------------------------------------------------


def test_the_split_is_recorded_in_the_job_and_its_identity(data):
    job = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
    assert job["identity"]["split"] == SPLIT
    assert job["identity"]["split_by"] == "sequence" and job["identity"]["seed"] == 7
    seqs = job["split"]["sequences"]
    assert [len(seqs[s]) for s in ("train", "val", "test")] == [5, 2, 1]
    assert sorted(sum(seqs.values(), [])) == sorted(job["sequences"])


def test_ultralytics_dataset_builder_loads_train_and_val_disjoint_by_sequence(
    data, tmp_path, monkeypatch
):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import DEFAULT_CFG

    yolo = data / f"ultralytics-{tmp_path.name}" / "yolo"  # ultralytics caches beside labels
    shutil.copytree(data / "ref" / "yolo", yolo, symlinks=True)
    cfg = check_det_dataset(str(yolo / "data.yaml"))
    job = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
    args = DEFAULT_CFG.__class__(**{**vars(DEFAULT_CFG), "task": "segment", "imgsz": 64})
    seen = {}
    for mode, split in (("train", "train"), ("val", "val"), ("val", "test")):
        ds = build_yolo_dataset(args, cfg[split], batch=4, data=cfg, mode=mode, rect=False)
        files = [Path(f) for f in ds.im_files]
        images = (yolo / "images").resolve()
        seen[split] = {f.parent.relative_to(images).as_posix() for f in files}
        assert seen[split] == set(job["split"]["sequences"][split])
        frames = sum(LENGTHS[int(s.split("/")[1]) - 1] for s in seen[split])
        assert len(files) == frames and len(ds.labels) == frames
        assert all(len(lb["segments"]) == 3 for lb in ds.labels)  # every label found
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]


def test_pycocotools_reads_each_coco_split_with_the_full_files_ids(data):
    with contextlib.redirect_stdout(io.StringIO()):
        full = COCO(str(data / "ref" / "annotations.json"))
        parts = {s: COCO(str(data / "ref" / f"annotations_{s}.json")) for s in
                 ("train", "val", "test")}  # fmt: skip
    job = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
    images: list[int] = []
    for name, coco in parts.items():
        assert _sequences_of(coco.dataset) == set(job["split"]["sequences"][name])
        for ann in coco.dataset["annotations"]:
            assert ann == full.anns[ann["id"]]  # the same object, the same id
        assert coco.getAnnIds() == full.getAnnIds(imgIds=coco.getImgIds())
        images += coco.getImgIds()
    assert sorted(images) == sorted(full.getImgIds())  # every frame in exactly one split


def _youtube_vis_self(gt: dict, results: list, tmp: Path) -> dict[str, Any]:
    return youtube_vis_scores(gt, {"self": results}, tmp)["self"]


def test_trackeval_reads_the_youtube_vis_val_split(data, tmp_path):
    from box2mask.writers.ytvis import to_trackeval

    val = json.loads((data / "ref" / "ytvis_val.json").read_text())
    full = json.loads((data / "ref" / "ytvis.json").read_text())
    job = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
    assert [v["name"] for v in val["videos"]] == [
        s for s in job["sequences"] if s in job["split"]["sequences"]["val"]]  # fmt: skip
    by_id = {a["id"]: a for a in full["annotations"]}
    assert all(a == by_id[a["id"]] for a in val["annotations"])
    gt, results = to_trackeval(val)
    got = _youtube_vis_self(gt, results, tmp_path)
    assert got["AP"] == pytest.approx(1.0)
    assert got["sequences"] == sorted(v.replace("/", "_") for v in job["split"]["sequences"]["val"])


def test_trackeval_reads_the_mots_seqmaps_and_scores_only_their_videos(data, tmp_path):
    import configparser

    import trackeval

    mots = data / "ref" / "mots"
    tracks = json.loads((mots / "tracks.json").read_text())
    gt = tmp_path / "gt"
    for v in tracks["videos"]:  # MOTS Challenge layout for TrackEval: <seq>/gt/gt.txt, seqinfo
        (gt / v["name"] / "gt").mkdir(parents=True)
        (gt / v["name"] / "gt" / "gt.txt").write_bytes((mots / f"{v['name']}.txt").read_bytes())
        ini = configparser.ConfigParser()
        ini["Sequence"] = {"name": v["name"], "seqLength": str(v["frames"][1])}
        with open(gt / v["name"] / "seqinfo.ini", "w") as fh:
            ini.write(fh)
        (tmp_path / "trk" / "self" / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(mots / f"{v['name']}.txt", tmp_path / "trk" / "self" / "data")
    chosen = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())["split"]
    for split in ("val", "train"):
        seqmap = mots / "seqmaps" / f"{split}.txt"
        ds = trackeval.datasets.MOTSChallenge({
            "GT_FOLDER": str(gt), "TRACKERS_FOLDER": str(tmp_path / "trk"),
            "SEQMAP_FILE": str(seqmap), "SKIP_SPLIT_FOL": True, "CLASSES_TO_EVAL": ["pedestrian"],
            "GT_LOC_FORMAT": "{gt_folder}/{seq}/gt/gt.txt", "PRINT_CONFIG": False})  # fmt: skip
        want = [v["name"] for v in tracks["videos"] if v["sequence"] in chosen["sequences"][split]]
        assert ds.seq_list == want and want


def test_davis_image_sets_list_each_splits_videos(data):
    sets = data / "ref" / "davis" / "ImageSets"
    job = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
    listed = {s: (sets / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    for s, videos in listed.items():
        assert videos == [q.replace("/", "_") for q in job["sequences"]
                          if q in job["split"]["sequences"][s]]  # fmt: skip
    assert sorted(sum(listed.values(), [])) == sorted((sets / "all.txt").read_text().split())


# -- the same split everywhere -----------------------------------------------------------


def test_shards_merged_give_the_unsharded_split_files(data, tmp_path):
    base = dict(dataset="viso", root=data / "viso", model="ellipse", formats=FORMATS,
                workers=1, split=SPLIT, seed=7)  # fmt: skip
    for k in (1, 2):
        box2mask.convert(out=tmp_path / f"s{k}", shard=f"{k}/2", **base)
        saved = json.loads((tmp_path / f"s{k}" / ".box2mask" / "job.json").read_text())
        ref = json.loads((data / "ref" / ".box2mask" / "job.json").read_text())
        assert saved["split"] == ref["split"]  # a shard knows the whole selection's split
    res = runner.invoke(app, ["merge", str(tmp_path / "s2"), str(tmp_path / "s1"),
                              "--out", str(tmp_path / "merged"), "--format", FORMATS])  # fmt: skip
    assert res.exit_code == 0, res.output
    ref, got = tree(data / "ref"), tree(tmp_path / "merged")
    assert got.keys() == ref.keys()
    assert [k for k in ref if got[k] != ref[k]] == []


def test_a_job_resumes_only_with_the_same_split(data, tmp_path):
    out = tmp_path / "job"
    shutil.copytree(data / "ref", out, symlinks=True)
    base = dict(dataset="viso", root=data / "viso", model="ellipse", formats=FORMATS, workers=1)
    summary = box2mask.convert(out=out, split=SPLIT, seed=7, **base)
    assert summary.frames_resumed == sum(LENGTHS)
    for other in ({"split": SPLIT, "seed": 8}, {"split": "val=0.5"}, {}):
        with pytest.raises(JobMismatch, match="split|seed"):
            box2mask.convert(out=out, **other, **base)


def test_qa_apply_keeps_the_split_files_right(data, tmp_path):
    from box2mask.job import ObjectChange, apply_changes

    out = tmp_path / "job"
    shutil.copytree(data / "ref", out, symlinks=True)
    job = json.loads((out / ".box2mask" / "job.json").read_text())
    val_seq = job["split"]["sequences"]["val"][0]
    before = {s: json.loads((out / f"annotations_{s}.json").read_text()) for s in ("train", "val")}
    apply_changes(out, [ObjectChange("remove", val_seq, 2, 1, review_tool="test")])
    full = json.loads((out / "annotations.json").read_text())
    after = {s: json.loads((out / f"annotations_{s}.json").read_text()) for s in ("train", "val")}
    assert len(after["val"]["annotations"]) == len(before["val"]["annotations"]) - 1
    assert len(after["train"]["annotations"]) == len(before["train"]["annotations"])
    by_id = {a["id"]: a for a in full["annotations"]}
    for s in after:  # the split files hold the job's objects, under the full file's ids
        assert all(a == by_id[a["id"]] for a in after[s]["annotations"])
        assert _sequences_of(after[s]) == set(job["split"]["sequences"][s])
    yt = json.loads((out / "ytvis_val.json").read_text())
    video = next(v["id"] for v in yt["videos"] if v["name"] == val_seq)
    track = next(a for a in yt["annotations"] if a["track_id"] == 1 and a["video_id"] == video)
    assert track["segmentations"][1] is None  # frame 2 of the track is gone from the val split


# -- by track ----------------------------------------------------------------------------


def test_a_split_by_track_marks_the_other_splits_objects_as_crowd(data, tmp_path):
    out = tmp_path / "tracks"
    box2mask.convert(dataset="viso", root=data / "viso", out=out, model="ellipse",
                     formats="coco,ytvis", workers=1, split="val=0.3", split_by="track")  # fmt: skip
    full = json.loads((out / "annotations.json").read_text())
    split = {s: json.loads((out / f"annotations_{s}.json").read_text()) for s in ("train", "val")}
    owner: dict[tuple, str] = {}
    for s, coco in split.items():
        for a in coco["annotations"]:
            img = next(im for im in coco["images"] if im["id"] == a["image_id"])
            if a["iscrowd"] == 0:
                key = (img["sequence"], a["track_id"], a["category_id"])
                assert owner.setdefault(key, s) == s  # a track in one split only
    assert set(owner.values()) == {"train", "val"}
    assert len(owner) == len({(im["sequence"], a["track_id"], a["category_id"])
                              for a in full["annotations"] for im in full["images"]
                              if im["id"] == a["image_id"]})  # fmt: skip
    # COCOeval of the val ground truth against itself: the crowd regions are ignored
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out / "annotations_val.json"))
        dets = [{**a, "score": 1.0} for a in gt.dataset["annotations"] if not a["iscrowd"]]
        ev = COCOeval(gt, gt.loadRes(dets), "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_formats_that_cannot_hold_a_track_split_are_refused_before_writing(data, tmp_path):
    out = tmp_path / "refused"
    res = runner.invoke(app, ["convert", "--dataset", "viso", "--root", str(data / "viso"),
                              "--out", str(out), "--model", "ellipse", "--format", "coco,yolo",
                              "--split", "val=0.2", "--split-by", "track"])  # fmt: skip
    assert res.exit_code == 2
    assert "--format yolo cannot hold a split by track" in res.output
    assert not out.exists()


def test_split_options_are_checked(data, tmp_path):
    base = ["convert", "--dataset", "viso", "--root", str(data / "viso"), "--model", "ellipse"]
    for extra, msg in [(["--seed", "3"], "--seed is an option of --split"),
                       (["--split-by", "track"], "--split-by is an option of --split"),
                       (["--split", "val=0.2", "--split-by", "frame"], "sequence or track"),
                       (["--split", "val=2"], "(0, 1)")]:  # fmt: skip
        res = runner.invoke(app, [*base, "--out", str(tmp_path / "o"), *extra])
        assert res.exit_code == 2 and msg in res.output, res.output
        assert not (tmp_path / "o").exists()


def test_merge_splits_an_unsplit_job_afresh_into_a_folder(data, tmp_path):
    box2mask.convert(dataset="viso", root=data / "viso", out=tmp_path / "plain",
                     model="ellipse", formats="coco,yolo", workers=1)  # fmt: skip
    res = runner.invoke(app, ["merge", str(tmp_path / "plain"), "--out", str(tmp_path / "m"),
                              "--split", SPLIT, "--seed", "7"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ref = tree(data / "ref")
    for name in ("annotations_train.json", "annotations_val.json", "annotations_test.json"):
        assert (tmp_path / "m" / name).read_bytes() == ref[name]  # as converted with the split
    assert "val: [" in (tmp_path / "m" / "yolo" / "data.yaml").read_text()
    res = runner.invoke(app, ["merge", str(tmp_path / "plain"), "--out",
                              str(tmp_path / "x.json"), "--split", "val=0.2"])  # fmt: skip
    assert res.exit_code == 2 and "give a folder --out" in res.output
    assert not (tmp_path / "x.json").exists()
