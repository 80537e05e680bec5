"""The ``hostpms`` command: its allocators are chosen before anything else is imported, and
its exit skips the collections over what the imports made."""

import gc

from hostpms_pipeline.engine import memory


def main() -> None:
    memory.use_lean_allocators()
    from hostpms_pipeline.cli.commands import main as hostpms

    try:
        hostpms()
    finally:
        # The interpreter's exit collects garbage over every object the libraries made at
        # import (pydantic's schemas, psycopg, httpx): 0.1-0.2 s of a sync that finds
        # nothing new. Frozen objects are skipped; they are freed all the same.
        gc.freeze()
