"""Speed features keep the masks: reduced precision, shared crops, the writer thread, --profile."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.engine import EngineOptions, MaskEngine, group_windows, window_iou
from box2mask.geometry import paste_mask, window_for_box
from box2mask.models.base import ImageFeatures
from box2mask.models.classical import FillModel
from box2mask.models.sam import load_prompt_model
from box2mask.types import CropWindow, Frame

runner = CliRunner()


def _frame(tmp_path, boxes, hw=(300, 400), index=1, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(40, 200, (*hw, 3), dtype=np.uint8), (0, 0), 2)
    path = tmp_path / f"{index:03d}.png"
    cv2.imwrite(str(path), img)
    n = len(boxes)
    return Frame("s", index, path, hw, boxes, list(range(1, n + 1)), ["ship"] * n)


def _run(model, frames, **opts):
    out = {}
    autocast = opts.pop("autocast", None)
    engine = MaskEngine(
        model, EngineOptions(box_fill_classes=(), **opts), FillModel("box"), autocast_dtype=autocast
    )
    engine.run(
        frames, lambda fm: out.update({(fm.frame.frame_index, m.track_id): m for m in fm.masks})
    )
    return out


def _iou(a, b):
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_masks_agree_with_fp32(tiny_checkpoints, tmp_path, precision):
    """bf16 autocast and int8 encoder products: mean mask IoU >= 0.98 against fp32."""
    torch.set_num_threads(1)
    frame = _frame(tmp_path, [[100, 100, 160, 150], [200, 50, 300, 200]])
    fp32 = _run(load_prompt_model("sam", tiny_checkpoints["sam"]), [frame], crop_size=128)
    model = load_prompt_model("sam", tiny_checkpoints["sam"])
    if precision == "int8":
        model.quantize_encoder_int8()
        got = _run(model, [frame], crop_size=128)
    else:
        got = _run(model, [frame], crop_size=128, autocast=torch.bfloat16)
    assert got.keys() == fp32.keys() and len(got) == 2
    ious = [_iou(fp32[k].mask, got[k].mask) for k in fp32]
    assert all(0.05 < fp32[k].mask.mean() < 0.95 for k in fp32)  # masks are not trivial
    assert np.mean(ious) >= 0.98, ious


def test_window_grouping_shares_only_nearly_coinciding_windows():
    a, b = CropWindow(0, 0, 512), CropWindow(10, 5, 512)
    assert window_iou(a, a) == 1.0 and 0.9 < window_iou(a, b) < 1.0
    boxes = np.array(
        [
            [200, 200, 300, 300],
            [210, 205, 310, 305],  # window IoU ~0.95 with the first: shared
            [200, 200, 600, 600],  # a larger window (S=500 -> 512 same, but not inside): own
            [480, 200, 530, 300],  # same side, but its box crosses the first window's edge
        ],
        dtype=float,
    )
    wins = [window_for_box(bx, (1000, 1000)) for bx in boxes]
    wins[2] = CropWindow(0, 0, 640)
    wins[3] = CropWindow(12, 0, 512)
    groups = group_windows(wins, boxes, 0.9)
    assert groups == [(wins[0], [0, 1]), (wins[2], [2]), (wins[3], [3])]
    assert group_windows(wins, boxes, 0.0) == [(w, [i]) for i, w in enumerate(wins)]
    assert group_windows(wins, boxes, 0.999) == [(w, [i]) for i, w in enumerate(wins)]


class BoxPromptModel:
    """A prompt model whose mask is its box prompt (exact under any crop); counts encoder crops."""

    name = "box-prompt"
    image_size = 64

    def __init__(self) -> None:
        self.crops = 0

    def encode(self, images: torch.Tensor) -> ImageFeatures:
        self.crops += len(images)
        return ImageFeatures(embeddings=images.float().mean(dim=(1, 2, 3)))

    def decode(self, features, boxes, image_index):
        assert int(image_index.max()) < len(features.embeddings)
        m = len(boxes)
        logits = torch.full((m, 256, 256), -1.0)
        b = (boxes * (256 / self.image_size)).round().long()
        for k in range(m):
            logits[k, b[k, 1] : b[k, 3], b[k, 0] : b[k, 2]] = 1.0
        return logits, torch.full((m,), 0.5)


def test_shared_crops_run_one_encoder_pass_per_group_and_keep_each_objects_mask(tmp_path):
    boxes = [[100, 100, 120, 116], [102, 101, 122, 117], [300, 200, 340, 230]]
    frames = [_frame(tmp_path, boxes, index=i, seed=i) for i in (1, 2)]
    alone, shared = BoxPromptModel(), BoxPromptModel()
    a = _run(alone, frames, crop_size=64, batch_size=2)
    s = _run(shared, frames, crop_size=64, batch_size=2, share_crops=0.8)
    assert alone.crops == 6 and shared.crops == 4  # objects 1 and 2 share one crop per frame
    assert a.keys() == s.keys() and len(a) == 6
    for key in a:
        om_a, om_s = a[key], s[key]
        if key[1] == 2:
            assert om_s.window == s[(key[0], 1)].window != om_a.window  # the first object's window
        # the mask lands at the same frame pixels whichever window it was cut in
        full_a = paste_mask(om_a.mask, om_a.window, (300, 400))
        full_s = paste_mask(om_s.mask, om_s.window, (300, 400))
        assert _iou(full_a, full_s) > 0.9 and full_a.any()


def test_the_writer_thread_keeps_order_and_raises_the_writers_error(tmp_path):
    frames = [_frame(tmp_path, [[10, 10, 30, 30]], index=i, seed=i) for i in range(1, 7)]
    inline, threaded, threads = [], [], set()
    model = BoxPromptModel()
    MaskEngine(model, EngineOptions(box_fill_classes=(), crop_size=32, batch_size=4, write_queue=0), FillModel("box")).run(
        frames, lambda fm: inline.append(fm.frame.frame_index)
    )  # fmt: skip

    def record(fm):
        threads.add(threading.current_thread().name)
        threaded.append(fm.frame.frame_index)

    MaskEngine(model, EngineOptions(box_fill_classes=(), crop_size=32, batch_size=4), FillModel("box")).run(
        frames, record
    )  # fmt: skip
    assert threaded == inline and sorted(inline) == [1, 2, 3, 4, 5, 6]
    assert threads == {"box2mask-writer"}

    written = []

    def full_disk(fm):
        if fm.frame.frame_index == 3:
            raise OSError(28, "No space left on device")
        written.append(fm.frame.frame_index)

    engine = MaskEngine(
        model, EngineOptions(box_fill_classes=(), crop_size=32, batch_size=1), FillModel("box")
    )
    with pytest.raises(OSError, match="No space"):
        engine.run(frames, full_disk)
    assert written == [1, 2]  # nothing is written after the failure


def test_convert_profile_share_crops_and_int8_through_the_cli(
    viso_root, tiny_checkpoints, tmp_path
):
    root, _ = viso_root
    out = tmp_path / "o"
    base = ["convert", "--dataset", "viso", "--root", root, "--out", out, "--model", "sam",
            "--checkpoint", tiny_checkpoints["sam"], "--sequences", "plane/001"]  # fmt: skip
    res = runner.invoke(
        app, [str(a) for a in [*base, "--profile", "--share-crops", "0.9", "--precision", "int8"]]
    )
    assert res.exit_code == 0, res.output
    for stage in (
        "decode",
        "crop",
        "resize",
        "encoder",
        "decoder",
        "postprocess",
        "encode-rle",
        "write",
    ):
        assert f"\n│ {stage} " in res.output or f"{stage} " in res.output, stage
    assert "model (encoder + decoder)" in res.output
    identity = json.loads((out / ".box2mask" / "job.json").read_text())["identity"]
    assert identity["share_crops"] == 0.9 and identity["precision"] == "int8"
    # shared crops change masks: a run without them is another job
    res = runner.invoke(app, [str(a) for a in [*base, "--precision", "int8"]])
    assert res.exit_code == 2 and "share_crops" in res.output
    res = runner.invoke(app, [str(a) for a in [*base, "--share-crops", "1.5"]])
    assert res.exit_code == 2 and "--share-crops" in res.output


def test_compiled_encoder_compiles_once_for_shrinking_batches(tiny_checkpoints):
    """--compile: batches of 4, 4, 3, 2, 1 (a short last batch, OOM halves) compile
    once, not once per size: smaller batches are padded to the compiled size and
    give the eager encoder's features."""
    compiles = []

    def counting(gm, example_inputs):
        compiles.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return gm.forward

    torch._dynamo.reset()
    model = load_prompt_model("sam", tiny_checkpoints["sam"]).compile_encoder(backend=counting)
    eager = load_prompt_model("sam", tiny_checkpoints["sam"])
    s = model.image_size
    images = torch.randint(
        0, 256, (4, s, s, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    try:
        for b in (4, 4, 3, 2, 1):
            got = model.encode(images[:b]).embeddings
            assert got.shape[0] == b
            torch.testing.assert_close(
                got, eager.encode(images[:b]).embeddings, atol=1e-5, rtol=1e-5
            )
    finally:
        torch._dynamo.reset()
    assert len(compiles) == 1, compiles


def test_compiled_encoder_after_out_of_memory_compiles_the_halved_size(tiny_checkpoints):
    """A size that ran out of memory is not padded up to again (it would fail again)."""
    from box2mask.models.sam import encoder_forward

    model = load_prompt_model("sam", tiny_checkpoints["sam"])
    seen = []

    def fake_compiled(enc, x, attention, hq):
        seen.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("fake")
        return encoder_forward(enc, x, attention, hq)

    model._compiled_forward = fake_compiled
    s = model.image_size
    images = torch.zeros((4, s, s, 3), dtype=torch.uint8)
    assert model.encode(images[:1]).embeddings.shape[0] == 1
    model._compiled_sizes = [4]  # as if a batch of 4 had compiled earlier
    with pytest.raises(torch.cuda.OutOfMemoryError):
        model.encode(images[:2])  # padded to 4: out of memory
    assert model.encode(images[:2]).embeddings.shape[0] == 2  # now runs as 2
    assert model.encode(images[:1]).embeddings.shape[0] == 1  # padded to 2
    assert seen == [1, 4, 2, 2]


def _speed_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("b2m_speed_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("oom_call", "timed", "used"), [(0, [4, 4], 4), (1, [4, 2, 2, 2, 2], 2)])
def test_speed_benchmark_warmup_oom_does_not_shrink_the_timed_batch(
    monkeypatch, tmp_path, oom_call, timed, used
):
    """benchmarks/speed.py: an out-of-memory in the warm-up (call 0) lowers the warm-up's
    batch only; one in the timed run (call 1) is reported as the batch size used."""
    speed = _speed_module()
    calls = []
    load = speed.load_prompt_model

    def loading(*args, **kwargs):
        model = load(*args, **kwargs)
        encode = model.encode

        def encoding(images):
            calls.append(images.shape[0])
            if len(calls) - 1 == oom_call:
                raise torch.cuda.OutOfMemoryError("fake")
            return encode(images)

        model.encode = encoding
        return model

    monkeypatch.setattr(speed, "load_prompt_model", loading)
    out = tmp_path / "speed.json"
    speed.main(["--arch", "tiny", "--device", "cpu", "--objects", "8", "--batch-size", "4",
                "--warmup", "1", "--skip-reference", "--json", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    assert calls[0] == 4  # the warm-up ran a full batch
    warm = 3 if oom_call == 0 else 1  # the failed call, then its two halves
    assert calls[warm:] == timed, calls
    assert r["batch_size"] == 4 and r["batch_size_used"] == used
