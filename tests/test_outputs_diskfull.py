"""A full disk names the file being written (docs/jobs.md, Faults).

The kernel's ``ENOSPC`` from ``write()`` or ``fsync()`` carries no file name;
the atomic writer must add the name of the file it was writing, so that the
``stopped: no space left on device while writing FILE`` message holds for a
real full disk, not only for an injected error that already names the file.
"""

from __future__ import annotations

import errno
import io
import os

import pytest
from typer.testing import CliRunner

import box2mask.io
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from tests.data.make_viso_many import make_viso_many

runner = CliRunner()


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # pragma: no cover - not Linux
        return ""


def _full_disk(monkeypatch, how: str, hit) -> list[str]:
    """Make ``write`` or ``fsync`` of temp files whose path satisfies ``hit`` fail as a full disk does."""
    failed: list[str] = []
    real_fsync, real_fdopen = os.fsync, os.fdopen

    def fsync(fd):
        path = _fd_path(fd)
        if path.endswith(".tmp") and hit(path):
            failed.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")  # no file name, like the kernel
        return real_fsync(fd)

    class FullFile(io.BufferedWriter):
        def write(self, b):
            failed.append(self.name)
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):
        path = _fd_path(fd)
        if "w" in mode and path.endswith(".tmp") and hit(path):
            return FullFile(io.FileIO(fd, "w"))
        return real_fdopen(fd, mode, *args, **kwargs)

    if how == "fsync":
        monkeypatch.setattr(box2mask.io.os, "fsync", fsync)
    else:
        monkeypatch.setattr(box2mask.io.os, "fdopen", fdopen)
    return failed


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("how", ["fsync", "write"])
def test_disk_full_while_converting_names_the_file(tmp_path, monkeypatch, how):
    root = tmp_path / "viso"
    make_viso_many(root, (4, 3))
    out = tmp_path / "out"
    n = {"parts": 0}

    def third_part(path):
        if "/.box2mask/parts/" not in path:
            return False
        n["parts"] += 1
        return n["parts"] >= 3

    failed = _full_disk(monkeypatch, how, third_part)
    args = ["convert", "--dataset", "viso", "--root", root, "--out", out, "--model", "box"]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 1, res.output
    assert failed
    text = "".join(res.output.split())  # rich may wrap the long path anywhere
    part = out / ".box2mask" / "parts" / "plane" / "001"
    assert "stopped:nospaceleftondevicewhilewriting" in text
    assert f"whilewriting{part}/000003.json." in text, res.output
    assert "2of7framesaredone" in text and "Traceback" not in res.output
    assert not list(out.rglob("*.tmp"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_disk_full_while_writing_the_coco_json_names_it(tmp_path, monkeypatch):
    root = tmp_path / "viso"
    make_viso_many(root, (2,))
    out = tmp_path / "out"
    _full_disk(monkeypatch, "fsync", lambda path: "/.annotations.json." in path)
    args = ["convert", "--dataset", "viso", "--root", root, "--out", out, "--model", "box"]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 1, res.output
    text = "".join(res.output.split())
    assert f"nospaceleftondevicewhilewriting{out / 'annotations.json'}." in text, res.output
    assert "Everyframeisconvertedandrecorded" in text
    assert not (out / "annotations.json").exists() and not list(out.rglob("*.tmp"))
