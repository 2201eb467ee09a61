"""``python tests/workers_cli.py convert ...``: the box2mask CLI plus test models, for worker tests.

Spawned worker processes re-import this file as their main module, so the
models registered here exist in them too (pytest never imports this file:
its name does not start with ``test_``).

- ``slow-ellipse``: the ellipse fill, sleeping ``BOX2MASK_TEST_SLOW`` seconds
  (default 0) per object: frames slower than any timeout in the protocol.
- ``BOX2MASK_TEST_DIE_LOADING=CODE``: a worker process building the model
  exits at once with ``CODE`` (a worker that dies while loading).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import box2mask.models  # noqa: E402,F401  (registers the models)
from box2mask.models.classical import FillModel  # noqa: E402
from box2mask.models.registry import MODELS, ModelSpec  # noqa: E402


class SlowEllipse(FillModel):
    # the engine calls segment_block (masks as their block); segment goes through it too
    def segment_block(self, crop, box, size, obb=None, category=""):
        time.sleep(float(os.environ.get("BOX2MASK_TEST_SLOW", "0")))
        return super().segment_block(crop, box, size, obb, category)


def _build(**opts):
    die = os.environ.get("BOX2MASK_TEST_DIE_LOADING")
    if die and multiprocessing.parent_process() is not None:
        os._exit(int(die))
    return SlowEllipse("ellipse", **opts)


if "slow-ellipse" not in MODELS:
    MODELS.add("slow-ellipse", ModelSpec("shape", "test: a slow ellipse", _build))

if __name__ == "__main__":
    from box2mask.cli import main

    sys.argv[0] = "box2mask"
    main()
