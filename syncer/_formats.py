"""Container-friendly file formats: streaming writers (hashing the bytes as they are written) and
streaming readers that restore the exact Arrow schema recorded in the manifest.

| format  | file            | notes                                                              |
|---------|-----------------|--------------------------------------------------------------------|
| parquet | <table>.parquet | zstd by default, dictionary encoding, statistics, one row group per batch group |
| csv     | <table>.csv     | header row; empty field = null, "" = empty string                  |
| jsonl   | <table>.jsonl   | one object per line; decimals as strings, times as ISO-8601        |
| arrow   | <table>.arrow   | Arrow IPC file format, uncompressed (memory-mappable)              |
"""

from __future__ import annotations

import abc
import base64
import contextlib
import datetime as dt
import decimal
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

__all__ = [
    "HashingFile",
    "TableWriter",
    "WrittenFile",
    "conform",
    "count_rows",
    "iter_batches",
    "open_writer",
    "read_file",
    "schema_from_b64",
    "schema_to_b64",
    "sha256_file",
]

_READ_BATCH = 131_072
_WRITE_BUFFER = 8 << 20


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    bytes: int
    sha256: str


class HashingFile(io.RawIOBase):
    """A write-only file that hashes every byte on its way to disk (no second read of the file)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._f: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        self._hash.update(mv)
        n = self._f.write(mv)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        super().close()

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class TableWriter(abc.ABC):
    """Streams RecordBatches of one schema into one file; ``close()`` returns size and sha256."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.sink = HashingFile(path)
        # Arrow's writers call back into Python for every small write (and need the GIL each time,
        # which the other pipeline threads hold often); buffer natively and hand over large chunks.
        self.stream = pa.BufferedOutputStream(pa.PythonFile(self.sink, mode="w"), _WRITE_BUFFER)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self._write(batch)

    def close(self) -> WrittenFile:
        self._finish()
        self.stream.flush()
        self.sink.sync()  # durable before anything points at it
        self.stream.close()  # closes the sink too
        return WrittenFile(self.path, self.sink.tell(), self.sink.hexdigest)

    def abort(self) -> None:
        """Close without caring about the content; the caller removes the file."""
        with contextlib.suppress(Exception):  # the file is being thrown away
            self._finish()
        with contextlib.suppress(Exception):
            self.stream.close()
        self.sink.close()

    @abc.abstractmethod
    def _write(self, batch: pa.RecordBatch) -> None: ...

    def _finish(self) -> None:  # noqa: B027 - formats with a footer override it
        """Write what the format keeps for the end (footer, buffered row group)."""


class ParquetTableWriter(TableWriter):
    """Parquet with statistics, row groups of ``row_group_rows``, dictionary encoding only where it
    pays (columns whose first batch has few distinct values) and delta encoding for the other
    integer-like columns (ids, dates, timestamps)."""

    #: distinct/rows ratio in the first batch below which a column is dictionary-encoded
    DICTIONARY_RATIO = 0.3

    def __init__(self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int) -> None:
        super().__init__(path, schema)
        self._compression = None if compression == "none" else compression
        self._writer: pq.ParquetWriter | None = None
        self._row_group_rows = row_group_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def _open(self, sample: pa.RecordBatch | None) -> pq.ParquetWriter:
        dictionary = [] if sample is None else dictionary_columns(sample, self.DICTIONARY_RATIO)
        # Integer-like columns without a dictionary (ids, timestamps) are delta-encoded: smaller
        # (the demo table: 70 MiB instead of 85) and cheaper to compress (about 13% less CPU).
        delta = {
            f.name: "DELTA_BINARY_PACKED"
            for f in self.schema
            if f.name not in dictionary
            and (pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type) or pa.types.is_date32(f.type))
        }
        return pq.ParquetWriter(
            self.stream,
            self.schema,
            compression=self._compression,
            use_dictionary=dictionary or False,
            column_encoding=delta or None,
            write_statistics=True,
            store_schema=True,
        )

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._writer = self._open(batch)
        # ParquetWriter makes one row group per call; gather batches up to the row-group size.
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            assert self._writer is not None
            table = pa.Table.from_batches(self._pending, self.schema)
            self._writer.write_table(table, row_group_size=max(self._pending_rows, 1))
            self._pending, self._pending_rows = [], 0

    def _finish(self) -> None:
        if self._writer is None:
            self._writer = self._open(None)
        self._flush()
        self._writer.close()


def dictionary_columns(sample: pa.RecordBatch, ratio: float) -> list[str]:
    """Columns of ``sample`` with few distinct values (worth a Parquet dictionary)."""
    import pyarrow.compute as pc

    out = []
    n = max(sample.num_rows, 1)
    for field, arr in zip(sample.schema, sample.columns, strict=True):
        t = field.type
        if pa.types.is_boolean(t) or pa.types.is_nested(t):
            continue
        if pc.count_distinct(arr, mode="all").as_py() / n < ratio:
            out.append(field.name)
    return out


class CsvTableWriter(TableWriter):
    """CSV text; binary columns are written base64-encoded (CSV holds text only)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._binary = [i for i, f in enumerate(schema) if _is_binary(f.type)]
        text_schema = _csv_schema(schema)
        self._writer = pcsv.CSVWriter(self.stream, text_schema, write_options=pcsv.WriteOptions(quoting_style="needed"))
        self._text_schema = text_schema

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._binary:
            cols = list(batch.columns)
            for i in self._binary:
                cols[i] = pa.array(
                    [None if v is None else base64.b64encode(v).decode("ascii") for v in cols[i].to_pylist()], pa.string()
                )
            batch = pa.RecordBatch.from_arrays(cols, schema=self._text_schema)
        self._writer.write_batch(batch)

    def _finish(self) -> None:
        self._writer.close()


class ArrowTableWriter(TableWriter):
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._writer = ipc.new_file(self.stream, schema)

    def _write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def _finish(self) -> None:
        self._writer.close()


class JsonlTableWriter(TableWriter):
    def _write(self, batch: pa.RecordBatch) -> None:
        lines = [json.dumps(row, default=_json_default, ensure_ascii=False) for row in batch.to_pylist()]
        if lines:
            self.stream.write(("\n".join(lines) + "\n").encode("utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as CSV holds it: binary columns become base64 text."""
    return pa.schema([f.with_type(pa.string()) if _is_binary(f.type) else f for f in schema])


