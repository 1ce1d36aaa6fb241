"""The one contract every file format meets (:class:`Format`), the writer it opens
(:class:`TableWriter`) and the typed record a closed writer returns (:class:`WrittenFile`)."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer._memory import DEFAULT_BATCH_BYTES, batch_rows_for

__all__ = ["Format", "TableWriter", "WrittenFile", "WrittenPart", "conform", "decimal_array", "read_rows", "selected"]

#: rows per batch when reading a file back (at most: see read_rows)
READ_BATCH = 131_072


def read_rows(schema: pa.Schema) -> int:
    """Rows per batch when reading ``schema``'s columns back: about ``DEFAULT_BATCH_BYTES`` of
    Arrow, at most READ_BATCH (a 300-column file is read in far fewer rows than an 8-column one)."""
    return batch_rows_for(schema, DEFAULT_BATCH_BYTES, READ_BATCH)


@dataclass(frozen=True)
class WrittenPart:
    name: str  # file name inside the table's folder
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class WrittenFile:
    path: Path  # the file, or the folder of a table written in parts
    bytes: int  # all parts together
    sha256: str  # of the file; of a parted table: parts_digest(parts)
    parts: tuple[WrittenPart, ...] = ()
    rows: int = 0  # all parts together
    #: a text file's bytes as they parsed back while it was written (syncer.formats.text_encoders.ReadBack)
    read_back: Any = dataclasses.field(default=None, compare=False, repr=False)


class TableWriter(abc.ABC):
    """Streams RecordBatches of one schema into one file (or one folder of parts); ``close()``
    returns size and sha256. ``threaded`` writers encode on threads of their own, so callers hand
    them batches directly instead of through a writer thread."""

    threaded = False

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self._write(batch)

    @abc.abstractmethod
    def _write(self, batch: pa.RecordBatch) -> None: ...

    @abc.abstractmethod
    def close(self) -> WrittenFile: ...

    @abc.abstractmethod
    def abort(self) -> None:
        """Stop without caring about the content; the caller removes the output."""


class Format(abc.ABC):
    """A file format: how a table is written to ``<table>.<name>`` and read back in source order."""

    name: str
    #: how the file spells values, recorded in the manifest entry (text formats); None: the format's own
    dialect: dict[str, Any] | None = None
    #: what the encoder holds beyond the batches a sync counts (TABLE_BATCHES_HELD), in batches:
    #: a wide table's batches are made smaller by as much (syncer._memory.table_batch_bytes)
    encoder_batches: int = 0

    @abc.abstractmethod
    def open_writer(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int, segmented: bool = False
    ) -> TableWriter:
        """A writer at ``path`` (which must not exist); formats without the notion ignore the options."""

    @abc.abstractmethod
    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        """The written rows as batches of ``schema`` (or of only ``columns``), in source order."""

    def reread(self, path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Every written row, parsed back as the engine's re-open check parses it: the reader's own
        parse (:meth:`iter_batches`), or one that gives the same batches at native speed."""
        return self.iter_batches(path, schema, None)

    def read_table(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
        """The whole written file as one table of ``schema`` (or of only ``columns``)."""
        return pa.Table.from_batches(list(self.iter_batches(path, schema, columns)), selected(schema, columns))

    def count_rows(self, path: Path, schema: pa.Schema) -> int:
        """Rows in the file: from metadata where the format has it, else by parsing every column back."""
        return sum(b.num_rows for b in self.iter_batches(path, schema, None))

    def file_schema(self, path: Path) -> pa.Schema | None:
        """The schema stored in the file, for formats that store one."""
        return None

    def stored_schema(self, schema: pa.Schema) -> pa.Schema:
        """What :meth:`file_schema` gives for a file written with ``schema``: the same schema, but
        where the format stores a type as another that holds the same values (Parquet has no
        seconds unit); readers cast back to ``schema``."""
        return schema

    def unsupported_columns(self, schema: pa.Schema) -> list[pa.Field]:
        """Columns the format cannot hold faithfully."""
        return []


def selected(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Schema:
    """``schema`` reduced to ``columns`` (all of it when there are none)."""
    return pa.schema([schema.field(c) for c in columns]) if columns else schema


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Give ``batch`` exactly ``schema`` (types cast where they differ, field metadata attached)."""
    if batch.schema.equals(schema, check_metadata=False):
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    arrays = []
    for arr, field in zip(batch.columns, schema, strict=True):
        arrays.append(arr if arr.type == field.type else arr.cast(field.type, safe=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def decimal_array(values: pa.Array | list[Any], t: pa.DataType) -> pa.Array:
    """Decimal text (or ``Decimal`` values) as an array of decimal type ``t``. A decimal128(38, s)
    column may hold 39-digit values: DuckDB hands a HUGEINT (up to 2^127 - 1) over as
    decimal128(38, 0), whose 128 bits hold them, and Parquet and Arrow files keep them; text is
    parsed into the same 128 bits (any value past 128 bits still fails)."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string() if _texts(values) else None)
    try:
        return arr.cast(t)
    except pa.ArrowInvalid:
        if not (pa.types.is_decimal128(t) and t.precision == 38):
            raise
        wide = arr.cast(pa.decimal256(39, t.scale))
        out = wide.cast(t, safe=False)
        if not out.cast(wide.type).equals(wide):  # wrapped: the value needs more than 128 bits
            raise
        return out


def _texts(values: list[Any]) -> bool:
    return any(isinstance(v, str) for v in values)
