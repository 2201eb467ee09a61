"""Shared fixtures: tiny checkpoints and small datasets made by the generators in tests/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests.data...` imports
# CLI output is read by tests: a wide console keeps rich from cutting lines.
os.environ["COLUMNS"] = "240"

# Two cores on the dev machines and CI: keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` tests need CUDA: skipped on machines without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_weights_dirs(tmp_path_factory, monkeypatch):
    """No test sees the developer's real checkpoints or dataset folders."""
    home = tmp_path_factory.mktemp("box2mask_home")
    monkeypatch.setenv("BOX2MASK_HOME", str(home))
    monkeypatch.setenv("HOME", str(home / "user"))
    monkeypatch.delenv("BOX2MASK_DATA", raising=False)
    monkeypatch.delenv("BOX2MASK_WEIGHTS_MIRROR", raising=False)


@pytest.fixture
def weights_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``BOX2MASK_HOME`` and ``HOME`` under ``tmp_path``, no cache dir or mirror from the
    environment, a wide console so table cells are not wrapped; returns the default weights
    dir (not created)."""
    monkeypatch.setenv("BOX2MASK_HOME", str(tmp_path / "b2m"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("BOX2MASK_WEIGHTS_MIRROR", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    return tmp_path / "b2m" / "weights"


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random SAM / HQ-SAM / ROS-SAM checkpoints in the official layouts."""
    from tests.tiny_sam import (
        write_authors_folder,
        write_hq_sam_pth,
        write_ros_sam_file,
        write_sam_pth,
    )

    d = tmp_path_factory.mktemp("ckpt")
    return {
        "sam": write_sam_pth(d),
        "hq-sam": write_hq_sam_pth(d),
        "ros-sam": write_ros_sam_file(d),
        "ros-sam-folder": write_authors_folder(d),
    }


@pytest.fixture(scope="session")
def viso_root(tmp_path_factory):
    """A tiny VISO MOT layout and its truth (see tests/data/make_viso.py)."""
    from tests.data.make_viso import make_viso_mot

    root = tmp_path_factory.mktemp("viso")
    truth = make_viso_mot(root)
    return root, truth


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """Tiny SAM and HQ-SAM checkpoints (``sam_tiny.pth``, ``sam_hq_tiny.pth``) and a ROS-SAM layout in ``ros/``."""
    from tests.data.make_rossam import make_rossam
    from tests.tiny_sam import write_hq_sam_pth, write_sam_pth

    d = tmp_path_factory.mktemp("train")
    write_sam_pth(d)
    write_hq_sam_pth(d)
    make_rossam(d / "ros")
    return d
