"""Hostile names through every adapter and every writer: nothing outside ``--out`` changes.

Run by tests/test_hostile_names.py in a child process. Started as root (as the
tests run here and in CI), it builds the fixtures, converts each once (so that
every module the conversions import is loaded: the interpreter's own files may
lie where other users cannot read, as pyenv's under ``/root``), then drops to
the unprivileged user ``nobody`` for good before the first hostile name:
``/`` is then not writable, so a write to the root folder fails instead of
landing there; this script checks that first. Usage::

    python tests/hostile_names_run.py BASE EXAMPLES

``BASE`` is an empty folder the user owns. For each adapter that takes names from
the data (COCO image ``sequence`` / ``file_name``, MOT, VISO, SatSOT, OOTB and
SAT-MTB folder names) hypothesis draws hostile names (``..``, ``/``, absolute
paths into ``BASE``, empty, ``.``, 200-300 bytes, markup, lone surrogates and
bytes that are not UTF-8, NUL, newlines, box2mask's own folder names), builds
the dataset under ``BASE``, and runs ``box2mask convert`` with every format into
``BASE/.../parent/out``, then again with ``--overwrite`` and other formats. After
each run every file and folder under ``BASE`` outside ``out`` (the dataset, a
bystander file beside ``out``, targets of absolute names) is as it was, and
``/tmp/b2m-escape-*`` does not exist. A run ends with exit 0 or exit 2 and one
error line (a name the job must refuse), never an internal error.

Prints ``OK <examples run>`` and exits 0, or exits 1 with hypothesis' falsifying
example.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the fixture generators (data.make_*)

from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from box2mask.cli import app  # noqa: E402
from box2mask.cli import commands as _commands  # noqa: E402, F401

runner = CliRunner()
ESCAPE = Path(f"/tmp/b2m-escape-{os.getpid()}")
FORMATS = "coco,png,davis,mots,yolo,ytvis"


def snapshot(base: Path, skip: Path) -> dict[str, tuple]:
    """Every entry under ``base`` except ``skip``'s subtree: mode, size, a file's mtime,
    a link's target."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(base):
        here = Path(folder)
        if here == skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            p = here / name
            if p == skip:
                continue
            st_ = p.lstat()
            link = os.readlink(p) if p.is_symlink() else None
            # a folder's own mtime changes with its entries, which are compared one by one
            # (``out``'s parent gets ``out``)
            when = None if p.is_dir() and not p.is_symlink() else st_.st_mtime_ns
            out[os.fsdecode(p.relative_to(base))] = (st_.st_mode, st_.st_size, when, link)
    return out


# -- names -----------------------------------------------------------------------------------


def text_names(base: Path) -> st.SearchStrategy[str]:
    """Any string a JSON file can hold (a COCO ``sequence``): path-like, long, absolute."""
    atoms = ["..", ".", "", "/", "\\", "\0", "\n", "\r\t", "%", "%2E%2E", "~", " ",
             "<!--<script>", "\"><img src=x onerror=alert(1)>", "\ud800", "\udcff", "L" * 300,
             "é" * 150, "davis", ".box2mask", "annotations.json", "parts", "yolo", "car", "001",
             str(base / "abs-escape"), str(ESCAPE), "../../../escape"]  # fmt: skip
    return st.one_of(
        st.sampled_from(atoms),
        st.text(max_size=30),
        st.lists(st.sampled_from(atoms) | st.text(max_size=6), min_size=1, max_size=5).map(
            "/".join
        ),
    )


def fs_names(max_bytes: int = 255) -> st.SearchStrategy[bytes]:
    """A name a folder can have on Linux: any bytes but ``/`` and NUL, not ``.`` or ``..``."""
    atoms = [b"...", b" ", b"-rf", b"<!--<script>", b"\"><svg onload=alert(1)>", b"\n", b"a\nb",
             b"\r\t\x01\x7f", b"\xff\xfe", b"\xed\xa0\x80", b"L" * 255, "é".encode() * 127,
             b".box2mask", b"davis", b"annotations.json", b"%2E%2E", b"~", b"a\\b", b"%",
             b"car", b"001"]  # fmt: skip

    def ok(b: bytes) -> bool:
        return (
            b not in (b".", b"..") and b"/" not in b and b"\0" not in b and 0 < len(b) <= max_bytes
        )

    return st.one_of(st.sampled_from(atoms), st.binary(min_size=1, max_size=max_bytes)).filter(ok)


# -- datasets --------------------------------------------------------------------------------


