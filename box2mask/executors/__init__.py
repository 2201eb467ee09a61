"""Who converts a job's frames: one module per ``--executor``, each a registered
:class:`~box2mask.executors.base.Executor` (docs/extending.md).

- ``local``: this process, one device;
- ``processes``: one worker process per ``--device`` entry;
- ``ray``: a pool of Ray actors (optional extra ``box2mask[ray]``).
"""

from box2mask.executors import local as local
from box2mask.executors import processes as processes
from box2mask.executors import ray as ray
from box2mask.executors.base import (
    EXECUTORS,
    Executor,
    FrameEncoder,
    FrameSink,
    RunContext,
    choose_executor,
)

__all__ = ["EXECUTORS", "Executor", "FrameEncoder", "FrameSink", "RunContext", "choose_executor"]
