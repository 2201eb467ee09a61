"""Dataset names as paths inside ``--out`` (box2mask/safe_paths.py, layout.sequence_dir) and the
job's manifest that ``--overwrite`` deletes from (issue 24).

The mapping's properties are checked for any string (hypothesis): a plain relative path that
the file system takes, one-to-one, stable. The job tests check what a user relies on:
``--overwrite`` removes what the job wrote and nothing else, refuses a manifest that points
out of ``--out`` before deleting anything, and a killed job's files are all in its manifest.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.errors import UsageError
from box2mask.layout import output_stem, sequence_dir, sequence_dirs, video_name
from box2mask.safe_paths import (
    COMPONENT_MAX,
    RELPATH_MAX,
    RESERVED,
    check_relpath,
    resolve_inside,
    safe_component,
)
from box2mask.types import Frame
from box2mask.writers import WRITERS
from box2mask.writers.base import AssembledWriter
from tests.data.make_viso_many import make_viso_many
from tests.kill_helpers import run_and_kill

runner = CliRunner()

#: the pieces hostile names are made of (issue 24), and any text at all
ATOMS = ["..", ".", "", "/", "\\", "\0", "\n", "\r\t", "%", "%2E", "~", " ", "<!--<script>",
         "\ud800", "\udcff", "L" * 300, "é" * 150, "davis", ".box2mask", "annotations.json",
         "car", "001"]  # fmt: skip
names = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(ATOMS) | st.text(max_size=8), max_size=6).map("/".join),
    st.lists(st.sampled_from(ATOMS), min_size=1, max_size=4).map("".join),
)


def _plain(rel: str) -> None:
    """``rel`` is a relative posix path any file system takes, with no way out of its folder."""
    assert rel and not rel.startswith("/")
    rel.encode("utf-8")  # no lone surrogate: UTF-8 file systems take it
    assert len(rel.encode()) <= RELPATH_MAX
    for part in rel.split("/"):
        assert part not in ("", ".", ".."), rel
        assert len(part.encode()) <= COMPONENT_MAX, rel
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in part), rel
        assert "\\" not in part
    check_relpath(rel)


@settings(max_examples=400, deadline=None)
@given(names)
def test_any_name_is_a_plain_relative_path(name: str) -> None:
    rel = sequence_dir(name)
    _plain(rel)
    assert rel == sequence_dir(name)  # stable: resume, shards and merge agree
    assert rel.split("/")[0].casefold() not in RESERVED
    comp = safe_component(name)
    _plain(comp)
    assert "/" not in comp
    assert "/" not in video_name(name)


@settings(max_examples=400, deadline=None)
@given(names, names)
def test_distinct_names_get_distinct_paths(a: str, b: str) -> None:
    if a != b:
        assert sequence_dir(a) != sequence_dir(b)
        assert safe_component(a) != safe_component(b)


def test_plain_names_stay_as_they_are() -> None:
    for name in ("car/001", "1_Car_01", "ship-1", "视频/001", "a b", "x.y"):
        assert sequence_dir(name) == name


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("../../ESC1", "%2E%2E/%2E%2E/ESC1"),
        ("", "%"),
        (".", "%2E"),
        ("/tmp/x", "%/tmp/x"),
        ("../elsewhere", "%2E%2E/elsewhere"),
        ("a\0b\nc", "a%00b%0Ac"),
        ("50%", "50%25"),
        ("x\udcffy", "x%FFy"),  # a byte that is not UTF-8, as the file system had it
        ("x\ud800", "x%ED%A0%80"),
        (".box2mask", "%2Ebox2mask"),
        ("Davis/1", "%44avis/1"),
    ],
)
def test_hostile_names_map_to_these_folders(name: str, folder: str) -> None:
    assert sequence_dir(name) == folder


def test_a_long_name_is_cut_with_a_stable_hash() -> None:
    a, b = "L" * 300, "L" * 299 + "M"
    assert len(sequence_dir(a).encode()) == COMPONENT_MAX
    assert sequence_dir(a) != sequence_dir(b)
    assert sequence_dir(a)[:100] == sequence_dir(b)[:100]
    assert sequence_dir(a) == "L" * 183 + "~10bf7a12272b807e"  # the same on every machine


def test_two_names_in_one_folder_are_refused() -> None:
    long = "L" * 300
    with pytest.raises(UsageError, match="both map to the path") as err:
        sequence_dirs([long, sequence_dir(long), "car/001"])
    assert repr(sequence_dir(long)) in str(err.value)


def test_every_assembled_format_output_is_reserved() -> None:
    """A sequence never gets the name of a format's own file or folder under --out."""
    for name in WRITERS.names():
        cls = WRITERS.get(name)
        if issubclass(cls, AssembledWriter):
            assert cls.output.casefold() in RESERVED, name


