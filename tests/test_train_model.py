"""The model under training: initialisation, parts, alternating updates, loss going down."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from box2mask.errors import CheckpointError
from box2mask.models.checkpoint import EncoderArch
from box2mask.models.sam import load_prompt_model
from box2mask.train.loop import TrainOptions, make_optimizer
from box2mask.train.model import (
    PHASE_PARTS,
    build_training_model,
    mask_loss,
    named_parts,
    parameter_counts,
    phase_of_step,
    training_forward,
)
from tests.tiny_sam import TINY_ARCH, tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpts(tiny_checkpoints: dict[str, Path]) -> tuple[Path, Path]:
    """conftest's tiny SAM and HQ-SAM files (``sam_tiny.pth``, ``sam_hq_tiny.pth``)."""
    return tiny_checkpoints["sam"], tiny_checkpoints["hq-sam"]


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 1024, 1024, 3), dtype=torch.uint8, generator=g)
    images[0, 200:520, 160:640] = torch.tensor([200, 40, 40], dtype=torch.uint8)
    boxes = torch.tensor([[160.0, 200.0, 640.0, 520.0]])
    targets = torch.zeros(1, 256, 256)
    targets[0, 50:130, 40:160] = 1.0
    return images, boxes, torch.zeros(1, dtype=torch.long), targets


def test_untrained_model_is_sam_plus_hq_token(ckpts: tuple[Path, Path]) -> None:
    """LoRA's B starts at 0: the fresh model computes HQ-SAM's HQ-token mask exactly."""
    sam, hq = ckpts
    model, rank = build_training_model(sam, hq, lora_rank=4)
    assert rank == 4
    ref = load_prompt_model("hq-sam", hq, hq_token_only=True)
    images, boxes, index, _ = _batch()
    with torch.no_grad():
        got = training_forward(model, images, boxes, index, "hq")
        want = ref.decode(ref.encode(images), boxes, index)[0]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_parts_and_counts(ckpts: tuple[Path, Path]) -> None:
    sam, hq = ckpts
    model, rank = build_training_model(sam, hq, lora_rank=512)
    assert rank == TINY_ARCH.embed_dim  # clamped to the ViT width
    counts = parameter_counts(model)
    d, depth = TINY_ARCH.embed_dim, TINY_ARCH.depth
    assert counts["lora"] == depth * 4 * rank * d
    assert counts["trainable"] + counts["frozen"] == counts["total"]
    for part, name, p in named_parts(model):
        assert p.requires_grad == (part != "frozen"), name
        if name.startswith("prompt_encoder."):
            assert part == "frozen"
        if name.startswith(f"image_encoder.blocks.{depth - 1}.") and "linear_" not in name:
            assert part == "last_block"
        if name.startswith("image_encoder.blocks.0.") and "linear_" not in name:
            assert part == "frozen"


def test_checkpoints_of_wrong_kind_or_other_vit_are_refused(
    ckpts: tuple[Path, Path], tmp_path: Path
) -> None:
    sam, hq = ckpts
    with pytest.raises(CheckpointError, match="--sam"):
        build_training_model(hq, hq, lora_rank=4)
    with pytest.raises(CheckpointError, match="--hq"):
        build_training_model(sam, sam, lora_rank=4)
    wider = EncoderArch(
        embed_dim=48, depth=2, num_heads=2, global_attn_indexes=(1,), window_size=14, mlp_dim=64
    )
    other = tmp_path / "hq_wide.pth"
    torch.save(tiny_model(hq=True, arch=wider).state_dict(), other)
    with pytest.raises(CheckpointError, match="same ViT"):
        build_training_model(sam, other, lora_rank=4)


def test_alternating_steps_update_only_their_parts_and_loss_goes_down(
    ckpts: tuple[Path, Path], tmp_path: Path
) -> None:
    """8 optimizer steps on one batch: per step only that phase's parts move; the losses fall."""
    sam, hq = ckpts
    model, _ = build_training_model(sam, hq, lora_rank=4)
    opts = TrainOptions(dataset="x", sam=sam, hq=hq, out=tmp_path, lr=1e-3, weight_decay=0.01)
    optimizer = make_optimizer(model, opts)
    images, boxes, index, targets = _batch()
    part = {name: pt for pt, name, _ in named_parts(model)}
    losses: dict[str, list[float]] = {"hq": [], "sam": []}
    for step in range(8):
        phase = phase_of_step(step)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer.zero_grad(set_to_none=True)
        loss = mask_loss(training_forward(model, images, boxes, index, phase), targets)
        loss.backward()
        for n, p in model.named_parameters():
            if part[n] not in PHASE_PARTS[phase]:
                p.grad = None
        optimizer.step()
        losses[phase].append(float(loss.detach()))
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        moved_parts = {part[n] for n in changed}
        assert moved_parts == set(PHASE_PARTS[phase]), (step, moved_parts)
        # frozen parameters never move, bit for bit
        assert not any(part[n] == "frozen" for n in changed)
    assert losses["hq"][-1] < losses["hq"][0] - 0.05, losses
    assert losses["sam"][-1] < losses["sam"][0] - 0.05, losses


def test_mask_loss_is_bce_plus_dice() -> None:
    logits = torch.tensor([[[10.0, -10.0], [-10.0, -10.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(mask_loss(logits, target)) < 1e-3
    assert float(mask_loss(-logits, target)) > 5.0
