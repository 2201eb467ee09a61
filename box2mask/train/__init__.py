"""Training ROS-SAM (``box2mask train``): SAM + HQ-SAM checkpoints → a ROS-SAM checkpoint.

- :mod:`box2mask.train.model`: the trainable model, its parts, alternating steps, loss;
- :mod:`box2mask.train.augment`: rotation + large-scale jittering;
- :mod:`box2mask.train.data`: frames with ground-truth masks → samples;
- :mod:`box2mask.train.loop`: the loop, validation, checkpoints, resume, DDP;
- :mod:`box2mask.train.export`: folded files for inference, dry-run pictures.
"""

from box2mask.train.loop import TrainOptions, TrainProgress, TrainResult, train

__all__ = ["TrainOptions", "TrainProgress", "TrainResult", "train"]
