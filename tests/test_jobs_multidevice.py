"""Device handling with a stand-in CUDA (no GPU needed): the current device is set before any
engine work (issue 17.5), bare ``cuda`` is ``cuda:<current>`` and duplicate GPUs are refused
(issue 17.6)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import box2mask
import box2mask.runtime as runtime
from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from box2mask.engine import EngineOptions, MaskEngine, cuda_device_scope
from box2mask.errors import UsageError
from box2mask.models.classical import FillModel
from tests.data.make_viso_many import make_viso_many
from tests.test_jobs_faults import FakeSam


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two stand-in GPUs; ``calls`` logs set_device and the restore, ``state['current']``."""
    state = {"current": 0, "calls": []}

    def set_device(d):
        if isinstance(d, torch.device) and d.index is None:
            raise ValueError("Expected a torch.device with a specified index")  # as torch does
        idx = d.index if isinstance(d, torch.device) else int(d)
        state["calls"].append(("set_device", idx))
        state["current"] = idx

    def restore(idx):
        state["calls"].append(("restore", idx))
        state["current"] = idx

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: state["current"])
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "_maybe_exchange_device", restore, raising=False)
    return state


def test_the_engine_sets_its_cuda_device_before_any_work_and_restores_it(fake_cuda):
    engine = MaskEngine(FakeSam(), EngineOptions(box_fill_classes=()), FillModel("box"),
                        device=torch.device("cuda:1"))  # fmt: skip
    seen = []

    def frames():
        seen.append(fake_cuda["current"])  # the first thing run() does is ask for a frame
        return
        yield

    engine.run(frames(), lambda fm: None)
    assert seen == [1]
    assert fake_cuda["calls"] == [("set_device", 1), ("restore", 0)]


def test_one_process_on_cuda_1_builds_and_runs_its_engine_on_cuda_1(
    fake_cuda, monkeypatch, tmp_path, tiny_checkpoints
):
    make_viso_many(tmp_path / "viso", (2,))
    seen = []

    class StandIn:
        def run(self, frames, on_frame):
            seen.append(("run", fake_cuda["current"]))

    def build_engine(opts, spec, checkpoint, device, precision, problems, profile):
        seen.append(("build", fake_cuda["current"], str(device)))
        return StandIn()

    monkeypatch.setattr(runtime, "build_engine", build_engine)  # what the executors call
    box2mask.convert(dataset="viso", root=tmp_path / "viso", out=tmp_path / "o", model="sam",
                     checkpoint=str(tiny_checkpoints["sam"]), device="cuda:1")  # fmt: skip
    assert seen == [("build", 1, "cuda:1"), ("run", 1)]
    assert fake_cuda["calls"][0] == ("set_device", 1)


def test_bare_cuda_is_the_current_device_and_works_as_a_scope(fake_cuda):
    assert runtime.parse_devices("cuda,cuda:1", "prompt") == [
        torch.device("cuda:0"),
        torch.device("cuda:1"),
    ]
    with cuda_device_scope(torch.device("cuda")):  # a bare cuda device: no ValueError
        assert fake_cuda["current"] == 0
    assert runtime.resolve_device("auto") == torch.device("cuda:0")


@pytest.mark.parametrize(
    "device, message",
    [
        ("cuda:0,cuda:0", "'cuda:0' is the same device"),
        ("cuda,cuda:0", "'cuda' and 'cuda:0' are the same device (cuda:0)"),
        ("cuda:1,cuda:2", "this machine has 2 CUDA device(s)"),
        ("cuda:0,tpu", "'tpu' is not a device"),
    ],
)
def test_duplicate_or_unknown_devices_are_refused(fake_cuda, device, message):
    with pytest.raises(UsageError, match="--device") as err:
        runtime.parse_devices(device, "prompt")
    assert message in str(err.value)


def test_cpu_may_repeat_one_worker_each(fake_cuda):
    assert runtime.parse_devices("cpu,cpu,cpu", "prompt") == [torch.device("cpu")] * 3
    assert runtime.parse_devices("cpu,cpu", "shape") == [torch.device("cpu")] * 2
    with pytest.raises(UsageError, match="--device 'tpu' is not a device"):
        runtime.parse_devices("cpu,tpu", "shape")


def test_duplicate_gpus_exit_2_from_the_cli(fake_cuda, tmp_path, tiny_checkpoints):
    make_viso_many(tmp_path / "viso", (2,))
    res = CliRunner().invoke(app, ["convert", "--dataset", "viso", "--root", str(tmp_path / "viso"),
                                   "--out", str(tmp_path / "o"), "--model", "sam", "--checkpoint",
                                   str(tiny_checkpoints["sam"]), "--device", "cuda,cuda:0"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--device cuda,cuda:0: 'cuda' and 'cuda:0' are the same device" in " ".join(
        res.output.split()
    )
