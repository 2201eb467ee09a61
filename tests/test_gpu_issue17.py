"""On a real CUDA device (``pytest -m gpu``; skipped without CUDA, see conftest): the
first GPU run's fixes of issue 17 — collectives under NCCL, one compile for shrinking
batches, per-rank CUDA random states on resume, a 2-process NCCL training run."""

from __future__ import annotations

import logging
import os
import subprocess
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from box2mask.train import loop
from box2mask.train.loop import DistInfo, train
from tests.tiny_sam import write_sam_pth
from tests.train_helpers import logged_epochs, torchrun_train_command, train_options

pytestmark = pytest.mark.gpu


@pytest.fixture
def data(train_data: Path) -> Path:
    return train_data


_opts = partial(train_options, workers=0, device="cuda")


def test_nccl_batch_agreement_runs_on_the_gpu(tmp_path: Path) -> None:
    """Item 1: NCCL has no CPU backend; the loop's collective runs on the GPU."""
    torch.cuda.set_device(0)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError):
            dist.all_reduce(torch.tensor([1]), op=dist.ReduceOp.MIN)  # what the loop did before
        assert loop._collective_device(torch.device("cpu")).type == "cuda"
        di = DistInfo(rank=0, world=2, local_rank=0)  # world > 1: the collective is made
        got = loop._agree_on_batches([1, 0], 3, di, torch.device("cuda", 0))
        assert got.device.type == "cuda" and got.tolist() == [1, 0, 0]
    finally:
        dist.destroy_process_group()


def test_compiled_encoder_on_cuda_compiles_once_for_shrinking_batches(tmp_path: Path) -> None:
    """Item 4 with Inductor: batches of 4, 4, 3, 2, 1 compile once; features as eager."""
    from torch._dynamo.backends.registry import lookup_backend

    from box2mask.models.sam import load_prompt_model

    inductor = lookup_backend("inductor")
    compiles = []

    def counting(gm, example_inputs):
        compiles.append(1)
        return inductor(gm, example_inputs)

    path = write_sam_pth(tmp_path)
    torch._dynamo.reset()
    model = load_prompt_model("sam", path, "cuda").compile_encoder(backend=counting)
    eager = load_prompt_model("sam", path, "cuda")
    s = model.image_size
    images = torch.randint(0, 256, (4, s, s, 3), dtype=torch.uint8, device="cuda")
    try:
        for b in (4, 4, 3, 2, 1):
            got = model.encode(images[:b]).embeddings
            torch.testing.assert_close(
                got, eager.encode(images[:b]).embeddings, atol=2e-3, rtol=2e-3
            )
    finally:
        torch._dynamo.reset()
    assert len(compiles) == 1


def test_cuda_random_state_per_rank_round_trip_and_fewer_gpus(caplog) -> None:
    """Item 8: a rank's own GPU state restores; more saved GPUs than visible warns."""
    caplog.set_level(logging.WARNING, logger="box2mask")
    dev = torch.device("cuda", 0)
    st = loop._rng_state(dev)
    a = torch.rand(4, device=dev)
    loop._set_rng_state([st], 0, dev)
    assert torch.equal(torch.rand(4, device=dev), a)
    n = torch.cuda.device_count()
    old = {**st, "cuda": [torch.cuda.get_rng_state(0)] * (n + 1)}  # the old format
    loop._set_rng_state(old)
    assert f"{n + 1} GPU(s), {n} visible" in caplog.text
    loop._set_rng_state([st, {**st, "cuda": st["cuda"]}], 1, torch.device("cuda", n))
    assert f"cuda:{n} is not visible" in caplog.text


def test_training_on_one_gpu_stops_and_resumes(data: Path, tmp_path: Path) -> None:
    """The loop on CUDA (bf16 autocast, grad-accum 2), resumed from its checkpoint."""
    ended: list[int] = []
    first = train(
        _opts(data, tmp_path / "run", grad_accum=2),
        progress=lambda p: ended.append(p.epoch) if p.event == "epoch" else None,
        should_stop=lambda: bool(ended),
    )
    assert first.epochs_done == 1
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert isinstance(state["rng"], list) and "cuda" in state["rng"][0]
    second = train(_opts(data, tmp_path / "run", grad_accum=2))
    assert second.resumed_from == 1 and second.epochs_done == 2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_process_nccl_training(data: Path, tmp_path: Path) -> None:
    """Items 1, 2: ``torchrun --nproc-per-node 2`` on NCCL with --grad-accum 2."""
    out = tmp_path / "ddp"
    cmd = torchrun_train_command(data, out, "cuda", "--grad-accum", "2")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert res.returncode == 0, res.stdout + res.stderr
    assert logged_epochs(out) == [1, 2]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert len(state["rng"]) == 2 and all("cuda" in s for s in state["rng"])
