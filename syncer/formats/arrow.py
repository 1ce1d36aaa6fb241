"""Arrow IPC file format, uncompressed: memory-mappable, the stored schema is the table's.

The sync reads its own files back through ``read`` into buffers of one batch, never through a memory
map: the IPC reader on a map touches the mapped pages (Arrow advises the kernel to read them in), and
file-backed pages mapped into the process count in its RSS and its peak (``VmHWM``, ``ru_maxrss``)
and in the container's memory charge. The row count of a 20M-row file mapped peaked at 1,209 MiB
(1,088 of it file pages); read, it reads one narrow column's buffers. End users' ``read_table``
keeps the map (a whole table is asked for: zero copies).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from syncer._memory import row_bytes
from syncer.formats.base import Format, TableWriter, WrittenFile, conform, selected

__all__ = ["ArrowFormat", "ArrowTableWriter"]

#: bytes read back from the page cache per hash update
_HASH_CHUNK = 1 << 20


class ArrowTableWriter(TableWriter):
    """The IPC file written by Arrow to a native file, hashed from the page cache after every batch.

    Through a Python sink (``StreamTableWriter``) every 8 MiB chunk called back into Python and
    waited for the GIL, which the read-ahead and profile threads hold most of the time: the writer
    thread spent most of its time waiting (5M rows of the benchmark's orders table, 676 MB of IPC).
    Natively, the writer runs without the GIL, and the hash reads the bytes back from the page
    cache with ``os.pread`` (which, like ``hashlib`` on large chunks, releases the GIL)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        path.touch(exist_ok=False)  # refuses to overwrite, like the other formats' writers
        self._hash = hashlib.sha256()
        self._hashed = 0
        self._fd = -1
        self._file = pa.OSFile(str(path), "wb")
        try:
            self._fd = os.open(path, os.O_RDONLY)
            self._writer = ipc.new_file(self._file, schema)
        except BaseException:
            self._release()
            raise

    def _write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self._follow()

    def _follow(self) -> int:
        """Hash what was written since the last call; returns the file's size."""
        size = os.fstat(self._fd).st_size
        while self._hashed < size:
            chunk = os.pread(self._fd, min(_HASH_CHUNK, size - self._hashed), self._hashed)
            if not chunk:
                raise OSError(errno.EIO, "the file shrank while it was being written", str(self.path))
            self._hash.update(chunk)
            self._hashed += len(chunk)
        return size

    def close(self) -> WrittenFile:
        try:
            self._writer.close()  # the footer; durable at publish (the snapshot's one fsync plan)
            self._file.close()
            size = self._follow()
        finally:
            self._release()
        return WrittenFile(self.path, size, self._hash.hexdigest(), rows=self.rows)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away
            self._writer.close()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _read(path: Path, fields: Sequence[int] = ()) -> ipc.RecordBatchFileReader:
    """The file read with ``read`` (not mapped); ``fields``: only these top-level fields' buffers
    are read (none: every field)."""
    options = ipc.IpcReadOptions(included_fields=list(fields)) if fields else None
    return ipc.open_file(pa.OSFile(str(path)), options=options)


def _narrowest(schema: pa.Schema) -> int:
    """The field whose buffers are the fewest bytes a row (a batch's row count is in its metadata,
    but the reader reads at least one field's buffers)."""
    return min(range(len(schema)), key=lambda i: row_bytes(pa.schema([schema.field(i)])))


class ArrowFormat(Format):
    name = "arrow"

    def open_writer(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int, segmented: bool = False
    ) -> TableWriter:
        return ArrowTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        names = self.file_schema(path).names if columns else []  # type: ignore[union-attr]
        fields = sorted({names.index(c) for c in columns if c in names}) if columns else []
        with _read(path, fields) as reader:
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                yield conform(b.select(target.names) if columns else b, target)

    def read_table(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            table = reader.read_all()
        return table.select(list(columns)) if columns else table

    def count_rows(self, path: Path, schema: pa.Schema) -> int:
        stored = self.file_schema(path)
        fields = [_narrowest(stored)] if stored is not None and len(stored) else []
        with _read(path, fields) as reader:
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))

    def file_schema(self, path: Path) -> pa.Schema | None:
        with _read(path) as reader:
            return reader.schema
