"""Keep freed host memory inside the process, so big tensors stop page-faulting.

A ViT encoder pass allocates and frees tens of tensors of 10–800 MB (qkv
projections, MLP activations, the 12×4096×4096 relative-position attention
mask of each global block). glibc's ``malloc`` serves every allocation above
its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns it with
``munmap`` on free, so each pass touches every page of those tensors for the
first time again: the kernel zero-fills several GB per ViT-B crop. On the
2-core development machine that was a third of the encoder's time
(``sys`` time in ``top``): one ViT-B crop on one thread took 13.5 s with the SDPA
encoder, 10.3 s with the heap kept (fp32; ``benchmarks/speed.py`` gives the
end-to-end figures).

:func:`keep_freed_memory` turns mmap-backed allocations off
(``M_MMAP_MAX = 0``) and raises the trim threshold, so freed blocks go back to
the heap and are reused by the next pass with their pages already mapped. The
resident size then stays at the peak of one batch instead of breathing; for a
conversion job that repeats the same shapes for days that is the right trade.
It is the same effect as starting Python with ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=...`` but applied from inside, for the CLI and the
Python API alike. Set ``BOX2MASK_MALLOC_TUNING=0`` to leave malloc alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: free space at the top of the heap kept before trimming (the largest C int, ~2 GiB)
_TRIM_THRESHOLD = 2**31 - 1

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process to reuse freed memory (see the module docstring).

    Returns:
        ``True`` if the tuning is in effect, ``False`` where it does not apply
        (not Linux/glibc, or ``BOX2MASK_MALLOC_TUNING=0``). Calling it again
        returns the first answer without touching malloc.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("BOX2MASK_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # absent on musl: AttributeError
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; trim first so that a half-applied tuning
    # never leaves mmap off with eager trimming (which would thrash brk).
    ok = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 and mallopt(_M_MMAP_MAX, 0) == 1
    _applied = bool(ok)
    log.debug("malloc tuning (mmap off, trim threshold 2 GiB): %s", "on" if ok else "refused")
    return _applied
