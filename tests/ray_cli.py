"""``python tests/ray_cli.py convert ...``: the box2mask CLI plus a slow test model, for Ray tests.

- ``slow-fill``: the ellipse fill, sleeping ``BOX2MASK_TEST_SLOW`` seconds
  (default 0) per object, read in the process that runs the model (a Ray
  actor inherits the variable from the driver that started the local cluster).
- ``die-fill``: the ellipse fill, whose process exits at once (``os._exit``) on
  an object of the category ``BOX2MASK_TEST_DIE_CATEGORY``: a frame that kills
  every actor that converts it.

Ray actors get the model spec from the driver pickled: run as a script, this
module is ``__main__`` and the model's code travels by value; imported as
``tests.ray_cli`` (pytest), actors import it by name (the repository root is
on their ``PYTHONPATH``). pytest never collects it (its name does not start with ``test_``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import box2mask.models  # noqa: E402,F401  (registers the models)
from box2mask.models.classical import FillModel  # noqa: E402
from box2mask.models.registry import MODELS, ModelSpec  # noqa: E402


class SlowFill(FillModel):
    def segment_block(self, crop, box, size, obb=None, category=""):
        time.sleep(float(os.environ.get("BOX2MASK_TEST_SLOW", "0")))
        return super().segment_block(crop, box, size, obb, category)


class DieFill(FillModel):
    def segment_block(self, crop, box, size, obb=None, category=""):
        if category and category == os.environ.get("BOX2MASK_TEST_DIE_CATEGORY"):
            os._exit(1)
        return super().segment_block(crop, box, size, obb, category)


def _build(**opts):
    return SlowFill("ellipse", **opts)


def _build_die(**opts):
    return DieFill("ellipse", **opts)


if "slow-fill" not in MODELS:
    MODELS.add("slow-fill", ModelSpec("shape", "test: a slow ellipse", _build))
if "die-fill" not in MODELS:
    MODELS.add("die-fill", ModelSpec("shape", "test: dies on a category", _build_die))

if __name__ == "__main__":
    from box2mask.cli import main

    sys.argv[0] = "box2mask"
    main()
