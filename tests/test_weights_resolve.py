"""resolve_checkpoint(): paths, registry names, model defaults, and the messages when missing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from box2mask.weights import (
    CATALOG,
    default_download_dir,
    resolve_checkpoint,
    search_dirs,
)
from weights_server import catalog_of, random_entry

from box2mask.errors import CheckpointError, UsageError


@pytest.fixture
def homes(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """``BOX2MASK_HOME`` and the user's home both under ``tmp_path``; returns the two weight dirs."""
    monkeypatch.setenv("BOX2MASK_HOME", str(tmp_path / "b2m"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path / "b2m" / "weights", tmp_path / "home" / ".cache" / "box2mask" / "weights"


def _place(d: Path, name: str, size: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    with open(p, "wb") as f:
        f.truncate(size)  # sparse: the right size without writing gigabytes
    return p


def test_search_dirs_order(homes, monkeypatch, tmp_path: Path) -> None:
    assert search_dirs() == list(homes)
    assert default_download_dir() == homes[0]
    monkeypatch.delenv("BOX2MASK_HOME")
    assert search_dirs() == [homes[1]]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert search_dirs() == [tmp_path / "xdg" / "box2mask" / "weights"]


def test_existing_path_is_used_as_is(tmp_path: Path, homes) -> None:
    f = tmp_path / "my.pth"
    f.write_bytes(b"x")
    assert resolve_checkpoint(f, "sam") == f
    assert resolve_checkpoint(str(f), "ros-sam") == f
    folder = tmp_path / "epoch_23"
    folder.mkdir()
    assert resolve_checkpoint(folder, "ros-sam") == folder


def test_missing_path_names_path_and_search_locations(tmp_path: Path, homes) -> None:
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint(tmp_path / "nope.pth", "sam")
    msg = str(e.value)
    assert str(tmp_path / "nope.pth") in msg and "does not exist" in msg
    assert str(homes[0]) in msg and str(homes[1]) in msg
    assert "sam-vit-b" in msg  # lists the names it would have understood


def test_name_found_in_home_before_cache(homes) -> None:
    e = CATALOG.entry("sam-vit-b")
    in_cache = _place(homes[1], e.file_name, e.size)
    assert resolve_checkpoint("sam-vit-b", "sam") == in_cache
    in_home = _place(homes[0], e.file_name, e.size)
    assert resolve_checkpoint("sam-vit-b", "sam") == in_home


def test_missing_name_says_what_to_get_and_where(homes) -> None:
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint("hq-sam-vit-l", "hq-sam")
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert "sam_hq_vit_l.pth" in msg
    assert "https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_l.pth" in msg
    assert f"put it in: {homes[0]}/" in msg
    assert "box2mask weights download hq-sam-vit-l" in msg


def test_truncated_copy_is_refused(homes) -> None:
    e = CATALOG.entry("sam-vit-b")
    _place(homes[1], e.file_name, 1000)
    with pytest.raises(CheckpointError, match="has 1000 bytes but sam-vit-b has 375042383"):
        resolve_checkpoint("sam-vit-b", "sam")


def test_name_of_any_kind_resolves_unloadable_is_refused(homes) -> None:
    # Kind checks belong to the loader, which reads the tensors; --model auto
    # resolves any name before it knows the kind.
    e = CATALOG.entry("hq-sam-vit-b")
    p = _place(homes[1], e.file_name, e.size)
    assert resolve_checkpoint("hq-sam-vit-b", "sam") == p
    listed_only = replace(e, name="hq-sam-listed", file_name="x.pth", url=e.url[: -len(e.file_name)] + "x.pth",
                          loadable=False, note="listed, not loadable")  # fmt: skip
    with pytest.raises(CheckpointError, match="hq-sam-listed cannot be used: listed, not loadable"):
        resolve_checkpoint("hq-sam-listed", "hq-sam", catalog=catalog_of(listed_only))


def test_injected_catalog_and_dirs(tmp_path: Path) -> None:
    entry = random_entry("tiny-test", b"0123456789")
    p = tmp_path / entry.file_name
    p.write_bytes(b"0123456789")
    assert resolve_checkpoint("tiny-test", "sam", catalog=catalog_of(entry), dirs=[tmp_path]) == p


# --- None: the model's default weights (MODELS.get(model).default_weights, in order) ----------


def _defaults(model: str) -> tuple[str, ...]:
    from box2mask.models.registry import MODELS

    return MODELS.get(model).default_weights


@pytest.mark.parametrize("model", ["sam", "hq-sam"])
def test_default_is_first_present_in_listed_order(homes, model: str) -> None:
    names = _defaults(model)
    assert len(names) >= 2 and all(CATALOG[n].kind == model for n in names)
    second = CATALOG[names[1]]
    p2 = _place(homes[1], second.file_name, second.size)
    assert resolve_checkpoint(None, model) == p2
    first = CATALOG[names[0]]
    p1 = _place(homes[1], first.file_name, first.size)
    assert resolve_checkpoint(None, model) == p1


@pytest.mark.parametrize("model", ["sam", "hq-sam"])
def test_default_missing_says_what_to_get(homes, model: str) -> None:
    first = CATALOG[_defaults(model)[0]]
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint(None, model)
    msg = str(e.value)
    assert f"--model {model}" in msg
    assert first.url in msg and f"box2mask weights download {first.name}" in msg
    assert str(homes[0]) in msg


def test_default_for_model_without_official_weights(homes) -> None:
    with pytest.raises(CheckpointError, match="ros-sam.*--checkpoint"):
        resolve_checkpoint(None, "ros-sam")


def test_default_for_unknown_model(homes) -> None:
    with pytest.raises(UsageError, match="unknown model"):
        resolve_checkpoint(None, "no-such-model")
