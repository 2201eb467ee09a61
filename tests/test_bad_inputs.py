"""Bad inputs over the CLI, one table (issue 16 and more).

Every row runs ``box2mask convert`` and asserts: the exit code (2, or 0 where
the bad input is reported and skipped), ONE clear message naming the
file/line/option (an ``error:`` line for exit 2, a ``skipped:`` report for
exit 0), no "internal error" and no "Traceback", and that finished frames are
kept: rows marked ``kept`` first finish a job in ``--out`` and check that the
bad command left its ledger and COCO file as they were; exit-0 rows check that
the good sequences were converted.

Rows of other commands (``merge``, ``qa``, ``qa apply``) name their command;
``absent`` lists what a refused command must not have written. Every row runs
under a 120 s alarm: a run that blocks (a FIFO opened for reading) fails
instead of hanging the suite.

Datasets come from tests/data/bad_inputs.py (the broken datasets of issue 16)
and tests/data/bad_inputs_cli.py (the rest).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
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
    command: tuple[str, ...] = ("convert",)  # another: args are the whole command after it
    job: bool = False  # finish a job in --out first ("kept" does, and checks it is kept)
    absent: tuple[str, ...] = ()  # paths the command must not have written; same placeholders
    anywhere: bool = False  # exit 0: "says" in the whole output, not only the skipped: reports
    unchanged: tuple[str, ...] = ()  # files the setup wrote that the command must leave as they are


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


def _tiny_sam(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    from tiny_sam import write_sam_pth

    return str(write_sam_pth(tmp))


def _foreign(**edits: Callable[[dict], object]) -> dict:
    """A COCO file another tool wrote: no sequence, frame_index, track_id; polygon masks.
    ``edits`` (name: function of the data) break it further."""
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3],
                         "area": 9, "iscrowd": 0, "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]}],
        "categories": [{"id": 1, "name": "car"}],
    }  # fmt: skip
    for edit in edits.values():
        edit(data)
    return data


def _foreign_coco(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    return str(bc.write_text(tmp, "foreign.json", json.dumps(_foreign())))


def _with_box2mask_fields(data: dict) -> None:
    data["images"][0].update(sequence="s", frame_index=1)
    data["annotations"][0]["track_id"] = 1


def _ann(**fields: object) -> Callable[[dict], None]:
    return lambda data: data["annotations"][0].update(fields)


def _img(**fields: object) -> Callable[[dict], None]:
    return lambda data: data["images"][0].update(fields)


def _drop(table: str, key: str) -> Callable[[dict], None]:
    return lambda data: data[table][0].pop(key)


def _foreign_file(**edits: Callable[[dict], object]) -> Callable[[Path, pytest.MonkeyPatch], str]:
    """``{x}``: a broken foreign COCO file, ``{tmp}/foreign.json``."""
    return lambda tmp, mp: str(bc.write_text(tmp, "foreign.json", json.dumps(_foreign(**edits))))


def _foreign_folder(decision: dict | None = None, **edits: Callable[[dict], object]):  # noqa: ANN202
    """A folder ``{tmp}/foreign`` holding a broken foreign COCO file as its annotations.json;
    ``{x}``: a qa decisions file on its object (``decision``), or a file to import."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> str:
        bc.write_text(tmp / "foreign", "annotations.json", json.dumps(_foreign(**edits)))
        if decision is None:
            return str(bc.write_text(tmp, "review.xml", "<annotations/>"))
        item = {"sequence": "", "frame_index": 1, "id": 1, "action": "reject", **decision}
        text = json.dumps({"box2mask_qa_decisions": 1, "decisions": [item]})
        return str(bc.write_text(tmp, "decisions.json", text))

    return setup


