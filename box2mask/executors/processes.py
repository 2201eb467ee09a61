"""``--executor processes``: several devices in one job, ``--device cuda:0,cuda:1,...`` (DESIGN §6, §8).

One worker process per device (``multiprocessing`` with *spawn*, as CUDA
requires). The parent is the only reader of the dataset and the only writer
of files and of the ledger (through the :class:`~box2mask.executors.base.FrameSink`);
workers convert and encode the frames they are sent and send the encoded
outputs back. Workers never choose frames themselves.

The protocol has no timeouts and cannot lose a message:

- each worker has two one-way pipes of its own: frames from the parent,
  typed messages (:class:`Ready`, :class:`Want`, :class:`Done`, ...) to the parent;
- a worker asks for one frame at a time (``want``) when its engine wants one,
  and blocks until the parent answers with a frame or with the end marker
  ``None``; the parent's feeder thread answers every ``want``, once every
  worker has loaded its model (so the frames are shared from the start);
  after the last frame, a failure or Ctrl-C, every ``want`` is answered with
  ``None``, so every worker always gets its end marker;
- the parent waits (``multiprocessing.connection.wait``) on the message pipes
  and the process sentinels together: a worker that dies (killed, segfault,
  out of host memory) or fails to load is noticed at once, the others finish
  the frames they hold, and the job stops with a message naming the worker;
- a worker whose parent died sees its frame pipe end (EOF) or its message
  pipe break (EPIPE) and stops.

A frame is sent to exactly one worker, so no two workers convert one frame; a
fast device simply takes more frames. A frame a worker had taken but not
finished when the job stopped is not in the ledger and is converted by the
next run. What is in flight is bounded (the engine's prefetch per worker plus
a few frames read ahead by the feeder), so memory does not grow with the job.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from box2mask.errors import AnnotationError, Box2MaskError
from box2mask.executors.base import (
    EXECUTORS,
    Executor,
    FrameEncoder,
    FrameSink,
    RunContext,
)
from box2mask.executors.wire import frame_from_wire, frame_to_wire
from box2mask.job import DISK_FULL, JobStopped, WriteFailed
from box2mask.options import ConvertOptions
from box2mask.problems import Problems
from box2mask.types import Frame, FrameMasks
from box2mask.writers.base import EncodedFrame

log = logging.getLogger("box2mask")

#: frames the parent reads ahead per worker (beyond those the workers hold)
QUEUE_PER_WORKER = 4


# -- messages from a worker to the parent --------------------------------------


@dataclass(frozen=True)
class Message:
    """What a worker tells the parent; ``wid`` is the worker's id (its --device entry)."""

    wid: int


class Ready(Message):
    """The worker's model is loaded."""


class Want(Message):
    """The worker's engine wants one more frame (answered with a frame or ``None``)."""


class Exit(Message):
    """The worker is ending normally (its last message)."""


@dataclass(frozen=True)
class Done(Message):
    """A frame is converted and encoded; the parent commits it."""

    frame: EncodedFrame


@dataclass(frozen=True)
class Problem(Message):
    """An input problem the worker's engine met (counted by the parent)."""

    kind: str
    reason: str
    path: str | None
    line: int | None


@dataclass(frozen=True)
class Failed(Message):
    """The worker failed: a Box2MaskError's message and exit code, or an OSError's parts."""

    message: str
    exit_code: int = 1
    errno: int | None = None
    filename: str | None = None


@dataclass(frozen=True)
class DeviceLost(Message):
    """The worker's device failed (a sticky CUDA error): ``message`` says how."""

    message: str


@dataclass(frozen=True)
class Timings(Message):
    """The worker's ``--profile`` seconds per stage."""

    seconds: dict[str, float]


class _ForwardProblems(Problems):
    """A worker's problems go to the parent, which counts and reports them."""

    def __init__(self, send: Callable[[Message], None], wid: int, strict: bool) -> None:
        super().__init__(strict=strict)
        self._send = send
        self._wid = wid

    def report(self, error: AnnotationError, kind: str = "annotation") -> None:
        if self.strict:
            raise error
        path = None if error.path is None else str(error.path)
        self._send(Problem(self._wid, kind, error.reason, path, error.line))


