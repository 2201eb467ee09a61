"""box2mask export / import: masks to CVAT and Label Studio and back (issue 27).

A job converted from the VISO fixture (classical masks) goes out to each tool, comes back
with a reviewer's edits done on the tool's file (tests/exchange_helpers.py), and the
import's result holds exactly those edits. The real tools read and write these files in
tests/test_exchange_labelstudio.py and tests/test_exchange_datumaro.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from cli_helpers import cli, flat
from exchange_helpers import (
    ALL_FORMATS,
    assert_formats_agree,
    convert_job,
    copy_job,
    cvat_mask_shape,
    cvat_review,
    cvat_set_mask,
    cvat_track,
    job_files,
    job_masks,
    ls_frame,
    ls_region,
    ls_review,
)
from pycocotools.coco import COCO

from box2mask.errors import UsageError
from box2mask.exchange import Selection, export, read_review, write_corrected
from box2mask.exchange.diff import apply
from box2mask.job import JobFolder

WHEN = "2026-12-07T10:00:00Z"


MINI = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """examples/viso-mini (512x384, three sequences, up to 14 objects a frame), classical."""
    return convert_job(MINI, tmp_path_factory.mktemp("exchange") / "job")


def _coco(job: Path) -> dict:
    return json.loads((job / "annotations.json").read_text())


def _no_edits(tool: str, out: Path, tmp: Path) -> list[Path]:
    """What the tool gives back when the reviewer changed nothing."""
    if tool == "labelstudio":
        return [ls_review(out, tmp / "ls.json")]
    return sorted(out.glob("tasks/**/annotations.xml"))


@pytest.mark.parametrize("shape", ["mask", "polygon"])
@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_round_trip_without_edits_keeps_every_mask_bit_for_bit(job, tmp_path, tool, shape) -> None:
    out = tmp_path / "out"
    s = export(job, tool, out, shape=shape)
    coco = _coco(job)
    assert s.objects == len(coco["annotations"])
    unchanged = 0
    for f in _no_edits(tool, out, tmp_path):
        data, res = read_review(tool, f, job, now=None)
        counts = res.counts()
        assert counts["changed"] == counts["added"] == counts["removed"] == counts["unmatched"] == 0
        unchanged += counts["unchanged"]
        assert apply(data.coco, res) == coco  # nothing to apply
    assert unchanged == len(coco["annotations"])
    written, _ = write_corrected(data, res, tmp_path / "corrected.json")
    assert written.read_bytes() == json.dumps(coco).encode()
    assert {k: m.tobytes() for k, m in job_masks(written).items()} == {
        k: m.tobytes() for k, m in job_masks(job).items()
    }


def _pick(job: Path) -> dict[str, tuple[str, int, int]]:
    """Three objects of one frame (changed, removed, relabelled) and a free track id there."""
    masks = job_masks(job)
    frames: dict[tuple[str, int], list[int]] = {}
    for s, f, t in masks:
        frames.setdefault((s, f), []).append(t)
    (seq, fi), tracks = max(frames.items(), key=lambda kv: len(kv[1]))
    assert len(tracks) >= 3
    a, b, c = sorted(tracks)[:3]
    other = next(k for k in sorted(frames) if k[0] == seq and k != (seq, fi))
    return {"change": (seq, fi, a), "remove": (seq, fi, b), "relabel": (seq, fi, c),
            "new": (seq, fi, max(tracks) + 100), "odd": (*other, -1)}  # fmt: skip


def _changed(mask: np.ndarray) -> np.ndarray:
    """The reviewer's fix: the mask grown by a pixel on every side."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _new_mask(hw: tuple[int, int]) -> np.ndarray:
    m = np.zeros(hw, bool)
    m[2:9, 3:12] = True
    return m