def _predictions(*edits: Callable[[dict], object]) -> Callable[[Path, pytest.MonkeyPatch], str]:
    """``{x}``: the finished job's COCO in {tmp}/out as another tool would give it (``edits``)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> str:
        data = json.loads((tmp / "out" / "annotations.json").read_text())
        for edit in edits:
            edit(data)
        return str(bc.write_text(tmp, "pred.json", json.dumps(data)))

    return setup


def _strip(table: str, *keys: str) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        for rec in data[table]:
            for k in keys:
                rec.pop(k, None)

    return edit


def _shards_1_and_3(tmp: Path, mp: pytest.MonkeyPatch) -> str:
    """Shards 1/3 and 3/3 of the VISO fixture (three sequences) in {tmp}/s1 and {tmp}/s3."""
    import box2mask

    root = bc.build_viso_mot(tmp / "shards")
    for k in (1, 3):
        box2mask.convert(dataset="viso", root=root, out=tmp / f"s{k}", model="box", shard=f"{k}/3")
    return ""


def _decisions(*changes: dict) -> Callable[[Path, pytest.MonkeyPatch], str]:
    """A review decisions file for the job in {tmp}/out: one decision per ``changes`` on
    the job's first object (``{"action": "reject"}``, ``{"frame_index": 1.5}`` ...)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> str:
        coco = json.loads((tmp / "out" / "annotations.json").read_text())
        ann = coco["annotations"][0]
        im = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        first = {"sequence": im["sequence"], "frame_index": im["frame_index"],
                 "track_id": ann["track_id"], "action": "reject"}  # fmt: skip
        items = [{**first, **c} for c in changes]
        text = json.dumps({"box2mask_qa_decisions": 1, "decisions": items})
        return str(bc.write_text(tmp, "decisions.json", text))

    return setup


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
    # -- issue 24 item 4: a frame that is not a regular file is skipped unopened (a FIFO blocked)
    Row("frame-fifo", [], 0, ["plane/001/img/000002.jpg: frame image is a FIFO (named pipe), "
                              "not a regular file; not read"],
        data=bc.build_viso_fifo_frame, model="classical",
        converted=("car/001", "plane/001", "ship/001")),
    Row("frame-fifo-box-filled", [], 0, ["plane/001/img/000002.jpg: frame image is a FIFO"],
        data=bc.build_viso_fifo_frame, converted=("car/001", "plane/001", "ship/001")),
    Row("frame-fifo-first", [], 0, ["plane/001/img/000001.jpg: frame image is a FIFO"],
        data=bc.build_viso_fifo_first_frame, model="classical",
        converted=("car/001", "plane/001", "ship/001")),
    Row("frame-fifo-strict", ["--strict"], 2, ["plane/001/img/000002.jpg", "FIFO"],
        data=bc.build_viso_fifo_frame, model="classical"),
    # a duplicate COCO image id: both images skipped and counted (was: the second, silently)
    Row("coco-image-id-twice", [], 0,
        ["images[2] has id 12, already the id of images[1]; both skipped",
         "annotation id 5 (annotations[4]): its image id was used twice; skipped"],
        data=bc.build_coco_image_id_twice, dataset="coco", converted=("clipA",)),
    # a finite huge box is dropped and counted (was: the frame lost, an internal error)
    Row("coco-bbox-1e308", ["--checkpoint", "{x}", "--box-fill-classes", ""], 0,
        ["clipA frame 1: box [2, 2, 1e+308, 9] of track 1 is more than 2 times as large as "
         "the 40x24 image; dropped"],
        data=bc.build_coco_bbox_1e308, dataset="coco", model="sam", setup=_tiny_sam,
        converted=("clipA", "other")),
    Row("coco-bbox-1e308-strict", ["--strict"], 2, ["box [2, 2, 1e+308, 9]", "2 times"],
        data=bc.build_coco_bbox_1e308, dataset="coco"),
    # ids out of range or of the wrong type: reported (were internal errors)
    Row("coco-track-id-2**70", [], 0,
        ["annotation id 3: track_id 1180591620717411303424 is not a whole number within "
         "2**53 - 1; skipped"],
        data=bc.build_coco_track_id_2_70, dataset="coco", converted=("clipA", "other")),
    Row("coco-track-id-list", [], 0, ["annotation id 3: track_id [77] is not a whole number"],
        data=bc.build_coco_track_id_list, dataset="coco", converted=("clipA", "other")),
    Row("coco-image-id-list", [], 0,
        ["images[0] has no id (an integer or a string) or no file_name; skipped",
         "annotation id 1 (annotations[0]): no such image_id; skipped"],
        data=bc.build_coco_image_id_list, dataset="coco", converted=("clipA", "other")),
    Row("coco-image-ref-list", [], 0, ["annotation id 1 (annotations[0]): no such image_id"],
        data=bc.build_coco_image_ref_list, dataset="coco", converted=("clipA", "other")),
    Row("coco-category-id-list", [], 0,
        ["category {{'id': [2], 'name': 'small_vehicle'}} has no id (an integer) or name",
         "annotation id 2: unknown category_id 2; skipped"],
        data=bc.build_coco_category_id_list, dataset="coco", converted=("clipA", "other")),
    Row("coco-track-id-2**70-strict", ["--strict"], 2, ["track_id 1180591620717411303424"],
        data=bc.build_coco_track_id_2_70, dataset="coco"),
    # a text file named .jpg: counted (was: exit 1 and no message when no frame was left)
    Row("mot-text-jpg", [], 0,
        ["seqA/img1/000002.jpg: frame image cannot be decoded (not an image: no known image header)"],
        data=bc.build_mot_text_frame, dataset="mot", converted=("seqA", "seqB")),
    Row("mot-only-text-jpgs", [], 2,
        ["no frame converted of 6: every frame was skipped as bad input",
         "seqA/img1/000001.jpg: frame 1: unreadable image (cannot read image size"],
        data=bc.build_mot_all_text_frames, dataset="mot"),
    # a 0-byte frame whose objects are all box-filled (never decoded) is counted
    Row("frame-empty-box-filled", [], 0, ["car/001/img/000002.jpg: frame image is an empty file"],
        data=bc.build_viso_empty_frame_box_filled, model="classical",
        converted=("car/001", "plane/001", "ship/001")),
    # bogus ledger lines are not frames done: 2 of 3 good records count, the rest is redone
    Row("ledger-bogus-lines", [], 0,
        ["ledger.jsonl: 5 line(s) are not ledger records (line(s) 4, 5, 6, 7, 10)",
         "in the ledger but its part is missing; converting it again",
         "8 converted, 2 already done, 10 in all"],
        data=bc.build_viso_job_with_bogus_ledger, anywhere=True,
        converted=("car/001", "plane/001", "ship/001")),
    # --device cuda with a weight-free model: said in the summary (was: ignored silently)
    Row("device-cuda-weight-free", ["--device", "cuda"], 0,
        ["--device cuda: classical is weight-free and runs on the CPU"],
        model="classical", anywhere=True, converted=("car/001", "plane/001", "ship/001")),
    # a key twice in --config (also under two spellings): refused (was: the last taken)
    Row("config-duplicate-key", ["--config", "{x}"], 2,
        ["--config {x}:3:1: not valid YAML: key 'batch_size' given twice (first on line 1)"],
        setup=_cfg("batch_size: 2\nmodel: box\nbatch_size: 3\n"), kept=True),
    Row("config-key-two-spellings", ["--config", "{x}"], 2,
        ["--config {x}: 'batch-size' and 'batch_size' are one option; keep one"],
        setup=_cfg("batch-size: 2\nbatch_size: 3\n"), kept=True),
    # merge: every check before anything is written
    Row("merge-foreign-coco-ytvis", ["{out}", "{x}", "--out", "{tmp}/m", "--format", "coco,ytvis"],
        2, ["--format ytvis: {x}: images[0] has no sequence (str)", "merge it with --format coco"],
        command=("merge",), setup=_foreign_coco, kept=True, absent=("{tmp}/m",)),
    Row("merge-shard-missing", ["{tmp}/s1", "{tmp}/s3", "--out", "{tmp}/m.json"], 2,
        ["shard 2/3 is missing (given: 1/3, 3/3)", "--force"],
        command=("merge",), setup=_shards_1_and_3, absent=("{tmp}/m.json",)),
    Row("merge-over-existing-file", ["{out}", "--out", "{out}/annotations.json"], 2,
        ["--out {out}/annotations.json: {out}/annotations.json already exists; use --overwrite"],
        command=("merge",), kept=True),
    # merge, qa apply, import, eval: a COCO file of another tool (issue 27 item 4): what a
    # command needs and cannot derive, or ids the file does not hold, is one message, before
    # anything is written
    Row("merge-foreign-coco-unknown-image-id", ["{x}", "--out", "{tmp}/m.json"], 2,
        ["{x}: annotations[0] has image_id 7, which no image of the file has"],
        command=("merge",), setup=_foreign_file(a=_ann(image_id=7)), absent=("{tmp}/m.json",)),
    Row("merge-foreign-coco-unknown-category-id", ["{x}", "--out", "{tmp}/m.json"], 2,
        ["{x}: annotations[0] has category_id 9, which is not in the file's categories"],
        command=("merge",), setup=_foreign_file(a=_ann(category_id=9)),
        absent=("{tmp}/m.json",)),
    Row("merge-foreign-coco-image-without-id", ["{x}", "--out", "{tmp}/m.json"], 2,
        ["{x}: images[0] has no id (a whole number or a string)"],
        command=("merge",), setup=_foreign_file(a=_drop("images", "id")),
        absent=("{tmp}/m.json",)),
    Row("merge-foreign-coco-annotation-without-image-id", ["{x}", "--out", "{tmp}/m.json"], 2,
        ["{x}: annotations[0] has no image_id"],
        command=("merge",), setup=_foreign_file(a=_drop("annotations", "image_id")),
        absent=("{tmp}/m.json",)),
    Row("merge-foreign-coco-image-id-twice", ["{x}", "--out", "{tmp}/m.json"], 2,
        ["{x}: images[1] has id 1, as images[0] does"], command=("merge",),
        setup=_foreign_file(a=lambda d: d["images"].append(dict(d["images"][0]))),
        absent=("{tmp}/m.json",)),
    Row("merge-job-and-foreign-coco-frame-index-text",
        ["{out}", "{x}", "--out", "{tmp}/m", "--format", "coco"], 2,
        ["{x}: images[0] has frame_index 'one', not a whole number"], command=("merge",),
        setup=_foreign_file(a=_img(sequence="s", frame_index="one")), kept=True,
        absent=("{tmp}/m",)),
    Row("qa-apply-foreign-coco-unknown-image-id", ["{x}", "--job", "{tmp}/foreign"], 2,
        ["--job {tmp}/foreign/annotations.json: annotations[0] has image_id 7, which no image "
         "of the file has"], command=("qa", "apply"),
        setup=_foreign_folder({}, a=_ann(image_id=7)),
        unchanged=("{tmp}/foreign/annotations.json",)),
    Row("qa-apply-foreign-coco-image-without-id", ["{x}", "--job", "{tmp}/foreign"], 2,
        ["--job {tmp}/foreign/annotations.json: images[0] has no id"], command=("qa", "apply"),
        setup=_foreign_folder({}, a=_drop("images", "id")),
        unchanged=("{tmp}/foreign/annotations.json",)),
    Row("qa-apply-foreign-coco-box-without-size", ["{x}", "--job", "{tmp}/foreign"], 2,
        ["decisions[0]: {tmp}/foreign/annotations.json: the image of annotations[0] has no width "
         "and height (whole numbers), which a box is drawn in"], command=("qa", "apply"),
        setup=_foreign_folder({"action": "box"}, a=_drop("images", "width")),
        unchanged=("{tmp}/foreign/annotations.json",)),
    Row("qa-apply-foreign-coco-ellipse-without-bbox", ["{x}", "--job", "{tmp}/foreign"], 2,
        ["decisions[0]: {tmp}/foreign/annotations.json: annotations[0] has no box (bbox "
         "[x, y, w, h]) to draw a ellipse from"], command=("qa", "apply"),
        setup=_foreign_folder({"action": "ellipse"}, a=_drop("annotations", "bbox")),
        unchanged=("{tmp}/foreign/annotations.json",)),
    Row("import-foreign-coco-no-sequence",
        ["{x}", "--from", "cvat", "--job", "{tmp}/foreign", "--manifest", "{x}", "--out",
         "{tmp}/fixed.json"], 2,
        ["--job {tmp}/foreign/annotations.json: images[0] has no sequence (a string); export "
         "and import match objects by (sequence, frame_index, track_id)"],
        command=("import",), setup=_foreign_folder(),
        absent=("{tmp}/fixed.json", "{tmp}/fixed.import.json")),
    Row("import-foreign-coco-unknown-image-id",
        ["{x}", "--from", "cvat", "--job", "{tmp}/foreign", "--manifest", "{x}", "--out",
         "{tmp}/fixed.json"], 2,
        ["--job {tmp}/foreign/annotations.json: annotations[0] has image_id 7, which no image "
         "of the file has"], command=("import",),
        setup=_foreign_folder(a=_with_box2mask_fields, b=_ann(image_id=7)),
        absent=("{tmp}/fixed.json", "{tmp}/fixed.import.json")),
    Row("import-foreign-coco-track-id-text",
        ["{x}", "--from", "labelstudio", "--job", "{tmp}/foreign", "--out", "{tmp}/fixed.json"],
        2, ["annotations[0] has track_id '7', not a whole number"], command=("import",),
        setup=_foreign_folder(a=_with_box2mask_fields, b=_ann(track_id="7")),
        absent=("{tmp}/fixed.json", "{tmp}/fixed.import.json")),
    Row("import-foreign-coco-into-the-folder",
        ["{x}", "--from", "labelstudio", "--job", "{tmp}/foreign"], 2,
        ["--job {tmp}/foreign: not a `box2mask convert` job with its frames' parts",
         "give --out FILE.json to write a corrected COCO instead"], command=("import",),
        setup=_foreign_folder(a=_with_box2mask_fields),
        unchanged=("{tmp}/foreign/annotations.json",)),
    Row("eval-foreign-coco-no-track-id",
        ["--dataset", "viso", "--root", "{root}", "--predictions", "{x}", "--report",
         "{tmp}/ev.json"], 2,
        ["--predictions {x}: annotations[0] has no track_id (a whole number): a predicted mask "
         "is matched to its ground-truth object by track id"], command=("eval",),
        setup=_predictions(_strip("images", "sequence", "frame_index"),
                           _strip("annotations", "track_id")),
        kept=True, absent=("{tmp}/ev.json",)),
    Row("eval-foreign-coco-unknown-image-id",
        ["--dataset", "viso", "--root", "{root}", "--predictions", "{x}", "--report",
         "{tmp}/ev.json"], 2,
        ["--predictions {x}: annotations[0] has image_id 999, which no image of the file has"],
        command=("eval",), setup=_predictions(_ann(image_id=999)), kept=True,
        absent=("{tmp}/ev.json",)),
    Row("eval-foreign-coco-image-not-placeable",
        ["--dataset", "viso", "--root", "{root}", "--predictions", "{x}", "--report",
         "{tmp}/ev.json"], 2,
        ["--predictions {x}: images[0] has neither sequence and frame_index nor file_name"],
        command=("eval",), setup=_predictions(_strip("images", "sequence", "file_name")),
        kept=True, absent=("{tmp}/ev.json",)),
    Row("eval-foreign-coco-track-id-text",
        ["--dataset", "viso", "--root", "{root}", "--predictions", "{x}", "--report",
         "{tmp}/ev.json"], 2,
        ["--predictions {x}: annotations[0] has track_id 'a', not a whole number"],
        command=("eval",), setup=_predictions(_ann(track_id="a")), kept=True,
        absent=("{tmp}/ev.json",)),
    # qa apply: ids must be whole numbers; one decision per object
    Row("qa-apply-track-id-inf", ["{x}", "--job", "{out}"], 2,
        ["decisions[0]: track_id must be a whole number (within 2**53 - 1), got inf"],
        command=("qa", "apply"), setup=_decisions({"track_id": float("inf")}), kept=True),
    Row("qa-apply-frame-index-float", ["{x}", "--job", "{out}"], 2,
        ["decisions[0]: frame_index must be a whole number", "got 1.5"],
        command=("qa", "apply"), setup=_decisions({"frame_index": 1.5}), kept=True),
    Row("qa-apply-conflicting", ["{x}", "--job", "{out}"], 2,
        ["decisions[1] (reject) and decisions[0] (box) decide differently for the same object"],
        command=("qa", "apply"), setup=_decisions({"action": "box"}, {"action": "reject"}),
        kept=True),
    Row("qa-apply-duplicate", ["{x}", "--job", "{out}"], 0,
        ["removed 1,", "duplicates: 1 decision(s) repeat an earlier one for the same object"],
        command=("qa", "apply"), setup=_decisions({}, {}), job=True, anywhere=True),
    # qa: an output option naming a file (was: NotADirectoryError / FileExistsError)
    Row("qa-html-is-a-file", ["--job", "{out}", "--html", "{x}"], 2,
        ["--html {x}: {x} is a file, not a folder"],
        command=("qa",), setup=_file, kept=True, absent=("{out}/qa",)),
    Row("qa-out-is-a-file", ["--job", "{out}", "--out", "{x}/sub"], 2,
        ["--out {x}/sub: {x} is a file, not a folder"], command=("qa",), setup=_file, kept=True),
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


