"""The ``lite`` checkpoint: a safetensors file that carries its own recipe.

Tensors: the :class:`~box2mask.models.lite.net.LiteNet` state dict (BatchNorm not
folded, so a file can be fine-tuned). Metadata (all strings, as safetensors
wants; JSON where structured):

============== ==============================================================
``format``      ``box2mask-lite``
``version``     the file format's version (:data:`FORMAT_VERSION`)
``arch``        :class:`~box2mask.models.lite.net.LiteArch` as JSON
``window``      ``{"context": c, "min_side": m, "input_sides": [...], "threshold_edges":
                [8, 12, ...], "thresholds": [t0, t1, ...]}`` (the logit threshold per bin
                of the box's long side; 0 when absent)
``recipe``      the training options and the augmentation, JSON
``data``        the data sources: name, dataset, options, source repository and
                commit, licence, object counts; JSON list
``dev``         the development metrics (per object, per frame, by class), JSON
``command``     the command that made the file
``licence``     the terms of use of the weights (those of the training data)
``tensors``     sha256 of the tensors' bytes in key order (a tampered file is refused)
============== ==============================================================

:func:`load` is strict: a missing or unexpected tensor, a tensor of the wrong
shape, another format or a digest that does not match is a
:class:`~box2mask.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from box2mask.errors import CheckpointError
from box2mask.models.lite.crops import THRESHOLD_EDGES
from box2mask.models.lite.net import LiteArch, LiteNet

FORMAT = "box2mask-lite"
FORMAT_VERSION = "1"
REQUIRED = ("format", "version", "arch", "window", "tensors")


@dataclass(frozen=True)
class LiteCheckpoint:
    """A loaded file: the network (train mode off), its window rule and its metadata."""

    net: LiteNet
    context: float
    min_side: int
    metadata: dict[str, str]
    path: Path | None
    #: logit threshold per long-side bin (:data:`~box2mask.models.lite.crops.THRESHOLD_EDGES`);
    #: empty: 0 everywhere
    thresholds: tuple[float, ...] = ()
    #: the input side is the smallest that holds ``input_scale ×`` the window side
    #: (:func:`~box2mask.models.lite.crops.input_side`); files without it: 1
    input_scale: float = 1.0

    def meta_json(self, key: str) -> Any:
        """A structured metadata entry, parsed (``None`` when absent)."""
        text = self.metadata.get(key)
        return None if text is None else json.loads(text)


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in key order: name, dtype, shape, then the bytes."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(
    path: Path,
    net: LiteNet,
    context: float,
    min_side: int,
    input_sides: tuple[int, ...],
    extra: dict[str, Any],
    thresholds: list[float] | tuple[float, ...] = (),
    input_scale: float = 1.0,
) -> Path:
    """Write ``net`` and its metadata (``extra``: recipe, data, dev, command, licence) atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "arch": net.arch.to_json(),
        "window": json.dumps(
            {
                "context": context,
                "min_side": min_side,
                "input_sides": list(input_sides),
                "input_scale": float(input_scale),
                "threshold_edges": list(THRESHOLD_EDGES),
                "thresholds": [float(t) for t in thresholds],
            }
        ),
        "tensors": tensors_digest(state),
    }
    for key, value in extra.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def is_lite_file(path: Path) -> bool:
    """Whether ``path`` is a safetensors file of this format (its header alone is read)."""
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100_000_000:
                return False
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def read_metadata(path: Path) -> dict[str, str]:
    """The file's metadata (no tensors read); :class:`CheckpointError` if it is not a lite file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds on a bad file
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a box2mask lite checkpoint (format {meta.get('format')!r}); "
            "--model lite loads files made by `box2mask train lite`"
        )
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: lite checkpoint metadata lacks {', '.join(missing)}")
    if meta["version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: lite checkpoint format version {meta['version']}, this box2mask reads {FORMAT_VERSION}"
        )
    return meta


def load(path: Path) -> LiteCheckpoint:
    """Load a lite checkpoint strictly (see the module docstring); the net is in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    try:
        arch = LiteArch.from_json(meta["arch"])
        window = json.loads(meta["window"])
        context, min_side = float(window["context"]), int(window["min_side"])
        input_scale = float(window.get("input_scale", 1.0))
        if not 0.25 <= input_scale <= 8:
            raise ValueError(f"input_scale {input_scale} outside 0.25..8")
        thresholds = tuple(float(t) for t in window.get("thresholds", []))
        edges = tuple(int(e) for e in window.get("threshold_edges", THRESHOLD_EDGES))
        if thresholds and (edges != THRESHOLD_EDGES or len(thresholds) != len(edges) + 1):
            raise CheckpointError(
                f"{path}: thresholds for long-side bins {list(edges)}, this box2mask uses "
                f"{list(THRESHOLD_EDGES)}"
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad lite metadata ({exc})") from exc
    state = load_file(str(path))
    if tensors_digest(state) != meta["tensors"]:
        raise CheckpointError(
            f"{path}: the tensors do not match the digest in the file's metadata "
            "(the file was changed after it was written)"
        )
    net = LiteNet(arch)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: tensors do not fit its architecture: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    wrong = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{path}: tensor {k} is {tuple(state[k].shape)}, its architecture wants {tuple(expected[k].shape)}"
        )
    net.load_state_dict(state, strict=True)
    net.eval()
    return LiteCheckpoint(net, context, min_side, meta, path, thresholds, input_scale)
