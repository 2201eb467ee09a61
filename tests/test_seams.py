"""The writer and executor seams: a new format or executor is one class, registered.

Each test defines its part here, in the test file alone (as a plugin or a new
module would), and checks that ``convert``, resume, ``--overwrite`` and
``merge`` use it without any other change: the outputs a user relies on
(byte-identical files, every frame once) hold through the seam.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.executors import EXECUTORS, Executor
from box2mask.io import atomic_write_bytes
from box2mask.merge import merge
from box2mask.writers import WRITERS, Assembly, FrameFile, Writer
from tests.data.make_viso_many import make_viso_many

runner = CliRunner()
LENGTHS = (9, 4, 6, 3)


def _files(out: Path) -> dict[str, bytes]:
    """Every output file under ``out`` except the job's own state."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".box2mask" not in p.parts
    }


class BoxCountWriter(Writer):
    """A per-frame text file (one line per object) and an assembled total."""

    help = "test format"
    needs_parts = True
    per_frame = True

    def encode_frame(self, fm):
        lines = [f"{om.track_id} {om.category} {int(om.mask.sum())}" for om in fm.masks]
        rel = f"boxcount/{fm.frame.sequence}/{fm.frame.frame_index:04d}.txt"
        return [FrameFile(rel, ("\n".join(lines) + "\n").encode())]

    def finalize(self, assembly: Assembly, dest: Path) -> list[Path]:
        per_seq: dict[str, int] = {}
        for part in assembly.parts():
            seq = part["image"]["sequence"]
            per_seq[seq] = per_seq.get(seq, 0) + len(part["annotations"])
        path = Path(dest) / "boxcount.json"
        atomic_write_bytes(path, json.dumps({"order": assembly.sequences, "n": per_seq}).encode())
        return [path]

    def outputs(self) -> list[str]:
        return ["boxcount", "boxcount.json"]


class ReversedExecutor(Executor):
    """Converts the frames in this process, in reverse order (an order no local run uses)."""

    def run(self, frames: Iterable, ctx, sink) -> None:
        from box2mask.runtime import build_engine

        engine = build_engine(
            ctx.options, ctx.spec, ctx.checkpoint, ctx.devices[0], ctx.precision,
            ctx.problems, ctx.profile,
        )  # fmt: skip
        todo = list(frames)[::-1]
        engine.run(todo, lambda fm: sink.commit(sink.encode(fm), worker="reversed"))


@pytest.fixture(scope="module")
def registered():
    WRITERS.add("boxcount", BoxCountWriter)
    EXECUTORS.add("reversed", ReversedExecutor)
    yield
    WRITERS._items.pop("boxcount")
    EXECUTORS._items.pop("reversed")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("seams") / "viso"
    make_viso_many(root, LENGTHS)
    return root


def test_a_registered_writer_is_a_format_of_convert_resume_and_merge(
    registered, dataset, tmp_path
):
    base = dict(dataset="viso", root=dataset, model="ellipse", formats=("coco", "boxcount"))
    full = tmp_path / "full"
    box2mask.convert(out=full, **base)
    files = _files(full)
    assert sum(1 for f in files if f.startswith("boxcount/")) == sum(LENGTHS)
    totals = json.loads(files["boxcount.json"])["n"]
    coco = json.loads(files["annotations.json"])
    assert sum(totals.values()) == len(coco["annotations"]) > 0

    # shards merged into a folder: every format equal to the unsharded run's, byte for byte
    for k in (1, 2):
        box2mask.convert(out=tmp_path / f"s{k}", shard=f"{k}/2", **base)
    dest = tmp_path / "merged"
    res = runner.invoke(
        app, ["merge", str(tmp_path / "s2"), str(tmp_path / "s1"), "--out", str(dest)]
    )
    assert res.exit_code == 0, res.output
    assert _files(dest) == files

    # --overwrite removes what the format wrote (its outputs())
    box2mask.convert(out=full, overwrite=True, **{**base, "formats": ("coco",)})
    assert not (full / "boxcount").exists() and not (full / "boxcount.json").exists()


