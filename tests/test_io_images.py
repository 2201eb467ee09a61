"""Frame images as the engine reads them (box2mask/io.py read_image): bytes after the end
marker are not truncation, a file cut short is refused.

Real files carry data after their JPEG EOI or PNG IEND: a phone's motion photo appends
an MP4, MPF files a second JPEG, downloads and tools pad or append trailers. OpenCV
decodes such a file fully (its decoder stops at the marker), so it is read; a file cut
short (no end marker after its image data, zero padding of a partial download or not)
is still refused, because OpenCV would decode it into a partly grey image without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from box2mask.errors import AnnotationError
from box2mask.io import jpeg_end, png_end, read_image, truncation
from tests.cli_helpers import convert_viso

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 255, (64, 96, 3), dtype=np.uint8)


def _encode(ext: str, *params: int, image: np.ndarray = IMAGE) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _decoded(data: bytes) -> np.ndarray:
    return cv2.cvtColor(
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


def _with_thumbnail(jpeg: bytes) -> bytes:
    """``jpeg`` with an APP1 segment holding a small JPEG, as EXIF's thumbnail is held."""
    payload = b"Exif\x00\x00" + _encode(".jpg", image=IMAGE[:16, :16])
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


JPEGS = {
    "baseline": _encode(".jpg"),
    "progressive": _encode(".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "restart-markers": _encode(".jpg", cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
    "exif-thumbnail": _with_thumbnail(_encode(".jpg")),
}
TRAILERS = {
    "zeros-4k": bytes(4096),
    "motion-photo-mp4": b"\x00\x00\x00\x18ftypmp42" + RNG.bytes(64 * 1024),
    "second-jpeg-mpf": _encode(".jpg", cv2.IMWRITE_JPEG_QUALITY, 30),
    "html-page": b"<html><body>" + b"x" * 3000 + b"</body></html>\n",
}


@pytest.mark.parametrize("trailer", TRAILERS, ids=list(TRAILERS))
@pytest.mark.parametrize("kind", JPEGS, ids=list(JPEGS))
def test_a_jpeg_with_bytes_after_its_end_marker_is_read_in_full(tmp_path: Path, kind, trailer):
    jpeg = JPEGS[kind]
    path = tmp_path / "000001.jpg"
    path.write_bytes(jpeg + TRAILERS[trailer])
    assert truncation(path.read_bytes()) is None
    assert jpeg_end(path.read_bytes()) == len(jpeg)
    np.testing.assert_array_equal(read_image(path), _decoded(jpeg))  # every pixel, as without


@pytest.mark.parametrize("padding", [b"", bytes(4096)], ids=["cut", "cut-then-zero-padded"])
@pytest.mark.parametrize("kind", JPEGS, ids=list(JPEGS))
def test_a_jpeg_cut_short_is_refused(tmp_path: Path, kind, padding):
    jpeg = JPEGS[kind]
    path = tmp_path / "000001.jpg"
    path.write_bytes(jpeg[: len(jpeg) * 2 // 3] + padding)
    with pytest.raises(AnnotationError, match="JPEG has no end-of-image marker"):
        read_image(path)


def test_the_thumbnail_end_marker_is_not_taken_for_the_image_end(tmp_path: Path) -> None:
    jpeg = JPEGS["exif-thumbnail"]
    cut = jpeg.rindex(b"\xff\xda")  # the main image's scan (the thumbnail's comes first): cut in it
    data = jpeg[: cut + 40] + bytes(2048)
    assert b"\xff\xd9" in data  # the thumbnail's, inside APP1
    assert jpeg_end(data) is None and truncation(data) is not None


def test_a_png_with_bytes_after_iend_is_read_and_a_cut_one_refused(tmp_path: Path) -> None:
    png = _encode(".png")
    path = tmp_path / "000001.png"
    path.write_bytes(png + TRAILERS["motion-photo-mp4"])
    assert png_end(path.read_bytes()) == len(png)
    np.testing.assert_array_equal(read_image(path), _decoded(png))
    path.write_bytes(png[: len(png) * 2 // 3] + bytes(4096))
    with pytest.raises(AnnotationError, match="PNG has no IEND chunk"):
        read_image(path)


def test_convert_reads_a_frame_with_a_long_trailer(tmp_path: Path) -> None:
    from data.bad_inputs import build_viso_truncated_jpeg

    root = build_viso_truncated_jpeg(tmp_path / "data")
    frame = root / "mot" / "plane" / "001" / "img" / "000002.jpg"
    first = (root / "mot" / "plane" / "001" / "img" / "000001.jpg").read_bytes()
    frame.write_bytes(first + TRAILERS["motion-photo-mp4"])  # the cut frame made whole, plus 64 KiB
    res = convert_viso(root, tmp_path / "o", "--model", "classical", "--strict")
    assert res.exit_code == 0, res.output
    assert "skipped:" not in res.output and "000002.jpg" not in res.output, res.output
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    plane = {i["id"]: i["frame_index"] for i in coco["images"] if i["sequence"] == "plane/001"}
    assert sorted(plane.values()) == [1, 2]
    assert {plane[a["image_id"]] for a in coco["annotations"] if a["image_id"] in plane} == {1, 2}
