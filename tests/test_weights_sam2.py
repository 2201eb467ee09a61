"""``box2mask weights`` with the SAM 2.1 entries: download by name through a local mirror, verify."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from box2mask.weights import CATALOG
from weights_server import LocalServer, ServerControl, catalog_of

import box2mask.cli.weights as cli_weights
from tests.cli_helpers import cli

pytestmark = pytest.mark.usefixtures("weights_home")  # weights dirs under tmp_path (conftest)


def test_download_sam2_large_by_name(tmp_path: Path, monkeypatch) -> None:
    """The real entry's name, file name and URL path; stand-in bytes (the real file is 898 MB)."""
    real = CATALOG.entry("sam2.1-hiera-large")
    data = np.random.default_rng(5).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    entry = dataclasses.replace(real, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(cli_weights, "CATALOG", catalog_of(entry))
    control = ServerControl(files={"sam2.1_hiera_large.pt": data})
    with LocalServer(control) as url:
        r = cli(
            "weights", "download", "sam2.1-hiera-large", "--dir", tmp_path / "w", "--mirror", url
        )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "sam2.1_hiera_large.pt").read_bytes() == data
    assert control.requests[0][0] == "/sam2.1_hiera_large.pt"
    assert real.url.endswith("/segment_anything_2/092824/sam2.1_hiera_large.pt")


def test_download_refuses_a_file_that_is_not_the_published_one(tmp_path: Path) -> None:
    """With the real catalog, bytes of another size/hash are refused and nothing is installed."""
    control = ServerControl(files={"sam2.1_hiera_tiny.pt": b"not the checkpoint" * 10})
    with LocalServer(control) as url:
        r = cli("weights", "download", "sam2.1-hiera-tiny", "--dir", tmp_path, "--mirror", url)
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "sam2.1_hiera_tiny.pt").exists()
    assert "Traceback" not in r.output


def test_list_shows_the_sam2_entries() -> None:
    r = cli("weights", "list")
    assert r.exit_code == 0, r.output
    for name in ("sam2.1-hiera-tiny", "sam2.1-hiera-small", "sam2.1-hiera-base-plus",
                 "sam2.1-hiera-large"):  # fmt: skip
        assert name in r.output
