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
    """One ``--model`` choice and what it can do.

    Callers (``convert``, ``eval``, the CLI, ``weights``) ask the spec, never
    the model's name, so that a new model is its module plus one
    ``MODELS.add("name", ModelSpec(...))``.

    Attributes:
        kind: ``"prompt"`` (a :class:`~box2mask.models.base.PromptModel`, needs
            a checkpoint), ``"crop"`` (a :class:`~box2mask.models.base.CropModel`
            with its own weights: ``lite``) or ``"shape"`` (a weight-free
            :class:`~box2mask.models.base.ShapeModel`).
        description: one line for help texts.
        build: ``build(checkpoint, device, **options)`` for prompt models,
            ``build(**options)`` for shape models.
        default_weights: registry names of the official checkpoints this model
            can load, best first (for "how to get one" messages).
        checkpoint_kinds: the checkpoint kinds
            (:func:`box2mask.models.checkpoint.inspect_checkpoint` ``.kind``)
            this model loads; ``--model auto --checkpoint F`` picks the model
            whose list holds F's kind.
        auto_rank: its place in ``--model auto`` among the prompt models whose
            official weights are present (lower first); ``None``: never picked
            by weights found on disk.
        weight_free_default: the best model without weights (exactly one shape
            model has it); ``--model auto`` takes it when the auto fallback cannot run.
        auto_fallback: the model ``--model auto`` takes when no SAM-family
            weights are found (``lite``, whose weights ship with box2mask).
        hq_token_only: ``--hq-token-only`` changes its masks.
        int8: ``--precision int8`` (dynamic int8 encoder) applies.
        compile: ``--compile`` (torch.compile of the encoder) applies.
        temporal: ``--temporal propagate`` (a video memory along each track) applies.
        box_fill_classes: the classes ``--box-fill-classes`` box-fills by default with
            this model (the paper's ``car`` for the SAM family; none for ``lite``,
            which segments small vehicles better than their boxes: docs/lite.md).
        name: the ``--model`` value, set by ``MODELS.add(name, spec)``.
    """

    kind: Literal["prompt", "crop", "shape"]
    description: str
    build: Callable[..., Any]
    default_weights: tuple[str, ...] = field(default_factory=tuple)
    checkpoint_kinds: tuple[str, ...] = field(default_factory=tuple)
    auto_rank: int | None = None
    weight_free_default: bool = False
    auto_fallback: bool = False
    hq_token_only: bool = False
    int8: bool = False
    compile: bool = False
    temporal: bool = False
    box_fill_classes: tuple[str, ...] = ("car",)
    name: str = ""

    @property
    def needs_checkpoint(self) -> bool:
        return self.kind == "prompt"

    @property
    def on_device(self) -> bool:
        """Whether it runs on a torch device (``--device`` applies; a shape model runs on the host)."""
        return self.kind in ("prompt", "crop")


MODELS: Registry[ModelSpec] = Registry("model")


def auto_order() -> list[ModelSpec]:
    """The prompt models ``--model auto`` tries, in order, by the weights on disk."""
    ranked = [s for _, s in MODELS.items() if s.auto_rank is not None]
    return sorted(ranked, key=lambda s: s.auto_rank)


def weight_free_default() -> ModelSpec:
    """The weight-free model ``--model auto`` falls back on."""
    found = [s for _, s in MODELS.items() if s.weight_free_default]
    if len(found) != 1:
        raise RuntimeError(f"exactly one model must be the weight-free default, not {len(found)}")
    return found[0]


def auto_fallback() -> ModelSpec | None:
    """The model ``--model auto`` takes without SAM-family weights (``None``: none registered)."""
    found = [s for _, s in MODELS.items() if s.auto_fallback]
    return found[0] if found else None


def for_checkpoint_kind(kind: str) -> ModelSpec:
    """The model that loads a checkpoint of ``kind`` (``"sam"``, ``"hq-sam"``, ``"ros-sam"``...)."""
    for _, spec in MODELS.items():
        if kind in spec.checkpoint_kinds:
            return spec
    raise KeyError(f"no model loads {kind!r} checkpoints")
