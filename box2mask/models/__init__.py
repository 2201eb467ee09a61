"""Mask models: the SAM family (prompt models) and weight-free shape models.

Importing this package registers the models in
:data:`box2mask.models.registry.MODELS`.
"""

# Registers sam, hq-sam and ros-sam. (The shape models box/ellipse/obb/grabcut
# live in box2mask/models/classical.py; the lead wires that import in.)
from box2mask.models import sam as _sam  # noqa: F401
from box2mask.models import classical as _classical  # noqa: F401,E402
