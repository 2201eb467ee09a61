"""scripts/: the tools that make the shipped lite weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def test_extract_isaid_train_takes_train_images_and_labels_only(tmp_path):
    """From a bare clone, as the tiles' repository is fetched: train/ images and labels, byte for
    byte (binary JPEG bytes included); test/ and other files are left alone."""
    src = tmp_path / "src"
    files = {
        "train/images/tile_1.jpg": bytes(range(256)) * 3,
        "train/labels/tile_1.txt": b"9 0.1 0.1 0.2 0.1 0.2 0.2\n",
        "test/images/tile_9.jpg": b"\xff\xd8 test",
        "README.md": b"# tiles\n",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    _git(src.parent, "init", "-q", str(src))
    _git(src, "add", "-A")
    _git(src, "commit", "-qm", "tiles")
    commit = _git(src, "rev-parse", "HEAD").strip()
    bare = tmp_path / "bare.git"
    _git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "extract_isaid_train.py"),
                          str(bare), str(out), "--commit", commit],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == {k: v for k, v in files.items() if k.startswith("train/")}
    assert "2 files" in res.stdout and "0 missing" in res.stdout


def test_extract_isaid_train_refuses_a_tree_path_that_leaves_out(tmp_path):
    """A tree is data: a crafted entry named ``..`` under train/images writes nothing (exit 2)."""
    repo = tmp_path / "crafted.git"
    _git(tmp_path, "init", "-q", "--bare", str(repo))

    def run(*args: str, stdin: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    blob = run("hash-object", "-w", "--stdin", stdin="escaped\n")
    images = run("mktree", stdin=f"100644 blob {blob}\t..\n")
    train = run("mktree", stdin=f"040000 tree {images}\timages\n")
    root = run("mktree", stdin=f"040000 tree {train}\ttrain\n")
    commit = subprocess.run(
        ["git", "-C", str(repo), "commit-tree", root, "-m", "crafted"],
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    out = tmp_path / "deep" / "out"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "extract_isaid_train.py"),
                          str(repo), str(out), "--commit", commit],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2 and "refused" in res.stderr, res.stderr
    assert not (tmp_path / "deep").exists()