def test_an_unsafe_file_stem_falls_back_to_the_frame_number() -> None:
    def stem(file_name: str, index: int) -> str:
        return output_stem(Frame("s", index, file_name, (4, 4), [], [], [], file_name=file_name))

    assert stem("img/0001.jpg", 1) == "0001"
    assert stem("img/a\nb_7.jpg", 7) == "000007"
    assert stem("img/" + "x" * 250 + "_3.jpg", 3) == "000003"
    assert stem("img/a\\b_4.jpg", 4) == "000004"


@pytest.mark.parametrize("rel", ["..", "../x", "/etc/passwd", "", ".", "a/../b", "a//b", "a/", 3])
def test_a_recorded_path_that_is_not_plain_is_refused(rel: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        resolve_inside(tmp_path, rel)


def test_a_recorded_path_through_a_link_out_of_out_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "car").symlink_to(elsewhere)
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(out, "car/001.png")
    # the link itself is inside: deleting it removes the link, not what it points at
    assert resolve_inside(out, "link") == out / "link"


# -- the job's manifest and --overwrite --------------------------------------------------


@pytest.fixture(scope="module")
def viso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("viso") / "VISO"
    make_viso_many(root, (5, 4))
    return root


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_overwrite_removes_the_jobs_files_and_keeps_the_users(viso: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    box2mask.convert(dataset="viso", root=viso, out=out, model="box", formats="coco,png,davis")
    pngs = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.png") if "davis" not in p.parts
    )
    assert pngs
    listed = [f for line in (out / ".box2mask" / "outputs.jsonl").read_text().splitlines()
              for f in json.loads(line)["files"]]  # fmt: skip
    assert set(pngs) <= set(listed)
    # the user's own files: one in a sequence folder, one beside the outputs, one beside --out
    seq_folder = (out / pngs[0]).parent
    (seq_folder / "notes.txt").write_text("mine")
    (out / "README.txt").write_text("mine")
    (tmp_path / "bystander").write_text("mine")
    box2mask.convert(dataset="viso", root=viso, out=out, model="box", formats="coco",
                     overwrite=True)  # fmt: skip
    left = _tree(out)
    assert (seq_folder / "notes.txt").read_text() == "mine"
    assert (out / "README.txt").is_file() and (tmp_path / "bystander").is_file()
    assert not any(p.endswith(".png") for p in left) and "davis" not in left
    assert "annotations.json" in left


def test_overwrite_of_a_job_that_recorded_dotdot_deletes_nothing(
    viso: Path, tmp_path: Path
) -> None:
    """Before issue 24 a sequence ``..`` made the job record ``..`` as an output, and
    ``--overwrite`` removed the folder holding ``--out``."""
    job = tmp_path / "job"
    out = job / "out"
    box2mask.convert(dataset="viso", root=viso, out=out, model="box", formats="coco,png")
    saved = json.loads((out / ".box2mask" / "job.json").read_text())
    saved["outputs"] = ["annotations.json", ".."]
    del saved["owned"]  # as an earlier box2mask wrote it
    (out / ".box2mask" / "job.json").write_text(json.dumps(saved))
    (job / "bystander").write_text("keep")
    before = _tree(tmp_path)
    res = runner.invoke(app, ["convert", "--dataset", "viso", "--root", str(viso), "--out",
                              str(out), "--model", "box", "--overwrite"])  # fmt: skip
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "'..'" in res.output and "nothing was deleted" in res.output
    assert _tree(tmp_path) == before