def _ls_edit(job: Path, pick: dict):  # noqa: ANN202
    masks = job_masks(job)
    other = "airplane"

    def edit(task: dict, result: list[dict]) -> list[dict] | None:
        seq, fi = ls_frame(task)
        hw = masks[pick["change"]].shape
        if (seq, fi) == pick["odd"][:2]:  # a new object without a track id, and a box
            return result + ls_region("notrack001", "car", _new_mask(hw), None) + [{
                "id": "rect000001", "from_name": "box", "to_name": "image",
                "type": "rectanglelabels", "original_width": hw[1], "original_height": hw[0],
                "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["car"]},
            }]  # fmt: skip
        if (seq, fi) != pick["change"][:2]:
            return result
        out = []
        for r in result:
            track = int(r["id"][1:])
            key = (seq, fi, track)
            if key == pick["remove"]:
                continue
            if r["type"] == "brushlabels" and key == pick["change"]:
                r["value"]["rle"] = ls_region("x", "car", _changed(masks[key]), None)[0]["value"][
                    "rle"
                ]
            if r["type"] == "brushlabels" and key == pick["relabel"]:
                r["value"]["brushlabels"] = [other]
            out.append(r)
        return out + ls_region("newreg0001", "car", _new_mask(hw), pick["new"][2])

    return edit


def _cvat_edit(job: Path, pick: dict, names: dict[str, tuple[str, int]]):  # noqa: ANN202
    masks = job_masks(job)

    def edit(root: ElementTree.Element, image: ElementTree.Element) -> None:
        seq, fi = names[image.get("name")]
        hw = masks[pick["change"]].shape
        if (seq, fi) == pick["odd"][:2]:  # a new object without a track id, and a box
            image.append(cvat_mask_shape("car", _new_mask(hw), None))
            image.append(ElementTree.Element("box", {"label": "car", "xtl": "1", "ytl": "1",
                                                     "xbr": "5", "ybr": "5"}))  # fmt: skip
            return
        if (seq, fi) != pick["change"][:2]:
            return
        for shape in list(image):
            key = (seq, fi, cvat_track(shape))
            if key == pick["remove"]:
                image.remove(shape)
            elif key == pick["change"]:
                cvat_set_mask(shape, _changed(masks[key]))
            elif key == pick["relabel"]:
                shape.set("label", "airplane")
        image.append(cvat_mask_shape("car", _new_mask(hw), pick["new"][2]))

    return edit


