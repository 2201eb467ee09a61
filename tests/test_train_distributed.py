"""Distributed training on CPU stand-ins for the GPU run: collectives on the process
group's device (NCCL has no CPU backend), gradient accumulation that keeps the ranks
identical, and per-rank random states that survive a resume on fewer GPUs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from box2mask.train import loop
from box2mask.train.loop import DistInfo

CUDA_ONLY = "b2m_cuda_only_fake"


@pytest.fixture()
def cuda_only_group():
    """A 2-rank fake process group whose backend serves the ``cuda`` device type only,
    like NCCL: a collective on a CPU tensor raises "No backend type associated with
    device type cpu". The fake group communicates nothing (one process plays rank 0)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore, _create_fake_pg

    if not hasattr(dist.Backend, CUDA_ONLY.upper()):
        dist.Backend.register_backend(
            CUDA_ONLY, _create_fake_pg, extended_api=True, devices=["cuda"]
        )
    dist.init_process_group(CUDA_ONLY, store=FakeStore(), rank=0, world_size=2)
    try:
        yield DistInfo(rank=0, world=2, local_rank=0, started=True)
    finally:
        dist.destroy_process_group()


def test_batch_agreement_runs_its_collective_off_the_cpu(cuda_only_group: DistInfo) -> None:
    # the stand-in catches what the loop did before: all_reduce of a CPU tensor
    with pytest.raises(RuntimeError, match="device type cpu"):
        dist.all_reduce(torch.tensor([1]), op=dist.ReduceOp.MIN)
    # the loop's collective runs on the model's device (``meta`` stands in for the
    # GPU here: this machine has none, and the CUDA-only backend accepts it)
    agreed = loop._agree_on_batches([1, 0], 3, cuda_only_group, torch.device("meta"))
    assert agreed.device.type == "meta" and agreed.shape == (3,)


def test_batch_agreement_marks_missing_and_empty_micro_batches() -> None:
    got = loop._agree_on_batches([1, 0], 3, DistInfo(), torch.device("cpu")).tolist()
    assert got == [1, 0, 0]


@pytest.fixture
def data(train_data: Path) -> Path:
    return train_data


WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import box2mask.train.loop as L

    d, out = Path(sys.argv[1]), Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    hashes = []
    make_optimizer = L.make_optimizer

    def recording(model, opts):
        opt = make_optimizer(model, opts)
        params = [p for p in model.parameters() if p.requires_grad]

        def after_step(o, args, kwargs):
            h = hashlib.sha256()
            for p in params:
                h.update(p.detach().cpu().numpy().tobytes())
            hashes.append(h.hexdigest())

        opt.register_step_post_hook(after_step)
        return opt

    L.make_optimizer = recording
    L.train(L.TrainOptions(
        dataset="rossam", root=d / "ros", adapter_options={"split": "train"},
        sam=d / "sam_tiny.pth", hq=d / "sam_hq_tiny.pth", out=out / "run", lora_rank=4,
        epochs=2, frame_fraction=1.0, log_every=1, lsj_scale=(0.5, 1.5), workers=0,
        device="cpu", batch_size=1, grad_accum=2,
    ))
    (out / f"hashes{rank}.json").write_text(json.dumps(hashes))
    """
)


def test_grad_accum_with_an_uneven_last_step_keeps_ranks_identical(
    data: Path, tmp_path: Path
) -> None:
    """2 Gloo processes, --grad-accum 2, one batch per rank and epoch: every step is a
    short one (1 micro-batch of 2). Before, that micro-batch ran under ``no_sync()``
    and each rank stepped on its own gradients (equal weights before, different after)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(script), str(data), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    h0 = json.loads((tmp_path / "hashes0.json").read_text())
    h1 = json.loads((tmp_path / "hashes1.json").read_text())
    assert len(h0) == len(h1) == 2  # one optimizer step per epoch
    assert len(set(h0)) == 2  # the weights moved
    for step, (a, b) in enumerate(zip(h0, h1, strict=True)):
        assert a == b, f"ranks differ after step {step}"
    # the checkpoint holds each rank's own random state
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert isinstance(state["rng"], list) and len(state["rng"]) == 2


# --- per-rank random states (stand-in: torch.cuda functions patched, no GPU needed)


class FakeCuda:
    """``n`` visible GPUs with a recognisable random state each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        self.n = n
        self.set: dict[int, torch.Tensor] = {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.n)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        for mod in (torch.cuda, torch.cuda.random):
            monkeypatch.setattr(mod, "get_rng_state", self.get)
            monkeypatch.setattr(mod, "set_rng_state", self.put)
            monkeypatch.setattr(
                mod, "get_rng_state_all", lambda: [self.get(i) for i in range(self.n)]
            )

    @staticmethod
    def _idx(device: object) -> int:
        return device if isinstance(device, int) else (torch.device(device).index or 0)  # type: ignore[arg-type]

    def get(self, device: object = "cuda") -> torch.Tensor:
        i = self._idx(device)
        if i >= self.n:
            raise IndexError(f"cuda:{i}: {self.n} GPU(s)")
        return torch.full((8,), i, dtype=torch.uint8)

    def put(self, state: torch.Tensor, device: object = "cuda") -> None:
        i = self._idx(device)
        if i >= self.n:
            raise IndexError(f"cuda:{i}: {self.n} GPU(s)")  # what torch raises (default_generators)
        self.set[i] = state


def test_each_rank_saves_the_cuda_state_of_its_own_gpu_only(monkeypatch) -> None:
    FakeCuda(monkeypatch, 2)
    st = loop._rng_state(torch.device("cuda", 1))
    assert torch.equal(st["cuda"], torch.full((8,), 1, dtype=torch.uint8))


def test_resume_of_a_checkpoint_with_every_gpus_state_on_fewer_gpus_warns(
    monkeypatch, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="box2mask")
    FakeCuda(monkeypatch, 2)
    old = loop._rng_state()
    old["cuda"] = torch.cuda.get_rng_state_all()  # what rank 0 saved before: every GPU
    fake = FakeCuda(monkeypatch, 1)  # the resume sees one GPU
    loop._set_rng_state(old)  # before: IndexError from set_rng_state_all
    assert list(fake.set) == [0] and "2 GPU(s), 1 visible" in caplog.text


def test_resume_of_per_rank_states_on_fewer_gpus_warns(monkeypatch, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="box2mask")
    FakeCuda(monkeypatch, 2)
    per_rank = [loop._rng_state(torch.device("cuda", r)) for r in range(2)]
    fake = FakeCuda(monkeypatch, 1)  # the resume sees one GPU
    # rank 0 gets its own; rank 1's GPU is gone (warned, skipped); a rank the
    # checkpoint does not know is warned about, not fatal
    loop._set_rng_state(per_rank, 0, torch.device("cuda", 0))
    assert torch.equal(fake.set[0], torch.full((8,), 0, dtype=torch.uint8))
    loop._set_rng_state(per_rank, 1, torch.device("cuda", 1))
    assert "cuda:1 is not visible" in caplog.text
    loop._set_rng_state(per_rank, 2, torch.device("cuda", 0))
    assert "none for rank 2" in caplog.text


def test_each_rank_restores_its_own_cpu_state() -> None:
    torch.manual_seed(1)
    s0 = loop._rng_state()
    torch.manual_seed(2)
    s1 = loop._rng_state()
    loop._set_rng_state([s0, s1], 1, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), s1["torch"])
