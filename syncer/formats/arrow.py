"""Arrow IPC file format, uncompressed: memory-mappable, the stored schema is the table's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from syncer.formats.base import Format, TableWriter, conform, selected
from syncer.formats.files import StreamTableWriter

__all__ = ["ArrowFormat", "ArrowTableWriter"]


class ArrowTableWriter(StreamTableWriter):
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._writer = ipc.new_file(self.stream, schema)

    def _write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def _finish(self) -> None:
        self._writer.close()


class ArrowFormat(Format):
    name = "arrow"

    def open_writer(self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int) -> TableWriter:
        return ArrowTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                yield conform(b.select(target.names) if columns else b, target)

    def read_table(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            table = reader.read_all()
        return table.select(list(columns)) if columns else table

    def count_rows(self, path: Path, schema: pa.Schema) -> int:
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))

    def file_schema(self, path: Path) -> pa.Schema | None:
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            return reader.schema
