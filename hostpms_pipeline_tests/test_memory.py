"""The allocators a ``hostpms`` process chooses before it loads pyarrow or starts a thread,
and its exit."""

import os
import subprocess
import sys

import pytest

from hostpms_pipeline.engine.memory import LEAN_ALLOCATORS

PROBE = (
    "from hostpms_pipeline.cli import entry\n"
    "entry.memory.use_lean_allocators()\n"
    "import os, pyarrow as pa\n"
    "print(pa.default_memory_pool().backend_name, os.environ['MALLOC_ARENA_MAX'])\n"
)


def _after_choosing(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in LEAN_ALLOCATORS}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_hostpms_exits_with_the_objects_it_made_frozen_and_its_output_intact():
    # atexit handlers run after the command returns, before the interpreter's own collections.
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "sys.argv = ['hostpms', '--version']\n"
        "from hostpms_pipeline.cli import entry\n"
        "entry.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("hostpms, version ")
    assert done.stdout.splitlines()[-1] == "frozen True"


def test_hostpms_uses_arrows_system_pool_and_two_arenas():
    assert _after_choosing() == ["system", "2"]


@pytest.mark.parametrize("pool", ["mimalloc", "jemalloc"])
def test_a_choice_made_in_the_environment_is_kept(pool):
    import pyarrow as pa

    if pool not in pa.supported_memory_backends():
        pytest.skip(f"this pyarrow has no {pool} pool")
    assert _after_choosing(ARROW_DEFAULT_MEMORY_POOL=pool, MALLOC_ARENA_MAX="4") == [pool, "4"]


FRAGMENTED = (
    "from hostpms_pipeline.engine import memory\n"
    "def rss():\n"
    "    return next(int(line.split()[1]) // 1024 for line in open('/proc/self/status')\n"
    "                if line.startswith('VmRSS'))\n"
    # 200 MB in 2 KB blocks (glibc's, not Python's small-object pool); one block in 100
    # kept, so the freed memory lies between live blocks and no heap top can shrink.
    "blocks = [bytes(2048) for _ in range(100_000)]\n"
    "kept = blocks[::100]\n"
    "del blocks\n"
    "before = rss()\n"
    "memory.release_free_memory()\n"
    "print(before, rss())\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_memory_freed_between_live_blocks_goes_back_to_the_kernel():
    done = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before - after > 100, (before, after)  # MiB
