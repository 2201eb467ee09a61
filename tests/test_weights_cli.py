"""``box2mask weights list|download|verify`` through typer's CliRunner (no network)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from box2mask.weights import CATALOG, WeightsEntry
from tiny_sam import write_authors_folder, write_hq_sam_pth, write_ros_sam_file, write_sam_pth
from typer.testing import CliRunner
from weights_server import LocalServer, ServerControl, catalog_of, random_entry

import box2mask.cli.commands  # noqa: F401  (registers the subcommands)
import box2mask.cli.weights as cli_weights
from box2mask.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def homes(weights_home: Path) -> Path:
    """Weights dirs under tmp_path (tests/conftest.py); the default weights dir."""
    return weights_home


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint of each layout, written once for the module (writing costs ~1 s)."""
    d = tmp_path_factory.mktemp("tiny")
    return {
        "sam": write_sam_pth(d / "sam"),
        "hq-sam": write_hq_sam_pth(d / "hq"),
        "ros-sam": write_ros_sam_file(d / "ros"),
        "ros-sam-folder": write_authors_folder(d / "authors"),
    }


def _invoke(*args: str):
    return runner.invoke(app, ["weights", *args])


def _entry_for(path: Path, name: str, kind: str = "sam", arch: str = "custom") -> WeightsEntry:
    data = path.read_bytes()
    return WeightsEntry(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        arch=arch,
        file_name=path.name,
        url=f"https://example.invalid/{path.name}",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        sha256_source="computed by the test",
    )


@pytest.fixture
def sam_tiny(homes: Path, tiny_files: dict[str, Path], monkeypatch) -> Path:
    """The tiny SAM file in the default weights dir, listed in the catalog as ``sam-tiny``."""
    homes.mkdir(parents=True)
    f = Path(shutil.copy(tiny_files["sam"], homes))
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(_entry_for(f, "sam-tiny")))
    return f


# --- list ----------------------------------------------------------------------------------


def test_list_shows_every_entry_and_where_files_are(homes: Path) -> None:
    homes.mkdir(parents=True)
    present = homes / CATALOG["sam-vit-b"].file_name
    present.write_bytes(b"not the real file")
    r = _invoke("list")
    assert r.exit_code == 0, r.output
    for name in CATALOG:
        assert name in r.output
    assert "375.0 MB" in r.output and "40.7 MB" in r.output  # sam-vit-b, mobile-sam-vit-t
    assert str(present) in r.output
    assert f"{homes}/" in r.output  # the search dirs and the download target


def test_list_verify_flags_a_bad_file(homes: Path) -> None:
    homes.mkdir(parents=True)
    (homes / CATALOG["hq-sam-vit-b"].file_name).write_bytes(b"truncated")
    r = _invoke("list", "--verify")
    assert r.exit_code == 2
    assert "BAD" in r.output and "incomplete" in r.output
    assert "failed verification" in r.output


def test_list_verify_ok(sam_tiny: Path) -> None:
    r = _invoke("list", "--verify")
    assert r.exit_code == 0, r.output
    assert "sam-tiny" in r.output and " ok " in r.output


# --- download ------------------------------------------------------------------------------


def test_download_through_local_mirror(tmp_path: Path, monkeypatch) -> None:
    data = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    entry = random_entry("tiny-test", data)
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(entry))
    control = ServerControl(files={entry.file_name: data})
    with LocalServer(control) as url:
        r = _invoke("download", "tiny-test", "--dir", str(tmp_path / "w"), "--mirror", url)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / entry.file_name).read_bytes() == data
    assert str(tmp_path / "w" / entry.file_name) in r.output


def test_download_default_dir_and_env_mirror(homes: Path, monkeypatch) -> None:
    data = b"abc" * 1000
    entry = random_entry("tiny-test", data)
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(entry))
    with LocalServer(ServerControl(files={entry.file_name: data})) as url:
        monkeypatch.setenv("BOX2MASK_WEIGHTS_MIRROR", url)
        r = _invoke("download", "tiny-test")
    assert r.exit_code == 0, r.output
    assert (homes / entry.file_name).read_bytes() == data


def test_download_server_error_is_one_message_exit_2(tmp_path: Path, monkeypatch) -> None:
    entry = random_entry("tiny-test", b"x" * 100)
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(entry))
    control = ServerControl(files={}, fail_status=500)
    with LocalServer(control) as url:
        r = _invoke("download", "tiny-test", "--dir", str(tmp_path), "--mirror", url)
    assert r.exit_code == 2
    assert f"{url}/{entry.file_name} failed: HTTP 500" in r.output
    assert "Traceback" not in r.output


def test_download_unknown_name(tmp_path: Path) -> None:
    r = _invoke("download", "sam-vit-x", "--dir", str(tmp_path))
    assert r.exit_code == 2
    assert "unknown weights name 'sam-vit-x'" in r.output


# --- verify --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sam", "hq-sam", "ros-sam", "ros-sam-folder"])
def test_verify_identifies_each_layout(tiny_files: dict[str, Path], kind: str) -> None:
    path = tiny_files[kind]
    model = "ros-sam" if kind.startswith("ros-sam") else kind
    r = _invoke("verify", str(path))
    assert r.exit_code == 0, r.output
    assert f"{model} (kind {kind})" in r.output
    assert re.search(r"architecture\s+custom", r.output)  # the tiny encoder is no official one
    assert "embed_dim 32, depth 2, heads 2, global attention in blocks [1]" in r.output
    assert ("LoRA" in r.output) == (model == "ros-sam")
    if path.is_file():
        assert hashlib.sha256(path.read_bytes()).hexdigest() in r.output
        assert "matches no official file" in r.output


def test_verify_recognises_an_official_file_by_hash(tiny_files, monkeypatch) -> None:
    f = tiny_files["hq-sam"]
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(_entry_for(f, "hq-tiny", kind="hq-sam")))
    r = _invoke("verify", str(f))
    assert r.exit_code == 0, r.output
    assert "hq-tiny (sha256 matches" in r.output


def test_verify_by_registry_name_searches_the_dirs(sam_tiny: Path) -> None:
    r = _invoke("verify", "sam-tiny")
    assert r.exit_code == 0, r.output
    assert str(sam_tiny) in r.output and "sam-tiny (sha256 matches" in r.output


def test_verify_corrupt_official_file_is_exit_2(tmp_path: Path) -> None:
    f = tmp_path / CATALOG["sam-vit-b"].file_name
    f.write_bytes(b"\0" * 1000)
    r = _invoke("verify", str(f))
    assert r.exit_code == 2
    assert "named like sam-vit-b" in r.output and "weights download sam-vit-b" in r.output


def test_verify_not_a_checkpoint_is_one_message(tmp_path: Path) -> None:
    f = tmp_path / "notes.pth"
    f.write_bytes(b"hello")
    r = _invoke("verify", str(f), "--no-hash")
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and str(f) in r.output
    assert "Traceback" not in r.output


def test_verify_missing(tmp_path: Path) -> None:
    r = _invoke("verify", str(tmp_path / "nope.pth"))
    assert r.exit_code == 2
    assert "does not exist" in r.output
    r = _invoke("verify", "sam-vit-h")
    assert r.exit_code == 2
    assert "weights download sam-vit-h" in r.output
