"""`--device cpu,cpu`: two worker processes (standing in for two GPUs) share one job's frames."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import box2mask
from box2mask.job import Job, JobLocked
from tests.data.make_viso_many import make_viso_many

LENGTHS = (20, 14, 9, 6)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("dev") / "viso"
    make_viso_many(r, LENGTHS)
    return r


def test_two_workers_process_each_frame_exactly_once_and_match_one_worker(root, tmp_path):
    base = dict(dataset="viso", root=root, model="ellipse", formats="coco,png")
    one = box2mask.convert(out=tmp_path / "one", **base)
    two = box2mask.convert(out=tmp_path / "two", device="cpu,cpu", **base)
    assert two.frames_done == one.frames_done == sum(LENGTHS)
    assert two.objects_by_source == one.objects_by_source
    ledger = [json.loads(x) for x in (tmp_path / "two" / ".box2mask" / "ledger.jsonl").read_text().splitlines()]  # fmt: skip
    keys = Counter((r["sequence"], r["frame"]) for r in ledger)
    assert len(keys) == sum(LENGTHS) and set(keys.values()) == {1}  # every frame, once
    by_worker = Counter(r["worker"] for r in ledger)
    assert set(by_worker) == {0, 1}  # both workers took frames
    parts = list((tmp_path / "two" / ".box2mask" / "parts").rglob("*.json"))
    assert len(parts) == sum(LENGTHS)
    a = (tmp_path / "one" / "annotations.json").read_bytes()
    assert (tmp_path / "two" / "annotations.json").read_bytes() == a
    for png in (tmp_path / "one").rglob("*.png"):
        assert (
            tmp_path / "two" / png.relative_to(tmp_path / "one")
        ).read_bytes() == png.read_bytes()


def test_one_job_is_run_by_one_process_at_a_time(tmp_path):
    a = Job(tmp_path, {"x": 1})
    a.open()
    with pytest.raises(JobLocked, match="another box2mask process is running the job"):
        Job(tmp_path, {"x": 1}).open()
    a.close()
    b = Job(tmp_path, {"x": 1})
    assert b.open() == set()
    b.close()
