"""Independent tasks on the job's executors: ``qa`` and ``eval --predictions`` per sequence.

``convert`` hands frames to model engines (:class:`~box2mask.executors.base.Executor`);
``qa`` and ``eval`` scoring a file have no model, only per-sequence work that
needs no other sequence: a sequence's frames in order, its tracks' state, its
scores. :func:`map_tasks` runs such a function over a list of tasks on one of
the same executors and gives the results back **in task order**, so that
whatever the number of workers the caller combines them in one order and gets
the same numbers as one worker:

- ``local``: in this process, one task after the other;
- ``processes``: ``workers`` processes (*spawn*, as ``convert``'s are), at most
  two tasks per worker in flight, so memory holds a few tasks' results, not
  the job's;
- ``ray``: Ray tasks (``--ray-address``, or a private local instance, as
  ``convert --executor ray`` connects), the same window.

A task function takes ``(task, tick)``; ``tick(frames, objects)`` reports
progress as it goes (sent to the caller's ``progress`` from worker processes
through a queue, at most twice a second; Ray tasks report when they end). It
must be a module-level function (it is pickled by name).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue as queue_mod
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from box2mask.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

Tick = Callable[[int, int], None]
#: the executors :func:`map_tasks` knows (``auto``: ``processes`` for several workers)
TASK_EXECUTORS = ("auto", "local", "processes", "ray")

_QUEUE: Any = None  # a worker process's progress queue (set by _init_worker)


def _init_worker(q: Any) -> None:
    global _QUEUE
    _QUEUE = q


class _QueueTick:
    """``tick`` in a worker process: sums, sent at most every ``every`` seconds and at the end."""

    def __init__(self, every: float = 0.5) -> None:
        self.frames = self.objects = 0
        self.every = every
        self.last = time.monotonic()

    def __call__(self, frames: int, objects: int) -> None:
        self.frames += frames
        self.objects += objects
        now = time.monotonic()
        if now - self.last >= self.every:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if _QUEUE is not None and (self.frames or self.objects):
            _QUEUE.put((self.frames, self.objects))
        self.frames = self.objects = 0


def _in_worker(fn: Callable[[Any, Tick], R], task: Any) -> R:
    tick = _QueueTick()
    try:
        return fn(task, tick)
    finally:
        tick.flush()


def _no_tick(frames: int, objects: int) -> None:
    return None


def resolve_executor(name: str, workers: int) -> str:
    """``auto`` → ``processes`` for several workers, ``local`` for one."""
    if name not in TASK_EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(TASK_EXECUTORS)}, got {name!r}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if name == "auto":
        return "processes" if workers > 1 else "local"
    return name


def map_tasks(
    fn: Callable[[T, Tick], R],
    tasks: Sequence[T],
    *,
    workers: int = 1,
    executor: str = "auto",
    progress: Tick | None = None,
    ray_address: str | None = None,
) -> Iterator[R]:
    """``fn(task, tick)`` for every task, results yielded in task order.

    Args:
        fn: a module-level function (pickled by name for processes and Ray).
        tasks: picklable task descriptions.
        workers: processes or Ray tasks at once.
        executor: ``auto``, ``local``, ``processes`` or ``ray``.
        progress: ``progress(frames, objects)``, called in this process as the tasks
            report (see the module docstring).
        ray_address: the Ray cluster (``ray`` only; default: ``$RAY_ADDRESS`` or a
            private local instance).
    """
    kind = resolve_executor(executor, workers)
    tell = progress or _no_tick
    if kind == "local" or len(tasks) <= 1 and kind != "ray":
        for t in tasks:
            yield fn(t, tell)
        return
    if kind == "processes":
        yield from _processes(fn, tasks, workers, tell)
    else:
        yield from _ray(fn, tasks, workers, tell, ray_address)


def _processes(
    fn: Callable[[T, Tick], R], tasks: Sequence[T], workers: int, tell: Tick
) -> Iterator[R]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    stop = threading.Event()

    def drain() -> None:  # the workers' progress, told in this process
        while not stop.is_set():
            try:
                frames, objects = q.get(timeout=0.2)
            except queue_mod.Empty:
                continue
            except (EOFError, OSError):
                return
            tell(frames, objects)

    reader = threading.Thread(target=drain, name="box2mask-progress", daemon=True)
    reader.start()
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker,
        initargs=(q,),
    )  # fmt: skip
    window = 2 * workers
    pending: dict[int, Future[R]] = {}
    nxt = 0
    try:
        for k in range(len(tasks)):
            while nxt < len(tasks) and nxt < k + window:
                pending[nxt] = pool.submit(_in_worker, fn, tasks[nxt])
                nxt += 1
            fut = pending.pop(k)
            while not fut.done():
                wait([fut], timeout=0.5, return_when=FIRST_COMPLETED)
            yield fut.result()
    finally:
        for f in pending.values():
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        time.sleep(0.05)
        # what the workers sent last, before the reader stops
        with contextlib.suppress(queue_mod.Empty, EOFError, OSError):
            while True:
                frames, objects = q.get_nowait()
                tell(frames, objects)
        stop.set()
        reader.join()
        q.close()


def _ray_call(fn: Callable[[T, Tick], R], task: T) -> tuple[R, int, int]:
    seen = [0, 0]

    def tick(frames: int, objects: int) -> None:
        seen[0] += frames
        seen[1] += objects

    return fn(task, tick), seen[0], seen[1]


def _ray(
    fn: Callable[[T, Tick], R],
    tasks: Sequence[T],
    workers: int,
    tell: Tick,
    address: str | None,
) -> Iterator[R]:
    from box2mask.executors.ray import _connect, _import_ray

    ray = _import_ray()
    started = _connect(ray, address)
    remote = ray.remote(num_cpus=1)(_ray_call)
    window = 2 * workers
    refs: dict[int, Any] = {}
    nxt = 0
    try:
        for k in range(len(tasks)):
            while nxt < len(tasks) and nxt < k + window:
                refs[nxt] = remote.remote(fn, tasks[nxt])
                nxt += 1
            result, frames, objects = ray.get(refs.pop(k))
            tell(frames, objects)
            yield result
    finally:
        for ref in refs.values():
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        if started:
            ray.shutdown()


__all__ = ["TASK_EXECUTORS", "Tick", "map_tasks", "resolve_executor"]
