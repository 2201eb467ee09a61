"""Several devices in one job: ``--device cuda:0,cuda:1,...`` (DESIGN §6, §8).

One worker process per device (``multiprocessing`` with *spawn*, as CUDA
requires). The parent is the only reader of the dataset and the only writer
of the ledger; workers never choose frames themselves:

- a feeder thread in the parent walks the job's pending frames (those not in
  the ledger) and, once every worker has loaded its model, puts each frame,
  once, on a bounded queue;
- each worker takes the next frame from that queue when its engine wants one,
  converts it, writes its files atomically, and tells the parent;
- the parent appends the frame to the ledger.

A queue item is delivered to exactly one worker, so no two workers convert
one frame; a fast device simply takes more frames. A frame a worker had
taken but not finished when the job stopped (Ctrl-C, a kill, a crash) is not
in the ledger and is converted by the next run. What is in flight is bounded
(a few frames per worker), so memory does not grow with the job.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from box2mask.engine import Profile
from box2mask.errors import AnnotationError, Box2MaskError
from box2mask.job import DISK_FULL, Job, JobStopped
from box2mask.options import ConvertOptions
from box2mask.problems import Problems
from box2mask.types import Frame, FrameMasks

log = logging.getLogger("box2mask")

#: frames queued per worker beyond those it holds
QUEUE_PER_WORKER = 4
_POLL = 0.2  # seconds between liveness checks


def frame_to_wire(frame: Frame) -> dict[str, Any]:
    """A picklable copy of a frame (no ground-truth provider: conversion does not use it)."""
    return {
        "sequence": frame.sequence,
        "frame_index": frame.frame_index,
        "image_path": str(frame.image_path),
        "image_hw": frame.image_hw,
        "xyxy": frame.xyxy,
        "track_id": frame.track_id,
        "category": [str(c) for c in frame.category],
        "file_name": frame.file_name,
        "obb": frame.obb,
        "attributes": {k: list(v) for k, v in frame.attributes.items()},
    }


def frame_from_wire(d: dict[str, Any]) -> Frame:
    return Frame(**d)


class _ForwardProblems(Problems):
    """A worker's problems go to the parent, which counts and reports them."""

    def __init__(self, out_q: Any, wid: int, strict: bool) -> None:
        super().__init__(strict=strict)
        self._out_q = out_q
        self._wid = wid

    def report(self, error: AnnotationError, kind: str = "annotation") -> None:
        if self.strict:
            raise error
        path = None if error.path is None else str(error.path)
        self._out_q.put(("problem", self._wid, kind, error.reason, path, error.line))


def _worker_main(
    wid: int,
    payload: dict[str, Any],
    in_q: Any,
    out_q: Any,
    stop_evt: Any,
    parent_pid: int,
) -> None:
    """One worker process: build the model on its device, convert frames from ``in_q``."""
    # Ctrl-C reaches the whole process group: the parent decides, workers finish their frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import box2mask.models  # noqa: F401  (registers the models)
        from box2mask.models.registry import MODELS
        from box2mask.pipeline import build_engine

        opts: ConvertOptions = payload["options"]
        device = torch.device(payload["device"])
        if device.type == "cpu":
            torch.set_num_threads(payload["threads"])
        elif device.type == "cuda":
            torch.cuda.set_device(device)
        problems = _ForwardProblems(out_q, wid, opts.strict)
        profile = Profile()
        engine = build_engine(
            opts,
            MODELS.get(payload["model"]),
            payload["checkpoint"],
            device,
            payload["precision"],
            problems,
            profile,
        )
        job = Job(opts.out, {})
        out_q.put(("ready", wid))

        def frames() -> Iterable[Frame]:
            while not stop_evt.is_set():
                try:
                    item = in_q.get(timeout=1.0)
                except queue.Empty:
                    if os.getppid() != parent_pid:
                        return  # the parent is gone (killed): stop, the next run redoes our frames
                    continue
                if item is None:
                    return
                yield frame_from_wire(item)

        def on_frame(fm: FrameMasks) -> None:
            with profile.time("write"):
                job.write_frame(fm, opts.formats)
            sources = Counter(om.source for om in fm.masks)
            out_q.put(("done", wid, fm.frame.sequence, fm.frame.frame_index, dict(sources)))

        engine.run(frames(), on_frame)
        out_q.put(("profile", wid, dict(profile.seconds)))
    except OSError as exc:
        out_q.put(("oserror", wid, exc.errno, exc.strerror or str(exc), exc.filename))
    except Box2MaskError as exc:
        out_q.put(("error", wid, str(exc), exc.exit_code))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the job
        out_q.put(("error", wid, f"{type(exc).__name__}: {exc}", 1))
    finally:
        out_q.put(("exit", wid))


