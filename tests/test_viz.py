"""``box2mask viz``: where the colours land, error panels, contact sheets, MP4s, CLI errors.

The dataset is ``tests/data/make_eval_coco.py`` (64×96 noise frames whose
ground-truth masks are known shapes); the predictions are ``box2mask
convert --model box`` output, so every predicted mask is its box. Pixel
positions below follow from that geometry (see the generator's docstring):
in sequence ``s1`` frame ``k`` the airplane (track 1) has the box
``x 4+k..24+k, y 6..26`` and the mask rows ``11..20`` only; ship 5 has the
box ``x 20..30, y 44..50`` and a mask reaching to ``x = 42``; ship 4 has the
box ``x 60..70, y 50..58`` and no mask.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import UsageError
from box2mask.viz import ERROR_COLOURS, contact_sheet, track_colour, visualize
from tests.data.make_eval_coco import HW, make_eval_coco

runner = CliRunner()
H, W = HW
ALPHA = 0.45  # the default fill opacity
ERROR_ALPHA = 0.6  # error_image's default


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, Path]:
    """``(dataset root, convert job folder)`` with box-filled predictions."""
    root = tmp_path_factory.mktemp("vizcoco")
    make_eval_coco(root)
    out = root.parent / (root.name + "-job")
    r = runner.invoke(
        app, ["convert", "--dataset", "coco", "--root", str(root), "--out", str(out), "--model", "box"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return root, out


def frame_rgb(root: Path, seq: str, k: int) -> np.ndarray:
    bgr = cv2.imread(str(root / "images" / seq / f"{k:06d}.png"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64)


def png_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64)


def blended(under: np.ndarray, colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    return np.round((1 - alpha) * under + alpha * np.asarray(colour, float))


def test_masks_are_filled_in_the_track_colour_and_background_is_untouched(job, tmp_path) -> None:
    root, out = job
    viz = tmp_path / "viz"
    visualize("coco", root, out, viz, sequences=["s1"], boxes=False)
    image = frame_rgb(root, "s1", 1)
    pic = png_rgb(viz / "s1" / "000001.png")
    assert pic.shape == (H, W, 3)
    # inside the airplane's box (away from its 1-px contour): its track colour at ALPHA
    ys, xs = slice(8, 24), slice(7, 23)
    assert np.abs(pic[ys, xs] - blended(image[ys, xs], track_colour(1), ALPHA)).max() <= 1
    # ship 5's box, inside
    assert np.abs(pic[46, 24] - blended(image[46, 24], track_colour(5), ALPHA)).max() <= 1
    # far from every box: the frame itself, bit for bit
    for y, x in [(60, 2), (2, 40), (30, 90), (60, 50)]:
        assert (pic[y, x] == image[y, x]).all(), (y, x)
    # the contour is the track colour at full strength
    assert (pic[6, 12] == track_colour(1)).all()


def test_a_track_keeps_its_colour_across_frames(job, tmp_path) -> None:
    root, out = job
    viz = tmp_path / "viz"
    visualize("coco", root, out, viz, sequences=["s1"], boxes=False)
    seen = []
    for k in (1, 2):
        image = frame_rgb(root, "s1", k)
        pic = png_rgb(viz / "s1" / f"{k:06d}.png")
        # the fill is (1 - a) image + a colour: solve for the colour at the airplane's centre
        y, x = 16, 14 + k
        seen.append((pic[y, x] - (1 - ALPHA) * image[y, x]) / ALPHA)
    assert np.abs(seen[0] - seen[1]).max() <= 3
    assert np.abs(seen[0] - np.asarray(track_colour(1), float)).max() <= 3
    # and the tracks of one frame differ
    colours = {track_colour(t) for t in range(1, 6)}
    assert len(colours) == 5


def test_error_panel_colours_false_positives_and_negatives_where_the_geometry_says(
    job, tmp_path
) -> None:
    root, out = job
    viz = tmp_path / "viz"
    summary = visualize("coco", root, out, viz, sequences=["s1"], gt=True, boxes=False)
    assert summary.frames == 2 and summary.frames_without_gt == 0
    image = frame_rgb(root, "s1", 1)
    pic = png_rgb(viz / "s1" / "000001.png")
    bar = pic.shape[0] - H
    assert bar > 0 and pic.shape[1] == 3 * W + 8  # three panels, 4-px gaps
    err = pic[bar:, 2 * (W + 4) :]
    grey = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)

    def expect(y: int, x: int, name: str) -> None:
        want = blended(image[y, x], ERROR_COLOURS[name], ERROR_ALPHA)
        assert np.abs(err[y, x] - want).max() <= 1, (y, x, name, err[y, x], want)

    # airplane: box rows 6..25 predicted, mask rows 11..20 only
    expect(8, 15, "fp")
    expect(23, 15, "fp")
    expect(15, 15, "tp")
    # ship 5: the mask reaches 12 px right of the box: ground truth only
    expect(46, 35, "fn")
    expect(46, 24, "tp")
    # ship 4 has no ground-truth mask: its prediction is not judged (grey, not red)
    assert (err[54, 65] == grey[54, 65] // 2).all()
    # background: grey at half brightness
    assert (err[60, 2] == grey[60, 2] // 2).all()
    # the first panel is the prediction overlay of the frame
    left = pic[bar:, :W]
    assert np.abs(left[15, 15] - blended(image[15, 15], track_colour(1), ALPHA)).max() <= 1


def test_frames_without_ground_truth_get_the_prediction_panel_only(job, tmp_path) -> None:
    root, out = job
    summary = visualize("coco", root, out, tmp_path / "viz", sequences=["s3"], gt=True)
    assert summary.frames == 1 and summary.frames_without_gt == 1
    assert any("no ground-truth mask" in n for n in summary.notes)
    assert png_rgb(tmp_path / "viz" / "s3" / "000001.png").shape == (H, W, 3)


@pytest.mark.parametrize(("gt", "panels"), [(False, 1), (True, 3)])
def test_contact_sheet_grid(job, tmp_path, gt: bool, panels: int) -> None:
    root, out = job
    viz = tmp_path / "viz"
    thumb = 48
    visualize("coco", root, out, viz, gt=gt, thumb_width=thumb, columns=6)
    for seq, n in (("s1", 2), ("s2", 2)):
        pic = png_rgb(viz / seq / "000001.png")
        tw = round(pic.shape[1] * thumb / W)  # thumb px per panel
        th = round(pic.shape[0] * tw / pic.shape[1])
        cols = min(6 // panels, n)
        rows = -(-n // cols)
        sheet = png_rgb(viz / seq / "contact-sheet.png")
        assert sheet.shape == (rows * (th + 4) + 4, cols * (tw + 4) + 4, 3)
    # with --gt two frames side by side, three panels each: one row of two
    if gt:
        assert sheet.shape[1] == 2 * (round((3 * W + 8) * thumb / W) + 4) + 4


def test_contact_sheet_layout_and_sheet_frames(job, tmp_path) -> None:
    tiles = [np.full((10, 20, 3), v, np.uint8) for v in (0, 60, 120, 180, 240)]
    sheet = contact_sheet(tiles, columns=2, gap=4)
    assert sheet.shape == (3 * (10 + 4) + 4, 2 * (20 + 4) + 4, 3)
    assert (sheet[4 + 14 + 5, 4 + 24 + 5] == 180).all()  # row 1, column 1: the fourth tile
    assert (sheet[2 * 14 + 4 + 5, 24 + 4 + 5] == 255).all()  # the empty cell stays white
    root, out = job
    visualize("coco", root, out, tmp_path / "viz", sequences=["s1"], sheet_frames=1)
    one = png_rgb(tmp_path / "viz" / "s1" / "contact-sheet.png")
    assert one.shape == (round(H * 320 / W) + 8, 320 + 8, 3)


def test_mp4_per_sequence_is_readable_with_every_frame(job, tmp_path) -> None:
    root, out = job
    viz = tmp_path / "viz"
    summary = visualize("coco", root, out, viz, gt=True, mp4=True)
    assert sorted(p.name for p in summary.videos) == ["s1.mp4", "s2.mp4", "s3.mp4"]
    cap = cv2.VideoCapture(str(viz / "s1.mp4"))
    assert cap.isOpened()
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    pic = png_rgb(viz / "s1" / "000001.png")
    assert n == 2
    assert shape == (pic.shape[0] - pic.shape[0] % 2, pic.shape[1] - pic.shape[1] % 2, 3)


def test_every_and_max_frames(job, tmp_path) -> None:
    root, out = job
    s = visualize("coco", root, out, tmp_path / "a", sequences=["s1", "s2"], max_frames=1)
    assert s.frames == 2
    assert sorted(p.name for p in (tmp_path / "a" / "s1").glob("0*.png")) == ["000001.png"]
    s = visualize("coco", root, out, tmp_path / "b", sequences=["s1"], every=2)
    assert s.frames == 1


def test_predictions_that_match_no_frame_are_an_error(job, tmp_path) -> None:
    root, _ = job
    other = tmp_path / "other"
    other.mkdir()
    (other / "p.json").write_text(
        '{"images": [{"id": 1, "file_name": "x.png", "width": 96, "height": 64}],'
        ' "annotations": [], "categories": []}'
    )
    with pytest.raises(UsageError, match="none of its images matches"):
        visualize("coco", root, other / "p.json", tmp_path / "viz")


def cli(*args: str):  # noqa: ANN201
    return runner.invoke(app, ["viz", *args])


def test_cli_writes_pictures_and_reports_them(job, tmp_path) -> None:
    root, out = job
    viz = tmp_path / "viz"
    r = cli("-d", "coco", "--root", str(root), "--job", str(out), "--out", str(viz), "--gt")
    assert r.exit_code == 0, r.output
    assert "contact-sheet.png" in r.output and "prediction panel only" in r.output
    assert (viz / "s2" / "000002.png").is_file()


def test_cli_errors_name_the_option_or_file(job, tmp_path) -> None:
    root, out = job
    base = ["-d", "coco", "--root", str(root), "--out", str(tmp_path / "v")]
    r = cli(*base)
    assert r.exit_code == 2 and "--predictions" in r.output and "--job" in r.output
    r = cli(*base, "--job", str(out), "--predictions", str(out / "annotations.json"))
    assert r.exit_code == 2 and "exactly one of --predictions" in r.output
    missing = tmp_path / "nope.json"
    r = cli(*base, "--predictions", str(missing))
    assert r.exit_code == 2 and "--predictions" in r.output and "nope.json" in r.output
    r = cli(*base, "--job", str(tmp_path / "nojob"))
    assert r.exit_code == 2 and "--job" in r.output and "nojob" in r.output
    r = cli(*base, "--job", str(tmp_path))  # a folder, but not a convert job
    assert r.exit_code == 2 and "annotations.json" in r.output
    r = cli(*base, "--job", str(out), "--sequences", "s9")
    assert r.exit_code == 2 and "'s9'" in r.output
    r = cli(*base, "--job", str(out), "--every", "0")
    assert r.exit_code == 2 and "--every" in r.output
    assert not (tmp_path / "v").exists()
