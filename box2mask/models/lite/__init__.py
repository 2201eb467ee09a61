"""``--model lite``: a small box-prompted network trained by box2mask (``box2mask train lite``).

- :mod:`.net`: the network (a U-Net with a mask-IoU head), its shape as data;
- :mod:`.crops`: its window rule and inputs, shared by inference and training;
- :mod:`.checkpoint`: the safetensors file with its recipe, data and dev metrics;
- :mod:`.model`: inference in batches (BatchNorm folded, channels-last).

The weights box2mask ships (:data:`SHIPPED`) were made by the command in
docs/models.md ("The lite model") from the public iSAID-Sliced-512 tiles.
iSAID and DOTA are for academic use only: so are these weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from box2mask.errors import CheckpointError

#: the weights inside the package
SHIPPED = Path(__file__).with_name("lite.safetensors")


def shipped_weights() -> Path:
    """The shipped weights' path; :class:`CheckpointError` when this installation lacks them."""
    if not SHIPPED.is_file():
        raise CheckpointError(
            f"the lite model's weights are missing from this installation ({SHIPPED}); "
            "reinstall box2mask, or pass a file made by `box2mask train lite` with --checkpoint"
        )
    return SHIPPED


def build_lite(checkpoint: Path | str | None = None, device: Any = "cpu") -> Any:
    """The lite model on ``device`` from ``checkpoint`` (default: the shipped weights)."""
    from box2mask.models.lite.model import LiteModel

    path = shipped_weights() if checkpoint is None else Path(checkpoint)
    return LiteModel.from_file(path, device)