def test_unknown_format_lists_the_registered_ones(registered, dataset, tmp_path):
    res = runner.invoke(
        app,
        ["convert", "--dataset", "viso", "--root", str(dataset), "--out", str(tmp_path / "o"),
         "--model", "box", "--format", "coco,nope"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "boxcount" in res.output and "png" in res.output and "nope" in res.output


def test_a_registered_executor_gives_the_local_run_s_files(registered, dataset, tmp_path):
    base = dict(dataset="viso", root=dataset, model="ellipse", formats=("coco", "png"))
    box2mask.convert(out=tmp_path / "local", **base)
    summary = box2mask.convert(out=tmp_path / "rev", executor="reversed", **base)
    assert summary.frames_done == sum(LENGTHS)
    assert _files(tmp_path / "rev") == _files(tmp_path / "local")
    ledger = (tmp_path / "rev" / ".box2mask" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == sum(LENGTHS) and json.loads(ledger[0])["worker"] == "reversed"


def test_merge_into_a_folder_copies_per_frame_formats_and_assembles_coco(dataset, tmp_path):
    base = dict(dataset="viso", root=dataset, model="box", formats=("coco", "png"))
    box2mask.convert(out=tmp_path / "full", **base)
    for k in (1, 2, 3):
        box2mask.convert(out=tmp_path / f"s{k}", shard=f"{k}/3", **base)
    summary = merge([tmp_path / f"s{k}" for k in (3, 1, 2)], tmp_path / "m")
    assert _files(tmp_path / "m") == _files(tmp_path / "full")
    assert summary.images == sum(LENGTHS)
    # a per-frame format cannot come from a plain COCO file
    with pytest.raises(box2mask.errors.UsageError, match="per frame"):
        merge([tmp_path / "full" / "annotations.json"], tmp_path / "m2", formats=["png"])


def test_an_assembled_format_is_added_to_a_finished_job_by_merge(dataset, tmp_path):
    """A COCO job gets its YouTube-VIS file later from its parts; a PNG-only job, which kept
    none, is refused rather than given an empty file."""
    box2mask.convert(dataset="viso", root=dataset, model="box", out=tmp_path / "coco")
    box2mask.convert(dataset="viso", root=dataset, model="box", out=tmp_path / "both",
                     formats=("coco", "ytvis"))  # fmt: skip
    merge([tmp_path / "coco"], tmp_path / "later", formats=["ytvis"])
    assert (tmp_path / "later" / "ytvis.json").read_bytes() == (
        tmp_path / "both" / "ytvis.json"
    ).read_bytes()
    box2mask.convert(dataset="viso", root=dataset, model="box", out=tmp_path / "png",
                     formats=("png",))  # fmt: skip
    with pytest.raises(box2mask.errors.UsageError, match="kept no frame parts"):
        merge([tmp_path / "png"], tmp_path / "none", formats=["ytvis"])


def test_an_adapter_plugin_gets_its_name_from_its_entry_point(monkeypatch) -> None:
    """An adapter installed as an entry point (``box2mask.adapters`` group) need not set
    ``name``: the registry sets it, as ``@ADAPTERS.register`` does for built-in ones."""
    from box2mask.adapters.base import Adapter

    from box2mask import registry

    class Plugin(Adapter):
        pass

    class EntryPoint:
        name = "my-satellite-data"

        def load(self) -> type[Adapter]:
            return Plugin

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()])
    adapters = registry.Registry("dataset", entry_point_group="box2mask.adapters")
    assert adapters.get("my-satellite-data") is Plugin
    assert Plugin.name == "my-satellite-data"


def test_every_registry_takes_the_name_from_the_registration() -> None:
    """One convention: the registration names the part, the registry sets its ``name``."""
    from box2mask.models.registry import MODELS, ModelSpec
    from box2mask.registry import Registry

    # the built-in parts carry the names they are registered under
    for reg in (WRITERS, EXECUTORS, MODELS):
        assert all(part.name == name for name, part in reg.items()), reg.kind
    assert EXECUTORS.get("local").name == "local" and MODELS.get("box").name == "box"
    # a spec is kept with its name set; a part that names itself otherwise is refused
    models = Registry("model")
    models.add("fill", ModelSpec("shape", "test", build=lambda **o: None))
    assert models.get("fill").name == "fill"
    with pytest.raises(ValueError, match="names itself 'other'"):
        models.add("mine", ModelSpec("shape", "test", build=lambda **o: None, name="other"))

    class Named(Executor):
        name = "elsewhere"

    with pytest.raises(ValueError, match="names itself 'elsewhere'"):
        Registry("executor").add("here", Named)

    class Sub(ReversedExecutor):  # inherits a registered class's name: it gets its own
        pass

    executors = Registry("executor")
    executors.add("sub", Sub)
    assert Sub.name == "sub" and ReversedExecutor.name in ("", "reversed")
