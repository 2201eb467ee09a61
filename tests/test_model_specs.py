"""The model registry's specs: what callers ask instead of naming models."""

from __future__ import annotations

import numpy as np
import pytest
from box2mask.weights import CATALOG

import box2mask.models  # noqa: F401  (registers the models)
from box2mask.models.classical import FillModel, box_mask, ellipse_mask, polygon_mask
from box2mask.models.registry import MODELS, auto_order, for_checkpoint_kind, weight_free_default


def test_weights_kinds_are_the_prompt_models_that_name_them():
    """Every catalog entry is loaded by a registered prompt model that lists it, and back."""
    for name in CATALOG:
        entry = CATALOG.entry(name)
        spec = MODELS.get(entry.kind)
        assert spec.needs_checkpoint
        # listed entries box2mask cannot load (TinyViT) are no model's default
        assert (entry.name in spec.default_weights) == entry.loadable, (entry.name, spec.name)
    for name, spec in MODELS.items():
        for weights in spec.default_weights:
            assert CATALOG.entry(weights).kind == name


def test_auto_order_and_fallback():
    assert [s.name for s in auto_order()] == ["hq-sam", "sam", "sam2"]
    assert weight_free_default().name == "classical"
    assert weight_free_default().kind == "shape"


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("sam", "sam"), ("hq-sam", "hq-sam"), ("ros-sam", "ros-sam"),
        ("ros-sam-folder", "ros-sam"), ("sam2", "sam2"),
    ],
)
def test_each_checkpoint_kind_has_one_model(kind, model):
    assert for_checkpoint_kind(kind).name == model
    assert sum(kind in s.checkpoint_kinds for _, s in MODELS.items()) == 1


def test_capabilities_are_declared_for_prompt_models_only():
    for name, spec in MODELS.items():
        if spec.kind == "shape":
            assert not (
                spec.hq_token_only or spec.int8 or spec.compile or spec.checkpoint_kinds
                or spec.temporal
            ), name  # fmt: skip
            assert spec.auto_rank is None
    assert [n for n, s in MODELS.items() if s.hq_token_only] == ["hq-sam"]
    assert [n for n, s in MODELS.items() if s.temporal] == ["sam2"]


def test_a_weights_entry_of_an_unknown_model_is_refused():
    from dataclasses import replace

    entry = CATALOG.entry("sam-vit-b")
    with pytest.raises(ValueError, match="kind must be one of"):
        replace(entry, kind="box")


@pytest.mark.parametrize("fill", ["box", "ellipse", "obb"])
def test_the_fill_model_draws_its_shape(fill):
    box = np.array([3.2, 4.0, 20.7, 11.5])
    obb = np.array([[4, 5], [20, 4], [21, 11], [5, 12]], dtype=np.float64)
    model = MODELS.get(fill).build()
    assert isinstance(model, FillModel) and model.name == fill and not model.needs_image
    mask, score, source = model.segment(None, box, 32, obb=obb)
    want = {"box": box_mask(box, 32), "ellipse": ellipse_mask(box, 32), "obb": polygon_mask(obb, 32)}
    assert np.array_equal(mask, want[fill]) and score is None
    assert source == fill
    if fill == "obb":  # no oriented box: the box, said so
        mask, _, source = model.segment(None, box, 32)
        assert source == "box" and np.array_equal(mask, box_mask(box, 32))


def test_an_unknown_fill_is_refused():
    with pytest.raises(ValueError, match="fill must be one of"):
        FillModel("circle")

