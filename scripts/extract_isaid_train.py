"""Extract ``train/images`` and ``train/labels`` of iSAID-Sliced-512 from a git clone, path by path.

    python scripts/extract_isaid_train.py GIT_DIR OUT [--commit a9db8880]

The repository's snapshot lacks some blobs, so ``git archive`` stops at
``train/test_info.json``; the two folders the lite model trains on are whole,
so each file is read by its blob id (one ``git cat-file --batch`` process for
all 14,082 files). ``GIT_DIR`` is a clone (bare or not) of
``github.com/mihajlov39547/iSAID-Sliced-512``; the files land under
``OUT/train/{images,labels}``. Only ``train/`` is extracted: the development
tiles of ``../shared/data/isaid-dev`` come from ``test/``, which this leaves alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("git_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--commit", default="a9db8880")
    args = ap.parse_args()
    git = ["git", "-C", str(args.git_dir)]
    listing = subprocess.run([*git, "ls-tree", "-r", args.commit, "train/images", "train/labels"],
                             capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    entries = []
    for line in listing:
        meta, path = line.split("\t", 1)
        # a tree is data: a path that could leave OUT (.., empty or absolute parts) is refused
        if any(part in ("", ".", "..") for part in path.split("/")):
            print(f"refused: tree path {path!r} leaves {args.out}", file=sys.stderr)
            return 2
        entries.append((meta.split()[2], path))
    cat = subprocess.Popen(
        [*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert cat.stdin is not None and cat.stdout is not None
    missing = 0
    for sha, path in entries:
        cat.stdin.write(f"{sha}\n".encode())
        cat.stdin.flush()
        header = cat.stdout.readline().decode()
        if header.rstrip().endswith("missing"):
            missing += 1
            print(f"missing blob: {path}", file=sys.stderr)
            continue
        size = int(header.split()[2])
        data = cat.stdout.read(size)
        cat.stdout.read(1)  # the newline after each object
        dst = args.out / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    cat.stdin.close()
    cat.wait()
    print(f"{len(entries) - missing} files under {args.out / 'train'}, {missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
