"""Arrow IPC files by which Spark tasks hand their tables to the next step and to the driver.

A task writes the local engine's own Arrow tables, exactly as typed there, so what
the driver loads into PostgreSQL never passes through Spark's types. The folder
must be one every executor and the driver can reach: a local folder for
``local[*]``, the processed bucket (``{processed}/_spark_staging/``, which Hive,
Athena and Spark readers skip) on a cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.ipc as ipc
from pyarrow.fs import FileSelector, FileType

from hostpms_pipeline.lake.parquet_store import filesystem_for

FOLDER = "_spark_staging"


def run_folder(staging_url: str) -> str:
    """A folder of its own for one run's files, under ``staging_url``."""
    return f"{staging_url.rstrip('/')}/{uuid.uuid4().hex}"


def write(folder_url: str, kind: str, table: pa.Table) -> str:
    """Write ``table`` under ``folder_url/kind/``; return the file's name relative to ``folder_url``."""
    filesystem, root = filesystem_for(folder_url)
    filesystem.create_dir(f"{root}/{kind}", recursive=True)
    name = f"{kind}/{uuid.uuid4().hex}.arrow"
    with (
        filesystem.open_output_stream(f"{root}/{name}") as sink,
        ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    return name


def read(folder_url: str, names: Iterable[str], schema: pa.Schema | None = None) -> pa.Table:
    """The files' tables, one after the other (as ``schema``, if given)."""
    filesystem, root = filesystem_for(folder_url)
    tables = []
    for name in names:
        with filesystem.open_input_file(f"{root}/{name}") as source:
            tables.append(ipc.open_file(source).read_all())
    if schema is None:
        return pa.concat_tables(tables)
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).cast(schema)


def remove(folder_url: str) -> None:
    """Delete the run's folder and everything in it (nothing if it is gone)."""
    filesystem, root = filesystem_for(folder_url)
    if filesystem.get_file_info(root).type == FileType.Directory:
        filesystem.delete_dir(root)


def names_under(folder_url: str, kind: str) -> list[str]:
    filesystem, root = filesystem_for(folder_url)
    found = filesystem.get_file_info(FileSelector(f"{root}/{kind}", allow_not_found=True))
    return sorted(f"{kind}/{info.base_name}" for info in found if info.type == FileType.File)