def build_templates(base: Path) -> dict[str, Path]:
    """Each adapter's tiny fixture (tests/data generators), built once."""
    from data.make_coco import make_coco
    from data.make_mot import make_mot
    from data.make_satmtb import make_satmtb
    from data.make_satsot import make_ootb, make_satsot
    from data.make_viso import make_viso_mot

    t = base / "templates"
    make_coco(t / "coco")
    make_mot(t / "mot")
    make_viso_mot(t / "viso")
    make_satsot(t / "satsot")
    make_ootb(t / "ootb")
    make_satmtb(t / "satmtb")
    (t / "satmtb" / "data_split.xlsx").unlink()  # every sequence folder is a sequence
    return {p.name: p for p in t.iterdir()}


def _rename(path: Path, new: bytes) -> Path:
    """Rename ``path`` to the raw name ``new`` in the same folder (bytes: any encoding)."""
    dest = os.path.join(os.fsencode(path.parent), new)
    if os.path.lexists(dest):
        return path
    os.rename(os.fsencode(path), dest)
    return Path(os.fsdecode(dest))


def coco_dataset(root: Path, template: Path, seqs: list[str], folder: bytes, cat: str) -> None:
    """The COCO template's images, re-described: hostile sequences, file names and a category."""
    shutil.copytree(template, root)
    data = json.loads((root / "annotations.json").read_text())
    png = root / "images" / "clipA" / "000001.png"
    # images the hostile file names point at: outside the image folder, in a hostile folder
    (root.parent / "elsewhere").mkdir(exist_ok=True)
    shutil.copy(png, root.parent / "elsewhere" / "x.png")
    hostile_dir = Path(os.fsdecode(os.path.join(os.fsencode(root / "images"), folder)))
    hostile_dir.mkdir(exist_ok=True)
    shutil.copy(png, hostile_dir / "000003.png")
    # image 0 as it was; 1 outside the image folder (its sequence, if absent, is ".."); 2 in
    # a folder with a hostile name; 3 a hostile name that is no file (reported, skipped)
    extra = dict(data["images"][0], id=99, file_name=seqs[0] + ".png")
    data["images"].append(extra)
    file_names = [None, "../../elsewhere/x.png", f"{hostile_dir.name}/000003.png", None]
    for k, im in enumerate(data["images"]):
        im["frame_index"] = k + 1
        if k < len(seqs) and seqs[k] != "<absent>":
            im["sequence"] = seqs[k]
        else:
            im.pop("sequence", None)
        if file_names[k] is not None:
            im["file_name"] = file_names[k]
    data["categories"][0]["name"] = cat
    (root / "annotations.json").write_text(json.dumps(data))


def folder_dataset(kind: str, root: Path, template: Path, names: list[bytes]) -> None:
    """The template of ``kind`` with its sequence folders (and the files named after them)
    renamed to ``names``."""
    shutil.copytree(template, root, symlinks=True)
    if kind == "mot":
        for old, new in zip(("seqA", "seqB"), names, strict=False):
            _rename(root / old, new)
    elif kind == "viso":
        _rename(root / "mot" / "car" / "001", names[0])
        if len(names) > 1:
            _rename(root / "mot" / "plane", names[1])  # a category folder
    elif kind == "satsot":
        for old, new in zip(("car_01", "plane_02"), names, strict=False):
            _rename(root / old, new)
    elif kind == "ootb":
        for old, new in zip(("car_1", "plane_2"), names, strict=False):
            if _rename(root / old, new) != root / old and (root / "anno" / f"{old}.txt").exists():
                _rename(root / "anno" / f"{old}.txt", new + b".txt")
    elif kind == "satmtb":
        seq = _rename(root / "car" / "01", names[0])
        mot = seq / "mot" / "01.txt"
        if mot.exists():
            _rename(mot, os.fsencode(seq.name) + b".txt")


# -- the property ----------------------------------------------------------------------------


#: per adapter: examples, runs refused (exit 2), frames converted, sequences under safe names
STATS: dict[str, list[int]] = {}


