"""Allocators for a sync process: its peak memory is mostly memory freed and taken again.

A sync maps and loads chunks of about 100,000 records from several threads, so the
same few hundred MB are freed and allocated over and over. Arrow's default pool
(mimalloc) returns them to the kernel and faults them in again, and glibc gives each
thread that contends an arena of its own (up to 8 per core), each keeping its own free
memory. On a 1M-reservation first load (2 cores, median of 5 paired runs) Arrow's system
pool with two glibc arenas peaked at 791 MiB instead of 965 MiB, with 3.7 s of kernel
CPU instead of 6.0 s and the same wall time.

Called before the process starts its threads; a choice made explicitly in the
environment (``ARROW_DEFAULT_MEMORY_POOL``, ``MALLOC_ARENA_MAX``) is kept.
"""

from __future__ import annotations

import ctypes
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter
_ARENAS = 2


def use_lean_allocators() -> None:
    """Arrow's system pool and at most two glibc arenas for this process."""
    import pyarrow as pa

    if "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _ARENAS)
        except (AttributeError, OSError):  # not glibc (musl, macOS): its allocator as it is
            pass
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
