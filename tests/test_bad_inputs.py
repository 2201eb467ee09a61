"""Bad inputs over the CLI, one table (issue 16 and more).

Every row runs ``box2mask convert`` and asserts: the exit code (2, or 0 where
the bad input is reported and skipped), ONE clear message naming the
file/line/option (an ``error:`` line for exit 2, a ``skipped:`` report for
exit 0), no "internal error" and no "Traceback", and that finished frames are
kept: rows marked ``kept`` first finish a job in ``--out`` and check that the
bad command left its ledger and COCO file as they were; exit-0 rows check that
the good sequences were converted.

Datasets come from tests/data/bad_inputs.py (the broken datasets of issue 16)
and tests/data/bad_inputs_cli.py (the rest).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from data import bad_inputs as bi
from data import bad_inputs_cli as bc
from data import bad_paths as bp
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

runner = CliRunner()


@dataclass
class Row:
    id: str
    args: list[
        str
    ]  # after "convert --dataset D --root ROOT --out OUT --model box"; {tmp} {root} {out} {x}
    code: int
    says: list[str]  # each in the one message (whitespace-normalised); same placeholders
    data: Callable[[Path], Path] = bc.build_viso_mot  # builds the dataset, returns --root
    dataset: str = "viso"
    setup: Callable[[Path, pytest.MonkeyPatch], str] | None = None  # -> {x}
    kept: bool = False  # finish a job in --out first; the bad command must leave it as it was
    converted: tuple[str, ...] = ()  # exit 0: sequences whose frames are in annotations.json
    base: bool = True  # False: args are the whole command after "convert"
    model: str = "box"  # in the base command ("box" never decodes a frame)
    outside: bool = False  # nothing under {tmp} but --out may change (a bystander is added)


def _cfg(text: str, name: str = "job.yaml") -> Callable[[Path, pytest.MonkeyPatch], str]:
    return lambda tmp, mp: str(bc.write_text(tmp, name, text))


def _file(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    return str(bc.write_text(tmp, "a-file", "x"))


def _read_only(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    """A folder on which every create fails as on a read-only mount (chmod does not stop root)."""
    ro = tmp / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        return str(ro / "out")
    prefix = str(ro) + os.sep
    real_mkdir, real_open = os.mkdir, os.open

    def erofs(path: object) -> None:
        if os.fspath(path).startswith(prefix):  # type: ignore[arg-type]
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))  # type: ignore[arg-type]

    def mkdir(path, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        erofs(path)
        return real_mkdir(path, *a, **k)

    def open_(path, flags, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            erofs(path)
        return real_open(path, flags, *a, **k)

    mp.setattr(os, "mkdir", mkdir)
    mp.setattr(os, "open", open_)
    return str(ro / "out")


def _garbage(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    return str(bc.build_garbage_checkpoint(tmp))


def _recorded_dotdot(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    """The finished job in {tmp}/out as a box2mask before issue 24 recorded a sequence ``..``:
    its outputs list ``..`` (``--overwrite`` removed the folder holding --out)."""
    job = tmp / "out" / ".box2mask" / "job.json"
    saved = json.loads(job.read_text())
    saved["outputs"] = ["annotations.json", ".."]
    saved.pop("owned", None)
    job.write_text(json.dumps(saved))
    return ""


def _env_root(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    mp.setenv("BOX2MASK_DATA", str(tmp / "data"))
    return str(tmp / "data")


def _refused(id: str, options: str, *says: str) -> Row:
    """A bad option on a finished job: ``options`` (split at spaces) exit 2 with one message
    saying each of ``says`` (by default each word of ``options``), and the job is kept."""
    args = options.split()
    return Row(id, args, 2, list(says or args), kept=True)


ROWS = [
    # -- issue 16 (1): devices
    _refused("device-cpu-tpu", "--device cpu,tpu", "--device", "tpu"),
    _refused("device-gpu", "--device gpu"),
    _refused("device-empty", "--device ,", "--device"),
    # -- issue 16 (2): SatSOT as shipped, --root one level off
    Row("satsot-numbered-folders", [], 0, ["1_Car_01"], data=bi.build_satsot_quirks,
        dataset="satsot", converted=("1_Car_01", "2_Plane_01")),
    Row("satsot-groundtruth-no-ext", ["--sequences", "1_Car_01"], 0,
        ["1_Car_01/groundtruth", "without extension"], data=bi.build_satsot_quirks,
        dataset="satsot", converted=("1_Car_01",)),
    Row("satsot-imgs-not-img", ["--sequences", "1_Car_01"], 0, ["imgs/"],
        data=bi.build_satsot_quirks, dataset="satsot", converted=("1_Car_01",)),
    Row("satsot-bus-category", [], 0, [], data=bi.build_satsot_unknown_category,
        dataset="satsot", converted=("bus_01",)),
    Row("satsot-root-too-high", [], 2, ["--root {root}/SatSOT"],
        data=bi.build_satsot_root_too_high, dataset="satsot"),
    Row("satsot-root-too-low", [], 2, ["--root", "one sequence folder"],
        data=bi.build_satsot_root_too_low, dataset="satsot"),
    # -- issue 16 (3): VISO gt.txt with nothing usable
    Row("viso-gt-empty", [], 0, ["car/001/gt/gt.txt", "empty"], data=bi.build_viso_gt_empty,
        converted=("plane/001",)),
    Row("viso-gt-binary", [], 0, ["car/001/gt/gt.txt", "no readable row"],
        data=bi.build_viso_gt_binary, converted=("plane/001",)),
    Row("viso-gt-absent-only", [], 0, ["car/001/gt/gt.txt:1", "absent", "line(s) 1, 2, 3"],
        data=bi.build_viso_gt_absent_only, converted=("plane/001",)),
    # -- issue 16 (5): boxes wholly outside the image
    # reported per frame and track (box2mask/checks.py runs after any adapter), not per gt line
    Row("boxes-outside-image", [], 0,
        ["plane/001 frame 1: box [500, 10, 520, 28] of track 8 lies entirely outside",
         "plane/001 frame 2: box [10, -300, 30, -282] of track 9 lies entirely outside"],
        data=bc.build_viso_boxes_outside, converted=("plane/001",)),
    Row("boxes-outside-image-strict", ["--strict"], 2, ["track 8", "entirely outside"],
        data=bc.build_viso_boxes_outside, kept=False),
    # -- issue 16 (6): user errors that crashed
    Row("out-is-a-file", ["--out", "{x}"], 2, ["--out {x}", "is a file"], setup=_file),
    Row("out-under-a-file", ["--out", "{x}/sub"], 2, ["--out {x}/sub", "is a file"], setup=_file),
    Row("out-read-only", ["--out", "{x}"], 2, ["--out {x}", "cannot write"], setup=_read_only),
    Row("out-under-proc", ["--out", "/proc/box2mask-test/out"], 2,
        ["--out /proc/box2mask-test/out", "cannot write"]),
    Row("config-invalid-yaml", ["--config", "{x}"], 2, ["--config {x}:3:6: not valid YAML", "flow sequence started at line 2"],
        setup=_cfg("dataset: viso\nsequences: [car/001\nmodel: box\n")),
    Row("config-batch-size-many", ["--config", "{x}"], 2,
        ["--config {x}: key 'batch_size' must be a whole number, got 'many'"],
        setup=_cfg("batch_size: many\n"), kept=True),
    _refused("context-nan", "--context nan"),
    _refused("context-inf", "--context inf"),
    _refused("context-negative", "--context -1", "--context must be >= 0"),
    # -- issue 16 (7): silent data loss
    Row("rows-w-h-nan-counted", [], 0, ["car/001/gt/gt.txt:2", "3 row(s)", "absent"],
        data=bi.build_viso_absent_rows, converted=("car/001", "plane/001")),
    Row("truncated-jpeg", [], 0, ["plane/001/img/000002.jpg"],
        data=bi.build_viso_truncated_jpeg, converted=("plane/001",), model="classical"),
    Row("truncated-jpeg-strict", ["--strict"], 2, ["plane/001/img/000002.jpg"],
        data=bi.build_viso_truncated_jpeg, model="classical"),
    Row("truncated-png", [], 0, ["plane/001/img/000002.png"],
        data=bi.build_viso_truncated_png, converted=("plane/001",), model="classical"),
    # a frame or track id that is infinite, NaN or past 2**53 is a malformed row (it crashed)
    Row("mot-frame-inf", [], 0, ["seqA/gt/gt.txt:10", "frame and id must be finite numbers"],
        data=bc.build_mot_frame_inf, dataset="mot", converted=("seqA", "seqB")),
    Row("mot-frame-inf-strict", ["--strict"], 2, ["seqA/gt/gt.txt:10", "'inf', '9'"],
        data=bc.build_mot_frame_inf, dataset="mot"),
    Row("viso-id-huge", [], 0, ["car/001/gt/gt.txt:8", "'2', '1e30'"],
        data=bc.build_viso_id_huge, converted=("car/001", "plane/001")),
    Row("viso-id-huge-strict", ["--strict"], 2, ["car/001/gt/gt.txt:8", "at most 2**53 - 1"],
        data=bc.build_viso_id_huge),
    _refused("classes-bus-absent", "--classes bus"),
    Row("sequence-without-gt", [], 0, ["car/001", "gt.txt"],
        data=bi.build_viso_sequence_without_gt, converted=("plane/001",)),
    Row("only-sequence-without-gt", [], 2, ["car/001", "nothing to convert"],
        data=bi.build_viso_only_sequence_without_gt),
    # -- more bad options
    _refused("shard-zero", "--shard 0/3"),
    _refused("shard-over", "--shard 4/3", "--shard K/N needs 1 <= K <= N"),
    _refused("shard-text", "--shard abc", "--shard must look like K/N"),
    _refused("format-xml", "--format xml"),
    Row("dataset-unknown", ["--dataset", "nope"], 2, ["nope"]),
    Row("root-missing", ["--root", "{tmp}/absent"], 2, ["{tmp}/absent"]),
    Row("root-missing-env", ["--dataset", "viso", "--out", "{tmp}/o", "--model", "box"], 2,
        ["{x}/viso ($BOX2MASK_DATA/viso)"], setup=_env_root, base=False),
    Row("out-missing", ["--dataset", "viso", "--root", "{root}"], 2, ["--out is required"],
        base=False),
    Row("dataset-missing", ["--out", "{out}"], 2, ["--dataset is required"], base=False),
    _refused("opt-no-equals", "--opt part", "--opt takes KEY=VALUE"),
    _refused("opt-bad-value", "--opt part=xyz", "part='xyz'"),
    _refused("opt-unknown-key", "--opt colour=red", "colour"),
    _refused("sequences-unknown", "--sequences car/999"),
    _refused("model-unknown", "--model foo", "foo"),
    _refused("checkpoint-for-shape-model", "--checkpoint x.pth", "--checkpoint"),
    _refused("checkpoint-missing", "--model sam --checkpoint {tmp}/missing.pth", "missing.pth"),
    Row("checkpoint-garbage", ["--model", "sam", "--checkpoint", "{x}"], 2, ["garbage.pth"],
        setup=_garbage),
    _refused("batch-size-0", "--batch-size 0", "--batch-size must be at least 1"),
    _refused("batch-size-neg", "--batch-size -1", "--batch-size must be at least 1"),
    _refused("workers-0", "--workers 0", "--workers must be at least 1"),
    _refused("crop-size-8", "--crop-size 8", "--crop-size must be at least 16"),
    _refused("window-bad", "--window wide"),
    _refused("interpolation-bad", "--interpolation nearest", "--interpolation"),
    _refused("precision-fp16", "--precision fp16"),
    _refused("share-crops-2", "--share-crops 2", "--share-crops"),
    _refused("box-fill-area-neg", "--box-fill-area -1", "--box-fill-area must be >= 0"),
    _refused("threshold-nan", "--threshold nan", "--threshold must be a finite number"),
    _refused("batch-size-not-int", "--batch-size many", "--batch-size", "valid integer"),
    Row("config-unknown-key", ["--config", "{x}"], 2, ["--config {x}: unknown option 'batchsize'"],
        setup=_cfg("batchsize: 2\n"), kept=True),
    Row("config-missing", ["--config", "{tmp}/none.yaml"], 2, ["{tmp}/none.yaml: no such file"]),
    Row("config-not-mapping", ["--config", "{x}"], 2, ["--config {x}: expected a mapping"],
        setup=_cfg("- a\n- b\n")),
    Row("config-list-of-mappings", ["--config", "{x}"], 2, ["--config {x}: key 'sequences'"],
        setup=_cfg("sequences: {a: 1}\n"), kept=True),
    Row("config-is-a-folder", ["--config", "{tmp}"], 2, ["--config {tmp}: is a folder"]),
    Row("config-binary", ["--config", "{x}"], 2, ["--config {x}"],
        setup=lambda tmp, mp: str(bc.write_text(tmp, "bin.yaml", bytes(range(256))))),
    _refused("job-options-changed", "--model ellipse", "--overwrite"),
    # -- issue 24: names that made paths outside --out. Names that can be made safe are
    # converted under a safe folder name with a "note:" saying which (docs/jobs.md); the COCO
    # output keeps the dataset's names. Every row: nothing under {tmp} outside --out changes.
    Row("coco-sequence-escape", ["--format", "coco,png,davis,yolo"], 0,
        ["'../../ESC1' -> %2E%2E/%2E%2E/ESC1"], data=bp.build_coco_sequence_escape,
        dataset="coco", converted=("../../ESC1",), outside=True),
    Row("coco-sequence-empty", ["--format", "coco,png"], 0, ["'' -> %"],
        data=bp.build_coco_sequence_empty, dataset="coco", converted=("",), outside=True),
    Row("coco-sequence-dot", ["--format", "coco,png"], 0, ["'.' -> %2E"],
        data=bp.build_coco_sequence_dot, dataset="coco", converted=(".",), outside=True),
    Row("coco-sequence-absolute", ["--format", "coco,png"], 0, ["/ESC2' -> %/"],
        data=bp.build_coco_sequence_absolute, dataset="coco", outside=True),
    Row("coco-file-name-dotdot", ["--format", "coco,png,yolo"], 0, ["'..' -> %2E%2E"],
        data=bp.build_coco_file_name_dotdot, dataset="coco", converted=("..", "clipA"),
        outside=True),
    Row("coco-sequence-300-bytes", ["--format", "coco,png,davis,mots"], 0,
        ["'" + "L" * 300 + "' -> " + "L" * 183 + "~10bf7a12272b807e"],
        data=bp.build_coco_sequence_300_bytes, dataset="coco", converted=("L" * 300,),
        outside=True),
    Row("coco-sequence-lone-surrogate", ["--format", "coco,png"], 0,
        ["'a\\ud800b' -> a%ED%A0%80b"], data=bp.build_coco_sequence_lone_surrogate,
        dataset="coco", converted=("a\ud800b",), outside=True),
    Row("coco-sequences-one-folder", [], 2,
        ["sequences", "both map to the path", "L" * 183 + "~10bf7a12272b807e"],
        data=bp.build_coco_sequences_collide, dataset="coco", outside=True),
    Row("viso-folder-names-hostile", ["--format", "coco,png,davis,mots"], 0,
        ["car/a%0Ab<i>%FF", "ship/" + "S" * 183 + "~"], data=bp.build_viso_hostile_folders,
        converted=("car/a\nb<i>\udcff", "ship/" + "S" * 255), outside=True),
    Row("mot-sequence-255-bytes", ["--format", "coco,png,davis"], 0, ["Q" * 183 + "~"],
        data=bp.build_mot_sequence_255_bytes, dataset="mot", converted=("Q" * 255,),
        outside=True),
    Row("out-name-300-bytes", ["--out", "{tmp}/" + "O" * 300 + "/x"], 2,
        ["--out {tmp}/" + "O" * 300 + "/x", "is 300 bytes, over the file system's 255-byte limit"],
        outside=True),
    Row("overwrite-job-recorded-dotdot", ["--overwrite"], 2,
        ["--overwrite", "'..'", "nothing was deleted"], setup=_recorded_dotdot, kept=True,
        outside=True),
]  # fmt: skip


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def _snapshot(out: Path) -> dict[str, bytes]:
    files = [out / ".box2mask" / "ledger.jsonl", out / "annotations.json"]
    return {str(p): p.read_bytes() for p in files}


def _outside(tmp: Path, out: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``tmp`` but ``out``'s subtree: (mode, size) of each, files' mtimes."""
    found = {}
    for p in tmp.rglob("*"):
        if p == out or out in p.parents:
            continue
        st = p.lstat()
        found[os.fsdecode(p.relative_to(tmp))] = (st.st_mode, 0 if p.is_dir() else st.st_mtime_ns)
    return found


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = row.data(tmp_path / "data")
    out = tmp_path / "out"
    if row.kept:
        first = runner.invoke(
            app, ["convert", "--dataset", row.dataset, "--root", str(root), "--out", str(out),
                  "--model", "box"],
        )  # fmt: skip
        assert first.exit_code == 0, first.output
        before = _snapshot(out)
    x = row.setup(tmp_path, monkeypatch) if row.setup else ""
    if row.outside:
        (tmp_path / "bystander.txt").write_text("keep")
        around = _outside(tmp_path, out)

    def fill(s: str) -> str:
        return s.format(tmp=tmp_path, root=root, out=out, x=x)

    args = [fill(a) for a in row.args]
    if row.base:
        args = ["--dataset", row.dataset, "--root", str(root), "--out", str(out), "--model", row.model,
                *args]  # fmt: skip
    res = runner.invoke(app, ["convert", *args])
    monkeypatch.undo()
    shown = f"exit {res.exit_code}:\n{res.output}"
    assert "Traceback" not in res.output and "internal error" not in res.output, shown
    assert res.exception is None or isinstance(res.exception, SystemExit), shown
    assert res.exit_code == row.code, shown
    if row.code == 2:
        # one message: box2mask's "error:" line, or click's own for a value of the wrong type
        errors = [
            ln for ln in res.output.splitlines()
            if ln.startswith("error:") or "Invalid value for" in ln
        ]  # fmt: skip
        assert len(errors) == 1, shown
        message = _flat(errors[0] + " " + res.output.split(errors[0], 1)[1])
        for s in row.says:
            assert fill(s) in message, shown
    else:
        assert "error:" not in res.output, shown
        reports = _flat(
            " ".join(ln for ln in res.output.splitlines() if "skipped:" in ln or "note:" in ln)
        )
        for s in row.says:
            assert fill(s) in reports, shown
        coco = json.loads((out / "annotations.json").read_text())
        done = {im["sequence"] for im in coco["images"]} if coco["images"] else set()
        assert set(row.converted) <= done, shown
    if row.kept:
        assert _snapshot(out) == before, shown  # the finished job is untouched
    if row.outside:
        assert _outside(tmp_path, out) == around, shown  # nothing written or deleted outside


