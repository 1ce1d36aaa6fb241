"""CSV in one explicit dialect (:data:`DIALECT`, recorded in the manifest entry):

* RFC 4180 quoting: fields separated by ``,``, rows end in ``\\n``, a quote inside a quoted field is
  doubled; UTF-8 without a byte-order mark; a header line always (an empty table too).
* Every string value is quoted (``"007"``, ``""``, ``"NULL"``, ``"\\N"``); NULL is the unquoted
  marker ``\\N``, so no real string can collide with it in a reader that tells quoted from unquoted
  fields (DuckDB, pyarrow, polars). pandas cannot: there a string equal to ``\\N`` reads as NaN.
* Decimals are plain digits at the column's scale (``0.0000000001``, never ``1E-10``), quoted;
  floats ``nan``/``inf``/``-inf``; booleans ``true``/``false``; timestamps ISO-8601 with a space,
  ``Z`` when the column has a time zone; binary values base64 text.

Files of earlier versions (NULL an unquoted empty field) read the same way: the reader takes both an
unquoted empty field and unquoted ``\\N`` as NULL, and neither occurs as a value in the other dialect.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from syncer.formats.base import Format, TableWriter, conform, decimal_array, selected
from syncer.formats.files import StreamTableWriter

__all__ = ["DIALECT", "NULL", "CsvFormat", "CsvTableWriter"]

#: the unquoted field that means NULL
NULL = "\\N"

#: what the manifest records about a CSV file (``dialect``)
DIALECT: dict[str, Any] = {
    "delimiter": ",",
    "quote": '"',
    "escape": "doubled quote",
    "line_terminator": "\n",
    "encoding": "utf-8",
    "header": True,
    "null": NULL,
    "strings_quoted": True,
    "decimal": "plain digits, quoted",
    "binary": "base64",
}


class CsvTableWriter(StreamTableWriter):
    """CSV text; binary columns base64, decimal columns plain-digit text (CSV holds text only)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._text = [i for i, f in enumerate(schema) if _as_text(f.type)]
        text_schema = _csv_schema(schema)
        options = pcsv.WriteOptions(quoting_style="needed", null_string=NULL, include_header=True)
        # The header is written when the writer is made: an empty table is still a header line.
        self._writer = pcsv.CSVWriter(self.stream, text_schema, write_options=options)
        self._text_schema = text_schema

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._text:
            cols = list(batch.columns)
            for i in self._text:
                cols[i] = pa.array([_text(v) for v in cols[i].to_pylist()], pa.string())
            batch = pa.RecordBatch.from_arrays(cols, schema=self._text_schema)
        self._writer.write_batch(batch)

    def _finish(self) -> None:
        self._writer.close()


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    return format(v, "f")  # a Decimal in plain digits


#: the CSV reader's block (its memory: ~35x a block for 300 columns); a longer row (pyarrow refuses
#: a row across blocks) is read with blocks 4x bigger, up to _MAX_BLOCK
_BLOCK = 4 << 20
_MAX_BLOCK = 1 << 30
#: the multithreaded CSV reader keeps a block in flight per CPU: above this many, one thread
_THREADED_CPUS = 4


def _reader_pool() -> pa.MemoryPool:
    """mimalloc for the CSV reader's blocks: with the system allocator (the CLI's default pool) its
    threads' freed blocks stay in glibc's per-thread arenas, and a 490 MB re-read of 300 columns
    peaked at 781 MiB instead of 298."""
    try:
        return pa.mimalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        return pa.default_memory_pool()


class CsvFormat(Format):
    name = "csv"
    dialect = DIALECT

    def open_writer(self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int) -> TableWriter:
        return CsvTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        """The file's rows in blocks of _BLOCK bytes; a row longer than a block (a 10 MB value)
        reads the file again with blocks that hold it, skipping the rows already given."""
        given, block = 0, _BLOCK
        while True:
            seen = 0
            try:
                for b in self._blocks(path, schema, columns, block):
                    start = max(0, given - seen)  # rows of b given before the read started again
                    seen += b.num_rows
                    if start < b.num_rows:
                        yield b.slice(start) if start else b
                        given = seen
                return
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc) or block >= _MAX_BLOCK:
                    raise
                block *= 4

    def _blocks(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None, block: int) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        reader = pcsv.open_csv(
            path,
            # threads parse blocks ahead, one per CPU Arrow sees (the host's, in a container):
            # bounded to _THREADED_CPUS of them
            read_options=pcsv.ReadOptions(block_size=block, use_threads=pa.cpu_count() <= _THREADED_CPUS),
            memory_pool=_reader_pool(),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={f.name: f.type for f in _csv_schema(schema)},
                include_columns=list(target.names),
                # Only an unquoted \N (or, in files of earlier versions, an unquoted empty field) is
                # null; the default null spellings would turn a float NaN ("nan") into null.
                null_values=[NULL, ""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        has_text = any(_as_text(f.type) for f in target)
        for b in reader:
            yield _decode_text(b, target) if has_text else conform(b, target)

    def unsupported_columns(self, schema: pa.Schema) -> list[pa.Field]:
        """Nested, dictionary and interval columns: this dialect has no spelling for them."""
        return [
            f
            for f in schema
            if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type) or f.type == pa.month_day_nano_interval()
        ]


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _as_text(t: pa.DataType) -> bool:
    """Columns written as text of our own spelling: binary (base64) and decimals (plain digits)."""
    return _is_binary(t) or pa.types.is_decimal(t)


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as CSV holds it: binary and decimal columns become text."""
    return pa.schema([f.with_type(pa.string()) if _as_text(f.type) else f for f in schema])


def _decode_text(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    cols = list(batch.columns)
    for i, f in enumerate(target):
        if _is_binary(f.type):
            cols[i] = pa.array([None if v is None else base64.b64decode(v) for v in cols[i].to_pylist()], f.type)
        elif pa.types.is_decimal(f.type):
            cols[i] = decimal_array(cols[i], f.type)  # exact: the text has the column's scale
    return pa.RecordBatch.from_arrays(cols, schema=target)
