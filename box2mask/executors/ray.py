"""``--executor ray``: a pool of Ray actors, one model each, fed by the driver (docs/ray.md).

The driver (the process running ``box2mask convert``) is the only reader of
the dataset and the only writer of the job: it hands the pending frames, a
few at a time, to a pool of Ray actors and commits what they send back
through the job's :class:`~box2mask.executors.base.FrameSink` (files
atomically in place, then the ledger line), exactly as the local executors
do, so the outputs are byte-identical to a local run.

- One actor per GPU of the cluster (``num_gpus=1``), or CPU actors where the
  cluster has no GPU or the model is weight-free; ``--ray-actors N`` sets the
  count. Each actor builds the model once (:func:`box2mask.runtime.build_engine`)
  and converts the groups of frames it is given with
  :meth:`~box2mask.engine.MaskEngine.run`; it returns the frames encoded
  (:class:`~box2mask.writers.base.EncodedFrame`), the problems its engine
  reported (unreadable frames...) and its profile.
- Bounded work in flight: :data:`TASKS_PER_ACTOR` groups of
  :data:`FRAMES_PER_TASK` frames per actor; the driver reads the dataset only
  as fast as actors take frames, so memory does not grow with the job.
- An actor that is lost (``ray.kill``, its node gone, killed for memory, a
  device that failed) has its unfinished frames put back, one frame per task,
  for the other actors; a replacement actor is started. The lost actor's
  oldest task is the one it was running: its frames are charged an attempt
  (those queued behind it are not), and a frame charged :data:`MAX_ATTEMPTS`
  times (a frame that kills whoever converts it) is skipped and listed, as a
  frame the engine cannot convert is. A frame is committed once: a late
  duplicate is ignored.
- The job's ledger, not Ray, is the state: a driver killed at any moment is
  resumed by running the same command, on Ray or locally.

Ray is optional (``pip install 'box2mask[ray]'``) and imported only here,
only when this executor runs.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from box2mask.errors import AnnotationError, Box2MaskError, CheckpointError, UsageError
from box2mask.executors.base import EXECUTORS, Executor, FrameSink, RunContext
from box2mask.executors.wire import frame_from_wire, frame_to_wire
from box2mask.job import JobStopped
from box2mask.types import Frame

log = logging.getLogger("box2mask")

#: frames per actor task (a group runs through one engine.run, so crops of its frames batch together)
FRAMES_PER_TASK = 2
#: tasks queued per actor (the next is waiting in the actor's mailbox while one runs)
TASKS_PER_ACTOR = 2
#: a frame in flight on this many lost actors is skipped and listed (kind "frame")
MAX_ATTEMPTS = 3
#: object store of the private local Ray instance started without --ray-address (bytes)
LOCAL_OBJECT_STORE = 256 * 2**20
#: seconds between the driver's checks of Ctrl-C and of actors not yet placed
WAIT_S = 0.5
#: seconds after which an actor still waiting for cluster resources is reported
UNPLACED_WARN_S = 60.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray, which is not installed: pip install 'box2mask[ray]'"
        ) from None
    return ray


def _rss() -> dict[str, int]:
    """This process's resident memory now and at its peak (bytes; Linux, else empty)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out["rss" if key == "VmRSS" else "peak_rss"] = int(value.split()[0]) * 1024
    return out


class _Collect:
    """One call's problems in an actor, for the driver (which counts, logs and, under --strict, raises)."""

    def __init__(self) -> None:
        import threading

        self.strict = False
        self._lock = threading.Lock()
        self.items: list[tuple[str, str, str | None, int | None]] = []

    def report(self, error: AnnotationError, kind: str = "annotation") -> None:
        path = None if error.path is None else str(error.path)
        with self._lock:
            self.items.append((kind, error.reason, path, error.line))

    def __len__(self) -> int:
        return len(self.items)