def test_overwrite_through_a_link_out_of_out_deletes_nothing(viso: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    box2mask.convert(dataset="viso", root=viso, out=out, model="box", formats="coco,png")
    # someone moved a sequence folder away and left a link in its place
    elsewhere = tmp_path / "elsewhere"
    seq = next(out.rglob("*.png")).parent
    seq.rename(elsewhere)
    seq.symlink_to(elsewhere)
    before = _tree(tmp_path)
    with pytest.raises(UsageError, match="outside"):
        box2mask.convert(dataset="viso", root=viso, out=out, model="box", overwrite=True)
    assert _tree(tmp_path) == before


def test_a_killed_job_lists_every_file_it_wrote(viso: Path, tmp_path: Path) -> None:
    """SIGKILL at random moments: every per-frame file on disk is in the manifest, so that
    --overwrite removes them all."""
    rng = random.Random(24)
    for k in range(3):
        out = tmp_path / f"out{k}"
        run_and_kill(viso, out, ["--model", "box", "--format", "coco,png"], 1 + k * 2, rng)
        written = {p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and ".box2mask" not in p.parts}  # fmt: skip
        lines = (out / ".box2mask" / "outputs.jsonl").read_text().splitlines(keepends=True)
        listed = {f for ln in lines if ln.endswith("\n") for f in json.loads(ln)["files"]}
        # a run that finished before its kill also wrote the formats' own files (job.json 'owned')
        listed |= set(json.loads((out / ".box2mask" / "job.json").read_text()).get("owned", []))
        # (a write the kill cut short leaves its temp file ".<name>.<random>.tmp")
        finished = {f for f in written if not f.rsplit("/", 1)[-1].startswith(".")}
        assert finished <= listed, finished - listed
        box2mask.convert(dataset="viso", root=viso, out=out, model="box", formats="coco",
                         overwrite=True)  # fmt: skip
        assert {p.relative_to(out).as_posix() for p in out.iterdir()} == {
            ".box2mask",
            "annotations.json",
        }  # the png folders, their files and any temp file left by the kill are gone


def test_a_job_whose_folders_were_named_otherwise_is_not_resumed(tmp_path: Path) -> None:
    from data.make_coco import make_coco

    root = tmp_path / "coco"
    make_coco(root)
    data = json.loads((root / "annotations.json").read_text())
    for im in data["images"]:
        im["sequence"] = "50%"
    (root / "annotations.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    box2mask.convert(dataset="coco", root=root, out=out, model="box", formats="coco,png")
    assert (out / "50%25").is_dir() and not (out / "50%").exists()
    saved = json.loads((out / ".box2mask" / "job.json").read_text())
    assert saved["sequence_dirs"] == {"50%": "50%25"}
    box2mask.convert(dataset="coco", root=root, out=out, model="box", formats="coco,png")  # resumes
    del saved["sequence_dirs"]  # a job of an earlier box2mask: its folder was "50%"
    (out / ".box2mask" / "job.json").write_text(json.dumps(saved))
    with pytest.raises(box2mask.errors.JobMismatch, match="'50%'"):
        box2mask.convert(dataset="coco", root=root, out=out, model="box", formats="coco,png")


def test_out_with_a_name_over_255_bytes_is_one_error(viso: Path, tmp_path: Path) -> None:
    long = tmp_path / ("O" * 300) / "x"
    res = runner.invoke(app, ["convert", "--dataset", "viso", "--root", str(viso), "--out",
                              str(long), "--model", "box"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--out" in res.output and "255-byte limit" in res.output
    assert os.listdir(tmp_path) == []


def test_hostile_names_resume_shard_merge_and_qa_apply_agree(tmp_path: Path) -> None:
    """One mapping everywhere: shards of a dataset with hostile sequence names, merged into a
    folder, equal the unsharded job byte for byte, and qa apply finds the renamed PNGs."""
    from data.make_coco import make_coco

    root = tmp_path / "coco"
    make_coco(root)
    data = json.loads((root / "annotations.json").read_text())
    for im, seq in zip(data["images"], ["../../ESC1", "", "a\nb\udcff"], strict=True):
        im["sequence"] = seq
    (root / "annotations.json").write_text(json.dumps(data))
    base = dict(dataset="coco", root=root, model="box", formats="coco,png,davis,mots")
    full = tmp_path / "full"
    box2mask.convert(out=full, **base)
    for k in (1, 2):
        box2mask.convert(out=tmp_path / f"s{k}", shard=f"{k}/2", **base)
    merged = tmp_path / "merged"
    res = runner.invoke(app, ["merge", str(tmp_path / "s2"), str(tmp_path / "s1"), "--out",
                              str(merged), "--format", "coco,png,davis,mots"])  # fmt: skip
    assert res.exit_code == 0, res.output

    def files(out: Path) -> dict[str, bytes]:
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                if p.is_file() and ".box2mask" not in p.parts}  # fmt: skip

    assert files(merged) == files(full)
    assert {"%2E%2E/%2E%2E/ESC1/000001.png", "%/000002.png", "a%0Ab%FF/000030.png"} <= set(
        files(full)
    )
    assert os.listdir(tmp_path) and not (tmp_path / "ESC1").exists()
    # qa apply rewrites the PNG of a renamed sequence (it finds it through the same mapping)
    coco = json.loads((full / "annotations.json").read_text())
    seq_of = {im["id"]: im for im in coco["images"]}
    ann = next(a for a in coco["annotations"] if seq_of[a["image_id"]]["sequence"] == "")
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"box2mask_qa_decisions": 1, "decisions": [
        {"sequence": "", "frame_index": seq_of[ann["image_id"]]["frame_index"],
         "track_id": ann["track_id"], "action": "reject"}]}))  # fmt: skip
    before = (full / "%" / "000002.png").read_bytes()
    res = runner.invoke(app, ["qa", "apply", str(decisions), "--out", str(full)])
    assert res.exit_code == 0, res.output
    assert (full / "%" / "000002.png").read_bytes() != before


