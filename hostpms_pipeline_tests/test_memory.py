"""The sync's allocator choice: Arrow's system pool, unless the environment chose one."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import pyarrow as pa\n"
    "from hostpms_pipeline.engine import memory\n"
    "memory.use_lean_allocators()\n"
    "print(pa.default_memory_pool().backend_name)\n"
)


def _pool_after_tuning(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_lean_allocators_choose_arrows_system_pool():
    assert _pool_after_tuning() == "system"


@pytest.mark.parametrize("pool", ["mimalloc", "jemalloc"])
def test_a_pool_chosen_in_the_environment_is_kept(pool):
    import pyarrow as pa

    if pool not in pa.supported_memory_backends():
        pytest.skip(f"this pyarrow has no {pool} pool")
    assert _pool_after_tuning(ARROW_DEFAULT_MEMORY_POOL=pool) == pool