class RayActor:
    """The body of one Ray actor: a model on its device, converting the frames it is sent.

    Wrapped with ``ray.remote`` by the driver (so that importing this module
    needs no Ray). Methods run one at a time, in the order they were called.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.engine: Any = None

    def load(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Build the model; returns where it runs (node, device, pid) and how long loading took."""
        t0 = time.perf_counter()
        import ray

        import box2mask
        import box2mask.models  # noqa: F401  (registers the models)
        from box2mask.engine import Profile, cuda_device_scope
        from box2mask.runtime import HostCPU, build_engine

        node = ray.util.get_node_ip_address()
        if payload["version"] != box2mask.__version__:
            raise UsageError(
                f"the Ray node {node} has box2mask {box2mask.__version__}, the driver "
                f"{payload['version']}: install the same version on every node"
            )
        checkpoint: Path | None = payload["checkpoint"]
        if checkpoint is not None and not Path(checkpoint).exists():
            raise CheckpointError(
                f"{checkpoint} is not on the Ray node {node}: every node needs the checkpoint at "
                "the same path as the driver (shared storage, or the same image)"
            )
        probe = payload.get("probe")
        if probe and not os.path.exists(probe):
            raise UsageError(
                f"the Ray node {node} cannot read {probe}, which the driver reads: every node "
                "needs the dataset at the same path as the driver (shared storage)"
            )
        spec = payload["spec"]
        device: Any = HostCPU()  # a weight-free model: no torch in this actor
        if spec.on_device:
            import torch

            if ray.get_gpu_ids():
                device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to its GPU
            else:
                device = torch.device("cpu")
                torch.set_num_threads(max(1, int(payload["threads"])))
        self.encoder = payload["encoder"]
        self.device = device
        with cuda_device_scope(device if spec.on_device else None):
            self.engine = build_engine(
                payload["options"],
                spec,
                checkpoint,
                device,
                payload["precision"],
                _Collect(),  # type: ignore[arg-type]
                Profile(),
            )
        return {
            "node": node,
            "device": str(device),
            "pid": os.getpid(),
            "seconds": time.perf_counter() - t0,
        }

    def convert(self, wires: list[dict[str, Any]]) -> dict[str, Any]:
        """Convert a group of frames; returns them encoded, with the problems and profile of the call.

        A frame the engine skips (unreadable, the model failed on it) is not
        in ``frames``; its report is in ``problems``.
        """
        from box2mask.engine import Profile

        t0 = time.perf_counter()
        encoded: list[Any] = []
        # the engine reads these attributes as it goes: one fresh pair per call
        problems, profile = _Collect(), Profile()
        self.engine.problems, self.engine.profile = problems, profile

        def on_frame(fm: Any) -> None:
            encoded.append(self.encoder.encode(fm, profile.time))

        self.engine.run([frame_from_wire(w) for w in wires], on_frame)
        return {
            "frames": encoded,
            "problems": problems.items,
            "profile": dict(profile.seconds),
            "seconds": time.perf_counter() - t0,
        }

    def memory(self) -> dict[str, int]:
        """Resident memory of this actor's process (``rss``, ``peak_rss`` bytes)."""
        return _rss()


@dataclass
class _Task:
    """A group of frames sent to one actor, and how often its frames were on a lost actor."""

    wires: list[dict[str, Any]]
    attempts: int = 0
    last_error: str = ""
    seq: int = 0  # submission order (an actor runs its tasks in this order)


@dataclass
class _Actor:
    """The driver's view of one actor."""

    index: int
    handle: Any
    load_ref: Any
    created: float = field(default_factory=time.monotonic)
    ready: bool = False
    lost: bool = False
    warned: bool = False
    inflight: int = 0
    frames: int = 0
    objects: int = 0
    busy: float = 0.0
    started: float = 0.0  # seconds from asking Ray for the actor to its model loaded
    info: dict[str, Any] = field(default_factory=dict)


def _stop_error(where: str, cause: BaseException, failed: str = "") -> Box2MaskError:
    """The error that stops the job for an actor's ``cause``: a box2mask error keeps its
    message and exit code; anything else is named in one line (``where`` + ``failed``)."""
    if isinstance(cause, Box2MaskError):
        err = Box2MaskError(f"{where}: {cause}")
        err.exit_code = cause.exit_code
        return err
    return Box2MaskError(f"{where}{failed}: {_short(cause)}")