def _decode_csv_binary(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    cols = list(batch.columns)
    for i, f in enumerate(target):
        if _is_binary(f.type):
            cols[i] = pa.array([None if v is None else base64.b64decode(v) for v in cols[i].to_pylist()], f.type)
    return pa.RecordBatch.from_arrays(cols, schema=target)


def unsupported_columns(fmt: str, schema: pa.Schema) -> list[pa.Field]:
    """Columns a text format cannot hold faithfully (nested types in CSV)."""
    if fmt != "csv":
        return []
    return [f for f in schema if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type)]


def open_writer(
    fmt: str, path: Path, schema: pa.Schema, *, compression: str = "zstd", row_group_rows: int = 131_072
) -> TableWriter:
    if fmt == "parquet":
        return ParquetTableWriter(path, schema, compression=compression, row_group_rows=row_group_rows)
    if fmt == "csv":
        return CsvTableWriter(path, schema)
    if fmt == "jsonl":
        return JsonlTableWriter(path, schema)
    if fmt == "arrow":
        return ArrowTableWriter(path, schema)
    raise ValueError(f"unknown format {fmt!r}")


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Give ``batch`` exactly ``schema`` (types cast where they differ, field metadata attached)."""
    if batch.schema.equals(schema, check_metadata=False):
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    arrays = []
    for arr, field in zip(batch.columns, schema, strict=True):
        arrays.append(arr if arr.type == field.type else arr.cast(field.type, safe=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- reading -------------------------------------------------------------------------------------


def iter_batches(fmt: str, path: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a written file back as batches of ``schema`` (optionally only ``columns``)."""
    target = pa.schema([schema.field(c) for c in columns]) if columns else schema
    if fmt == "parquet":
        pf = pq.ParquetFile(path)
        for b in pf.iter_batches(batch_size=_READ_BATCH, columns=list(target.names)):
            yield conform(b, target)
    elif fmt == "arrow":
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                yield conform(b.select(target.names) if columns else b, target)
    elif fmt == "csv":
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=16 << 20),
            convert_options=pcsv.ConvertOptions(
                column_types={f.name: f.type for f in _csv_schema(schema)},
                include_columns=list(target.names),
                # The writer leaves nulls empty and quotes every string, so only an unquoted empty field
                # is null; the default null spellings would turn a float NaN ("nan") into null.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        has_binary = any(_is_binary(f.type) for f in target)
        for b in reader:
            yield _decode_csv_binary(b, target) if has_binary else conform(b, target)
    elif fmt == "jsonl":
        yield from _iter_jsonl(path, target)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _iter_jsonl(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    parsers = [_jsonl_parser(f.type) for f in schema]
    with open(path, encoding="utf-8") as fh:
        while True:
            rows = [json.loads(line) for _, line in zip(range(_READ_BATCH // 4), fh, strict=False) if line.strip()]
            if not rows:
                return
            arrays = [pa.array([p(r.get(f.name)) for r in rows], type=f.type) for f, p in zip(schema, parsers, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _jsonl_parser(t: pa.DataType) -> Any:
    def none_or(fn: Any) -> Any:
        return lambda v: None if v is None else fn(v)

    if pa.types.is_decimal(t):
        return none_or(decimal.Decimal)
    if pa.types.is_timestamp(t):
        return none_or(lambda v: dt.datetime.fromisoformat(v))
    if pa.types.is_date(t):
        return none_or(dt.date.fromisoformat)
    if pa.types.is_time(t):
        return none_or(dt.time.fromisoformat)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return none_or(base64.b64decode)
    if pa.types.is_duration(t):
        return none_or(lambda v: dt.timedelta(seconds=v))
    if t == pa.month_day_nano_interval():
        return none_or(lambda v: pa.MonthDayNano(v))
    return lambda v: v


def read_file(fmt: str, path: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole published file as a ``pyarrow.Table`` of ``schema``."""
    if fmt == "parquet":
        table = pq.read_table(path, columns=list(columns) if columns else None)
        target = pa.schema([schema.field(c) for c in columns]) if columns else schema
        return table if table.schema.equals(target) else table.cast(target)
    if fmt == "arrow":
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            table = reader.read_all()
        return table.select(list(columns)) if columns else table
    target = pa.schema([schema.field(c) for c in columns]) if columns else schema
    return pa.Table.from_batches(list(iter_batches(fmt, path, schema, columns)), target)


def count_rows(fmt: str, path: Path, schema: pa.Schema) -> int:
    """Re-open a written file and count its rows: from metadata where the format has it, else by
    parsing every column back into the table's types (so a value that cannot be read back fails here)."""
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "arrow":
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    return sum(b.num_rows for b in iter_batches(fmt, path, schema))


def file_schema(fmt: str, path: Path) -> pa.Schema | None:
    """The schema stored in the file, for formats that store one."""
    if fmt == "parquet":
        return pq.read_schema(path)
    if fmt == "arrow":
        with ipc.open_file(pa.memory_map(str(path))) as reader:
            return reader.schema
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


def schema_to_b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def schema_from_b64(text: str) -> pa.Schema:
    return ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
