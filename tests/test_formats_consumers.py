"""The ytvis, davis, mots and yolo outputs read by their real consumers (issue 12).

A small synthetic clip with known masks (overlaps, a hole, a two-part object,
a track that comes late, a one-pixel object, an object cut by the frame edge,
a track id twice in one frame) goes through ``frame_part`` (what the job
stores) and each format's writer; then:

- TrackEval scores the MOTS output (``KittiMOTS``, HOTA) and the YouTube-VIS
  output (``YouTubeVIS``, TrackMAP and HOTA) against themselves (1.0) and
  against a perturbed copy (lower);
- ultralytics' ``YOLODataset`` reads the YOLO-seg output with no corrupt
  label, and its ``polygon2mask`` paints each polygon back to the mask;
- PIL reads the DAVIS PNGs in "P" mode with the DAVIS palette, and every
  index is its track's mask;
- pycocotools loads the COCO output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from box2mask.job.parts import frame_part
from box2mask.types import CropWindow, Frame, FrameMasks, ObjectMask
from box2mask.writers.coco import category_table, write_coco
from box2mask.writers.davis import MAX_OBJECTS, davis_palette, link_value, write_davis
from box2mask.writers.mots import class_ids, write_mots
from box2mask.writers.yolo import mask_polygon, merge_multi_segment, write_yolo
from box2mask.writers.ytvis import to_trackeval, write_ytvis

H, W = 40, 56
CATEGORIES = category_table([("airplane", "vehicle"), ("ship", "vessel"), ("train", "vehicle"), ("car", "vehicle")])  # fmt: skip


def _box(y0, x0, y1, x1):
    m = np.zeros((H, W), bool)
    m[max(y0, 0) : y1, max(x0, 0) : x1] = True
    return m


def _ring(y0, x0, size):
    m = _box(y0, x0, y0 + size, x0 + size)
    m[y0 + 2 : y0 + size - 2, x0 + 2 : x0 + size - 2] = False
    return m


def clip_truth(n_frames: int = 6) -> dict[str, list[list[tuple[int, str, np.ndarray]]]]:
    """``{sequence: [frame: [(track_id, category, full-frame mask), ...]]}``."""
    out = {}
    for s, seq in enumerate(("car/001", "ship/002")):
        frames = []
        for t in range(n_frames):
            objs = [
                (11, "car", _box(4, 3 + 2 * t, 10, 11 + 2 * t)),  # moves right
                (12, "car", _box(6, 9, 16, 24)),  # larger: 11 lies over it from frame 1 on
                (13, "ship", _ring(20, 30 + s, 9)),  # a hole
                (14, "airplane", _box(30, 2, 34, 6) | _box(30, 12, 36, 16)),  # two parts
                (16, "car", _box(18 + t % 2, 47, 19 + t % 2, 48)),  # one pixel
                (17, "train", _box(-3, 50, 5, 60)),  # cut by the frame edge
            ]
            if t >= 3:
                objs.append((15, "car", _box(24, 8, 30, 20)))  # comes late
            if t == 4:
                objs.append((12, "car", _box(17, 9, 19, 12)))  # track 12 twice in one frame
            frames.append(objs)
        out[seq] = frames
    return out


def frame_masks(seq: str, t: int, objs, root: Path) -> FrameMasks:
    """A FrameMasks whose crop-local masks are the given full-frame masks (windows may leave the frame)."""
    name = f"mot/{seq}/img/{t + 1:06d}.jpg"
    frame = Frame(seq, t + 1, root / name, (H, W), np.zeros((len(objs), 4)) + [0, 0, 1, 1],
                  [o[0] for o in objs], [o[1] for o in objs], file_name=name)  # fmt: skip
    masks = []
    for tid, cat, full in objs:
        win = CropWindow(-4, -4, max(H, W) + 8)
        crop = np.zeros((win.size, win.size), bool)
        crop[4 : 4 + H, 4 : 4 + W] = full
        masks.append(
            ObjectMask(tid, cat, win, crop, np.array([0, 0, 1, 1]), score=0.9, source="model")
        )
    return FrameMasks(frame, tuple(masks))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The truth, the FrameMasks, the parts, and each format written under ``out``."""
    return write_clip(tmp_path_factory.mktemp("formats"))