def _image_names(out: Path) -> dict[str, tuple[str, int]]:
    man = json.loads((out / "box2mask-export.json").read_text())
    return {
        f["image"]: (t["sequence"], f["frame_index"]) for t in man["tasks"] for f in t["frames"]
    }


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_reviewer_edits_come_back_exactly(job, tmp_path, tool) -> None:
    pick = _pick(job)
    out = tmp_path / "out"
    export(job, tool, out)
    if tool == "labelstudio":
        files = [ls_review(out, tmp_path / "ls.json", _ls_edit(job, pick))]
    else:
        names = _image_names(out)
        files = [cvat_review(x, tmp_path / f"t{n}.xml", _cvat_edit(job, pick, names))
                 for n, x in enumerate(sorted(out.glob("tasks/**/annotations.xml")))]  # fmt: skip
    coco = _coco(job)
    results = [read_review(tool, f, job, manifest=out / "box2mask-export.json") for f in files]
    total = {k: sum(r.counts()[k] for _, r in results) for k in results[0][1].counts()}
    n = len(coco["annotations"])
    assert total == {"unchanged": n - 3, "changed": 2, "added": 1, "removed": 1, "unmatched": 2}
    res = next(r for _, r in results if r.counts()["changed"])
    kinds = {(c.kind, c.key) for c in res.changes if c.kind != "unchanged"}
    assert kinds == {("changed", pick["change"]), ("changed", pick["relabel"]),
                     ("removed", pick["remove"]), ("added", pick["new"])}  # fmt: skip
    shape_reason = {
        "cvat": "a box is not a mask",
        "labelstudio": "a rectanglelabels region is not a mask",
    }
    unmatched = [u for _, r in results for u in r.unmatched]
    assert sorted(u.reason.split(":")[0] for u in unmatched) == sorted(
        [shape_reason[tool], "a new object without a track id"]
    )
    data = results[0][0]
    written, report = write_corrected(data, res, tmp_path / "corrected.json")
    # pycocotools reads the result; every mask is the job's but the reviewer's edits
    api = COCO(str(written))
    assert len(api.getAnnIds()) == n  # one removed, one added
    got = job_masks(written)
    want = job_masks(job)
    want[pick["change"]] = _changed(want[pick["change"]])
    del want[pick["remove"]]
    want[pick["new"]] = _new_mask(want[pick["change"]].shape)
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    by_key = {}
    fixed = json.loads(written.read_text())
    imgs = {im["id"]: im for im in fixed["images"]}
    for a in fixed["annotations"]:
        im = imgs[a["image_id"]]
        by_key[(im["sequence"], im["frame_index"], a["track_id"])] = a
        assert np.array_equal(
            api.annToMask(api.anns[a["id"]]).astype(bool),
            got[(im["sequence"], im["frame_index"], a["track_id"])],
        )
    cats = {c["name"]: c["id"] for c in fixed["categories"]}
    for what in ("change", "relabel", "new"):
        a = by_key[pick[what]]
        assert (a["review"], a["review_tool"]) == ("manual", tool)
        assert a["area"] == int(got[pick[what]].sum())
    assert by_key[pick["change"]]["mask_source"] == by_key[pick["new"]]["mask_source"] == "manual"
    assert by_key[pick["relabel"]]["category_id"] == cats["airplane"]
    old_relabel = next(a for a in coco["annotations"] if a["id"] == by_key[pick["relabel"]]["id"])
    assert by_key[pick["relabel"]]["mask_source"] == old_relabel["mask_source"]  # the model's mask
    old = {a["id"]: a for a in coco["annotations"]}
    assert by_key[pick["change"]]["id"] == old[by_key[pick["change"]]["id"]]["id"]  # same id kept
    assert "review" not in by_key[next(k for k in by_key if k not in pick.values())]
    rep = json.loads(report.read_text())
    assert rep["counts"] == {**res.counts()} and rep["counts"]["changed"] == 2


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_importing_twice_changes_nothing(job, tmp_path, tool) -> None:
    pick = _pick(job)
    out = tmp_path / "out"
    export(job, tool, out, Selection(sequences=(pick["change"][0],)))
    if tool == "labelstudio":
        f = ls_review(out, tmp_path / "ls.json", _ls_edit(job, pick))
    else:
        xml = next(iter(out.glob("tasks/**/annotations.xml")))
        f = cvat_review(xml, tmp_path / "t.xml", _cvat_edit(job, pick, _image_names(out)))
    man = out / "box2mask-export.json"
    data, first = read_review(tool, f, job, manifest=man)
    fixed = apply(data.coco, first)
    job2 = copy_job(job, tmp_path / "job2", fixed)
    data2, second = read_review(tool, f, job2, manifest=man)
    counts = second.counts()
    assert counts["changed"] == counts["added"] == counts["removed"] == 0
    assert counts["unchanged"] == first.counts()["unchanged"] + 3  # the changed and the added
    assert [u.reason for u in second.unmatched] == [u.reason for u in first.unmatched]
    assert apply(data2.coco, second) == fixed


def test_unreviewed_tasks_and_foreign_tasks_change_nothing(job, tmp_path) -> None:
    out = tmp_path / "out"
    export(job, "labelstudio", out)
    f = ls_review(out, tmp_path / "ls.json", lambda task, result: None)  # nobody submitted
    tasks = json.loads(f.read_text())
    tasks.append({"id": 999, "data": {"image": "/data/upload/x.png"}, "annotations": []})
    f.write_text(json.dumps(tasks))
    _, res = read_review("labelstudio", f, job)
    assert res.counts() == {"unchanged": 0, "changed": 0, "added": 0, "removed": 0, "unmatched": 1}
    assert res.not_reviewed == len(tasks) - 1
    assert res.unmatched[0].where == "task 999" and "no data.box2mask" in res.unmatched[0].reason