def run_case(base: Path, build: Callable[[Path], str]) -> None:
    """Build a dataset with ``build(case_dir) -> adapter``, convert it twice; check the property."""
    case = base / "case"
    if case.exists():
        shutil.rmtree(case)
    case.mkdir()
    root = case / "data"
    dataset = build(root)
    parent = case / "a" / "b" / "parent"
    parent.mkdir(parents=True)
    (parent / "bystander.txt").write_text("keep me")
    out = parent / "out"
    before = snapshot(base, out)
    for extra in ([], ["--overwrite", "--format", "coco,png"]):
        args = ["convert", "--dataset", dataset, "--root", str(root), "--out", str(out),
                "--model", "box", "--format", FORMATS, *extra]  # fmt: skip
        res = runner.invoke(app, args)
        shown = f"{args}\nexit {res.exit_code}\n{res.output}"
        assert "internal error" not in res.output and "Traceback" not in res.output, shown
        assert res.exception is None or isinstance(res.exception, SystemExit), shown
        assert res.exit_code in (0, 2), shown
        if res.exit_code == 2:
            assert sum(ln.startswith("error:") for ln in res.output.splitlines()) == 1, shown
        after = snapshot(base, out)
        changed = sorted(set(before.items()) ^ set(after.items()))
        assert not changed, f"{shown}\nchanged outside --out: {changed[:10]}"
        assert not ESCAPE.exists() and not (base / "abs-escape").exists(), shown
        stats = STATS.setdefault(dataset, [0, 0, 0, 0])
        if not extra:
            stats[0] += 1
        if res.exit_code == 2:
            stats[1] += 1
            break
        if not extra:
            images = json.loads((out / "annotations.json").read_text())["images"]
            job = json.loads((out / ".box2mask" / "job.json").read_text())
            stats[2] += len(images)
            stats[3] += len(set(job["sequence_dirs"]) & {im["sequence"] for im in images})
    shutil.rmtree(case)


def warm_up(base: Path, templates: dict[str, Path]) -> None:
    """Convert each fixture once with every format (loads every module a conversion needs)."""
    for kind, root in templates.items():
        res = runner.invoke(app, ["convert", "--dataset", kind, "--root", str(root), "--out",
                                  str(base / "warm" / kind), "--model", "box", "--format", FORMATS])  # fmt: skip
        assert res.exit_code == 0, res.output
    shutil.rmtree(base / "warm")


def drop_privileges(base: Path) -> None:
    """Become ``nobody`` for good (root only): ``base`` stays writable, ``/`` is not."""
    if os.geteuid() != 0:
        return
    import pwd

    user = pwd.getpwnam("nobody")
    for folder, dirs, files in os.walk(base):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def main(base: Path, examples: int) -> int:
    templates = build_templates(base)
    warm_up(base, templates)
    drop_privileges(base)
    probe = Path("/") / f"b2m-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        pass
    else:
        probe.unlink()
        print("/ is writable for this user: run as root or an unprivileged user", file=sys.stderr)
        return 3
    # no shrinking: a failure's message already holds the command and its output, and
    # shrinking 300-byte names through whole conversions takes minutes
    cfg = settings(max_examples=examples, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck),
                   phases=[Phase.explicit, Phase.generate])  # fmt: skip
    count = [0]

    @cfg
    @given(seqs=st.lists(text_names(base) | st.just("<absent>"), min_size=1, max_size=3),
           folder=fs_names(200), cat=text_names(base))  # fmt: skip
    # the names of issue 24, always tried ("<absent>": no sequence field, so the sequence is
    # the first folder of the file name "../../elsewhere/x.png": "..")
    @example(seqs=["../../ESC1"], folder=b"x", cat="car")
    @example(seqs=["", ".", "/tmp/b2m-escape-abs"], folder=b"\n", cat="<!--<script>")
    @example(seqs=["<absent>", "L" * 300, "a\ud800b\udcff"], folder=b"L" * 200, cat="x")
    @example(seqs=[str(base / "abs-escape")], folder=b"\xff", cat="x")
    def coco(seqs: list[str], folder: bytes, cat: str) -> None:
        count[0] += 1

        def build(root: Path) -> str:
            coco_dataset(root, templates["coco"], seqs, folder, cat or "x")
            return "coco"

        run_case(base, build)

    coco()

    def folders_of(kind: str, limit: int) -> Callable[[], None]:
        @settings(cfg, max_examples=max(3, examples // 3))
        @given(names=st.lists(fs_names(limit), min_size=1, max_size=2))
        def folders(names: list[bytes]) -> None:
            count[0] += 1

            def build(root: Path) -> str:
                folder_dataset(kind, root, templates[kind], names)
                return kind

            run_case(base, build)

        return folders

    # OOTB and SAT-MTB name a file after the folder (<name>.txt): 4 bytes for the suffix
    for kind, limit in (("mot", 255), ("viso", 255), ("satsot", 255), ("ootb", 251),
                        ("satmtb", 251)):  # fmt: skip
        folders_of(kind, limit)()
    for kind, (n, refused, frames, renamed) in STATS.items():
        print(f"{kind}: {n} examples, {refused} refused (exit 2), {frames} frames converted, "
              f"{renamed} sequences written under safe names")  # fmt: skip
    print(f"OK {count[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
