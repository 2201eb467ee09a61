"""The generic MOTChallenge adapter against the generator's truth, plus its bad-input reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from box2mask.adapters import ADAPTERS
from box2mask.adapters._files import printf_regex

from box2mask.errors import AnnotationError, DatasetNotFound, UsageError
from box2mask.problems import Problems
from tests.data.make_mot import HW, make_mot

MOT = ADAPTERS.get("mot")


@pytest.fixture()
def data(tmp_path: Path):
    return tmp_path, make_mot(tmp_path)


def test_frames_match_truth_default_category(data):
    root, truth = data
    ad = MOT(root)
    assert [(s.name, s.num_frames) for s in ad.list_sequences()] == [("seqA", 4), ("seqB", 2)]
    assert ad.categories() == [("object", "object")]
    for seq in ("seqA", "seqB"):
        frames = list(ad.read_sequence(seq))
        assert [f.frame_index for f in frames] == sorted(truth[seq])
        for f in frames:
            want = truth[seq][f.frame_index]
            assert f.image_hw == HW and f.file_name == f"{seq}/img1/{f.frame_index:06d}.jpg"
            assert f.track_id.tolist() == [t for t, _, _ in want]
            assert f.category.tolist() == ["object"] * len(want)
            np.testing.assert_array_equal(f.xyxy, np.array([b for _, _, b in want]).reshape(-1, 4))


def test_class_mapping_keeps_and_names_mapped_classes(data):
    root, truth = data
    ad = MOT(root, classes="2:airplane")
    f = next(ad.read_sequence("seqA"))
    assert f.track_id.tolist() == [2] and f.category.tolist() == ["airplane"]
    # seqB has no class column: its objects keep the default name
    assert next(ad.read_sequence("seqB")).category.tolist() == ["object"]
    assert ad.categories() == [("airplane", "airplane"), ("object", "object")]


def test_single_sequence_root_and_options(data):
    root, _ = data
    seq = root / "seqA"
    (seq / "img1").rename(seq / "frames")
    for p in (seq / "frames").iterdir():
        p.rename(p.with_name(f"f{int(p.stem)}.jpg"))
    ad = MOT(seq, images="frames", pattern="f%d.jpg", classes="1:car,2:ship")
    frames = list(ad.read_sequence("seqA"))
    assert [f.frame_index for f in frames] == [1, 2, 3, 4]
    assert frames[0].category.tolist() == ["car", "ship"] and frames[0].file_name == "frames/f1.jpg"


@pytest.mark.parametrize(
    "opts, error, match",
    [
        ({"pattern": "frame.jpg"}, UsageError, "exactly one %d field"),
        ({"classes": "1car"}, UsageError, "'1car' is not VALUE:NAME"),
        ({"class_column": 0}, UsageError, "1-based"),
        ({"images": "nope"}, DatasetNotFound, "expected .*/<seq>/nope/"),
    ],
)
def test_bad_options(data, opts, error, match):
    with pytest.raises(error, match=match):
        MOT(data[0], **opts)


def test_printf_regex():
    assert printf_regex("%06d.jpg").fullmatch("000012.jpg").group(1) == "000012"
    assert printf_regex("%06d.jpg").fullmatch("12.jpg") is None
    assert printf_regex("100%%_%d.png").fullmatch("100%_7.png").group(1) == "7"


GT = "seqA/gt/gt.txt"


def _append(text: str):
    def mutate(root: Path) -> None:
        p = root / GT
        p.write_text(p.read_text() + text)

    return mutate


BAD = [
    (
        "short-line",
        _append("2,9,1\n"),
        GT,
        10,
        "expected at least 6 fields frame,id,x,y,w,h, got 3",
        {},
    ),
    (
        "not-a-number",
        _append("2,9,x,1,2,2\n"),
        GT,
        10,
        "cannot read numbers from '2,9,x,1,2,2'",
        {},
    ),
    # a frame or id that is NaN, infinite or 2**53 and more (past float64's exact whole numbers)
    *(
        (
            f"frame-id-{name}",
            _append(row + "\n"),
            GT,
            10,
            f"frame and id must be finite numbers at most 2**53 - 1 in magnitude, got {got}",
            {},
        )
        for name, row, got in [
            ("inf", "inf,9,3,3,2,2", "'inf', '9'"),
            ("minus-inf", "2,-inf,3,3,2,2", "'2', '-inf'"),
            ("nan", "2,nan,3,3,2,2", "'2', 'nan'"),
            ("huge-id", "2,1e30,3,3,2,2", "'2', '1e30'"),
            ("huge-frame", "1e300,9,3,3,2,2", "'1e300', '9'"),
            ("2-53", "2,9007199254740992,3,3,2,2", "'2', '9007199254740992'"),
            ("past-2-53", "2,9007199254740993,3,3,2,2", "'2', '9007199254740993'"),
        ]
    ),
    (
        "leading-comma",
        _append(",2,9,3,3,2,2\n"),
        GT,
        10,
        "line starts with an empty field; dropped it",
        {2: [9]},
    ),
    (
        "outside",
        _append("2,9,64,0,5,5\n"),
        GT,
        10,
        "frame 2: box [64, 0, 69, 5] of track 9 lies entirely outside the 64x40 image; dropped",
        {},
    ),
    (
        "duplicate",
        _append("1,2,3,3,2,2\n"),
        GT,
        10,
        "frame 1: track id 2 appears twice (first at line 2); kept the first",
        {},
    ),
    (
        "past-the-end",
        _append("7,1,3,3,2,2\n"),
        GT,
        10,
        "annotations run to frame 7 but the images stop at frame 4: 1 annotated frame(s) 7..7 skipped",
        {},
    ),
    (
        "missing-image",
        lambda r: (r / "seqA/img1/000002.jpg").unlink(),
        GT,
        4,
        "frame 2: no image for this annotated frame; its boxes are skipped",
        {2: None},
    ),
    (
        "unreadable-image",
        lambda r: (r / "seqA/img1/000001.jpg").write_bytes(b""),
        "seqA/img1/000001.jpg",
        None,
        "frame 1: unreadable image (cannot read image size: not an image format PIL reads); skipped",
        {1: None},
    ),
    (
        "no-gt",
        lambda r: (r / GT).unlink(),
        GT,
        None,
        "annotation file not found; sequence skipped",
        "all",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_reported_and_the_rest_is_read(data, case):
    _, mutate, rel, line, message, changed = case
    root, truth = data
    mutate(root)
    problems = Problems()
    frames = {f.frame_index: f for f in MOT(root, problems=problems).read_sequence("seqA")}
    where = f"{root / rel}:{line}" if line else f"{root / rel}"
    # the fixture's three w = 0 rows are absent targets: counted in one note, not reported as errors
    notes = [str(r) for r in problems.reports if "skipped as absent targets" in str(r)]
    assert problems.counts["absent"] == (3 if notes else 0)
    assert [str(r) for r in problems.reports if str(r) not in notes] == [f"{where}: {message}"]
    if changed == "all":
        assert frames == {}
        return
    for k, want in truth["seqA"].items():
        if k in changed and changed[k] is None:
            assert k not in frames
            continue
        ids = [t for t, _, _ in want] + changed.get(k, [])
        assert frames[k].track_id.tolist() == ids


def test_absent_rows_are_counted_with_their_lines(data):
    root, _ = data
    problems = Problems(strict=True)  # not errors: --strict goes on
    list(MOT(root, problems=problems).read_sequence("seqA"))
    list(MOT(root, problems=problems).read_sequence("seqA"))  # a second adapter notes again
    assert problems.counts == {"absent": 6}
    assert str(problems.reports[0]) == (
        f"{root / 'seqA/gt/gt.txt'}:3: 3 row(s) with w <= 0, h <= 0 or NaN skipped as absent targets: line(s) 3, 6, 9"
    )


def test_ids_below_2_53_are_kept(data):
    root, truth = data
    big = 2**53 - 1
    _append(f"2,{big},3,3,2,2\n2,-{big},5,5,2,2\n")(root)
    problems = Problems()
    frames = {f.frame_index: f for f in MOT(root, problems=problems).read_sequence("seqA")}
    assert frames[2].track_id.tolist() == [t for t, _, _ in truth["seqA"][2]] + [big, -big]
    assert problems.counts == {"absent": 3}


@pytest.mark.parametrize("row", ["inf,9,3,3,2,2", "2,1e30,3,3,2,2"])
def test_strict_raises_on_a_frame_or_id_out_of_range(data, row):
    root, _ = data
    _append(row + "\n")(root)
    with pytest.raises(AnnotationError, match="gt.txt:10: frame and id must be finite numbers"):
        list(MOT(root, problems=Problems(strict=True)).read_sequence("seqA"))


def test_strict_raises(data):
    root, _ = data
    _append("2,9,1\n")(root)
    with pytest.raises(AnnotationError, match="got 3"):
        list(MOT(root, problems=Problems(strict=True)).read_sequence("seqA"))
