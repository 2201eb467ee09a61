"""The SAT-MTB adapter against the generator's truth, plus its bad-input reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from box2mask.adapters import ADAPTERS
from box2mask.adapters._polygons import greedy_match, rasterize_polygons
from box2mask.adapters.satmtb import parse_split

from box2mask.errors import AnnotationError, DatasetNotFound
from box2mask.problems import Problems
from tests.data.make_satmtb import HW, SPLIT_ROWS, centre_rule_mask, make_satmtb

SatMTB = ADAPTERS.get("satmtb")


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "SAT-MTB"
    return root, make_satmtb(root)


def frames_of(adapter, seq: str) -> dict[int, object]:
    return {f.frame_index: f for f in adapter.read_sequence(seq)}


@pytest.mark.parametrize("source", ["mot", "det", "seg"])
def test_frames_match_truth(data, source):
    root, truth = data
    ad = SatMTB(root, source=source)
    names = [s.name for s in ad.list_sequences()]
    assert (
        names
        == {
            "mot": ["airplane/01", "car/01", "ship/01"],
            "det": ["airplane/01"],
            "seg": ["airplane/01", "ship/01"],
        }[source]
    )
    assert all(s.num_frames == 3 for s in ad.list_sequences())
    for seq in names:
        frames = frames_of(ad, seq)
        # seg: only frames with a seg file have objects; all image frames are yielded
        assert sorted(frames) == [1, 2, 3]
        for k, f in frames.items():
            want = [o for o in truth[seq][k] if source == "det" or o.moving]
            if source == "seg" and not (root / seq / "seg" / f"{k:06d}.json").exists():
                want = []
            if source == "seg" and seq == "ship/01":
                want = want[::-1]  # seg JSON order
            assert f.image_hw == HW
            assert f.file_name == f"{seq}/img/{k:06d}.png"
            if source == "seg" and seq == "airplane/01":
                # no track ids in this seg JSON: the annotation ids stand in
                assert f.track_id.tolist() == [100 + n for n in range(len(want))]
            else:
                assert f.track_id.tolist() == [o.track_id for o in want]
            assert f.category.tolist() == [o.category for o in want]
            np.testing.assert_array_equal(f.xyxy, np.array([o.xyxy for o in want]).reshape(-1, 4))
            if source == "mot":
                assert "fine_class" not in f.attributes
            else:
                assert list(f.attributes["fine_class"]) == [o.fine for o in want]
            if source == "det":
                np.testing.assert_array_equal(f.obb, np.array([o.obb for o in want]))
            else:
                assert f.obb is None


@pytest.mark.parametrize("source", ["mot", "det", "seg"])
def test_gt_masks_equal_generator_masks(data, source):
    root, truth = data
    ad = SatMTB(root, source=source)
    checked = 0
    for seq in [s.name for s in ad.list_sequences()]:
        for f in ad.read_sequence(seq):
            has_seg = (root / seq / "seg" / f"{f.frame_index:06d}.json").exists()
            assert (f.gt_mask is not None) == has_seg
            if not has_seg:
                continue
            objs = {o.track_id: o for o in truth[seq][f.frame_index]}
            if source == "seg" and seq == "airplane/01":
                objs = {100 + n: o for n, o in enumerate(o for o in objs.values() if o.moving)}
            for i, tid in enumerate(f.track_id.tolist()):
                m = f.gt_mask(i)
                if not objs[tid].moving:  # static objects have no mask in the seg JSON
                    assert m is None
                    continue
                assert m.dtype == bool and m.shape == HW
                np.testing.assert_array_equal(m, centre_rule_mask(objs[tid].parts))
                checked += 1
    assert checked == {"mot": 10, "det": 6, "seg": 10}[source]


def test_rectangle_polygon_covers_exactly_its_box():
    m = rasterize_polygons([[10, 5, 20, 5, 20, 9, 10, 9]], (16, 32))
    assert m.sum() == 10 * 4
    assert m[5:9, 10:20].all()


def test_rasterizer_equals_centre_rule_on_random_polygons():
    rng = np.random.default_rng(3)
    for _ in range(200):
        pts = rng.uniform(-4, 36, (int(rng.integers(3, 9)), 2))
        pts[::2] = np.round(pts[::2])  # mix integer vertices (ties on centres) and fractional ones
        np.testing.assert_array_equal(
            rasterize_polygons([pts.ravel().tolist()], HW), centre_rule_mask([pts])
        )


def test_greedy_match_takes_best_pairs_and_threshold():
    a = np.array([[0, 0, 10, 10], [0, 0, 9, 10], [50, 50, 60, 60]])
    b = np.array([[0, 0, 9, 10], [0, 0, 10, 10], [55, 50, 65, 60]])
    assert greedy_match(a, b) == {0: 1, 1: 0}  # the third pair has IoU 1/3


def test_split_from_xlsx(data):
    root, _ = data
    assert [s.name for s in SatMTB(root, split="train").list_sequences()] == [
        "airplane/01",
        "car/01",
    ]
    assert [s.name for s in SatMTB(root, split="test").list_sequences()] == ["ship/01"]
    assert [s.name for s in SatMTB(root, split="train", source="seg").list_sequences()] == [
        "airplane/01"
    ]


def test_split_without_xlsx_is_a_clear_error(data):
    root, _ = data
    (root / "data_split.xlsx").unlink()
    with pytest.raises(
        DatasetNotFound, match=r"split=train needs .*data_split.xlsx, which does not exist"
    ):
        SatMTB(root, split="train")
    assert len(SatMTB(root).list_sequences()) == 3  # split=all does not need it


@pytest.mark.parametrize(
    "rows, train, test",
    [
        (SPLIT_ROWS, {"airplane/01", "car/01"}, {"ship/01"}),
        (
            [["sequence", "split"], ["airplane_03", "train"], ["Ship 12", "test"]],
            {"airplane/03"},
            {"ship/12"},
        ),
        (
            [["class", "id", "set"], ["train", "2", "test"], ["plane", "5", "train"]],
            {"airplane/05"},
            {"train/02"},
        ),
        (
            [["train"], ["car01"], ["car02"], ["test"], ["train/4"]],
            {"car/01", "car/02"},
            {"train/04"},
        ),
    ],
    ids=["columns", "rows", "class-and-number", "blocks"],
)
def test_parse_split_layouts(rows, train, test):
    assert parse_split(rows) == {"train": train, "test": test}


def test_parse_split_refuses_unknown_layout():
    with pytest.raises(ValueError, match="found no sequence with a train/test split"):
        parse_split([["a", "b"], ["1", "2"]])


def test_missing_root_layout_names_what_was_expected(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(
        DatasetNotFound, match=r"no sequence folders <class>/<NN>/img .* found: junk"
    ):
        SatMTB(tmp_path)


def test_parent_of_sat_mtb_folder_is_accepted(data):
    root, _ = data
    ad = SatMTB(root.parent)
    f = next(ad.read_sequence("airplane/01"))
    assert f.file_name == "SAT-MTB/airplane/01/img/000001.png"


# -- bad input ------------------------------------------------------------------

MOT_AIR = "airplane/01/mot/01"


def _append(rel: str, text: str):
    def mutate(root: Path) -> None:
        p = root / rel
        p.write_text(p.read_text() + text)

    return mutate


def _write(rel: str, text: str):
    def mutate(root: Path) -> None:
        (root / rel).write_text(text)

    return mutate


def _delete(rel: str):
    return lambda root: (root / rel).unlink()


# (id, source, mutation, path of the report, line, message, frames whose objects change)
BAD = [
    (
        "short-line",
        "mot",
        _append(MOT_AIR, "2,9,1,1\n"),
        MOT_AIR,
        7,
        "expected at least 6 fields frame,id,x,y,w,h, got 4",
        {},
    ),
    (
        "not-a-number",
        "mot",
        _append(MOT_AIR, "2,9,a,1,2,2,1,1\n"),
        MOT_AIR,
        7,
        "cannot read numbers from '2,9,a,1,2,2,1,1'",
        {},
    ),
    (
        "id-infinite",
        "mot",
        _append(MOT_AIR, "2,inf,1,1,2,2,1,1\n"),
        MOT_AIR,
        7,
        "frame and id must be finite numbers at most 2**53 - 1 in magnitude, got '2', 'inf'",
        {},
    ),
    (
        "frame-huge",
        "mot",
        _append(MOT_AIR, "1e30,9,1,1,2,2,1,1\n"),
        MOT_AIR,
        7,
        "frame and id must be finite numbers at most 2**53 - 1 in magnitude, got '1e30', '9'",
        {},
    ),
    (
        "outside-image",
        "mot",
        _append(MOT_AIR, "2,9,100,40,5,5,1,1\n"),
        MOT_AIR,
        7,
        "frame 2: box [100, 40, 105, 45] of track 9 lies entirely outside the 48x32 image; dropped",
        {},
    ),
    (
        "duplicate-id",
        "mot",
        _append(MOT_AIR, "2,1,3,3,4,4,1,1\n"),
        MOT_AIR,
        7,
        "frame 2: track id 1 appears twice (first at line 3); kept the first",
        {},
    ),
    (
        "more-frames-than-images",
        "mot",
        _append(MOT_AIR, "5,1,3,3,4,4,1,1\n6,1,3,3,4,4,1,1\n"),
        MOT_AIR,
        7,
        "annotations run to frame 6 but the images stop at frame 3: 2 annotated frame(s) 5..6 skipped",
        {},
    ),
    (
        "missing-image",
        "mot",
        _delete("airplane/01/img/000002.png"),
        MOT_AIR,
        3,
        "frame 2: no image for this annotated frame; its boxes are skipped",
        {2: None},
    ),
    (
        "unreadable-image",
        "mot",
        _write("airplane/01/img/000001.png", "not a png"),
        "airplane/01/img/000001.png",
        None,
        "frame 1: unreadable image (cannot read image size: not an image format PIL reads); skipped",
        {1: None},
    ),
    (
        "malformed-xml",
        "det",
        _write("airplane/01/det/HBB/000002.xml", "<annotation><object>"),
        "airplane/01/det/HBB/000002.xml",
        1,
        "malformed XML (no element found: line 1, column 20); frame 2 skipped",
        {2: None},
    ),
    (
        "xml-object-without-box",
        "det",
        _write(
            "airplane/01/det/HBB/000003.xml",
            "<annotation><object><name>airplane</name></object></annotation>",
        ),
        "airplane/01/det/HBB/000003.xml",
        None,
        "object 1: has neither <bndbox> nor <robndbox>; skipped",
        {3: "obb-only"},
    ),
    (
        "malformed-seg-json",
        "seg",
        _write("airplane/01/seg/000003.json", "{"),
        "airplane/01/seg/000003.json",
        None,
        "malformed segmentation JSON (JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)); frame skipped",
        {3: None},
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_reported_and_the_rest_is_read(data, case):
    _, source, mutate, rel, line, message, changed = case
    root, truth = data
    mutate(root)
    problems = Problems()
    ad = SatMTB(root, problems=problems, source=source)
    frames = frames_of(ad, "airplane/01")
    assert [str(r) for r in problems.reports] == [
        f"{root / rel}:{line}: {message}" if line else f"{root / rel}: {message}"
    ]
    for k in (1, 2, 3):
        if k in changed and changed[k] is None:
            assert k not in frames
            continue
        want = [o for o in truth["airplane/01"][k] if source == "det" or o.moving]
        if changed.get(k) == "obb-only":  # HBB file lost its objects: boxes come from the OBB hull
            np.testing.assert_array_equal(
                frames[k].xyxy[:, :2], np.array([o.obb.min(0) for o in want])
            )
            continue
        ids = [100 + n for n in range(len(want))] if source == "seg" else [o.track_id for o in want]
        assert frames[k].track_id.tolist() == ids
        np.testing.assert_array_equal(frames[k].xyxy, np.array([o.xyxy for o in want]))


def test_strict_raises_on_first_report(data):
    root, _ = data
    _append(MOT_AIR, "2,9,1,1\n")(root)
    ad = SatMTB(root, problems=Problems(strict=True))
    with pytest.raises(AnnotationError, match="got 4") as exc:
        list(ad.read_sequence("airplane/01"))
    assert exc.value.line == 7 and exc.value.path == root / MOT_AIR
