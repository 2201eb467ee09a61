"""Output files get the mode the umask gives a normally created file (issue 16 item 4).

The atomic writes go through ``mkstemp``, which creates files 0600 whatever
the umask: on a shared cluster nobody else could read the masks. Final files
must be ``0666 & ~umask``, folders ``0777 & ~umask``, for convert (COCO, PNG,
sidecars, the job's state) and merge outputs alike.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import box2mask
from box2mask.io import atomic_write_bytes
from box2mask.merge import merge
from tests.data.make_viso_many import make_viso_many


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(top: Path) -> tuple[dict[str, int], dict[str, int]]:
    files, dirs = {}, {}
    for p in [top, *top.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        (dirs if p.is_dir() else files)[p.relative_to(top).as_posix()] = mode
    return files, dirs


def _check(top: Path, umask: int) -> None:
    files, dirs = _modes(top)
    assert files, "nothing written"
    bad_files = {k: oct(v) for k, v in files.items() if v != 0o666 & ~umask}
    bad_dirs = {k: oct(v) for k, v in dirs.items() if v != 0o777 & ~umask}
    assert not bad_files, f"umask {umask:03o}: file modes {bad_files}"
    assert not bad_dirs, f"umask {umask:03o}: folder modes {bad_dirs}"


def test_atomic_write_gives_the_umask_mode(tmp_path, umask):
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"data")
    assert stat.S_IMODE((tmp_path / "a" / "x.bin").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o777 & ~umask
    # replacing an existing file gives the same mode (not the old file's, not 0600)
    os.chmod(tmp_path / "a" / "x.bin", 0o600)
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"again")
    assert stat.S_IMODE((tmp_path / "a" / "x.bin").stat().st_mode) == 0o666 & ~umask


def test_convert_and_merge_outputs_follow_the_umask(tmp_path, umask):
    root = tmp_path / "viso"
    make_viso_many(root, (3, 2))
    base = dict(dataset="viso", root=root, model="box", formats=("coco", "png"))
    out = tmp_path / "out"
    box2mask.convert(out=out, **base)
    assert (out / "annotations.json").is_file() and list(out.rglob("*.png"))
    assert list(out.rglob("*.json"))  # sidecars and parts
    _check(out, umask)  # COCO, PNGs, sidecars, and the job's own state

    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    box2mask.convert(out=s1, shard="1/2", **base)
    box2mask.convert(out=s2, shard="2/2", **base)
    dest = tmp_path / "merged" / "all.json"
    merge([s1, s2], dest)
    _check(tmp_path / "merged", umask)