def test_unmatched_shapes_are_reported_and_their_objects_kept(job, tmp_path) -> None:
    out = tmp_path / "out"
    export(job, "cvat", out, Selection(sequences=("car/001",)))
    xml = next(iter(out.glob("tasks/**/annotations.xml")))
    masks = job_masks(job)
    edited: list[str] = []

    def edit(root, image) -> None:  # noqa: ANN001
        shapes = list(image)
        if len(shapes) < 4 or edited:
            return
        edited.append(image.get("name"))
        shapes[0].set("label", "zeppelin")
        shapes[1].set("rle", "1, 2, 3")
        # a second part for the object of shapes[2]: the two come back as one, larger mask
        part = cvat_mask_shape(shapes[2].get("label"), _new_mask(next(iter(masks.values())).shape),
                               cvat_track(shapes[2]))  # fmt: skip
        image.append(part)

    f = cvat_review(xml, tmp_path / "t.xml", edit)
    tree = ElementTree.parse(f)  # and an image of some other export
    ElementTree.SubElement(tree.getroot(), "image", {"id": "99", "name": "9999-000000.jpg"})
    tree.write(f)
    _, res = read_review("cvat", f, job, manifest=out / "box2mask-export.json")
    reasons = sorted(u.reason for u in res.unmatched)
    assert reasons[0] == "label 'zeppelin' is not a category of the job"
    assert reasons[1].startswith("mask runs add up to 6, not width x height = ")
    assert reasons[2] == "not an image of this export"
    assert len(reasons) == 3
    # the two unreadable shapes' objects are neither changed nor removed
    assert res.counts()["changed"] == 1 and res.counts()["removed"] == 0


def test_a_frame_with_a_shape_without_track_keeps_its_deleted_objects(job, tmp_path) -> None:
    out = tmp_path / "out"
    export(job, "cvat", out, Selection(sequences=("car/001",)))
    xml = next(iter(out.glob("tasks/**/annotations.xml")))
    done: list[str] = []

    def edit(root, image) -> None:  # noqa: ANN001
        shapes = list(image)
        if not shapes or done:
            return
        done.append(image.get("name"))
        # "redrawn": the old shape deleted, a new one drawn without its track id
        image.remove(shapes[0])
        for a in shapes[1].iter("attribute"):
            a.text = "seven"

    f = cvat_review(xml, tmp_path / "t.xml", edit)
    _, res = read_review("cvat", f, job, manifest=out / "box2mask-export.json")
    reasons = [u.reason for u in res.unmatched]
    assert res.counts()["removed"] == 0
    assert "track attribute 'seven' is not a whole number" in reasons
    assert sum(r.startswith("deleted in the tool, but not removed") for r in reasons) == 2


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_selection_top_and_min_suspicion_follow_qa(job, tmp_path, tool) -> None:
    ranked = json.loads((job / "qa" / "qa.json").read_text())["ranked"]
    s = export(job, tool, tmp_path / "top", Selection(top=5))
    assert s.objects == 5
    man = json.loads((tmp_path / "top" / "box2mask-export.json").read_text())
    sent = {
        (t["sequence"], f["frame_index"], k)
        for t in man["tasks"]
        for f in t["frames"]
        for k in f["tracks"]
    }
    assert sent == {(r["sequence"], r["frame_index"], r["track_id"]) for r in ranked[:5]}
    cut = ranked[9]["suspicion"]
    s = export(job, tool, tmp_path / "min", Selection(min_suspicion=cut))
    assert s.objects == sum(r["suspicion"] >= cut for r in ranked)
    cars = [r for r in ranked if r["category"] == "car"]
    cut = cars[5]["suspicion"]
    s = export(job, tool, tmp_path / "both", Selection(min_suspicion=cut, top=3, classes=("car",)))
    assert s.objects == min(3, sum(r["suspicion"] >= cut for r in cars)) == 3


def test_selection_by_sequences_and_classes_and_stale_qa(job, tmp_path) -> None:
    coco = _coco(job)
    s = export(
        job, "cvat", tmp_path / "a", Selection(sequences=("plane/001",), classes=("airplane",))
    )
    imgs = {im["id"]: im for im in coco["images"]}
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    want = sum(imgs[a["image_id"]]["sequence"] == "plane/001" and cats[a["category_id"]] == "airplane"
               for a in coco["annotations"])  # fmt: skip
    assert s.objects == want > 0 and s.tasks == 1
    # a qa.json older than the job: rows of objects the job no longer holds are counted
    qa = json.loads((job / "qa" / "qa.json").read_text())
    qa["ranked"][0]["track_id"] = 424242
    (tmp_path / "qa.json").write_text(json.dumps(qa))
    s = export(job, "cvat", tmp_path / "b", Selection(top=3, qa=tmp_path / "qa.json"))
    assert s.stale == 1 and s.objects == 3
    assert any("older than the job" in line for line in s.lines())


