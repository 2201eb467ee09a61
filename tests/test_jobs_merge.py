"""Shards and `box2mask merge`: shards 1/3..3/3 merged equal the unsharded run; refusals."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import box2mask
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.merge import merge
from box2mask.pipeline import shard_sequences
from tests.data.make_viso_many import make_viso_many

runner = CliRunner()
LENGTHS = (30, 12, 20, 7, 25, 9, 16)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """The dataset, an unsharded ellipse job, and the three shard jobs of it."""
    d = tmp_path_factory.mktemp("many")
    root = d / "viso"
    make_viso_many(root, LENGTHS)
    base = dict(dataset="viso", root=root, model="ellipse")
    box2mask.convert(out=d / "full", **base)
    for k in (1, 2, 3):
        box2mask.convert(out=d / f"s{k}", shard=f"{k}/3", **base)
    return d


def test_shards_cover_every_sequence_once_balanced_by_frames():
    from box2mask.adapters import SequenceInfo

    seqs = [SequenceInfo(f"s{i}", n) for i, n in enumerate(LENGTHS)]
    shares = [shard_sequences(seqs, f"{k}/3") for k in (1, 2, 3)]
    names = [s.name for share in shares for s in share]
    assert sorted(names) == sorted(s.name for s in seqs)
    loads = [sum(s.num_frames for s in share) for share in shares]
    assert max(loads) - min(loads) <= max(LENGTHS) // 2  # balanced by frames, not by count


def test_merged_shards_equal_the_unsharded_output_byte_for_byte(many, tmp_path):
    res = cli("merge", many / "s3", many / "s1", many / "s2", "--out", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    assert "3 inputs" in res.output
    merged = (tmp_path / "m.json").read_bytes()
    assert merged == (many / "full" / "annotations.json").read_bytes()
    coco = json.loads(merged)
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids)) == 3 * sum(LENGTHS)
    assert len({i["id"] for i in coco["images"]}) == sum(LENGTHS)
    # each shard did a real share of the work
    for k in (1, 2, 3):
        n = len(json.loads((many / f"s{k}" / "annotations.json").read_text())["images"])
        assert 0 < n < sum(LENGTHS)


def test_merging_jobs_with_other_options_is_refused_naming_them(many, tmp_path):
    other = tmp_path / "other"
    box2mask.convert(
        dataset="viso", root=many / "viso", out=other, model="box", crop_size=256, shard="2/3"
    )
    res = cli("merge", many / "s1", other, "--out", tmp_path / "m.json")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "model: first has 'ellipse', this has 'box'" in text
    assert "crop_size: first has 512, this has 256" in text
    assert "--force" in text and not (tmp_path / "m.json").exists()
    res = cli("merge", many / "s1", other, "--out", tmp_path / "m.json", "--force")
    assert res.exit_code == 0, res.output
    assert "warning" in res.output


def test_a_frame_in_two_inputs_is_an_error_naming_it(many, tmp_path):
    # shard 1 and the full job both hold shard 1's sequences
    first = json.loads((many / "s1" / ".box2mask" / "job.json").read_text())
    seq = next(s for s in first["sequences"] if (many / "s1" / ".box2mask" / "parts" / s).is_dir())
    with pytest.raises(box2mask.Box2MaskError, match=f"sequence '{seq}' frame 1 is in both"):
        merge([many / "full", many / "s1"], tmp_path / "m.json", force=True)
    assert not (tmp_path / "m.json").exists()


def test_unfinished_jobs_are_refused(many, tmp_path):
    part = tmp_path / "s2"
    shutil.copytree(many / "s2", part)
    (part / ".box2mask" / "finished.json").unlink()
    res = cli("merge", many / "s1", part, "--out", tmp_path / "m.json")
    assert res.exit_code == 2 and "is not finished" in res.output


def test_coco_files_merge_with_categories_unified_by_name(many, tmp_path):
    own = json.loads((many / "full" / "annotations.json").read_text())
    foreign = {
        "images": [{"id": 7, "file_name": "x.jpg", "width": 10, "height": 10}],
        "annotations": [
            {
                "id": 3,
                "image_id": 7,
                "category_id": 1,
                "bbox": [0, 0, 2, 2],
                "area": 4,
                "iscrowd": 0,
            },
            {
                "id": 4,
                "image_id": 7,
                "category_id": 2,
                "bbox": [1, 1, 2, 2],
                "area": 4,
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 1, "name": "boat", "supercategory": "x"}, {"id": 2, "name": "ship"}],
    }
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    res = cli("merge", many / "full", tmp_path / "foreign.json", "--out", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "m.json").read_text())
    cats = {c["name"]: c["id"] for c in out["categories"]}
    assert out["categories"][: len(own["categories"])] == own["categories"]
    assert cats["boat"] == max(c["id"] for c in own["categories"]) + 1
    last = out["annotations"][-2:]
    assert [a["category_id"] for a in last] == [cats["boat"], cats["ship"]]
    assert last[0]["image_id"] == len(out["images"]) == len(own["images"]) + 1
    ids = [a["id"] for a in out["annotations"]]
    assert ids == list(range(1, len(ids) + 1))


def test_overwrite_removes_the_previous_outputs(many, tmp_path):
    root = many / "viso"
    base = ["convert", "--dataset", "viso", "--root", root, "--out", tmp_path]
    assert cli(*base, "--model", "box", "--format", "png").exit_code == 0
    assert (tmp_path / "plane" / "001" / "000001.png").is_file()
    res = cli(*base, "--model", "box", "--format", "coco", "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "plane").exists()
    assert (tmp_path / "annotations.json").is_file()
    assert len((tmp_path / ".box2mask" / "ledger.jsonl").read_text().splitlines()) == sum(LENGTHS)
