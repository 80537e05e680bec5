"""The PostgreSQL a benchmark runs against: the given URL, else a throwaway embedded server."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hostpms_pipeline.warehouse import database


@contextmanager
def postgres_url(url: str | None = None) -> Iterator[str]:
    """``url`` when given; otherwise start an embedded server in a temp dir, deleted afterwards."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        server = database.embedded_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            # The first start restarts the server to tune it: the handle's cleanup alone
            # would stop the first postmaster only and leave the restarted one running.
            database.stop_embedded_server(Path(folder) / "data")
            server.cleanup()
