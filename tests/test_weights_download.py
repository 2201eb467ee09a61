"""download() and verify_file() against a local HTTP server (tests/weights_server.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from box2mask.weights import download, sha256_file, source_url, verify_file
from weights_server import LocalServer, ServerControl, catalog_of, random_entry

from box2mask.errors import CheckpointError, UsageError

SIZE = 5000


def _data(seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, SIZE, dtype=np.uint8).tobytes()


@pytest.fixture
def data() -> bytes:
    return _data()


@pytest.fixture
def entry(data: bytes):
    return random_entry("tiny-test", data)


@pytest.fixture
def control(entry, data: bytes) -> ServerControl:
    return ServerControl(files={entry.file_name: data})


@pytest.fixture
def server(control: ServerControl):
    with LocalServer(control) as url:
        yield url


def test_download_installs_verified_file(tmp_path: Path, entry, data, server, control) -> None:
    seen: list[tuple[int, int]] = []
    path = download(entry, tmp_path, mirror=server, progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / entry.file_name
    assert path.read_bytes() == data
    assert not (tmp_path / (entry.file_name + ".part")).exists()
    assert seen[-1] == (SIZE, SIZE)
    assert control.requests == [("/" + entry.file_name, None)]


def test_download_by_name_through_catalog_and_env_mirror(
    tmp_path: Path, entry, data, server, monkeypatch
) -> None:
    monkeypatch.setenv("BOX2MASK_WEIGHTS_MIRROR", server + "/")
    path = download("tiny-test", tmp_path, catalog=catalog_of(entry))
    assert path.read_bytes() == data


def test_interrupted_transfer_then_resume(tmp_path: Path, entry, data, server, control) -> None:
    control.cut_after = 1800
    with pytest.raises(CheckpointError, match=r"interrupted after 1800 of 5000 bytes.*resume"):
        download(entry, tmp_path, mirror=server)
    part = tmp_path / (entry.file_name + ".part")
    assert part.read_bytes() == data[:1800]
    assert not (tmp_path / entry.file_name).exists()

    control.cut_after = None
    seen: list[int] = []
    path = download(entry, tmp_path, mirror=server, progress=lambda d, t: seen.append(d))
    assert path.read_bytes() == data
    assert control.requests[-1][1] == "bytes=1800-"
    assert seen[0] == 1800  # progress starts at the resumed offset
    assert not part.exists()


def test_two_interruptions_then_resume(tmp_path: Path, entry, data, server, control) -> None:
    control.cut_after = 1000
    for _ in range(2):
        with pytest.raises(CheckpointError, match="interrupted"):
            download(entry, tmp_path, mirror=server)
    assert [r for _, r in control.requests] == [None, "bytes=1000-"]
    control.cut_after = None
    assert download(entry, tmp_path, mirror=server).read_bytes() == data
    assert control.requests[-1][1] == "bytes=2000-"


def test_server_ignoring_range_restarts_from_zero(
    tmp_path: Path, entry, data, server, control
) -> None:
    # A stale, wrong prefix: if it were kept and appended to, the hash would fail.
    part = tmp_path / (entry.file_name + ".part")
    part.write_bytes(b"\0" * 1234)
    control.honour_range = False
    path = download(entry, tmp_path, mirror=server)
    assert control.requests[-1][1] == "bytes=1234-"  # it asked to resume...
    assert path.read_bytes() == data  # ...got 200 and rewrote from byte 0


def test_wrong_sha256_is_refused_and_part_kept(tmp_path: Path, data, server, control) -> None:
    bad = random_entry("tiny-test", data, sha256="0" * 64)
    with pytest.raises(CheckpointError, match=r"sha256 .* expected 0{64}.*NOT installed") as e:
        download(bad, tmp_path, mirror=server)
    assert str(tmp_path / (bad.file_name + ".part")) in str(e.value)
    assert not (tmp_path / bad.file_name).exists()
    assert (tmp_path / (bad.file_name + ".part")).read_bytes() == data

    # The next try does not resume onto the full-size bad file forever: it starts over.
    with pytest.raises(CheckpointError, match="NOT installed"):
        download(bad, tmp_path, mirror=server)
    assert control.requests[-1][1] is None
    assert not (tmp_path / bad.file_name).exists()


def test_full_size_good_part_is_installed_without_a_request(
    tmp_path: Path, entry, data, server, control
) -> None:
    (tmp_path / (entry.file_name + ".part")).write_bytes(data)
    assert download(entry, tmp_path, mirror=server).read_bytes() == data
    assert control.requests == []


def test_existing_good_file_is_not_downloaded_again(
    tmp_path: Path, entry, data, server, control
) -> None:
    (tmp_path / entry.file_name).write_bytes(data)
    download(entry, tmp_path, mirror=server)
    assert control.requests == []


def test_existing_corrupt_file_is_replaced(tmp_path: Path, entry, data, server, control) -> None:
    (tmp_path / entry.file_name).write_bytes(_data(seed=1))
    assert download(entry, tmp_path, mirror=server).read_bytes() == data
    assert len(control.requests) == 1


@pytest.mark.parametrize("status", [500, 404])
def test_server_error_names_url_and_status(tmp_path: Path, entry, server, control, status) -> None:
    control.fail_status = status
    with pytest.raises(CheckpointError, match=rf"{server}/{entry.file_name} failed: HTTP {status}"):
        download(entry, tmp_path, mirror=server)
    assert not (tmp_path / entry.file_name).exists()


def test_unreachable_server_is_a_checkpoint_error(tmp_path: Path, entry) -> None:
    closed = LocalServer(ServerControl(files={}))
    url = closed.url
    closed.httpd.server_close()  # nothing listens on that port any more
    with pytest.raises(CheckpointError, match=f"download of {url}/{entry.file_name} failed"):
        download(entry, tmp_path, mirror=url, timeout=5)


def test_server_sending_too_much_is_refused(tmp_path: Path, data, server, control) -> None:
    short = random_entry("tiny-test", data[:100])
    with pytest.raises(CheckpointError, match="more than the expected 100 bytes"):
        download(short, tmp_path, mirror=server)
    assert not (tmp_path / short.file_name).exists()


def test_non_http_mirror_is_refused(entry) -> None:
    with pytest.raises(UsageError, match="http"):
        source_url(entry, "file:///tmp")
    assert source_url(entry, "https://mirror.example/w/") == (
        "https://mirror.example/w/" + entry.file_name
    )
    assert source_url(entry) == entry.url


def test_unknown_name_lists_known_names(tmp_path: Path, entry) -> None:
    with pytest.raises(UsageError, match="unknown weights name 'nope'; known: tiny-test"):
        download("nope", tmp_path, catalog=catalog_of(entry))


def test_one_sha256_for_files_and_checkpoint_folders(tmp_path: Path, data) -> None:
    """``sha256_file`` (box2mask.io): a file's hash; a folder's is its files' bytes in sorted
    path order (the authors' checkpoint folder in a job's identity), with progress in bytes."""
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "model_1.safetensors").write_bytes(data[:3000])
    (folder / "model.safetensors").write_bytes(data[3000:])
    (folder / "sub" / "a.json").write_bytes(b"{}")
    seen: list[tuple[int, int]] = []
    got = sha256_file(folder, lambda done, total: seen.append((done, total)))
    want = hashlib.sha256(data[3000:] + data[:3000] + b"{}").hexdigest()  # sorted paths
    assert got == want and seen[-1] == (SIZE + 2, SIZE + 2)


def test_verify_file(tmp_path: Path, entry, data) -> None:
    good = tmp_path / "good.pth"
    good.write_bytes(data)
    verify_file(good, entry)
    assert sha256_file(good) == hashlib.sha256(data).hexdigest()

    flipped = bytearray(data)
    flipped[SIZE // 2] ^= 1
    (tmp_path / "bad.pth").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="does not match tiny-test's"):
        verify_file(tmp_path / "bad.pth", entry)
    (tmp_path / "short.pth").write_bytes(data[:-1])
    with pytest.raises(CheckpointError, match="has 4999 bytes, tiny-test has 5000"):
        verify_file(tmp_path / "short.pth", entry)
    with pytest.raises(CheckpointError, match="does not exist"):
        verify_file(tmp_path / "missing.pth", entry)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX lock")
def test_concurrent_download_of_same_file_is_refused(tmp_path: Path, entry, server) -> None:
    import fcntl

    part = tmp_path / (entry.file_name + ".part")
    with open(part, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(CheckpointError, match="another download"):
            download(entry, tmp_path, mirror=server)