def test_folder_names_that_are_not_utf8_read_and_write_without_a_crash(tmp_path: Path) -> None:
    """OpenCV's file functions crash the process (SIGSEGV) on a path with bytes that are not
    UTF-8, as a dataset's folders named in another encoding (GBK, Latin-1) have: every image
    read and write goes through Python. Run as child processes: a crash would end pytest."""
    import shutil
    import subprocess
    import sys

    root = tmp_path / "viso"
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples" / "viso-mini", root)
    car = os.fsencode(root / "mot" / "car")
    os.rename(os.path.join(car, b"001"), os.path.join(car, b"\xb3\xb5 001"))  # GBK, not UTF-8
    masks = os.fsencode(root / "masks" / "car")
    if os.path.isdir(os.path.join(masks, b"001")):
        os.rename(os.path.join(masks, b"001"), os.path.join(masks, b"\xb3\xb5 001"))
    out, viz = tmp_path / "out", os.fsdecode(os.fsencode(tmp_path) + b"/viz\xff")
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    for args in (
        ["convert", "--dataset", "viso", "--root", str(root), "--out", str(out), "--model",
         "classical", "--format", "coco,png"],
        ["qa", "--out", str(out), "--html", str(out / "review")],
        ["viz", "--dataset", "viso", "--root", str(root), "--out", str(out), "--viz-out", viz,
         "--mp4", "--gt"],
        ["eval", "--dataset", "viso", "--root", str(root), "--model", "box"],
    ):  # fmt: skip
        res = subprocess.run([sys.executable, "-m", "box2mask", *args], env=env,
                             capture_output=True, timeout=300)  # fmt: skip
        shown = f"{args}: exit {res.returncode}\n{res.stdout.decode(errors='replace')[-3000:]}"
        assert res.returncode == 0, shown + res.stderr.decode(errors="replace")[-3000:]
    coco = json.loads((out / "annotations.json").read_text())
    assert "car/\udcb3\udcb5 001" in {im["sequence"] for im in coco["images"]}
    assert (out / "car" / "%B3%B5 001" / "000001.png").is_file()
    assert (out / "review" / "index.html").is_file()
    assert os.path.isfile(os.fsencode(viz) + b"/car/%B3%B5 001.mp4")