def _cause(exc: BaseException) -> BaseException | None:
    """The exception raised inside an actor method (a ``RayTaskError``'s cause), or None."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        return getattr(exc, "cause", None) or exc
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """A pool of Ray actors (``--executor ray``, ``--ray-address``, ``--ray-actors``)."""

    help = "a pool of Ray actors, one model each (--ray-address, --ray-actors; docs/ray.md)"

    def run(self, frames: Iterable[Frame], ctx: RunContext, sink: FrameSink) -> None:
        ray = _import_ray()
        if ctx.options.device != "auto":
            log.warning(
                "--device %s is not used by --executor ray: each actor uses the GPU Ray gives "
                "it, else its CPUs",
                ctx.options.device,
            )
        started = _connect(ray, ctx.options.ray_address)
        pool = _Pool(ray, ctx, sink)
        try:
            pool.run(iter(frames))
        finally:
            pool.close()
            if started:
                ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to Ray (or start a private local instance); True if this call did
    (then ``ray.shutdown`` at the end stops that instance, or disconnects from the cluster).

    ``address`` None/empty: ``$RAY_ADDRESS`` if set (as inside a KubeRay
    RayJob), else a new local instance on this machine with a small object
    store, shut down at the end. ``auto``: the cluster ``ray start`` runs on
    this machine; ``HOST:PORT`` or ``ray://HOST:10001``: that cluster.
    ``ray.init`` replaces the SIGTERM handler; the job's own handlers (stop
    after the frames in flight) are put back.
    """
    if ray.is_initialized():  # the caller (a notebook, a test) holds the connection: use it
        if address:
            log.info("--ray-address %s not used: this process is connected to Ray already", address)
        return False
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    option = "--ray-address" if address else "$RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address is not None:
        _check_reachable(option, address)
    try:
        if address is None:
            ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE, **kwargs)
        else:
            kwargs.pop("include_dashboard")
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:  # refused, a token missing, other versions
        if address is None:  # no cluster was named: this machine's own Ray did not come up
            raise Box2MaskError(
                f"--executor ray: could not start a local Ray instance on this machine ({exc}); "
                "start one with `ray start --head` and pass --ray-address auto"
            ) from None
        raise UsageError(f"{option} {address}: cannot connect to a Ray cluster ({exc})") from None
    finally:
        with contextlib.suppress(ValueError):  # not the main thread: nothing was replaced
            for sig, handler in handlers.items():
                if handler is not None and signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
    return True


