"""Mask models: the SAM family (prompt models), ``lite`` and weight-free shape models.

Importing this package registers the models in
:data:`box2mask.models.registry.MODELS`. The SAM family is registered with
builders that import :mod:`box2mask.models.sam` on first use: that module
imports ``segment_anything`` (and with it torchvision), about 2.7 s that a
weight-free run or ``box2mask --help`` should not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Registers box, ellipse, obb, grabcut and classical.
from box2mask.models import classical as _classical  # noqa: F401
from box2mask.models.registry import MODELS, ModelSpec


def _sam_builder(name: str) -> Callable[..., Any]:
    """``box2mask.models.sam.<name>``, imported when the model is built."""

    def build(*args: Any, **kwargs: Any) -> Any:
        from box2mask.models import sam

        return getattr(sam, name)(*args, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"Lazy :func:`box2mask.models.sam.{name}`."
    return build


def _sam_family(description: str, builder: str, **capabilities: Any) -> ModelSpec:
    """A SAM-family spec: a prompt model whose encoder takes int8 and ``--compile``."""
    return ModelSpec(
        kind="prompt",
        description=description,
        build=_sam_builder(builder),
        int8=True,
        compile=True,
        **capabilities,
    )


MODELS.add("sam", _sam_family(
    "Segment Anything, zero-shot (official SAM checkpoints)", "build_sam",
    default_weights=("sam-vit-b", "sam-vit-l", "sam-vit-h", "mobile-sam-vit-t"),
    checkpoint_kinds=("sam",),
    auto_rank=1,
))  # fmt: skip
MODELS.add("hq-sam", _sam_family(
    "HQ-SAM, zero-shot: SAM + HQ-token mask logits (--hq-token-only for HQ alone)",
    "build_hq_sam",
    default_weights=("hq-sam-vit-b", "hq-sam-vit-l", "hq-sam-vit-h", "hq-sam-vit-t"),
    checkpoint_kinds=("hq-sam",), auto_rank=0, hq_token_only=True,
))  # fmt: skip
MODELS.add("ros-sam", _sam_family(
    "ROS-SAM: SAM + LoRA(q,v) + HQ decoder, trained with 'box2mask train'",
    "build_ros_sam", checkpoint_kinds=("ros-sam", "ros-sam-folder"),
))  # fmt: skip


def _build_sam2(*args: Any, **kwargs: Any) -> Any:
    """Lazy :func:`box2mask.models.sam2.build_sam2` (imports Meta's ``sam2``, an optional extra)."""
    try:
        from box2mask.models import sam2
    except ImportError as exc:
        from box2mask.errors import UsageError

        raise UsageError(
            f"--model sam2 needs Meta's SAM 2 package ({exc}); install it with "
            "pip install 'box2mask[sam2]'"
        ) from None
    return sam2.build_sam2(*args, **kwargs)


MODELS.add(
    "sam2",
    ModelSpec(
        kind="prompt",
        description="SAM 2.1 (Hiera t/s/b+/l), zero-shot; --temporal propagate for track videos",
        build=_build_sam2,
        default_weights=(
            "sam2.1-hiera-large", "sam2.1-hiera-base-plus", "sam2.1-hiera-small",
            "sam2.1-hiera-tiny",
        ),
        checkpoint_kinds=("sam2",),
        auto_rank=2,
        compile=True,
        temporal=True,
    ),
)  # fmt: skip


def _build_lite(checkpoint: Any = None, device: Any = "cpu", **_: Any) -> Any:
    """Lazy :func:`box2mask.models.lite.build_lite` (imports torch on first use)."""
    from box2mask.models.lite import build_lite

    return build_lite(checkpoint, device)


MODELS.add(
    "lite",
    ModelSpec(
        kind="crop",
        description="box2mask's light model, trained on public aerial instance masks (weights ship with it)",
        build=_build_lite,
        checkpoint_kinds=("lite",),
        auto_fallback=True,
        box_fill_classes=(),
    ),
)
