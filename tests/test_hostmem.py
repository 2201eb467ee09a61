"""box2mask.hostmem: glibc malloc keeps freed memory; the opt-out is honoured.

Each case runs in a fresh interpreter, since the tuning is once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import box2mask.hostmem as h; a = h.keep_freed_memory(); b = h.keep_freed_memory(); "
    "print(a, b)"
)


def _probe(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "BOX2MASK_MALLOC_TUNING"}
    if env_value is not None:
        env["BOX2MASK_MALLOC_TUNING"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only"
)
def test_tuning_applies_once_on_linux_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _probe(None) == "True True"


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_env_opt_out_leaves_malloc_alone(value: str) -> None:
    assert _probe(value) == "False False"


def test_a_freed_big_tensor_stays_in_the_heap_for_the_next_one() -> None:
    """The point of the tuning: 256 MB freed is kept as free heap (not unmapped), and
    the next allocation of that size is served from it without a new mapping."""
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    code = (
        "import ctypes, numpy as np, box2mask.hostmem as h\n"
        "class MI(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', "
        "'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
        "libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = MI\n"
        "assert h.keep_freed_memory()\n"
        "a = np.ones(64 * 2**20, np.float32); mapped = libc.mallinfo2().hblkhd; del a\n"
        "free = libc.mallinfo2().fordblks\n"
        "b = np.ones(64 * 2**20, np.float32); m = libc.mallinfo2()\n"
        "print(mapped, free, m.hblkhd, m.fordblks)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "mallinfo2" in out.stderr:
        pytest.skip("glibc < 2.33 has no mallinfo2")
    assert out.returncode == 0, out.stderr
    mapped, free_after_del, mapped_again, free_after_reuse = map(int, out.stdout.split())
    big = 256 * 2**20
    assert mapped < big  # the array came from the heap, not from its own mmap
    assert free_after_del >= big  # freed into the heap, kept by the process
    assert mapped_again < big and free_after_reuse < free_after_del - big // 2  # reused