def test_the_table_covers_issue_16():
    assert len(ROWS) >= 35
    ids = {r.id for r in ROWS}
    for needed in (
        "device-cpu-tpu", "satsot-numbered-folders", "satsot-groundtruth-no-ext",
        "satsot-bus-category", "satsot-root-too-high", "satsot-root-too-low", "satsot-imgs-not-img",
        "viso-gt-empty", "viso-gt-binary", "viso-gt-absent-only", "boxes-outside-image",
        "out-is-a-file", "out-read-only", "out-under-proc", "config-invalid-yaml",
        "config-batch-size-many", "context-nan", "rows-w-h-nan-counted", "truncated-jpeg",
        "truncated-jpeg-strict", "classes-bus-absent", "sequence-without-gt",
    ):  # fmt: skip
        assert needed in ids


def test_the_table_covers_issue_24_paths():
    ids = {r.id for r in ROWS}
    for needed in (
        "coco-sequence-escape", "coco-sequence-empty", "coco-sequence-dot",
        "coco-sequence-absolute", "coco-file-name-dotdot", "coco-sequence-300-bytes",
        "coco-sequence-lone-surrogate", "coco-sequences-one-folder", "viso-folder-names-hostile",
        "mot-sequence-255-bytes", "out-name-300-bytes", "overwrite-job-recorded-dotdot",
    ):  # fmt: skip
        assert needed in ids