def _check_reachable(option: str, address: str, timeout: float = 10.0) -> None:
    """A UsageError at once if nothing listens at ``HOST:PORT`` (``ray.init`` would retry for
    minutes); ``auto`` is looked up by Ray itself, which fails fast."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(
            f"{option} {address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start one (`ray start --head`, docs/ray.md) or check the address"
        ) from None


class _Pool:
    """The driver's loop: hand out groups of frames, take results, commit, replace lost actors."""

    def __init__(self, ray: Any, ctx: RunContext, sink: FrameSink) -> None:
        self.ray = ray
        self.ctx = ctx
        self.sink = sink
        self.actors: list[_Actor] = []
        self.inflight: dict[Any, tuple[_Actor, _Task]] = {}
        self.retry: collections.deque[_Task] = collections.deque()
        # A frame is handed out once, unless it was put back after an actor was lost: only
        # those can come back twice, so only those are remembered (memory stays bounded)
        self.put_back: set[tuple[str, int]] = set()
        self.put_back_done: set[tuple[str, int]] = set()
        self.losses = 0
        self.exhausted = False
        self.payload: dict[str, Any] = {}
        self.remote_cls: Any = None
        self.resources: dict[str, Any] = {}
        self.n = 0
        self.seq = 0
        self.token = uuid.uuid4().hex[:8]  # this run's actor names
        self.done = False  # went through every frame (not stopped, no error)
        self.feed: Iterator[Frame] = iter(())

    # -- actors ------------------------------------------------------------
    def _plan(self) -> tuple[int, dict[str, Any], int]:
        """How many actors, the resources each asks for, and torch threads of a CPU actor."""
        opts = self.ctx.options
        cluster = self.ray.cluster_resources()
        gpus = int(cluster.get("GPU", 0))
        cpus = float(cluster.get("CPU", 1)) or 1.0
        wanted = opts.ray_actors
        if self.ctx.spec.on_device and gpus >= 1:
            return wanted or gpus, {"num_gpus": 1, "num_cpus": 1}, 1
        n = wanted or max(1, int(cpus) // 2)
        per = cpus / n if n > cpus else float(int(cpus // n))
        return n, {"num_cpus": per}, max(1, int(per))

    def _start_actor(self) -> _Actor:
        index = len(self.actors)
        handle = self.remote_cls.options(
            name=f"box2mask-{self.token}-{index}",  # findable: ray.util.list_named_actors()
            max_restarts=0,
            max_task_retries=0,
            **self.resources,
        ).remote(index)
        actor = _Actor(index, handle, handle.load.remote(self.payload))
        self.actors.append(actor)
        return actor

    def _lose(self, actor: _Actor, why: str) -> None:
        """``actor`` is gone or unusable: stop it, start another one (within the limit)."""
        if actor.lost:
            return
        actor.lost = True
        actor.load_ref = None
        with contextlib.suppress(Exception):
            self.ray.kill(actor.handle, no_restart=True)
        self.losses += 1
        limit = 3 * self.n + 3
        log.warning("ray actor %d lost (%s)", actor.index, why)
        if self.losses > limit:
            raise JobStopped(
                f"stopped: Ray actors were lost {self.losses} times (last: actor {actor.index}, "
                f"{why}). The frames finished so far are recorded: fix the cluster and run the "
                "same command again to resume"
            )
        if not self.ctx.stop.is_set():
            self._start_actor()

    # -- frames ------------------------------------------------------------
    def _next_task(self) -> _Task | None:
        if self.retry:
            return self.retry.popleft()
        if self.exhausted:
            return None
        wires = []
        for frame in self.feed:
            wires.append(frame_to_wire(frame))
            if len(wires) == FRAMES_PER_TASK:
                break
        else:
            self.exhausted = True
        return _Task(wires) if wires else None

    def _put_back(self, task: _Task, why: str, charge: bool) -> None:
        """The frames of ``task`` were on a lost actor: retry each alone, or skip it.

        ``charge``: the task was the one running (the actor's oldest), so the
        loss may be its frames' doing; tasks queued behind it are not charged.
        """
        for wire in reversed(task.wires):
            key = (wire["sequence"], int(wire["frame_index"]))
            if key in self.put_back_done:
                continue
            self.put_back.add(key)
            attempts = task.attempts + (1 if charge else 0)
            if attempts >= MAX_ATTEMPTS:
                self.ctx.problems.report(
                    AnnotationError(
                        f"{wire['sequence']} frame {wire['frame_index']}: it was on {attempts} "
                        f"Ray actors that were lost while converting it (last: {why}); "
                        "frame skipped",
                        wire["image_path"],
                    ),
                    kind="frame",
                )
            else:
                self.retry.appendleft(_Task([wire], attempts, why))

    def _submit(self) -> None:
        for actor in sorted(self.actors, key=lambda a: a.inflight):
            if not actor.ready or actor.lost:
                continue
            while actor.inflight < TASKS_PER_ACTOR:
                task = self._next_task()
                if task is None:
                    return
                self.seq += 1
                task.seq = self.seq
                self.inflight[actor.handle.convert.remote(task.wires)] = (actor, task)
                actor.inflight += 1

    # -- results -----------------------------------------------------------
    def _loaded(self, actor: _Actor, ref: Any) -> None:
        actor.load_ref = None
        try:
            actor.info = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = _cause(exc)
            if cause is None:  # the actor died while loading (killed, node lost)
                self._lose(actor, _short(exc))
                return
            raise _stop_error(
                f"ray actor {actor.index}", cause, " could not load the model"
            ) from None
        actor.ready = True
        actor.started = time.monotonic() - actor.created
        log.info(
            "ray actor %d ready on %s (%s, pid %s) %.1f s after it was asked for (model %.1f s)",
            actor.index,
            actor.info["node"],
            actor.info["device"],
            actor.info["pid"],
            actor.started,
            actor.info["seconds"],
        )

    def _outcome(self, actor: _Actor, ref: Any) -> dict[str, Any] | str:
        """A task's result, or why its actor is lost (a str); raises what stops the job."""
        from box2mask.engine import DeviceFailed

        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = _cause(exc)
            if cause is None or isinstance(cause, (DeviceFailed, MemoryError)):
                return _short(cause or exc)
            where = f"ray actor {actor.index} ({actor.info.get('node', '?')})"
            raise _stop_error(where, cause) from None

    def _finished(self, ref: Any) -> None:
        actor, task = self.inflight.pop(ref)
        actor.inflight -= 1
        outcome = self._outcome(actor, ref)
        if isinstance(outcome, str):
            self._lost_with_tasks(actor, task, outcome)
        else:
            self._take(actor, outcome)

    def _lost_with_tasks(self, actor: _Actor, task: _Task, why: str) -> None:
        """``actor`` is lost: settle all its tasks, put back the failed ones, replace it.

        Its other tasks end at once (done before the loss, or failed with it);
        the oldest failed one was running and is charged an attempt.
        """
        refs = [r for r, (a, _) in self.inflight.items() if a is actor]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=30) if refs else ([], [])
        failed = [task]
        for r in refs:
            other = self.inflight.pop(r)[1]
            actor.inflight -= 1
            outcome = self._outcome(actor, r) if r in ready else "no answer"
            if isinstance(outcome, str):
                failed.append(other)
            else:
                self._take(actor, outcome)
        self._lose(actor, why)
        failed.sort(key=lambda t: t.seq)
        for k, t in enumerate(failed):
            self._put_back(t, f"actor {actor.index}: {why}", charge=k == 0)

    def _take(self, actor: _Actor, result: dict[str, Any]) -> None:
        """A task's result: its problems reported, its profile added, its frames committed."""
        for kind, reason, path, line in result["problems"]:
            self.ctx.problems.report(AnnotationError(reason, path, line), kind=kind)
        for stage, secs in result["profile"].items():
            self.ctx.profile.add(stage, secs)
        actor.busy += result["seconds"]
        for enc in result["frames"]:
            key = (enc.sequence, int(enc.frame_index))
            if key in self.put_back_done:
                continue  # a late duplicate: the frame is in the output once
            self.sink.commit(enc, worker=actor.index)
            if key in self.put_back:
                self.put_back.discard(key)
                self.put_back_done.add(key)
            actor.frames += 1
            actor.objects += sum(enc.sources.values())

    def _check_unplaced(self) -> None:
        now = time.monotonic()
        for actor in self.actors:
            if (
                actor.load_ref is not None
                and not actor.warned
                and now - actor.created > UNPLACED_WARN_S
            ):
                actor.warned = True
                log.warning(
                    "ray actor %d is not running after %.0f s: the cluster has no free %s "
                    "(it starts when resources free up; the other actors go on)",
                    actor.index,
                    now - actor.created,
                    ", ".join(f"{k}={v:g}" for k, v in self.resources.items()),
                )

    # -- the loop ----------------------------------------------------------
    def run(self, feed: Iterator[Frame]) -> None:
        import box2mask

        ctx = self.ctx
        self.feed = feed
        first = self._next_task()  # the first frames: a path every node must be able to read
        if first is None:
            self.done = True
            return
        self.retry.append(first)
        self.n, self.resources, threads = self._plan()
        probe = first.wires[0]["image_path"]
        self.payload = {
            "version": box2mask.__version__,
            "options": ctx.options,
            "spec": ctx.spec,
            # absolute: an actor's working folder is not the driver's
            "checkpoint": None if ctx.checkpoint is None else Path(ctx.checkpoint).resolve(),
            "precision": ctx.precision,
            "encoder": self.sink.encoder,
            "threads": threads,
            "probe": probe if os.path.exists(probe) else None,
        }
        self.remote_cls = self.ray.remote(RayActor)
        for _ in range(self.n):
            self._start_actor()
        while True:
            if not ctx.stop.is_set():
                self._submit()
            if not self.inflight and (ctx.stop.is_set() or (self.exhausted and not self.retry)):
                self.done = not ctx.stop.is_set()
                return
            loads = {a.load_ref: a for a in self.actors if a.load_ref is not None}
            waiting = [*self.inflight, *loads]
            if not waiting:  # cannot happen: a lost actor is replaced or the job stops
                raise JobStopped("stopped: no Ray actor is left; run the same command again")
            done, _ = self.ray.wait(waiting, num_returns=1, timeout=WAIT_S)
            for ref in done:
                if ref in loads:
                    self._loaded(loads[ref], ref)
                else:
                    self._finished(ref)
            self._check_unplaced()

    def close(self) -> None:
        """Record each actor's throughput in the profile, then stop every actor."""
        live = [a for a in self.actors if a.ready and not a.lost]
        memory: dict[int, dict[str, int]] = {}
        if live and self.done:
            refs = {a.handle.memory.remote(): a for a in live}
            with contextlib.suppress(Exception):
                done, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=5)
                for ref in done:
                    memory[refs[ref].index] = self.ray.get(ref)
        for actor in self.actors:
            if actor.frames:
                name = f"actor-{actor.index}"
                self.ctx.profile.add(f"{name} start", actor.started)
                self.ctx.profile.add(f"{name} busy", actor.busy)
                if actor.busy > 0:
                    self.ctx.profile.add(f"{name} frames/s", actor.frames / actor.busy)
                    self.ctx.profile.add(f"{name} objects/s", actor.objects / actor.busy)
            if actor.index in memory and "peak_rss" in memory[actor.index]:
                self.ctx.profile.add(
                    f"actor-{actor.index} peak RSS MiB", memory[actor.index]["peak_rss"] / 2**20
                )
            with contextlib.suppress(Exception):
                self.ray.kill(actor.handle, no_restart=True)


__all__ = ["FRAMES_PER_TASK", "MAX_ATTEMPTS", "TASKS_PER_ACTOR", "RayActor", "RayExecutor"]