class _Sender:
    """A worker's message pipe, shared by its threads (engine, writer, prefetch)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, msg: Message) -> None:
        with self._lock:
            self._conn.send(msg)


def _worker_main(
    wid: int,
    payload: dict[str, Any],
    frames_conn: Connection,
    msg_conn: Connection,
) -> None:
    """One worker process: build the model on its device, convert and encode the frames it is sent."""
    # Ctrl-C reaches the whole process group: the parent decides, workers finish their frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send = _Sender(msg_conn)
    try:
        import box2mask.models  # noqa: F401  (registers the models)
        from box2mask.engine import DeviceFailed, Profile, cuda_device_scope
        from box2mask.models.registry import MODELS
        from box2mask.runtime import HostCPU, build_engine

        opts: ConvertOptions = payload["options"]
        encoder: FrameEncoder = payload["encoder"]
        spec = MODELS.get(payload["model"])
        device: Any = HostCPU()  # a weight-free model: no torch in this worker
        if spec.on_device:
            import torch

            device = torch.device(payload["device"])
            if device.type == "cpu":
                torch.set_num_threads(payload["threads"])
        problems = _ForwardProblems(send, wid, opts.strict)
        profile = Profile()
        with cuda_device_scope(device):  # before the model is built: no context on GPU 0
            engine = build_engine(
                opts,
                spec,
                payload["checkpoint"],
                device,
                payload["precision"],
                problems,
                profile,
            )
            send(Ready(wid))

            def frames() -> Iterable[Frame]:
                while True:
                    send(Want(wid))
                    try:
                        item = frames_conn.recv()
                    except (EOFError, OSError):
                        return  # the parent is gone (killed): stop, the next run redoes our frames
                    if item is None:
                        return
                    yield frame_from_wire(item)

            def on_frame(fm: FrameMasks) -> None:
                send(Done(wid, encoder.encode(fm, profile.time)))

            try:
                engine.run(frames(), on_frame)
            except DeviceFailed as exc:
                send(DeviceLost(wid, str(exc)))
                return
        send(Timings(wid, dict(profile.seconds)))
    except OSError as exc:
        with contextlib.suppress(OSError):
            send(Failed(wid, exc.strerror or str(exc), 1, exc.errno, exc.filename))
    except Box2MaskError as exc:
        with contextlib.suppress(OSError):
            send(Failed(wid, str(exc), exc.exit_code))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the job
        with contextlib.suppress(OSError):
            send(Failed(wid, f"{type(exc).__name__}: {exc}", 1))
    finally:
        with contextlib.suppress(OSError):
            send(Exit(wid))
        msg_conn.close()
        frames_conn.close()


@EXECUTORS.register("processes")
class ProcessExecutor(Executor):
    """One worker process per ``--device`` entry; the parent commits every frame."""

    help = "one worker process per --device entry (the default for several)"

    def run(self, frames: Iterable[Frame], ctx: RunContext, sink: FrameSink) -> None:
        run_workers(frames, ctx, sink)


def run_workers(frames: Iterable[Frame], ctx: RunContext, sink: FrameSink) -> None:
    """Convert ``frames`` on one worker process per device of ``ctx``; ``sink`` commits each.

    ``sink.commit(frame, worker=k)`` is called in this (the parent) process.
    Setting ``ctx.stop`` makes workers finish the frames they hold and exit.

    Raises:
        JobStopped: a worker died.
        WriteFailed: a frame's files could not be written (disk full).
        DeviceFailed: a worker's device failed (a sticky CUDA error).
        Box2MaskError: a worker failed (its message, its exit code).
    """
    from box2mask.engine import DeviceFailed

    devices, stop, problems, profile = ctx.devices, ctx.stop, ctx.problems, ctx.profile
    mpctx = mp.get_context("spawn")
    n = len(devices)
    threads = max(1, (os.cpu_count() or 1) // n)
    procs: list[Any] = []
    to_worker: list[Connection] = []
    from_worker: list[Connection] = []
    try:
        for wid, device in enumerate(devices):
            payload = {
                "options": ctx.options,
                "encoder": sink.encoder,
                "device": str(device),
                "model": ctx.spec.name,
                "checkpoint": ctx.checkpoint,
                "precision": ctx.precision,
                "threads": threads,
            }
            frames_r, frames_w = mpctx.Pipe(duplex=False)
            msg_r, msg_w = mpctx.Pipe(duplex=False)
            p = mpctx.Process(
                target=_worker_main,
                args=(wid, payload, frames_r, msg_w),
                name=f"box2mask-worker-{wid}",
                daemon=True,
            )
            p.start()
            # the worker holds its ends now; closing ours makes a dead worker's pipe end (EOF)
            frames_r.close()
            msg_w.close()
            procs.append(p)
            to_worker.append(frames_w)
            from_worker.append(msg_r)
    except BaseException:
        for p in procs:
            p.kill()
        raise

    halt = threading.Event()  # answer every further want with the end marker
    wants: queue.Queue[int | None] = queue.Queue()  # ids of workers waiting; None: stop
    feed_error: list[BaseException] = []
    ahead = QUEUE_PER_WORKER * n

    def feeder() -> None:
        """Answers each want with the next frame, or the end marker: every want, exactly once."""
        it = iter(frames)
        buf: collections.deque[dict[str, Any]] = collections.deque()
        exhausted = False

        def pull() -> dict[str, Any] | None:
            nonlocal exhausted
            try:
                return frame_to_wire(next(it))
            except StopIteration:
                pass
            except BaseException as exc:  # noqa: BLE001 - e.g. a --strict annotation error
                feed_error.append(exc)
                halt.set()
            exhausted = True
            return None

        while True:
            # read a few frames ahead while no worker is waiting (a slow annotation file)
            while not exhausted and not halt.is_set() and len(buf) < ahead and wants.empty():
                item = pull()
                if item is not None:
                    buf.append(item)
            wid = wants.get()
            if wid is None:
                return
            item = None
            if not (halt.is_set() or stop.is_set()):
                if buf:
                    item = buf.popleft()
                elif not exhausted:
                    item = pull()
            with contextlib.suppress(OSError):  # a dead worker: noticed by the main loop
                to_worker[wid].send(item)

    feed = threading.Thread(target=feeder, name="box2mask-feeder", daemon=True)
    feed.start()

    failure: BaseException | None = None
    ready: set[int] = set()
    said_exit: set[int] = set()
    exited: set[int] = set()
    held: list[int] = []  # wants that came before every worker was ready

    def fail(exc: BaseException) -> None:
        nonlocal failure
        if failure is None:
            failure = exc
        halt.set()
        while held:
            wants.put(held.pop())

    def handle(msg: Message) -> None:
        wid = msg.wid
        if isinstance(msg, Want):
            if len(ready) == n or halt.is_set():
                wants.put(wid)
            else:
                held.append(wid)
        elif isinstance(msg, Done):
            try:  # also after a failure elsewhere: finished work is kept
                sink.commit(msg.frame, worker=wid)
            except (OSError, WriteFailed, Box2MaskError) as exc:
                fail(exc)
        elif isinstance(msg, Problem):
            try:
                problems.report(AnnotationError(msg.reason, msg.path, msg.line), kind=msg.kind)
            except AnnotationError as exc:  # --strict
                fail(exc)
        elif isinstance(msg, Failed):
            if msg.errno is not None:
                fail(OSError(msg.errno, msg.message, msg.filename))
            else:
                err = Box2MaskError(f"worker {wid} ({devices[wid]}): {msg.message}")
                err.exit_code = msg.exit_code
                fail(err)
        elif isinstance(msg, DeviceLost):
            fail(DeviceFailed(f"worker {wid} ({devices[wid]}): {msg.message}"))
        elif isinstance(msg, Timings):
            for stage, secs in msg.seconds.items():
                profile.add(stage, secs)
        elif isinstance(msg, Ready):
            ready.add(wid)
            if len(ready) == n:
                while held:
                    wants.put(held.pop(0))
        elif isinstance(msg, Exit):
            said_exit.add(wid)

    def drain(wid: int) -> bool:
        """Handle what worker ``wid`` has sent; False once its pipe has ended."""
        conn = from_worker[wid]
        try:
            while conn.poll():
                handle(conn.recv())
        except (EOFError, OSError):
            return False
        return True

    def gone(wid: int) -> None:
        """Worker ``wid``'s process has ended (its pipe is drained)."""
        exited.add(wid)
        p = procs[wid]
        p.join()
        if wid in said_exit:
            return
        if stop.is_set() and p.exitcode in (-signal.SIGINT, -signal.SIGTERM):
            return  # stopped with the job (a signal to the process group): JobInterrupted follows
        when = "while loading the model" if wid not in ready else "while converting"
        fail(
            JobStopped(
                f"worker {wid} ({devices[wid]}) died with exit code {p.exitcode} {when}; the "
                "frames finished so far are recorded: run the same command again to resume"
            )
        )

    clean = False
    try:
        while len(exited) < n:
            if feed_error and failure is None:
                fail(feed_error[0])
            live = [w for w in range(n) if w not in exited]
            waiting = {from_worker[w]: w for w in live}
            sentinels = {procs[w].sentinel: w for w in live}
            for obj in mp_connection.wait([*waiting, *sentinels]):
                wid = waiting.get(obj)  # type: ignore[call-overload]
                if wid is not None:
                    if wid not in exited and not drain(wid):
                        procs[wid].join()
                        gone(wid)
                else:
                    wid = sentinels[obj]  # type: ignore[index]
                    if wid not in exited:
                        drain(wid)  # what it wrote before it ended
                        gone(wid)
            if feed_error and failure is None:
                fail(feed_error[0])
        clean = True
    finally:
        halt.set()
        wants.put(None)
        for p in procs:
            if not clean:  # a second Ctrl-C or an error here: stop at once (still safe)
                p.kill()
            p.join()
        for c in (*to_worker, *from_worker):
            c.close()
        feed.join(timeout=5)
    if failure is not None:
        if isinstance(failure, OSError) and (failure.errno in DISK_FULL or failure.filename):
            raise WriteFailed(failure)
        raise failure


__all__ = ["ProcessExecutor", "frame_from_wire", "frame_to_wire", "run_workers"]