def run_workers(
    frames: Iterable[Frame],
    *,
    options: ConvertOptions,
    devices: list[torch.device],
    spec_name: str,
    checkpoint: Path | None,
    precision: str,
    job: Job,
    on_done: Callable[..., None],
    problems: Problems,
    stop: threading.Event,
    profile: Profile,
) -> None:
    """Convert ``frames`` on one worker process per device; ``on_done`` records each frame.

    ``on_done(sequence, frame_index, sources, worker=k)`` is called in this
    (the parent) process, after the worker has written the frame's files.
    Setting ``stop`` makes workers finish the frames they hold and exit.

    Raises:
        JobStopped: a worker could not write (disk full) or died.
        Box2MaskError: a worker failed (its message, its exit code).
    """
    ctx = mp.get_context("spawn")
    n = len(devices)
    in_q = ctx.Queue(maxsize=QUEUE_PER_WORKER * n)
    out_q = ctx.Queue()
    stop_evt = ctx.Event()
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = []
    for wid, device in enumerate(devices):
        payload = {
            "options": options,
            "device": str(device),
            "model": spec_name,
            "checkpoint": checkpoint,
            "precision": precision,
            "threads": threads,
        }
        p = ctx.Process(
            target=_worker_main,
            args=(wid, payload, in_q, out_q, stop_evt, os.getpid()),
            name=f"box2mask-worker-{wid}",
            daemon=True,
        )
        p.start()
        procs.append(p)

    halt = threading.Event()  # stop feeding (an error or Ctrl-C)
    all_ready = threading.Event()
    ready: set[int] = set()
    feed_error: list[BaseException] = []

    def put(item: Any) -> bool:
        while not halt.is_set():
            try:
                in_q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def feeder() -> None:
        try:
            # feed once every model is loaded, so that the frames are shared from the start
            while not all_ready.wait(_POLL):
                if halt.is_set():
                    return
            for frame in frames:
                if halt.is_set() or not put(frame_to_wire(frame)):
                    break
        except BaseException as exc:  # noqa: BLE001 - e.g. a --strict annotation error
            feed_error.append(exc)
            halt.set()
        finally:
            for _ in procs:  # one end marker per worker (they also watch stop_evt)
                with contextlib.suppress(queue.Full):
                    in_q.put(None, timeout=_POLL)

    feed = threading.Thread(target=feeder, name="box2mask-feeder", daemon=True)
    feed.start()

    failure: BaseException | None = None
    exited: set[int] = set()

    def fail(exc: BaseException) -> None:
        nonlocal failure
        if failure is None:
            failure = exc
        halt.set()
        stop_evt.set()

    try:
        while len(exited) < n:
            if stop.is_set() and not stop_evt.is_set():
                halt.set()
                stop_evt.set()
            if feed_error and failure is None:
                fail(feed_error[0])
            try:
                msg = out_q.get(timeout=_POLL)
            except queue.Empty:
                for wid, p in enumerate(procs):
                    if wid not in exited and p.exitcode is not None:
                        # died without saying goodbye (killed, segfault, out of host memory)
                        exited.add(wid)
                        fail(
                            JobStopped(
                                f"worker {wid} ({devices[wid]}) died with exit code {p.exitcode}; "
                                "the frames finished so far are recorded: run the same command "
                                "again to resume"
                            )
                        )
                continue
            kind, wid = msg[0], msg[1]
            if kind == "done":
                try:
                    on_done(msg[2], msg[3], Counter(msg[4]), worker=wid)
                except OSError as exc:
                    fail(exc)
                except Box2MaskError as exc:
                    fail(exc)
            elif kind == "problem":
                try:
                    problems.report(AnnotationError(msg[3], msg[4], msg[5]), kind=msg[2])
                except AnnotationError as exc:  # --strict
                    fail(exc)
            elif kind == "oserror":
                fail(OSError(msg[2], msg[3], msg[4]))
            elif kind == "error":
                err = Box2MaskError(f"worker {wid} ({devices[wid]}): {msg[2]}")
                err.exit_code = msg[3]
                fail(err)
            elif kind == "profile":
                for stage, secs in msg[2].items():
                    profile.add(stage, secs)
            elif kind == "ready":
                ready.add(wid)
                if len(ready) == n:
                    all_ready.set()
            elif kind == "exit":
                exited.add(wid)
    finally:
        halt.set()
        stop_evt.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # pragma: no cover - a hung worker
                p.terminate()
                p.join()
        in_q.cancel_join_thread()
        feed.join(timeout=5)
    if failure is not None:
        if isinstance(failure, OSError):
            from box2mask.pipeline import WriteFailed

            if failure.errno in DISK_FULL or failure.filename:
                raise WriteFailed(failure)
        raise failure


__all__ = ["frame_from_wire", "frame_to_wire", "run_workers"]
