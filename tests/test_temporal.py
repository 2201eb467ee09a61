"""``--temporal propagate``: the TemporalEngine against Meta's video predictor, and resume exactness.

A synthetic 5-frame sequence on disk (a ship moving right, a box-filled car);
box2mask's engine propagates the ship's track through its prompt-centred crops
(tiny random SAM 2.1 weights in the official layout) and must give the masks
Meta's ``SAM2VideoPredictor`` gives on the same crops, prompts and frames. A run
handed only the window's last frames (a resumed run) must give bit-identical
masks for them, reading the others through ``window_frames``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sam2")

from test_models_sam2 import _iou, _reference_state  # noqa: E402
from tiny_sam2 import reference_net, write_sam2_pt  # noqa: E402

from box2mask import geometry  # noqa: E402
from box2mask.engine import EngineOptions  # noqa: E402
from box2mask.models.registry import MODELS  # noqa: E402
from box2mask.temporal import TemporalEngine, prompted_positions, window_of  # noqa: E402
from box2mask.types import Frame  # noqa: E402

torch.set_num_threads(2)
N = 5
PROMPT_EVERY = 3


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_sam2_pt(tmp_path_factory.mktemp("sam2t"))


@pytest.fixture(scope="module")
def model(ckpt):
    return MODELS.get("sam2").build(ckpt)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[Frame]:
    d = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (15, 20, 3)).astype(np.uint8), (800, 600))
    out = []
    for i in range(1, N + 1):
        img = base.copy()
        x = 200 + 25 * i
        cv2.ellipse(img, (x + 40, 300), (40, 18), 0, 0, 360, (250, 250, 250), -1)
        path = d / f"{i:04d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        out.append(
            Frame(
                sequence="seq", frame_index=i, image_path=path, image_hw=(600, 800),
                xyxy=[[x - 4.0, 278.0, x + 84.0, 322.0], [600.0, 100.0, 612.0, 108.0]],
                track_id=[7, 9], category=["ship", "car"],
            )
        )  # fmt: skip
    return out


def _engine(model, **kw) -> TemporalEngine:
    return TemporalEngine(
        model, EngineOptions(batch_size=2, workers=1, write_queue=0),
        box_filler=MODELS.get("box").build(), prompt_every=PROMPT_EVERY, **kw,
    )  # fmt: skip


def _run(engine, frames) -> dict[int, object]:
    got = {}
    engine.run(frames, lambda fm: got.__setitem__(fm.frame.frame_index, fm))
    return got


def test_prompting_and_windows() -> None:
    assert prompted_positions(7, 3) == [True, False, False, True, False, False, True]
    assert prompted_positions(3, 1) == [True] * 3
    f = Frame("a/b", 33, Path("x.png"), (10, 10), np.zeros((0, 4)), [], [])
    assert window_of(f) == ("a/b", 2)


def test_engine_matches_video_predictor_on_the_crops(ckpt, model, frames) -> None:
    got = _run(_engine(model), frames)
    assert sorted(got) == list(range(1, N + 1))
    # the reference: Meta's predictor on the crops box2mask's geometry cuts
    wins, crops, boxes = [], [], []
    for fr in frames:
        img = cv2.imread(str(fr.image_path))[:, :, ::-1]
        win = geometry.window_for_box(fr.xyxy[0], fr.image_hw, 512, 1.25, "centred")
        crop = geometry.crop_image(img, win, geometry.fill_for_mode("centred"))
        wins.append(win)
        crops.append(geometry.resize_crop(crop, 1024, "bicubic"))
        boxes.append(geometry.box_to_model(fr.xyxy[0], win, 1024))
    video = reference_net(ckpt, video=True)
    state = _reference_state(video, np.stack(crops))
    for j, p in enumerate(prompted_positions(N, PROMPT_EVERY)):
        if p:
            video.add_new_points_or_box(state, frame_idx=j, obj_id=1, box=boxes[j])
    for j, _ids, _masks in video.propagate_in_video(state):
        out = state["output_dict_per_obj"][0]
        low = (out["cond_frame_outputs"].get(j) or out["non_cond_frame_outputs"][j])["pred_masks"]
        s = wins[j].size  # the engine's paste: 256² logits → the window, bilinear, > 0
        ref = F.interpolate(low.float(), (s, s), mode="bilinear", align_corners=False)[0, 0] > 0
        fm = got[j + 1]
        ship = next(om for om in fm.masks if om.track_id == 7)
        car = next(om for om in fm.masks if om.track_id == 9)
        assert ship.source == "model" and car.source == "box"
        assert ship.window == wins[j]
        assert _iou(ship.mask, ref.numpy()) >= 0.99, j


def test_resumed_window_is_exact(model, frames) -> None:
    """A run handed frames 3..5 of the window (1, 2 already recorded) gives the same masks."""
    full = _run(_engine(model), frames)
    by_index = {f.frame_index: f for f in frames}

    def window_frames(sequence: str, index: int) -> list[Frame]:
        return [f for i, f in sorted(by_index.items()) if i // 16 == index]

    resumed = _run(_engine(model, window_frames=window_frames), frames[2:])
    assert sorted(resumed) == [3, 4, 5]
    for i in (3, 4, 5):
        a = next(om for om in full[i].masks if om.track_id == 7)
        b = next(om for om in resumed[i].masks if om.track_id == 7)
        assert np.array_equal(a.mask, b.mask) and a.score == b.score, i
