"""Allocators for a sync process: its peak memory is mostly memory freed and taken again.

A sync maps and loads chunks of about 100,000 records from several threads, so the
same few hundred MB are freed and allocated over and over. Arrow's default pool
(mimalloc) returns them to the kernel and faults them in again, and glibc gives each
thread that contends an arena of its own (up to 8 per core), each keeping its own free
memory. On a 1M-reservation first load (2 cores, medians of 3 paired runs) Arrow's
system pool with two glibc arenas peaked at 815 MiB instead of 946 MiB, with 4.3 s of
kernel CPU instead of 7.7 s and a wall time 0.97 times as long.

Both are fixed early: pyarrow reads ``ARROW_DEFAULT_MEMORY_POOL`` when it loads, and
glibc caps its arenas when it first needs a second one. So the ``hostpms`` command
chooses them before importing anything else; a choice made in the environment is kept,
and the processes it starts (the UI's webserver, daemon and runs) inherit it.
"""

from __future__ import annotations

import ctypes
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter
LEAN_ALLOCATORS = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2"}


def use_lean_allocators() -> None:
    """Arrow's system pool and two glibc arenas, for this process and the ones it starts.

    Call it before pyarrow is imported and before a second thread starts."""
    for name, value in LEAN_ALLOCATORS.items():
        os.environ.setdefault(name, value)
    try:
        arenas = int(os.environ["MALLOC_ARENA_MAX"])
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)  # glibc read the variable at start
    except (ValueError, AttributeError, OSError):  # not a number; not glibc (musl, macOS)
        pass


def release_free_memory() -> None:
    """Hand the memory freed so far back to the kernel (glibc's ``malloc_trim``; elsewhere
    nothing).

    Chunk after chunk of loading leaves glibc's arenas holding freed memory in pieces the
    Parquet export's buffers do not fit, so the export's peak stacked on the loads' high
    water mark and grew with the rows per day: a first load of 1M reservations peaked at
    786 MiB, of 2M at 1,074. Trimmed once before the export: 703 and 765 MiB, wall time
    within noise (paired ratio 1.03, range 0.95-1.03; a trim takes 5 to 50 ms, outside the
    GIL). Trimming before every export group too saved 40 MiB more but cost a 10 % sync
    0.7 s of page faults."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc (musl, macOS)
        pass
