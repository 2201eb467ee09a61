"""The model registry: every ``--model`` name and how to build it.

Prompt models (SAM family) are built from a checkpoint onto a device; shape
models (box, ellipse, obb, grabcut) need nothing. ``box2mask convert`` looks a
name up here; ``box2mask weights list`` and the README's model table read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from box2mask.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` choice.

    Attributes:
        name: the ``--model`` value.
        kind: ``"prompt"`` (a :class:`~box2mask.models.base.PromptModel`, needs
            a checkpoint) or ``"shape"`` (a :class:`~box2mask.models.base.ShapeModel`).
        description: one line for help texts.
        build: ``build(checkpoint, device, **options)`` for prompt models,
            ``build(**options)`` for shape models.
        default_weights: registry names of the official checkpoints this model
            can load, best first (for "how to get one" messages).
    """

    name: str
    kind: Literal["prompt", "shape"]
    description: str
    build: Callable[..., Any]
    default_weights: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_checkpoint(self) -> bool:
        return self.kind == "prompt"


MODELS: Registry[ModelSpec] = Registry("model")