def write_clip(d: Path, out: Path | None = None) -> dict:
    """The clip's images under ``d/data`` and each format written under ``out`` (``d/out``)."""
    root, out = d / "data", out if out is not None else d / "out"
    truth = clip_truth()
    fms = []
    for seq, frames in truth.items():
        for t, objs in enumerate(frames):
            fm = frame_masks(seq, t, objs, root)
            path = root / fm.frame.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((H, W, 3), 60 + 10 * t, np.uint8)).save(path, quality=90)
            fms.append(fm)
    parts = [frame_part(fm) for fm in fms]
    write_coco([json.loads(json.dumps(p)) for p in parts], CATEGORIES, out / "annotations.json")
    write_ytvis(parts, CATEGORIES, out / "ytvis.json")
    write_davis(parts, root, out)
    write_mots(parts, CATEGORIES, out)
    write_yolo(parts, CATEGORIES, root, out)
    return {"truth": truth, "fms": fms, "parts": parts, "root": root, "out": out, "dir": d}


def expected_owner(objs) -> np.ndarray:
    """Per pixel, the index of the object that shows there (-1 background): the smallest
    object covering it, ties to the later one — stated per pixel, not by painting."""
    areas = np.array([o[2].sum() for o in objs], dtype=np.float64)
    stack = np.stack([o[2] for o in objs])
    # smaller area wins; among equal areas the later object: key = area - index * 1e-6
    key = np.where(stack, (areas - np.arange(len(objs)) * 1e-6)[:, None, None], np.inf)
    owner = key.argmin(axis=0)
    return np.where(stack.any(axis=0), owner, -1)


def track_masks(objs) -> dict[tuple[int, str], np.ndarray]:
    """Each track's mask in a frame (a track twice in the frame: the union)."""
    out: dict[tuple[int, str], np.ndarray] = {}
    for tid, cat, m in objs:
        key = (tid, cat)
        out[key] = out.get(key, np.zeros((H, W), bool)) | m
    return out


# --- COCO -------------------------------------------------------------------------------


def test_coco_output_still_loads_in_pycocotools(clip):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(clip["out"] / "annotations.json"))
    assert len(coco.getImgIds()) == 12
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() == ann["area"] > 0


# --- DAVIS ------------------------------------------------------------------------------


def test_davis_pngs_read_back_with_pil_give_each_tracks_mask(clip):
    base = clip["out"] / "davis"
    objects = json.loads((base / "objects.json").read_text())["videos"]
    assert [v["name"] for v in objects] == ["car_001", "ship_002"]
    assert (base / "ImageSets" / "all.txt").read_text() == "car_001\nship_002\n"
    for video, (seq, frames) in zip(objects, clip["truth"].items(), strict=True):
        assert video["sequence"] == seq
        index = {(o["track_id"], o["category"]): o["index"] for o in video["objects"]}
        # first appearance order, stable for the whole sequence
        assert list(index) == [(11, "car"), (12, "car"), (13, "ship"), (14, "airplane"),
                               (16, "car"), (17, "train"), (15, "car")]  # fmt: skip
        assert list(index.values()) == list(range(1, 8))
        for t, objs in enumerate(frames):
            png = Image.open(base / "Annotations" / video["name"] / f"{t + 1:06d}.png")
            assert png.mode == "P" and png.getpalette()[: 3 * 256] == davis_palette()
            got = np.array(png)
            owner = expected_owner(objs)
            want = np.zeros((H, W), np.uint8)
            for k, (tid, cat, _) in enumerate(objs):
                want[owner == k] = index[(tid, cat)]
            np.testing.assert_array_equal(got, want)
            img = base / "JPEGImages" / video["name"] / f"{t + 1:06d}.jpg"
            assert img.is_symlink() and img.resolve() == (clip["root"] / f"mot/{seq}/img/{t + 1:06d}.jpg").resolve()  # fmt: skip
    # the 16th object in track 11 overlaps the larger 12: 11 shows where both are
    png1 = np.array(Image.open(base / "Annotations" / "car_001" / "000002.png"))
    assert png1[6, 9] == 1