@pytest.fixture
def alarm():
    """Fail a row that blocks (a FIFO opened for reading) after 120 s instead of hanging."""

    def expired(_signum, _frame):  # noqa: ANN001, ANN202
        raise TimeoutError("the command blocked for 120 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alarm) -> None:
    root = row.data(tmp_path / "data")
    out = tmp_path / "out"
    if row.kept or row.job:
        first = runner.invoke(
            app, ["convert", "--dataset", row.dataset, "--root", str(root), "--out", str(out),
                  "--model", "box"],
        )  # fmt: skip
        assert first.exit_code == 0, first.output
        before = _snapshot(out)
    x = row.setup(tmp_path, monkeypatch) if row.setup else ""
    frozen = {
        p: Path(p.format(tmp=tmp_path, root=root, out=out, x=x)).read_bytes() for p in row.unchanged
    }
    if row.outside:
        (tmp_path / "bystander.txt").write_text("keep")
        around = _outside(tmp_path, out)

    def fill(s: str) -> str:
        return s.format(tmp=tmp_path, root=root, out=out, x=x)

    args = [fill(a) for a in row.args]
    convert = row.command == ("convert",)
    if row.base and convert:
        args = ["--dataset", row.dataset, "--root", str(root), "--out", str(out), "--model", row.model,
                *args]  # fmt: skip
    res = runner.invoke(app, [*row.command, *args])
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
        lines = res.output.splitlines()
        reports = _flat(
            " ".join(ln for ln in lines if row.anywhere or "skipped:" in ln or "note:" in ln)
        )
        for s in row.says:
            assert fill(s) in reports, shown
        if convert:
            coco = json.loads((out / "annotations.json").read_text())
            done = {im["sequence"] for im in coco["images"]} if coco["images"] else set()
            assert set(row.converted) <= done, shown
    for path in row.absent:
        assert not Path(fill(path)).exists(), shown  # a refused command wrote nothing
    for path, data in frozen.items():
        assert Path(fill(path)).read_bytes() == data, shown  # and changed nothing
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


def test_the_table_covers_issue_24_item_4():
    ids = {r.id for r in ROWS}
    for needed in (
        "frame-fifo", "coco-image-id-twice", "coco-bbox-1e308", "coco-track-id-2**70",
        "coco-track-id-list", "coco-image-id-list", "mot-text-jpg", "mot-only-text-jpgs",
        "merge-foreign-coco-ytvis", "qa-apply-track-id-inf", "qa-apply-frame-index-float",
        "qa-apply-conflicting", "qa-apply-duplicate", "qa-html-is-a-file", "ledger-bogus-lines",
        "frame-empty-box-filled", "device-cuda-weight-free", "config-duplicate-key",
        "merge-shard-missing",
    ):  # fmt: skip
        assert needed in ids


def test_the_table_covers_issue_27_item_4():
    """merge, qa apply, import and eval with a COCO file of another tool."""
    ids = {r.id for r in ROWS}
    for command in ("merge", "qa-apply", "import", "eval"):
        assert sum(i.startswith(f"{command}-foreign-coco") for i in ids) >= 3, command
    for needed in (
        "merge-foreign-coco-ytvis", "merge-foreign-coco-unknown-image-id",
        "qa-apply-foreign-coco-unknown-image-id", "import-foreign-coco-no-sequence",
        "import-foreign-coco-unknown-image-id", "eval-foreign-coco-no-track-id",
        "eval-foreign-coco-unknown-image-id",
    ):  # fmt: skip
        assert needed in ids


# -- Ctrl-C: a real process, a real signal ----------------------------------------------------

#: a MOT reader whose second sequence blocks on a FIFO nobody writes (a hung network file
#: system, a named pipe in the annotations): the run is stuck reading its dataset
_BLOCKING_ADAPTER = """
import sys
from box2mask.adapters import ADAPTERS
from box2mask.adapters.mot import MOT

FIFO = sys.argv.pop(1)

@ADAPTERS.register("blocking-mot")
class BlockingMOT(MOT):
    def read_sequence(self, sequence):
        if sequence == "seqB":
            with open(FIFO, "rb") as fh:  # blocks: a FIFO without a writer
                fh.read()
        yield from super().read_sequence(sequence)

from box2mask.cli import main
main()
"""


def _child(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.Popen([sys.executable, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _ledgered(out: Path) -> int:
    try:
        return (out / ".box2mask" / "ledger.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_fifo_frames_do_not_block_a_real_run(tmp_path: Path) -> None:
    root = bc.build_viso_fifo_frame(tmp_path / "data")
    proc = _child(tmp_path, "-m", "box2mask", "convert", "--dataset", "viso", "--root",
                  str(root), "--out", str(tmp_path / "out"), "--model", "classical")  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout + stderr
    assert "frame image is a FIFO (named pipe), not a regular file; not read" in _flat(stdout)


def test_one_ctrl_c_stops_a_run_blocked_reading_its_dataset(tmp_path: Path) -> None:
    """The first SIGINT abandons the blocked read, the frames done stay recorded, exit 130."""
    from data.make_mot import make_mot

    make_mot(tmp_path / "MOT")
    fifo = tmp_path / "hung"
    os.mkfifo(fifo)
    script = bc.write_text(tmp_path, "blocking.py", _BLOCKING_ADAPTER)
    out = tmp_path / "out"
    proc = _child(tmp_path, str(script), str(fifo), "convert", "--dataset", "blocking-mot",
                  "--root", str(tmp_path / "MOT"), "--out", str(out), "--model", "box")  # fmt: skip
    try:
        t0 = time.monotonic()
        while not (out / ".box2mask" / "ledger.jsonl").exists():  # the job has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 120, "the job did not start"
            time.sleep(0.05)
        time.sleep(3)  # seqA's frames are read ahead, seqB's read blocks
        assert proc.poll() is None  # blocked
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert took < 10, f"one Ctrl-C took {took:.1f} s to stop the run"
    text = _flat(stderr)
    assert "interrupted (SIGINT): finished the frames in flight; 4 of 6 frames are done" in text
    assert _ledgered(out) == 4  # the frames done before the signal stay recorded
