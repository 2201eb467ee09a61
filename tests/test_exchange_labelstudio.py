"""A real Label Studio server (1.23, from PyPI) takes box2mask's tasks and gives a review back
(issue 27).

The server runs from an environment of its own (.ci/venvs/labelstudio, made by .ci/side-env:
it pins its own numpy and pyarrow<25, which datumaro and box2mask do not share), started here
on 127.0.0.1 with a throwaway data folder. The test talks to it through its HTTP API as a
user would: a session login, a personal access token, Bearer access tokens (legacy tokens are
off by default in 1.23). Label Studio's SDK brush codec (label_studio_sdk.converter.brush,
tests/exchange_labelstudio_run.py) decodes box2mask's predictions and encodes the reviewer's
mask, so both directions of the RLE meet Label Studio's own code.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import cli
from exchange_helpers import (
    ALL_FORMATS,
    REPO,
    assert_formats_agree,
    convert_job,
    job_files,
    job_masks,
    side_python,
)
from pycocotools.coco import COCO
from test_exchange import MINI

RUN = REPO / "tests" / "exchange_labelstudio_run.py"
EMAIL, PASSWORD = "reviewer@example.com", "box2mask-review-1"

pytestmark = pytest.mark.slow


class LabelStudio:
    """A client of the server at ``base``: a logged-in session (Label Studio serves local
    files to a session) and a Bearer access token from a personal access token."""

    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.session = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.session.open(base + "/user/login/").read()
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"email": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": csrf}
        )
        self.session.open(urllib.request.Request(base + "/user/login/", data=form.encode(),
                                                 headers={"Referer": base + "/user/login/"}))  # fmt: skip
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        req = urllib.request.Request(base + "/api/token/", data=b"{}", method="POST", headers={
            "Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": base})  # fmt: skip
        refresh = json.loads(self.session.open(req).read())["token"]
        self.access = self._post_json("/api/token/refresh/", {"refresh": refresh}, auth=False)[
            "access"
        ]

    def _post_json(self, path: str, body: Any, auth: bool = True) -> Any:
        return self.api("POST", path, body, auth)

    def api(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + self.access
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:2000]!r}") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LabelStudio:
    py = side_python("labelstudio")
    data = tmp_path_factory.mktemp("ls-data")
    template = py.parent.parent / "template-data"  # migrated once by .ci/side-env: ~10 s, not ~60
    if template.is_dir():
        shutil.copytree(template, data, dirs_exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        # the folder above the dataset: the project's local-files storage is the dataset root
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(MINI.parent),
        "COLLECT_ANALYTICS": "false",
    }
    log = open(data / "server.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [str(py.parent / "label-studio"), "start", "--no-browser", "--host", "127.0.0.1",
         "--port", str(port), "--username", EMAIL, "--password", PASSWORD, "--data-dir", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=data,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"label-studio exited {proc.returncode}: {(data / 'server.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if json.loads(r.read()).get("status") == "UP":
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"label-studio not UP in 300 s: {(data / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield LabelStudio(base)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _sdk(py: Path, *args: object) -> None:
    r = subprocess.run(
        [str(py), str(RUN), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]


def test_a_review_in_label_studio_comes_back(server, tmp_path) -> None:
    py = side_python("labelstudio")
    job = convert_job(MINI, tmp_path / "job", "--format", ALL_FORMATS)
    out = tmp_path / "ls"
    r = cli("export", "--to", "labelstudio", "--job", job, "--out", out, "--top", "40")
    assert r.exit_code == 0, r.output
    tasks = json.loads((out / "tasks.json").read_text())
    masks = job_masks(job)

    # a project with box2mask's labeling config and the dataset as its local-files storage
    project = server.api("POST", "/api/projects/", {"title": "box2mask review",
                                                    "label_config": (out / "label_config.xml").read_text()})  # fmt: skip
    pid = project["id"]
    server.api("POST", "/api/storages/localfiles/", {"project": pid, "path": str(MINI),
                                                     "title": "frames", "use_blob_urls": True})  # fmt: skip
    done = server.api("POST", f"/api/projects/{pid}/import", tasks)
    assert (done["task_count"], done["prediction_count"]) == (len(tasks), len(tasks))

    # every prediction is there, and Label Studio's own decoder reads each mask exactly
    listed = server.api("GET", f"/api/tasks?project={pid}&page_size=1000")["tasks"]
    assert len(listed) == len(tasks)
    by_frame: dict[tuple[str, int], dict] = {}
    rles: dict[str, list] = {}
    for t in listed:
        full = server.api("GET", f"/api/tasks/{t['id']}")
        meta = full["data"]["box2mask"]
        frame = (meta["sequence"], meta["frame_index"])
        by_frame[frame] = full
        (pred,) = full["predictions"]
        regions = [x for x in pred["result"] if x["type"] == "brushlabels"]
        assert len(regions) == len(meta["tracks"]) and len(pred["result"]) == 2 * len(regions)
        for x in regions:
            rles[f"{frame[0]}|{frame[1]}|{x['id'][1:]}"] = [
                x["value"]["rle"],
                x["original_height"],
                x["original_width"],
            ]
    (tmp_path / "rles.json").write_text(json.dumps(rles))
    _sdk(py, "decode", tmp_path / "rles.json", tmp_path / "alphas.npz")
    for name, alpha in np.load(tmp_path / "alphas.npz").items():
        seq, fi, track = name.split("|")
        assert np.array_equal(alpha == 255, masks[(seq, int(fi), int(track))]), name
        assert set(np.unique(alpha)) <= {0, 255}

    # the frames are served from the dataset by Label Studio's local-files storage
    first = next(iter(by_frame.values()))
    served = server.session.open(server.base + first["data"]["image"]).read()
    assert served == (MINI / first["data"]["file_name"]).read_bytes()

    # a reviewer fixes one mask and deletes another object on one frame (the new mask in
    # Label Studio's own RLE, from its SDK), and accepts another frame as it is
    frame_a, task_a = max(by_frame.items(), key=lambda kv: len(kv[1]["data"]["box2mask"]["tracks"]))
    frame_b, task_b = next((f, t) for f, t in by_frame.items() if f != frame_a)
    fixed_track, deleted_track = task_a["data"]["box2mask"]["tracks"][:2]
    fixed = masks[(*frame_a, fixed_track)].copy()
    fixed[:, :-2] |= fixed[:, 2:]  # grown two pixels to the left
    np.savez(tmp_path / "fixed.npz", fixed=fixed)
    _sdk(py, "encode", tmp_path / "fixed.npz", tmp_path / "fixed.json")
    fixed_rle = json.loads((tmp_path / "fixed.json").read_text())["fixed"]
    result = []
    for x in task_a["predictions"][0]["result"]:
        x = dict(x)
        if x["id"] == f"t{deleted_track}":
            continue
        if x["id"] == f"t{fixed_track}" and x["type"] == "brushlabels":
            x["value"] = {**x["value"], "rle": fixed_rle}
        result.append(x)
    server.api(
        "POST",
        f"/api/tasks/{task_a['id']}/annotations/",
        {"result": result, "was_cancelled": False},
    )
    server.api("POST", f"/api/tasks/{task_b['id']}/annotations/",
               {"result": task_b["predictions"][0]["result"], "was_cancelled": False})  # fmt: skip

    # Label Studio's JSON export, through its API, comes back through `box2mask import`
    exported = server.api(
        "GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true"
    )
    (tmp_path / "export.json").write_text(json.dumps(exported))
    report_path = tmp_path / "report.json"
    r = cli("import", "--from", "labelstudio", tmp_path / "export.json", "--job", job,
            "--report", report_path)  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads(report_path.read_text())
    n_a, n_b = len(task_a["data"]["box2mask"]["tracks"]), len(task_b["data"]["box2mask"]["tracks"])
    assert report["counts"] == {
        "unchanged": n_a - 2 + n_b,
        "changed": 1,
        "added": 0,
        "removed": 1,
        "unmatched": 0,
    }
    assert report["frames_not_reviewed"] == len(tasks) - 2
    changes = {
        (c["kind"], c["sequence"], c["frame_index"], c["track_id"]) for c in report["changes"]
    }
    assert changes == {("changed", *frame_a, fixed_track), ("removed", *frame_a, deleted_track)}

    # the job's COCO holds exactly those changes (pycocotools reads it), and its other
    # formats agree: YouTube-VIS (pycocotools' RLE) and DAVIS (PIL's palette PNGs)
    want = dict(masks)
    want[(*frame_a, fixed_track)] = fixed
    del want[(*frame_a, deleted_track)]
    assert_formats_agree(job, want)
    api = COCO(str(job / "annotations.json"))
    (ann,) = [a for a in api.anns.values() if "review" in a]
    assert (ann["review"], ann["review_tool"], ann["track_id"]) == ("manual", "labelstudio",
                                                                   fixed_track)  # fmt: skip
    assert np.array_equal(api.annToMask(ann).astype(bool), fixed)

    # the same export imported again changes no byte of the job
    snap = job_files(job)
    r = cli("import", "--from", "labelstudio", tmp_path / "export.json", "--job", job)
    assert r.exit_code == 0 and "nothing written" in r.output, r.output
    assert job_files(job) == snap
