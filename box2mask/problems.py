"""Collects bad-input reports (malformed lines, unreadable frames) during a run.

Adapters and the engine never stop on one bad line or frame: they report it
here and go on. Under ``strict`` the first report raises instead, so that a
``--strict`` run fails (exit code 2) before any work is written.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from box2mask.errors import AnnotationError

log = logging.getLogger("box2mask")


@dataclass
class Problems:
    """A thread-safe list of :class:`AnnotationError` reports.

    Attributes:
        strict: raise the first report instead of recording it.
        keep: how many reports to keep in full (all are counted).
        on_report: optional callback, called with each report.
    """

    strict: bool = False
    keep: int = 1000
    on_report: Callable[[AnnotationError], None] | None = None
    reports: list[AnnotationError] = field(default_factory=list)
    #: the kind of each kept report (``frame``, ``annotation`` ...), in step with ``reports``
    kinds: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(self, error: AnnotationError, kind: str = "annotation") -> None:
        """Record ``error`` (or raise it under ``strict``)."""
        if self.strict:
            raise error
        log.warning("%s", error)
        with self._lock:
            self.counts[kind] += 1
            if len(self.reports) < self.keep:
                self.reports.append(error)
                self.kinds.append(kind)
        if self.on_report is not None:
            self.on_report(error)

    def note(self, error: AnnotationError, kind: str, count: int = 1) -> None:
        """Record input that was skipped by a rule of the format, never raising.

        For rows the format itself calls absent (VISO's ``w <= 0`` rows) and
        for layout variants that were accepted (``imgs/`` for ``img/``): they
        are not errors, so ``--strict`` does not stop on them, but they are
        counted (``count`` rows under ``kind``) and listed in the summary, so
        that nothing is dropped silently.
        """
        log.warning("%s", error)
        with self._lock:
            self.counts[kind] += count
            if len(self.reports) < self.keep:
                self.reports.append(error)
                self.kinds.append(kind)
        if self.on_report is not None:
            self.on_report(error)

    def __len__(self) -> int:
        return sum(self.counts.values())
