"""The allocators a ``hostpms`` process chooses before it loads pyarrow or starts a thread."""

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


def test_hostpms_uses_arrows_system_pool_and_two_arenas():
    assert _after_choosing() == ["system", "2"]


@pytest.mark.parametrize("pool", ["mimalloc", "jemalloc"])
def test_a_choice_made_in_the_environment_is_kept(pool):
    import pyarrow as pa

    if pool not in pa.supported_memory_backends():
        pytest.skip(f"this pyarrow has no {pool} pool")
    assert _after_choosing(ARROW_DEFAULT_MEMORY_POOL=pool, MALLOC_ARENA_MAX="4") == [pool, "4"]
