"""Container-friendly file formats: streaming writers (hashing the bytes as they are written) and
streaming readers that restore the exact Arrow schema recorded in the manifest.

| format  | file            | notes                                                              |
|---------|-----------------|--------------------------------------------------------------------|
| parquet | <table>.parquet | zstd by default, PLAIN + dictionary encodings, statistics, row groups of ``row_group_rows`` |
|         | <table>/part-NNNNN.parquet | big tables: row groups dealt round-robin to parts encoded in parallel |
|         | <table>/part-SSSSS-NNNNN.parquet | tables whose footers would outgrow FILE_CHUNKS: in segments of files |
| csv     | <table>.csv     | RFC 4180, header row, strings quoted, null = unquoted ``\\N``       |
| jsonl   | <table>.jsonl   | one RFC 8259 object per line, one encoding per type (see jsonl.py) |
| arrow   | <table>.arrow   | Arrow IPC file format, uncompressed (memory-mappable)              |

Each format is one module behind :class:`~syncer.formats.base.Format`; this module is the registry
(:data:`FORMATS`, :func:`get_format`) and the functions the other rooms call with a format's name.
Shared file helpers are in :mod:`syncer.formats.files`, Parquet footer statistics in
:mod:`syncer.formats.stats`.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from syncer.formats.base import Format, TableWriter, WrittenFile, WrittenPart, conform
from syncer.formats.files import HashingFile, output_size, parts_digest, remove_output, sha256_file

if TYPE_CHECKING:
    from syncer.formats.parquet import parquet_files, parquet_layout
    from syncer.formats.stats import parquet_ranges

__all__ = [
    "FORMATS",
    "Format",
    "HashingFile",
    "TableWriter",
    "WrittenFile",
    "WrittenPart",
    "conform",
    "count_rows",
    "file_schema",
    "format_dialect",
    "get_format",
    "iter_batches",
    "open_writer",
    "output_size",
    "parquet_files",
    "parquet_layout",
    "parquet_ranges",
    "parts_digest",
    "read_file",
    "refusal",
    "remove_output",
    "reread_batches",
    "schema_from_b64",
    "schema_to_b64",
    "sha256_file",
    "stored_schema",
    "unsupported_columns",
]

#: each format's module and class: a module is loaded when its format is first used (``status``
#: counting a Parquet file's rows loads neither the CSV writer nor pyarrow.compute)
_MODULES = {
    "parquet": ("syncer.formats.parquet", "ParquetFormat"),
    "csv": ("syncer.formats.csv", "CsvFormat"),
    "jsonl": ("syncer.formats.jsonl", "JsonlFormat"),
    "arrow": ("syncer.formats.arrow", "ArrowFormat"),
}
#: names of this face that live in a format's module (loaded on first use, PEP 562)
_LAZY = {
    "parquet_files": "syncer.formats.parquet",
    "parquet_layout": "syncer.formats.parquet",
    "parquet_ranges": "syncer.formats.stats",
}


class _Registry(Mapping[str, Format]):
    """Every format by the name ``format =`` gives it, each made on first use."""

    def __init__(self) -> None:
        self._made: dict[str, Format] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Format:
        made = self._made.get(name)
        if made is None:
            module, cls = _MODULES[name]  # KeyError: not a format
            with self._lock:
                made = self._made.get(name) or getattr(importlib.import_module(module), cls)()
                self._made[name] = made
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __contains__(self, name: object) -> bool:
        return name in _MODULES


#: every format by the name ``format =`` gives it in the config and the manifest
FORMATS: Mapping[str, Format] = _Registry()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'syncer.formats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def get_format(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}") from None


def open_writer(
    fmt: str,
    path: Path,
    schema: pa.Schema,
    *,
    compression: str = "zstd",
    row_group_rows: int = 131_072,
    parts: int = 1,
    segmented: bool = False,
) -> TableWriter:
    """A writer for ``fmt`` at ``path``; ``parts`` > 1 or ``segmented`` (Parquet only) makes ``path``
    a folder of part files (see :mod:`syncer.formats.parquet`)."""
    return get_format(fmt).open_writer(
        path, schema, compression=compression, row_group_rows=row_group_rows, parts=parts, segmented=segmented
    )


def iter_batches(fmt: str, path: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a written file back as batches of ``schema`` (optionally only ``columns``)."""
    yield from get_format(fmt).iter_batches(path, schema, columns)


def reread_batches(fmt: str, path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Every row of a written file parsed back for the engine's re-open check (see :meth:`Format.reread`)."""
    yield from get_format(fmt).reread(path, schema)


def read_file(fmt: str, path: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole published file as a ``pyarrow.Table`` of ``schema``."""
    return get_format(fmt).read_table(path, schema, columns)


def count_rows(fmt: str, path: Path, schema: pa.Schema) -> int:
    """Re-open a written file and count its rows: from metadata where the format has it, else by
    parsing every column back into the table's types (so a value that cannot be read back fails here)."""
    return get_format(fmt).count_rows(path, schema)


def file_schema(fmt: str, path: Path) -> pa.Schema | None:
    """The schema stored in the file, for formats that store one (of parts: the first that differs
    from the first part's, so a comparison sees any difference)."""
    return FORMATS[fmt].file_schema(path) if fmt in FORMATS else None


def format_dialect(fmt: str) -> dict[str, Any] | None:
    """How a text format spells values (recorded in the manifest entry); None for the others."""
    dialect = FORMATS[fmt].dialect if fmt in FORMATS else None
    return dict(dialect) if dialect is not None else None


def stored_schema(fmt: str, schema: pa.Schema) -> pa.Schema:
    """The schema a file of ``fmt`` written with ``schema`` stores (the re-open check expects it)."""
    return FORMATS[fmt].stored_schema(schema) if fmt in FORMATS else schema


def unsupported_columns(fmt: str, schema: pa.Schema) -> list[pa.Field]:
    """Columns a format cannot hold faithfully (nested types in CSV, intervals in Parquet)."""
    return FORMATS[fmt].unsupported_columns(schema) if fmt in FORMATS else []


def refusal(fmt: str, table: str, fields: Sequence[pa.Field]) -> str:
    """The one line that refuses ``fields`` of ``table`` in ``fmt``: the columns, the formats that
    hold them, and the config that fixes it (``exclude_columns``, or a cast in a ``query``)."""
    holders = [f'"{name}"' for name, f in FORMATS.items() if not f.unsupported_columns(pa.schema(fields))]
    names = [f.name for f in fields]
    col = '"' + names[0].replace('"', '""') + '"'
    return (
        f"table {table!r}: format {fmt!r} cannot hold column(s) "
        + ", ".join(f"{f.name!r} ({f.type})" for f in fields)
        + (f"; choose format = {' or '.join(holders)}, " if holders else "; ")
        + f"exclude them (exclude_columns = {json.dumps(names)}) "
        + f"or convert them in a query (e.g. SELECT ..., CAST({col} AS VARCHAR) AS {col})"
    )


def schema_to_b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def schema_from_b64(text: str) -> pa.Schema:
    return ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