@pytest.mark.parametrize(
    ("sel", "message"),
    [
        (Selection(top=0), "--top must be at least 1"),
        (Selection(min_suspicion=1.5), "--min-suspicion is a score in"),
        (Selection(sequences=("nope",)), "the job has no sequence 'nope'"),
        (Selection(classes=("zeppelin",)), "the job has no category 'zeppelin'"),
        (Selection(top=3, qa=Path("/nonexistent/qa.json")), "no qa ranking at"),
    ],
)
def test_bad_selection_writes_nothing(job, tmp_path, sel, message) -> None:
    with pytest.raises(UsageError, match=message):
        export(job, "cvat", tmp_path / "out", sel)
    assert not (tmp_path / "out").exists()


def test_cli_export_and_import(job, tmp_path) -> None:
    out = tmp_path / "cvat"
    r = cli("export", "--to", "cvat", "--job", job, "--out", out, "--top", "4")
    assert r.exit_code == 0, r.output
    assert "exported 4 objects" in flat(r.output)
    r = cli("export", "--to", "cvat", "--job", job, "--out", out)
    assert r.exit_code == 2 and "not an empty folder" in r.output
    r = cli("export", "--to", "paint", "--job", job, "--out", tmp_path / "p")
    assert r.exit_code == 2 and "--to must be one of cvat, labelstudio" in flat(r.output)
    assert not (tmp_path / "p").exists()
    xml = next(iter(out.glob("tasks/**/annotations.xml")))
    r = cli("import", "--from", "cvat", xml, "--job", job, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "unchanged" in r.output and not list(tmp_path.glob("*.json"))
    assert "dry run: nothing written" in r.output
    r = cli(
        "import", "--from", "cvat", xml, "--job", job, "--dry-run", "--out", tmp_path / "x.json"
    )
    assert r.exit_code == 2 and "--dry-run writes nothing; leave out --out" in flat(r.output)
    r = cli("import", "--from", "cvat", xml, "--job", job, "--report", job / "rep.json")
    assert r.exit_code == 2 and "inside the job folder" in flat(r.output)
    assert not (job / "rep.json").exists() and not (tmp_path / "x.json").exists()
    # a folder holding only a COCO file (merge's output) has no job to write into
    merged = tmp_path / "merged"
    r = cli("merge", job, "--out", merged, "--format", "coco")
    assert r.exit_code == 0, r.output
    r = cli("export", "--to", "cvat", "--job", merged, "--out", tmp_path / "m", "--top", "4",
            "--qa", job / "qa" / "qa.json", "--image-root", MINI)  # fmt: skip
    assert r.exit_code == 0, r.output
    mxml = next(iter((tmp_path / "m").glob("tasks/**/annotations.xml")))
    r = cli("import", "--from", "cvat", mxml, "--job", merged)
    assert r.exit_code == 2 and "give --out FILE.json to write a corrected COCO" in flat(r.output)
    r = cli("import", "--from", "cvat", mxml, "--job", merged, "--out", tmp_path / "mfixed.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "mfixed.json").read_text()) == _coco(merged)
    r = cli("import", "--from", "cvat", xml, "--job", job, "--out", tmp_path / "fixed.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "fixed.json").read_text()) == _coco(job)
    r = cli("import", "--from", "cvat", xml, "--job", job, "--out", job / "annotations.json")
    assert r.exit_code == 2 and "that is the job's own COCO" in flat(r.output)
    r = cli("import", "--from", "cvat", tmp_path / "nope.xml", "--job", job, "--dry-run")
    assert r.exit_code == 2 and "no such file" in r.output
    lost = tmp_path / "lost.xml"
    lost.write_bytes(xml.read_bytes())
    r = cli("import", "--from", "cvat", lost, "--job", job, "--dry-run")
    assert r.exit_code == 2 and "pass --manifest" in flat(r.output)
    bad = tmp_path / "bad.xml"
    bad.write_text("<html/>")
    r = cli(
        "import",
        "--from",
        "cvat",
        bad,
        "--job",
        job,
        "--dry-run",
        "--manifest",
        out / "box2mask-export.json",
    )
    assert r.exit_code == 2 and "not a CVAT XML" in flat(r.output)


def test_a_file_from_another_job_is_refused(job, tmp_path) -> None:
    other = convert_job(MINI, tmp_path / "other", "--model", "box")
    out = tmp_path / "ls"
    export(other, "labelstudio", out)
    f = ls_review(out, tmp_path / "ls.json")
    with pytest.raises(UsageError, match="exported from another job"):
        read_review("labelstudio", f, job)
    export(other, "cvat", tmp_path / "c")
    xml = next(iter((tmp_path / "c").glob("tasks/**/annotations.xml")))
    with pytest.raises(UsageError, match="exported from another job"):
        read_review("cvat", xml, job)


def test_labelstudio_urls_are_under_the_document_root(job, tmp_path) -> None:
    out = tmp_path / "ls"
    export(job, "labelstudio", out)  # the document root is the folder above the dataset's
    tasks = json.loads((out / "tasks.json").read_text())
    files = {t["data"]["file_name"] for t in tasks}
    assert {t["data"]["image"] for t in tasks} == {
        f"/data/local-files/?d=viso-mini/{f}" for f in files
    }
    export(job, "labelstudio", tmp_path / "up", document_root=MINI.parent.parent)
    tasks = json.loads((tmp_path / "up" / "tasks.json").read_text())
    assert {t["data"]["image"] for t in tasks} == {
        f"/data/local-files/?d=examples/viso-mini/{f}" for f in files
    }
    with pytest.raises(UsageError, match="is not inside it"):
        export(job, "labelstudio", tmp_path / "x", document_root=tmp_path / "elsewhere")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_an_empty_mask_goes_out_without_a_shape_and_a_drawn_one_fixes_it(
    job, tmp_path, tool
) -> None:
    pick = _pick(job)
    coco = _coco(job)
    imgs = {im["id"]: im for im in coco["images"]}
    empty_ann = next(
        a for a in coco["annotations"]
        if (imgs[a["image_id"]]["sequence"], imgs[a["image_id"]]["frame_index"], a["track_id"]) == pick["change"]
    )  # fmt: skip
    h, w = job_masks(job)[pick["change"]].shape
    empty_ann["segmentation"] = {"size": [h, w], "counts": [h * w]}  # the model gave nothing
    job2 = copy_job(job, tmp_path / "job2", coco)
    out = tmp_path / "out"
    s = export(job2, tool, out, Selection(sequences=(pick["change"][0],)))
    assert s.empty == 1 and any("without a shape" in line for line in s.lines())
    man = json.loads((out / "box2mask-export.json").read_text())
    frames = [f for t in man["tasks"] for f in t["frames"] if f["frame_index"] == pick["change"][1]]
    assert (
        frames[0]["empty"] == [pick["change"][2]] and pick["change"][2] not in frames[0]["tracks"]
    )
    # left as it is: unchanged, not removed
    f = (
        ls_review(out, tmp_path / "ls.json")
        if tool == "labelstudio"
        else next(iter(out.glob("tasks/**/annotations.xml")))
    )
    _, res = read_review(tool, f, job2, manifest=out / "box2mask-export.json")
    assert res.counts()["removed"] == 0 and res.counts()["unchanged"] == s.objects
    # the reviewer draws its mask, with its track id: a change of that object
    drawn = _new_mask((h, w))
    if tool == "labelstudio":

        def edit(task: dict, result: list[dict]) -> list[dict]:
            if ls_frame(task) != pick["change"][:2]:
                return result
            return result + ls_region("drawn00001", "car", drawn, pick["change"][2])

        f = ls_review(out, tmp_path / "ls2.json", edit)
    else:
        names = _image_names(out)

        def cedit(root: ElementTree.Element, image: ElementTree.Element) -> None:
            if names[image.get("name")] == pick["change"][:2]:
                image.append(cvat_mask_shape("car", drawn, pick["change"][2]))

        f = cvat_review(f, tmp_path / "t.xml", cedit)
    _, res = read_review(tool, f, job2, manifest=out / "box2mask-export.json")
    changed = [c for c in res.changes if c.kind == "changed"]
    assert [c.key for c in changed] == [pick["change"]] and res.counts()["added"] == 0


# -- into the job ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def job6(tmp_path_factory) -> Path:
    """examples/viso-mini converted with all six formats (classical), and ranked by qa."""
    return convert_job(MINI, tmp_path_factory.mktemp("exchange6") / "job", "--format", ALL_FORMATS)


def _import(tool: str, f: Path, job: Path, man: Path, *more: object) -> str:
    r = cli("import", "--from", tool, f, "--job", job, "--manifest", man, *more)
    assert r.exit_code == 0, r.output
    return flat(r.output)


@pytest.mark.parametrize("shape", ["mask", "polygon"])
@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_export_and_import_without_edits_leave_every_output_of_the_job_byte_identical(
    job6, tmp_path, tool, shape
) -> None:
    job = copy_job(job6, tmp_path / "job")
    before = job_files(job)
    for name in ("annotations.json", "ytvis.json", "davis/", "mots/", "yolo/", "car/001/"):
        assert any(k.startswith(name) for k in before), name  # all six formats are there
    out = tmp_path / "out"
    export(job, tool, out, shape=shape)
    n = 0
    for k, f in enumerate(_no_edits(tool, out, tmp_path)):
        rep = tmp_path / f"rep{k}.json"
        said = _import(tool, f, job, out / "box2mask-export.json", "--report", rep)
        assert "already holds what the file says: nothing written" in said
        counts = json.loads(rep.read_text())["counts"]
        assert counts["changed"] == counts["added"] == counts["removed"] == counts["unmatched"] == 0
        n += counts["unchanged"]
    assert n == len(_coco(job)["annotations"])
    assert job_files(job) == before


def _edit_files(tool: str, job: Path, out: Path, tmp: Path, pick: dict) -> list[Path]:
    if tool == "labelstudio":
        return [ls_review(out, tmp / "ls.json", _ls_edit(job, pick))]
    names = _image_names(out)
    return [cvat_review(x, tmp / f"t{n}.xml", _cvat_edit(job, pick, names))
            for n, x in enumerate(sorted(out.glob("tasks/**/annotations.xml")))]  # fmt: skip


@pytest.mark.parametrize("tool", ["cvat", "labelstudio"])
def test_import_writes_exactly_the_reviewers_edits_into_the_job_and_every_format(
    job6, tmp_path, tool
) -> None:
    job = copy_job(job6, tmp_path / "job")
    pick = _pick(job)
    before = {k: a for k, a in _by_key(_coco(job)).items()}
    out = tmp_path / "out"
    export(job, tool, out)
    files = _edit_files(tool, job, out, tmp_path, pick)
    man = out / "box2mask-export.json"
    want = job_masks(job)
    want[pick["change"]] = _changed(want[pick["change"]])
    del want[pick["remove"]]
    want[pick["new"]] = _new_mask(want[pick["change"]].shape)

    # a dry run writes nothing
    snap = job_files(job)
    for f in files:
        assert "dry run: nothing written" in _import(tool, f, job, man, "--dry-run")
    assert job_files(job) == snap

    said = [_import(tool, f, job, man, "--report", tmp_path / f"rep{n}.json")
            for n, f in enumerate(files)]  # fmt: skip
    assert sum("1 frame(s) corrected" in s for s in said) == 1  # one frame holds every edit
    reports = [json.loads((tmp_path / f"rep{n}.json").read_text()) for n in range(len(files))]
    total = {k: sum(r["counts"][k] for r in reports) for k in reports[0]["counts"]}
    n = len(before)
    assert total == {"unchanged": n - 3, "changed": 2, "added": 1, "removed": 1, "unmatched": 2}
    # the job's COCO holds exactly those changes; pycocotools and YouTube-VIS agree
    assert_formats_agree(job, want)
    after = _by_key(_coco(job))
    cats = {c["name"]: c["id"] for c in _coco(job)["categories"]}
    for what in ("change", "relabel", "new"):
        a = after[pick[what]]
        assert (a["review"], a["review_tool"]) == ("manual", tool), what
        assert a["review_time"].endswith("Z") and a["area"] == int(want[pick[what]].sum())
    assert (after[pick["change"]]["mask_source"], after[pick["change"]]["score"]) == ("manual", 1.0)
    assert after[pick["new"]]["mask_source"] == "manual"
    assert after[pick["new"]]["prompt_box"] == after[pick["new"]]["bbox"]
    relabel = after[pick["relabel"]]  # its mask is the model's: so are its score and source
    assert relabel["category_id"] == cats["airplane"]
    assert (relabel["mask_source"], relabel["score"]) == (
        before[pick["relabel"]]["mask_source"], before[pick["relabel"]]["score"])  # fmt: skip
    ignore = ("id", "image_id")
    for key, a in before.items():  # every other object is as it was (ids follow frame order)
        if key not in pick.values():
            assert {k: v for k, v in after[key].items() if k not in ignore} == {
                k: v for k, v in a.items() if k not in ignore}, key  # fmt: skip
    # the removal is kept in the corrections layer, with who removed it
    seq, fi, track = pick["remove"]
    layer = json.loads(JobFolder(job).layer_path(seq, fi).read_text())
    gone = next(o for o in layer["objects"] if o["track_id"] == track)
    assert gone["removed"]["review_tool"] == tool

    # importing the same files again changes no byte of the job
    snap = job_files(job)
    for f in files:
        assert "already holds what the file says: nothing written" in _import(tool, f, job, man)
    assert job_files(job) == snap
    rerun = [read_review(tool, f, job, manifest=man)[1].counts() for f in files]
    assert sum(c["changed"] + c["added"] + c["removed"] for c in rerun) == 0


def test_a_relabelled_polygon_keeps_the_jobs_own_mask(job6, tmp_path) -> None:
    """A polygon left as it was sent but given another label changes the category only:
    the job's mask (not the polygon's approximation of it) and the model's score stay."""
    job = copy_job(job6, tmp_path / "job")
    pick = _pick(job)
    out = tmp_path / "out"
    export(job, "cvat", out, Selection(sequences=(pick["relabel"][0],)), shape="polygon")
    names = _image_names(out)

    def edit(root: ElementTree.Element, image: ElementTree.Element) -> None:
        if names[image.get("name")] != pick["relabel"][:2]:
            return
        for shape in image:
            if cvat_track(shape) == pick["relabel"][2]:
                shape.set("label", "airplane")

    xml = next(iter(out.glob("tasks/**/annotations.xml")))
    f = cvat_review(xml, tmp_path / "t.xml", edit)
    before = _by_key(_coco(job))[pick["relabel"]]
    _import("cvat", f, job, out / "box2mask-export.json")
    after = _by_key(_coco(job))[pick["relabel"]]
    assert after["segmentation"] == before["segmentation"]
    assert (after["score"], after["mask_source"]) == (before["score"], before["mask_source"])
    assert after["category_id"] != before["category_id"] and after["review"] == "manual"


def _by_key(coco: dict) -> dict[tuple[str, int, int], dict]:
    imgs = {im["id"]: im for im in coco["images"]}
    out = {}
    for a in coco["annotations"]:
        im = imgs[a["image_id"]]
        out[(im["sequence"], im["frame_index"], a["track_id"])] = a
    return out


def test_an_import_into_an_unfinished_job_reaches_its_formats_when_convert_finishes(
    job6, tmp_path
) -> None:
    """A job whose convert has not finished takes the corrections into its layer and its
    per-frame files; its assembled formats get them when the same convert finishes it."""
    from cli_helpers import convert_viso

    job = copy_job(job6, tmp_path / "job")
    pick = _pick(job)
    out = tmp_path / "out"
    export(job, "labelstudio", out)
    f = ls_review(out, tmp_path / "ls.json", _ls_edit(job, pick))
    want = job_masks(job)
    want[pick["change"]] = _changed(want[pick["change"]])
    del want[pick["remove"]]
    want[pick["new"]] = _new_mask(want[pick["change"]].shape)
    (job / ".box2mask" / "finished.json").unlink()  # as a run stopped before its end leaves it
    coco = (job / "annotations.json").read_bytes()
    said = _import("labelstudio", f, job, out / "box2mask-export.json")
    assert "the job's convert has not finished" in said
    assert (job / "annotations.json").read_bytes() == coco  # assembled when convert ends
    r = convert_viso(MINI, job, "--model", "classical", "--format", ALL_FORMATS)
    assert r.exit_code == 0, r.output
    assert_formats_agree(job, want)
