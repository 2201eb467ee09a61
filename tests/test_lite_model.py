"""The lite model's pieces: window rule, inputs, checkpoint file, training crops = inference crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from box2mask.errors import CheckpointError
from box2mask.models.lite import checkpoint as ckpt
from box2mask.models.lite.crops import (
    INPUT_SIDES,
    coverage,
    frame_input,
    input_side,
    inside_box,
    mask_block,
    window_for_box,
)
from box2mask.models.lite.model import LiteModel, fold_batchnorm
from box2mask.models.lite.net import IN_CHANNELS, LiteArch, LiteNet
from box2mask.train.lite.cache import Source, build_cache
from box2mask.train.lite.samples import AugmentConfig, Sampler, sample
from tests.data.make_yolo import make_yolo


def _random_file(path: Path, seed: int = 0, arch: LiteArch = LiteArch((8, 12), 4, 8)) -> Path:
    torch.manual_seed(seed)
    net = LiteNet(arch)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding is tested
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return ckpt.save(path, net, 1.5, 16, INPUT_SIDES, {"recipe": {"seed": seed}, "licence": "test"})


def test_window_is_centred_and_input_side_follows_the_window():
    w = window_for_box([100.0, 50.0, 120.0, 60.0], 1.5, 16)
    assert w.size == 30 and (w.x0 + w.size / 2, w.y0 + w.size / 2) == (110.0, 55.0)
    assert window_for_box([0, 0, 4, 4], 1.5, 16).size == 16  # the smallest window
    assert [input_side(s) for s in (16, 32, 40, 64, 65, 128, 900)] == [32, 32, 48, 64, 96, 128, 128]
    # an input scale enlarges small windows (a 10x20 px car's 30-px window: 48 px at 1.5)
    assert [input_side(s, 1.5) for s in (16, 21, 22, 30, 64, 65, 900)] == [
        32,
        32,
        48,
        48,
        96,
        128,
        128,
    ]
    assert [input_side(s, 2.0) for s in (16, 30, 48, 49)] == [32, 64, 96, 128]


def test_coverage_is_the_share_of_each_input_pixel():
    # a box over window pixels [3, 7) of an 8-px window on a 4-px grid: 2 px per input pixel
    assert coverage(3.0, 7.0, 8.0, 4).tolist() == [0.0, 0.5, 1.0, 0.5]
    assert coverage(-5.0, 100.0, 8.0, 4).tolist() == [1.0] * 4


def test_frame_input_planes_at_the_frame_border():
    image = np.full((40, 50, 3), 200, np.uint8)
    box = [0.0, 0.0, 10.0, 10.0]  # in the corner: the window reaches past the frame
    win = window_for_box(box, 1.5, 16)
    x = frame_input(image, box, win)
    r = input_side(win.size)
    assert x.shape == (IN_CHANNELS, r, r) and x.dtype == np.float32
    outside = x[4] == 0
    assert outside.any() and (x[4] == 1).any()
    assert np.allclose(
        x[:3, 0, 0], 0.0, atol=0.05
    )  # deep outside: the mean fill, 0 once normalised
    assert x[3].sum() == pytest.approx(
        (10 * r / win.size) ** 2, rel=1e-5
    )  # the box's area on the grid


def test_mask_block_pastes_back_in_window_pixels():
    logits = -np.ones((32, 32), np.float32)
    logits[8:24, 8:24] = 1.0
    block = mask_block(logits, 16)  # a 16-px window shown on a 32-px input
    assert (block.top, block.left, block.height, block.width) == (4, 4, 8, 8)


def test_masks_stay_inside_the_pixels_their_box_touches():
    logits = np.ones((32, 32), np.float32)  # the network says "object" everywhere
    block = mask_block(logits, 32, 0.0, [4.5, 6.0, 20.2, 10.0])
    # x: pixels 4..20 (the box touches 4 and 20 in part), y: 6..9
    assert (block.left, block.top, block.width, block.height) == (4, 6, 17, 4)
    assert mask_block(logits, 32).area == 32 * 32  # no box: nothing cut
    # a box reaching past the window keeps the window's edge
    assert mask_block(logits, 16, 0.0, [-3.0, -3.0, 40.0, 8.0]).area == 16 * 8
    assert inside_box(np.ones((8, 8), bool), [2.0, 2.0, 4.0, 4.0]).sum() == 4


def test_checkpoint_round_trip_metadata_and_folding(tmp_path):
    path = _random_file(tmp_path / "m.safetensors")
    c = ckpt.load(path)
    assert c.context == 1.5 and c.min_side == 16
    assert c.meta_json("recipe") == {"seed": 0} and c.metadata["licence"] == "test"
    assert json.loads(c.metadata["window"])["input_sides"] == list(INPUT_SIDES)
    x = torch.randn(3, IN_CHANNELS, 32, 32)
    with torch.no_grad():
        a, ia = c.net(x)
        b, ib = fold_batchnorm(c.net)(x)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(ia, ib, atol=1e-4)
    model = LiteModel(c)
    logits, iou = model.predict(
        [x[0].numpy(), torch.randn(IN_CHANNELS, 64, 64).numpy(), x[1].numpy()]
    )
    assert [lg.shape for lg in logits] == [(32, 32), (64, 64), (32, 32)]
    assert np.allclose(logits[2], a[1].numpy(), atol=1e-4) and ((iou > 0) & (iou < 1)).all()


def test_large_inputs_are_the_mean_over_the_four_flips(tmp_path):
    """Inputs of FLIP_MIN_SIDE px and more: the network's answers under the four flips of the
    square, flipped back and averaged; smaller ones: one pass."""
    from box2mask.models.lite.model import FLIP_MIN_SIDE

    c = ckpt.load(_random_file(tmp_path / "m.safetensors"))
    model = LiteModel(c)
    big = torch.randn(1, IN_CHANNELS, FLIP_MIN_SIDE, FLIP_MIN_SIDE)
    small = torch.randn(1, IN_CHANNELS, 64, 64)
    logits, iou = model.predict([big[0].numpy(), small[0].numpy()])
    with torch.no_grad():
        outs, scores = [], []
        for dims in ([], [3], [2], [2, 3]):
            o, sc = c.net(torch.flip(big, dims) if dims else big)
            outs.append(torch.flip(o, [d - 1 for d in dims]) if dims else o)
            scores.append(sc)
        want = torch.stack(outs).mean(0)[0].numpy()
        want_iou = torch.sigmoid(torch.stack(scores).mean(0))[0].item()
        plain, plain_iou = c.net(small)
    assert np.allclose(logits[0], want, atol=1e-4) and iou[0] == pytest.approx(want_iou, abs=1e-5)
    assert not np.allclose(logits[0], c.net(big)[0][0].detach().numpy(), atol=1e-3)
    assert np.allclose(logits[1], plain[0].numpy(), atol=1e-4)


def test_the_input_scale_is_the_files_and_old_files_read_as_one(tmp_path):
    """A file's input scale decides its input sides; a file written before it existed reads as 1."""
    torch.manual_seed(0)
    net = LiteNet(LiteArch((8, 12), 4, 8))
    scaled = ckpt.save(tmp_path / "s.safetensors", net, 1.5, 16, INPUT_SIDES, {}, (), 1.5)
    model = LiteModel(ckpt.load(scaled))
    assert model.input_scale == 1.5
    image = np.full((100, 100, 3), 90, np.uint8)
    box = [40.0, 45.0, 60.0, 55.0]  # 20x10 px: a 30-px window
    win = model.window(box)
    assert win.size == 30 and model.make_input(image, box, win).shape[-1] == 48
    assert model.side_for(win) == 48
    # the window rule is unchanged: qa's crop-edge check reads context and min_side alone
    assert (model.context, model.min_side) == (1.5, 16)
    from safetensors import safe_open

    with safe_open(str(scaled), framework="pt") as f:
        meta = dict(f.metadata())
    window = json.loads(meta["window"])
    assert window["input_scale"] == 1.5
    del window["input_scale"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(scaled)), str(old), metadata=dict(meta, window=json.dumps(window)))
    assert ckpt.load(old).input_scale == 1.0
    assert LiteModel(ckpt.load(old)).make_input(image, box, win).shape[-1] == 32
    window["input_scale"] = 0.0
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(scaled)), str(bad), metadata=dict(meta, window=json.dumps(window)))
    with pytest.raises(CheckpointError, match="input_scale"):
        ckpt.load(bad)


