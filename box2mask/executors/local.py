"""``--executor local``: the whole job in this process, on one device."""

from __future__ import annotations

from collections.abc import Iterable

from box2mask.executors.base import EXECUTORS, Executor, FrameSink, RunContext
from box2mask.types import Frame


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """One engine in this process: frames are decoded and cropped on its threads,
    and each finished frame is committed on the engine's writer thread."""

    help = "this process, one device (the default for one --device)"

    def run(self, frames: Iterable[Frame], ctx: RunContext, sink: FrameSink) -> None:
        from box2mask.engine import cuda_device_scope
        from box2mask.runtime import build_engine

        device = ctx.devices[0]
        with cuda_device_scope(device if ctx.spec.on_device else None):
            engine = build_engine(
                ctx.options, ctx.spec, ctx.checkpoint, device, ctx.precision, ctx.problems,
                ctx.profile,
            )  # fmt: skip
            engine.run(frames, sink.write)
