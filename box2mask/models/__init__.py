"""Mask models: the SAM family (prompt models) and weight-free shape models.

Importing this package registers the models in
:data:`box2mask.models.registry.MODELS`.
"""

# Registers box, ellipse, obb, grabcut (classical) and sam, hq-sam, ros-sam (sam).
from box2mask.models import classical as _classical  # noqa: F401
from box2mask.models import sam as _sam  # noqa: F401