def test_davis_sequence_with_more_than_255_tracks_is_split_into_videos_without_wrap(tmp_path):
    root = tmp_path / "data"
    objs = [(100 + i, "car", _box(i // 50, i % 50, i // 50 + 1, i % 50 + 1)) for i in range(300)]
    part = frame_part(frame_masks("car/009", 0, objs, root))
    write_davis([part], root, tmp_path / "out")
    videos = json.loads((tmp_path / "out" / "davis" / "objects.json").read_text())["videos"]
    assert [(v["name"], len(v["objects"])) for v in videos] == [("car_009", MAX_OBJECTS), ("car_009@2", 45)]  # fmt: skip
    assert videos[1]["objects"][0] == {"index": 1, "track_id": 100 + MAX_OBJECTS, "category": "car"}
    a = np.array(Image.open(tmp_path / "out/davis/Annotations/car_009/000001.png"))
    b = np.array(Image.open(tmp_path / "out/davis/Annotations/car_009@2/000001.png"))
    assert a.max() == 255 and a[0, 0] == 1 and b[0, 0] == 0
    assert b[MAX_OBJECTS // 50, MAX_OBJECTS % 50] == 1 and b.max() == 45


# --- MOTS -------------------------------------------------------------------------------


def _kitti_mots(gt_dir: Path, trackers: dict[str, Path], seq_info: dict[str, int], tmp: Path):
    import trackeval

    gt = tmp / "gt"
    (gt / "label_02").mkdir(parents=True, exist_ok=True)
    for seq in seq_info:
        (gt / "label_02" / f"{seq}.txt").write_bytes((gt_dir / f"{seq}.txt").read_bytes())
    for name, folder in trackers.items():
        (tmp / "trk" / name / "data").mkdir(parents=True, exist_ok=True)
        for seq in seq_info:
            (tmp / "trk" / name / "data" / f"{seq}.txt").write_bytes((folder / f"{seq}.txt").read_bytes())  # fmt: skip
    config = {**trackeval.Evaluator.get_default_eval_config(), "USE_PARALLEL": False,
              "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
              "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
              "LOG_ON_ERROR": None}  # fmt: skip
    data = trackeval.datasets.KittiMOTS({"GT_FOLDER": str(gt), "TRACKERS_FOLDER": str(tmp / "trk"),
                                         "SEQ_INFO": seq_info, "CLASSES_TO_EVAL": ["car"],
                                         "PRINT_CONFIG": False})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        res, msg = trackeval.Evaluator(config).evaluate([data], [trackeval.metrics.HOTA()])
    assert all(m == "Success" for m in msg["KittiMOTS"].values()), msg
    return {
        name: float(np.mean(res["KittiMOTS"][name]["COMBINED_SEQ"]["car"]["HOTA"]["HOTA"]))
        for name in trackers
    }


def test_mots_output_scores_hota_1_against_itself_and_lower_when_perturbed(clip, tmp_path):
    mots = clip["out"] / "mots"
    lines = (mots / "car_001.txt").read_text().splitlines()
    perturbed = tmp_path / "perturbed"
    perturbed.mkdir()
    for seq in ("car_001", "ship_002"):
        kept = []
        for line in (mots / f"{seq}.txt").read_text().splitlines():
            f, oid, cls, *_ = line.split()
            if cls == "1" and int(oid) % 1000 == 1 and int(f) > 3:
                continue  # track 11 lost after frame 3
            if cls == "1" and int(oid) % 1000 == 2 and int(f) >= 3:
                oid = str(int(oid) + 50)  # track 12 switches id from frame 3
            kept.append(" ".join([f, oid, cls, *line.split()[3:]]))
        (perturbed / f"{seq}.txt").write_text("\n".join(kept) + "\n")
    seq_info = {"car_001": 7, "ship_002": 7}  # frames 1..6; KITTI counts from 0
    scores = _kitti_mots(mots, {"self": mots, "perturbed": perturbed}, seq_info, tmp_path)
    assert scores["self"] == pytest.approx(1.0)
    assert scores["perturbed"] < 0.9
    assert any(line.startswith("1 1001 1 40 56 ") for line in lines)


def test_mots_lines_are_the_visible_masks_with_ids_from_class_and_instance(clip):
    table = json.loads((clip["out"] / "mots" / "tracks.json").read_text())
    assert table["classes"] == {"1": "car", "3": "airplane", "4": "ship", "5": "train"}
    assert class_ids(CATEGORIES) == {"airplane": 3, "ship": 4, "train": 5, "car": 1}
    video = table["videos"][0]
    assert video["name"] == "car_001" and video["frames"] == [1, 6]
    ids = {o["id"]: (o["track_id"], o["category"]) for o in video["objects"]}
    assert ids == {1001: (11, "car"), 1002: (12, "car"), 4001: (13, "ship"),
                   3001: (14, "airplane"), 1003: (16, "car"), 5001: (17, "train"),
                   1004: (15, "car")}  # fmt: skip
    by_frame: dict[int, list[list[str]]] = {}
    for line in (clip["out"] / "mots" / "car_001.txt").read_text().splitlines():
        by_frame.setdefault(int(line.split()[0]), []).append(line.split())
    for t, objs in enumerate(clip["truth"]["car/001"]):
        rows = by_frame[t + 1]
        assert [int(r[1]) for r in rows] == sorted(int(r[1]) for r in rows)
        owner = expected_owner(objs)
        union = np.zeros((H, W), int)
        for _f, oid, cls, h, w, counts in rows:
            m = mask_utils.decode({"size": [int(h), int(w)], "counts": counts.encode()}).astype(
                bool
            )
            tid, cat = ids[int(oid)]
            assert int(cls) == int(oid) // 1000 == class_ids(CATEGORIES)[cat]
            want = np.isin(owner, [k for k, o in enumerate(objs) if (o[0], o[1]) == (tid, cat)])
            np.testing.assert_array_equal(m, want)
            union += m
        assert union.max() == 1  # no pixel in two masks


def test_mots_refuses_more_than_999_tracks_of_a_class_in_a_sequence(tmp_path):
    from box2mask.errors import UsageError

    objs = [
        (i, "car", _box(i // 56 % 40, i % 56, i // 56 % 40 + 1, i % 56 + 1)) for i in range(1000)
    ]
    part = frame_part(frame_masks("car/007", 0, objs, tmp_path))
    with pytest.raises(UsageError, match=r"sequence 'car/007' has more than 999 'car' tracks"):
        write_mots([part], CATEGORIES, tmp_path)


# --- YouTube-VIS ------------------------------------------------------------------------


def youtube_vis_scores(gt: dict, trackers: dict[str, list], tmp: Path) -> dict[str, dict[str, Any]]:
    """TrackEval's TrackMAP and HOTA of each tracker's results against ``gt`` (YouTube-VIS
    JSON), and the sequences it scored."""
    import trackeval

    (tmp / "gt" / "youtube_vis_x").mkdir(parents=True)
    (tmp / "gt" / "youtube_vis_x" / "gt.json").write_text(json.dumps(gt))
    for name, results in trackers.items():
        folder = tmp / "trk" / "youtube_vis_x" / name / "data"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(results))
    config = {**trackeval.Evaluator.get_default_eval_config(), "USE_PARALLEL": False,
              "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
              "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
              "LOG_ON_ERROR": None}  # fmt: skip
    data = trackeval.datasets.YouTubeVIS({"GT_FOLDER": str(tmp / "gt") + "/",
                                          "TRACKERS_FOLDER": str(tmp / "trk") + "/",
                                          "SPLIT_TO_EVAL": "x", "PRINT_CONFIG": False})  # fmt: skip
    # as TrackEval's run_youtube_vis.py: YouTube-VIS has no track-length ranges
    track_map = trackeval.metrics.TrackMAP({"USE_TIME_RANGES": False, "PRINT_CONFIG": False})
    metrics = [track_map, trackeval.metrics.HOTA()]
    with contextlib.redirect_stdout(io.StringIO()):
        res, msg = trackeval.Evaluator(config).evaluate([data], metrics)
    assert all(m == "Success" for m in msg["YouTubeVIS"].values()), msg
    out = {}
    for name in trackers:
        combined = res["YouTubeVIS"][name]["COMBINED_SEQ"]["cls_comb_cls_av"]
        out[name] = {
            "AP": float(np.mean(combined["TrackMAP"]["AP_all"])),
            "HOTA": float(np.mean(combined["HOTA"]["HOTA"])),
            "sequences": sorted(k for k in res["YouTubeVIS"][name] if k != "COMBINED_SEQ"),
        }
    return out


def test_ytvis_output_scores_1_against_itself_in_trackeval_and_lower_when_perturbed(clip, tmp_path):
    data = json.loads((clip["out"] / "ytvis.json").read_text())
    gt, results = to_trackeval(data)
    # TrackEval names videos by the first folder of file_names: ours all start "mot/"
    assert {v["file_names"][0].split("/")[0] for v in data["videos"]} == {"mot"}
    assert [v["file_names"][0].split("/")[0] for v in gt["videos"]] == ["car_001", "ship_002"]
    worse = json.loads(json.dumps(results))
    worse[0]["segmentations"][2:] = [None] * 4  # track 11 lost after frame 2
    worse[1]["category_id"] = 1  # track 12 given the wrong class
    scores = youtube_vis_scores(gt, {"self": results, "perturbed": worse}, tmp_path)
    assert scores["self"]["AP"] == pytest.approx(1.0)
    assert scores["self"]["HOTA"] == pytest.approx(1.0)
    assert scores["perturbed"]["AP"] < 0.95 and scores["perturbed"]["HOTA"] < 0.95


def test_ytvis_tracks_hold_each_frames_mask_and_null_where_absent(clip):
    data = json.loads((clip["out"] / "ytvis.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["airplane", "ship", "train", "car"]
    v = data["videos"][0]
    assert (v["id"], v["name"], v["width"], v["height"], v["length"]) == (1, "car/001", W, H, 6)
    assert v["file_names"][0] == "mot/car/001/img/000001.jpg"
    cat = {c["id"]: c["name"] for c in data["categories"]}
    anns = [a for a in data["annotations"] if a["video_id"] == 1]
    assert [a["track_id"] for a in anns] == [11, 12, 13, 14, 16, 17, 15]
    assert [a["id"] for a in data["annotations"]] == list(range(1, 15))
    frames = clip["truth"]["car/001"]
    for a in anns:
        key = (a["track_id"], cat[a["category_id"]])
        assert len(a["segmentations"]) == len(a["areas"]) == len(a["bboxes"]) == 6
        for t, objs in enumerate(frames):
            want = track_masks(objs).get(key)
            seg = a["segmentations"][t]
            if want is None:
                assert seg is None and a["areas"][t] is None and a["bboxes"][t] is None
                continue
            assert isinstance(seg["counts"], list)  # uncompressed, as the published files
            got = mask_utils.decode(mask_utils.frPyObjects(seg, H, W)).astype(bool)
            np.testing.assert_array_equal(got, want)  # masks as made: overlaps kept
            assert a["areas"][t] == want.sum()
    late = next(a for a in anns if a["track_id"] == 15)
    assert late["segmentations"][:3] == [None] * 3


# --- YOLO -------------------------------------------------------------------------------


def test_yolo_output_reads_in_ultralytics_dataset_with_no_corrupt_label(
    clip, tmp_path, monkeypatch
):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset, polygon2mask

    yolo = clip["out"] / "yolo"
    data = check_det_dataset(str(yolo / "data.yaml"))
    assert data["names"] == {0: "airplane", 1: "ship", 2: "train", 3: "car"} and data["nc"] == 4
    assert (
        Path(data["train"]) == (yolo / "images").resolve() or Path(data["train"]) == yolo / "images"
    )
    ds = YOLODataset(img_path=data["train"], data={**data, "channels": 3}, task="segment",
                     imgsz=64, augment=False, cache=False, rect=False)  # fmt: skip
    # ultralytics' label check (verify_image_label on every image/label pair)
    nf, nm, ne, nc, n = ds.cache_labels(tmp_path / "check.cache")["results"]
    assert (nf, nm, ne, nc, n) == (12, 0, 0, 0, 12)  # every label found, none corrupt
    assert len(ds.labels) == 12
    cats = {c["name"]: c["id"] - 1 for c in CATEGORIES}
    for lb in ds.labels:
        seq, stem = Path(lb["im_file"]).parent.relative_to((yolo / "images").resolve()), Path(lb["im_file"]).stem  # fmt: skip
        seq = seq.as_posix()
        objs = clip["truth"][seq][int(stem) - 1]
        # one line per object (duplicates of track 12 are different masks, both kept)
        assert [int(c) for c in lb["cls"].ravel()] == [cats[o[1]] for o in objs]
        for (tid, _cat, m), seg in zip(objs, lb["segments"], strict=True):
            poly = (seg * [W, H]).round().astype(np.int32).reshape(1, -1, 2)
            painted = polygon2mask((H, W), poly, color=1).astype(bool)
            filled = _filled(m)
            if tid == 14:  # two parts joined by a one-pixel-wide bridge
                assert (painted & ~filled).sum() <= 6 and (filled & ~painted).sum() == 0
            elif tid == 16:  # one pixel: its box, as ultralytics' converter writes it
                assert painted[filled].all()
            else:
                np.testing.assert_array_equal(painted, filled)


def _filled(m: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (what an outer contour covers)."""
    import cv2

    cs = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    out = np.zeros(m.shape, np.uint8)
    cv2.drawContours(out, cs, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def test_yolo_polygons_join_parts_as_ultralytics_merge_multi_segment_does():
    import cv2
    from ultralytics.data import converter

    m = np.zeros((30, 40), np.uint8)
    m[2:6, 3:9] = 1
    m[12:20, 20:30] = 1
    m[24:28, 5:8] = 1
    cs = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    polys = [c.reshape(-1).tolist() for c in cs]
    theirs = np.concatenate(converter.merge_multi_segment(polys), axis=0)
    ours = np.concatenate(merge_multi_segment([np.array(p).reshape(-1, 2) for p in polys]))
    np.testing.assert_array_equal(ours, theirs)
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    block = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(bool)
    np.testing.assert_array_equal(mask_polygon(block, int(rows[0]), int(cols[0])), theirs)


def test_yolo_labels_are_written_the_way_ultralytics_convert_coco_writes_them(clip):
    text = (clip["out"] / "yolo" / "labels" / "car" / "001" / "000001.txt").read_text()
    rows = [r.split() for r in text.splitlines()]
    assert [r[0] for r in rows] == ["3", "3", "1", "0", "3", "2"]
    assert all(len(r) >= 7 and len(r) % 2 == 1 for r in rows)
    assert all(0 <= float(v) <= 1 for r in rows for v in r[1:])
    # the one-pixel object (track 16) becomes its box: corners at pixel edges
    assert rows[4][1:] == [f"{v:g}" for v in (47 / W, 18 / H, 48 / W, 18 / H, 48 / W, 19 / H, 47 / W, 19 / H)]  # fmt: skip
    assert os.path.islink(clip["out"] / "yolo" / "images" / "car" / "001" / "000001.jpg")


# --- image links (davis JPEGImages, yolo images) ----------------------------------------


def _linked_images(out: Path, data: Path) -> dict[Path, Path]:
    """Each image link of the davis and yolo outputs, and the dataset image it must lead to."""
    links = {}
    for seq in ("car/001", "ship/002"):
        for t in range(6):
            image = data / f"mot/{seq}/img/{t + 1:06d}.jpg"
            links[out / "davis/JPEGImages" / seq.replace("/", "_") / image.name] = image
            links[out / "yolo/images" / seq / image.name] = image
    return links


def test_links_are_relative_and_survive_moving_the_output_with_its_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    project = tmp_path / "project"
    write_clip(project)
    assert all(not os.path.isabs(os.readlink(p)) for p in _linked_images(project / "out", project))
    moved = tmp_path / "elsewhere" / "two levels deeper" / "project"  # another place and depth
    moved.parent.mkdir(parents=True)
    project.rename(moved)
    links = _linked_images(moved / "out", moved / "data")
    assert len(links) == 24
    for path, image in links.items():
        assert path.is_symlink() and path.resolve() == image.resolve(), path
    first = moved / "out/davis/JPEGImages/car_001/000001.jpg"
    assert np.array(Image.open(first)).shape == (H, W, 3)  # a DAVIS loader opens the link
    data = check_det_dataset(str(moved / "out/yolo/data.yaml"))
    ds = YOLODataset(img_path=data["train"], data={**data, "channels": 3}, task="segment",
                     imgsz=64, augment=False, cache=False, rect=False)  # fmt: skip
    nf, nm, ne, nc, n = ds.cache_labels(tmp_path / "check.cache")["results"]
    assert (nf, nm, ne, nc, n) == (12, 0, 0, 0, 12)  # every image found, none corrupt
    assert {Path(lb["im_file"]).resolve() for lb in ds.labels} == {
        image.resolve() for path, image in links.items() if "yolo" in path.parts
    }


def test_links_from_an_output_reached_through_a_symlinked_folder_resolve(tmp_path):
    # --out through a link to a deeper folder: the kernel walks a link's ".." from the
    # folder the link physically is in, so the relative path is taken between real folders
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tmp_path / "short").symlink_to(deep)
    write_clip(tmp_path, out=tmp_path / "short" / "out")
    for path, image in _linked_images(tmp_path / "short" / "out", tmp_path / "data").items():
        assert not os.path.isabs(os.readlink(path))
        assert path.resolve() == image.resolve(), path


def test_a_link_is_absolute_where_there_is_no_relative_path(tmp_path, monkeypatch):
    def other_drive(path, start=None):  # os.path.relpath on Windows, image and output on two drives
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(os.path, "relpath", other_drive)
    image = tmp_path / "data" / "000001.jpg"
    assert link_value(image, tmp_path / "out") == str(image)
