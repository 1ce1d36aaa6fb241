"""CSV: a header row; an empty field is null, "" the empty string; binary columns as base64 text."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from syncer.formats.base import Format, TableWriter, conform, selected
from syncer.formats.files import StreamTableWriter

__all__ = ["CsvFormat", "CsvTableWriter"]


class CsvTableWriter(StreamTableWriter):
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


class CsvFormat(Format):
    name = "csv"

    def open_writer(self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int) -> TableWriter:
        return CsvTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
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

    def unsupported_columns(self, schema: pa.Schema) -> list[pa.Field]:
        """Nested and dictionary columns: CSV has no way to write them."""
        return [f for f in schema if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type)]


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