def test_a_tampered_or_foreign_file_is_refused(tmp_path):
    path = _random_file(tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    key = next(k for k in sorted(state) if k.endswith("weight") and state[k].ndim == 4)
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1e-3
    save_file(state, str(tmp_path / "tampered.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="changed after it was written"):
        ckpt.load(tmp_path / "tampered.safetensors")
    save_file(
        {"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"}
    )
    with pytest.raises(CheckpointError, match="not a box2mask lite checkpoint"):
        ckpt.load(tmp_path / "foreign.safetensors")
    del state[key]
    meta2 = dict(meta, tensors=ckpt.tensors_digest(state))
    save_file(state, str(tmp_path / "missing.safetensors"), metadata=meta2)
    with pytest.raises(CheckpointError, match="missing"):
        ckpt.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ckpt.load(tmp_path / "junk.safetensors")


@pytest.fixture(scope="module")
def yolo_cache(tmp_path_factory):
    import box2mask.adapters  # noqa: F401
    from box2mask.adapters.base import ADAPTERS

    root = tmp_path_factory.mktemp("yolo")
    make_yolo(root, "roboflow", images=3)
    adapter = ADAPTERS.get("yolo")(root, split="train")
    cache = build_cache(
        root / "cache", [Source("fixture", adapter.frames, {"dataset": "yolo"})], 16
    )
    return adapter, cache


def test_training_crops_are_the_inference_crops(yolo_cache):
    """Without disturbance, a training sample is exactly what convert feeds the network."""
    from box2mask.io import read_image

    adapter, cache = yolo_cache
    rng = np.random.default_rng(0)
    i = 0
    for frame in adapter.frames():
        image = read_image(frame.image_path)
        for k in range(len(frame)):
            if frame.gt_mask(k) is None:
                continue
            x, t = sample(cache, i, rng, 1.5, 16, None)
            win = window_for_box(frame.xyxy[k], 1.5, 16)
            assert np.array_equal(x, frame_input(image, frame.xyxy[k], win))
            x2, _ = sample(cache, i, rng, 1.5, 16, None, input_scale=1.5)
            assert np.array_equal(x2, frame_input(image, frame.xyxy[k], win, 1.5))
            truth = mask_block(np.where(t > 0.5, 1.0, -1.0).astype(np.float32), win.size)
            gt = frame.gt_mask(k)
            sl = win.overlap(frame.image_hw)
            assert sl is not None
            expected = np.zeros((win.size, win.size), bool)
            expected[sl[2], sl[3]] = gt[sl[0], sl[1]]
            got = truth.to_array(win.size)
            assert (got & expected).sum() / (got | expected).sum() > 0.9
            i += 1
    assert i == len(cache) == 9  # three polygons per image; box-only lines have no mask


def test_sampler_draws_one_side_per_step_deterministically(yolo_cache):
    _, cache = yolo_cache
    s = Sampler(cache, np.ones(len(cache)), 1.5, 16, 64 * 32 * 32)
    a = s.batch(np.random.default_rng([3, 7]), AugmentConfig())
    b = s.batch(np.random.default_rng([3, 7]), AugmentConfig())
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    r = a.inputs.shape[-1]
    assert a.inputs.shape == (64 * 32 * 32 // (r * r), IN_CHANNELS, r, r)
    assert a.targets.min() >= 0 and a.targets.max() <= 1
    assert sorted(cache.categories) == [
        "airplane",
        "ship",
        "small_vehicle",
    ]  # plane: the shared name


def test_the_cli_defaults_are_the_networks_defaults():
    from box2mask.cli.train_lite import LITE_FLAGS

    arch = LiteArch()
    assert LITE_FLAGS["widths"].default == ",".join(str(w) for w in arch.widths)
    assert LITE_FLAGS["full"].default == arch.full
    assert LITE_FLAGS["box_jitter"].default == AugmentConfig().box_jitter


def test_thresholds_are_calibrated_on_training_objects_and_kept_in_the_file(yolo_cache, tmp_path):
    from box2mask.models.lite.crops import THRESHOLD_EDGES
    from box2mask.train.lite.calibrate import CANDIDATES, calibrate

    _, cache = yolo_cache
    path = _random_file(tmp_path / "m.safetensors")
    model = LiteModel(ckpt.load(path))
    th = calibrate(model, cache, per_bin=20)
    assert len(th) == len(THRESHOLD_EDGES) + 1 and all(t in CANDIDATES for t in th)
    assert calibrate(model, cache, per_bin=20) == th  # a fixed sample: the same choice
    c = ckpt.load(path)
    values = [-3.0, -2.0] + [-1.0] * (len(THRESHOLD_EDGES) - 1)
    again = ckpt.save(tmp_path / "t.safetensors", c.net, 1.5, 16, INPUT_SIDES, {}, values)
    loaded = LiteModel(ckpt.load(again))
    assert loaded.thresholds == tuple(values)
    win = window_for_box([0, 0, 6, 6], 1.5, 16)
    logits = np.full((32, 32), -2.5, np.float32)
    # 6 px: cut at -3, so the whole window passes, and the box keeps its own 6 x 6 pixels
    assert loaded.mask_block(logits, win, [0, 0, 6, 6]).area == 6 * 6
    assert loaded.mask_block(logits, win, [0, 0, 10, 10]).area == 0  # 10 px: cut at -2


def test_weights_verify_and_model_auto_know_a_lite_file(tmp_path):
    from typer.testing import CliRunner

    from box2mask.cli import app
    from box2mask.cli import commands as _commands  # noqa: F401
    from box2mask.options import ConvertOptions
    from box2mask.runtime import choose_model

    path = _random_file(tmp_path / "mine.safetensors")
    res = CliRunner().invoke(app, ["weights", "verify", str(path)])
    assert res.exit_code == 0, res.output
    assert "lite" in res.output and "tensors match their digest" in res.output
    opts = ConvertOptions(dataset="viso", out=tmp_path / "o", checkpoint=str(path))
    spec, found, note = choose_model(opts)
    assert spec.name == "lite" and found == path and "lite checkpoint" in note
    assert not ckpt.is_lite_file(tmp_path / "nothing") and ckpt.is_lite_file(path)


def test_lite_segments_cars_by_default_where_the_other_models_box_fill_them(tmp_path):
    """--box-fill-classes defaults to the model's own policy: the SAM family and the
    weight-free models box-fill ``car`` (the paper's), lite segments them (docs/lite.md)."""
    import box2mask

    example = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"
    path = _random_file(tmp_path / "m.safetensors")
    lite = box2mask.convert(dataset="viso", root=example, out=tmp_path / "lite", model="lite",
                            checkpoint=str(path), sequences="car/001")  # fmt: skip
    assert "box" not in lite.objects_by_source and lite.options.box_fill_classes == ()
    ident = json.loads((tmp_path / "lite" / ".box2mask" / "job.json").read_text())["identity"]
    assert ident["box_fill_classes"] == []
    ell = box2mask.convert(dataset="viso", root=example, out=tmp_path / "ell", model="ellipse",
                           sequences="car/001")  # fmt: skip
    assert set(ell.objects_by_source) == {"box"} and ell.options.box_fill_classes == ("car",)
    given = box2mask.convert(dataset="viso", root=example, out=tmp_path / "given", model="lite",
                             checkpoint=str(path), sequences="car/001", box_fill_classes="car")  # fmt: skip
    assert set(given.objects_by_source) == {"box"}


def test_converted_lite_masks_lie_inside_their_boxes(tmp_path):
    """The shipped weights on the example clip: every mask within the pixels its box touches."""
    import math

    from pycocotools import mask as mask_utils

    import box2mask

    example = Path(__file__).resolve().parent.parent / "examples" / "viso-mini"
    box2mask.convert(dataset="viso", root=example, out=tmp_path / "out", model="lite",
                     sequences="car/001", formats="coco")  # fmt: skip
    anns = json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
    assert anns
    for a in anns:
        x, y, w, h = a["bbox"]
        m = mask_utils.decode(a["segmentation"])
        ys, xs = np.nonzero(m)
        assert xs.min() >= math.floor(x) and xs.max() <= math.ceil(x + w) - 1, a["id"]
        assert ys.min() >= math.floor(y) and ys.max() <= math.ceil(y + h) - 1, a["id"]
