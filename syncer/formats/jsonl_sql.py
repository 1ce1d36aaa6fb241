"""JSON Lines at native speed: each batch spelled by DuckDB's JSON functions, column by column in C++.

The spellings are those of :mod:`syncer.formats.jsonl` (its table of types is the contract): non-finite
floats as strings, decimals as plain-digit strings, bytes as base64, times and timestamps ISO-8601 with
``Z`` for a time zone, maps as ``[{"key", "value"}]``, every key present. :func:`plan` turns a schema
into one SQL expression per column; a column it has no exact expression for (intervals, durations,
time or zoned timestamps in nanoseconds, timestamps in s or ms, 38-digit and 256-bit decimals, float16, a field without a name) makes it
return ``None`` and the table is written by the row-wise encoder instead; so is a batch DuckDB cannot take (a map with a
repeated key) or a value outside years 1-9999 (refused here, then named by the row-wise encoder). ``tests/test_jsonl_sql.py`` holds the two encoders to the same parsed
values on the type catalogue and on generated batches.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = ["SqlLines", "plan", "read_batches", "read_plan"]

_NUMERIC = (pa.types.is_boolean, pa.types.is_integer)
_TEXT = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _float(ref: str) -> str:
    return (
        f"CASE WHEN isnan({ref}) THEN '\"NaN\"'::JSON "
        f"WHEN isinf({ref}) AND {ref} > 0 THEN '\"Infinity\"'::JSON "
        f"WHEN isinf({ref}) THEN '\"-Infinity\"'::JSON ELSE to_json({ref}::DOUBLE) END"
    )


def _in_years(ref: str, body: str, column: str) -> str:
    """``body`` for values in years 1-9999 (what ISO-8601 with four digits and Python can spell)."""
    msg = _literal(f"column {column!r} holds a date outside years 1-9999, which JSON Lines cannot spell")
    return f"CASE WHEN {ref} IS NULL THEN NULL WHEN year({ref}) BETWEEN 1 AND 9999 THEN {body} ELSE error({msg}) END"


def _fraction(sub_unit: str, digits: int) -> str:
    """'' or '.' and the sub-second part, as Python's isoformat spells it (6 digits, or 9 for ns)."""
    if digits == 6:
        return f"CASE WHEN {sub_unit} = 0 THEN '' ELSE '.' || printf('%06d', {sub_unit}) END"
    return (
        f"CASE WHEN {sub_unit} = 0 THEN '' WHEN {sub_unit} % 1000 = 0 THEN '.' || printf('%06d', {sub_unit} // 1000) "
        f"ELSE '.' || printf('%09d', {sub_unit}) END"
    )


def _timestamp(t: pa.TimestampType, ref: str, column: str) -> str | None:
    if t.unit in ("s", "ms"):
        return None  # DuckDB's seconds and milliseconds reach years a microsecond cast cannot
    if t.unit == "ns":
        if t.tz is not None:
            return None  # DuckDB's zoned timestamps stop at microseconds
        sub = f"(nanosecond({ref}) % 1000000000)"
        body = f"strftime(date_trunc('second', {ref})::TIMESTAMP, '%Y-%m-%dT%H:%M:%S') || {_fraction(sub, 9)}"
    else:
        sub = f"(date_part('microseconds', {ref}) % 1000000)"
        body = f"strftime({ref}, '%Y-%m-%dT%H:%M:%S') || {_fraction(sub, 6)}"
    if t.tz is not None:
        body += " || 'Z'"
    return _in_years(ref, body, column)


def _time(t: pa.DataType, ref: str) -> str | None:
    if getattr(t, "unit", "") == "ns":
        return None
    sub = f"(date_part('microseconds', {ref}) % 1000000)"
    return f"printf('%02d:%02d:%02d', hour({ref}), minute({ref}), second({ref})) || {_fraction(sub, 6)}"


def _nested(t: pa.DataType, ref: str, column: str, depth: int) -> str | None:
    var = f"x{depth}"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = expression(t.value_type, var, column, depth + 1)
        return None if inner is None else f"list_transform({ref}, lambda {var}: {inner})"
    if pa.types.is_map(t):
        key = expression(t.key_type, f"{var}.key", column, depth + 1)
        value = expression(t.item_type, f"{var}.value", column, depth + 1)
        if key is None or value is None:
            return None
        pair = f"struct_pack(key := {key}, value := {value})"
        return f"CASE WHEN {ref} IS NULL THEN NULL ELSE list_transform(map_entries({ref}), lambda {var}: {pair}) END"
    if pa.types.is_struct(t):
        parts = []
        for i in range(t.num_fields):
            f = t.field(i)
            inner = expression(f.type, f"{ref}.{quote(f.name)}", column, depth + 1) if f.name else None
            if inner is None:
                return None
            parts.append(f"{quote(f.name)} := {inner}")
        if not parts:
            return None
        return f"CASE WHEN {ref} IS NULL THEN NULL ELSE struct_pack({', '.join(parts)}) END"
    return None


def expression(t: pa.DataType, ref: str, column: str, depth: int = 0) -> str | None:
    """The SQL spelling of a value of type ``t`` at ``ref`` (JSON, or text JSON quotes), or None."""
    if pa.types.is_null(t):
        return "NULL"
    if any(is_(t) for is_ in _NUMERIC) or any(is_(t) for is_ in _TEXT):
        return ref
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return _float(ref)
    if pa.types.is_decimal128(t) and t.precision < 38:
        # decimal128(38, 0) may hold a 39-digit HUGEINT, which DuckDB's DECIMAL(38) cannot cast
        return f"CAST({ref} AS VARCHAR)"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return f"to_base64({ref}::BLOB)"
    if pa.types.is_date32(t):
        return _in_years(ref, f"strftime({ref}, '%Y-%m-%d')", column)
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        return _time(t, ref)
    if pa.types.is_timestamp(t):
        return _timestamp(t, ref, column)
    if pa.types.is_dictionary(t):
        return ref if any(is_(t.value_type) for is_ in _TEXT) else None
    return _nested(t, ref, column, depth)


def plan(schema: pa.Schema) -> str | None:
    """The SELECT expression giving one JSON object per row, or None (the row-wise encoder writes it)."""
    if not len(schema):
        return None
    fields = []
    for f in schema:
        expr = expression(f.type, quote(f.name), f.name) if f.name else None
        if expr is None:
            return None
        fields.append(f"{quote(f.name)} := {expr}")
    return f"to_json(struct_pack({', '.join(fields)}))"


#: threads of the in-memory DuckDB that spells and parses JSON Lines (its re-read runs in parallel)
THREADS = max(1, min(4, os.cpu_count() or 1))
#: columns from which the re-read of a file parses on one thread (memory, not speed, decides)
WIDE_COLUMNS = 64
#: DuckDB hands memory it frees in bulk back to the OS only past this (its default: 512 MiB). The
#: JSON text of a batch of 300 columns is built outside its buffer manager and freed per batch:
#: with the default, the freed pages stayed mapped, and encoding 60k rows x 300 columns grew the
#: peak by 145-159 MiB; flushed past 16 MiB, by 110 (tests/test_memory_bound.py). A 300-column
#: JSONL sync of 250k rows: 650 -> 563 MiB, CPU 36.3 -> 37.3 s (past 8 MiB: 519 MiB, but 40.7 s:
#: the pages handed back are faulted in again)
_ALLOCATOR = {"allocator_bulk_deallocation_flush_threshold": "16MiB"}
_shared: Any = None
_shared_lock = threading.Lock()


def connection() -> Any:
    """A connection (cursor) of the process's one in-memory DuckDB for JSON Lines, its time zone UTC:
    opening a database costs ~20 ms per table, a cursor on a shared one well under a millisecond. Each
    caller gets its own cursor (DuckDB connections are not shared between threads) and closes it."""
    global _shared
    import duckdb  # the engine's extra; the reader never imports this module

    with _shared_lock:
        if _shared is None:
            from syncer._memory import read_limit

            # bounded by the container's ceiling (DuckDB's default: 80% of the machine's RAM)
            _shared = duckdb.connect(config={"threads": THREADS, "memory_limit": f"{read_limit()}B", **_ALLOCATOR})
        con = _shared.cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con


class SqlLines:
    """Encodes batches of one schema into JSON Lines bytes on the shared in-memory DuckDB."""

    def __init__(self, select: str) -> None:
        self._select = select
        self._con = connection()

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """The batch's rows, one JSON object and a newline each (see :meth:`encode_buffers`)."""
        return b"".join(buf.to_pybytes() for buf in self.encode_buffers(batch))

    def encode_buffers(self, batch: pa.RecordBatch) -> list[pa.Buffer]:
        """The batch's lines as Arrow buffers to write in order, without a copy: each line ends in
        its newline in SQL, so the result's character data is the file's bytes. Raises (a DuckDB
        error, or ValueError for what DuckDB cannot hold: a map with a repeated key) for a batch it
        cannot spell exactly, before anything is written; the caller then writes that batch
        row-wise, which spells it or names the value it cannot."""
        rel = self._con.from_arrow(batch).project(f"CAST({self._select} AS VARCHAR) || chr(10) AS j")
        out = []
        for chunk in rel.to_arrow_table().column(0).chunks:
            if not len(chunk):
                continue
            if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
                chunk = chunk.cast(pa.large_string())
            width = pa.int64() if pa.types.is_large_string(chunk.type) else pa.int32()
            _, offsets, data = chunk.buffers()
            bounds = pa.Array.from_buffers(width, len(chunk) + 1, [None, offsets], offset=chunk.offset)
            start, end = bounds[0].as_py(), bounds[len(chunk)].as_py()
            out.append(data.slice(start, end - start))
        return out

    def close(self) -> None:
        self._con.close()


def _leaf(t: pa.DataType) -> bool:
    """A type Arrow casts from its JSON Lines text exactly (strictly: other text raises)."""
    return (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_float32(t)
        or pa.types.is_float64(t)
        or (pa.types.is_decimal128(t) and t.precision < 38)
        or any(is_(t) for is_ in _TEXT)
        or pa.types.is_date32(t)
        or (pa.types.is_timestamp(t) and t.unit in ("us", "ns") and not (t.unit == "ns" and t.tz is not None))
    )


def _distinct_names(names: list[str]) -> bool:
    """Names DuckDB can hold apart: none empty, none equal to another but for case."""
    return bool(names) and "" not in names and len({n.casefold() for n in names}) == len(names)


def _nested_type(t: pa.DataType) -> str | None:
    """The DuckDB type a nested value of type ``t`` is read as: its shape, with text leaves (Arrow
    casts the whole value to ``t`` afterwards), or None (read row by row)."""
    if _leaf(t):
        return "VARCHAR"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _nested_type(t.value_type)
        return None if inner is None else f"{inner}[]"
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        if not _distinct_names([f.name for f in fields]):
            return None
        kinds = [_nested_type(f.type) for f in fields]
        if any(k is None for k in kinds):
            return None
        return "STRUCT(" + ", ".join(f"{quote(f.name)} {k}" for f, k in zip(fields, kinds, strict=True)) + ")"
    return None


def _reading(t: pa.DataType, ref: str) -> tuple[str, str] | None:
    """The DuckDB type a top-level column of type ``t`` is read as and the SQL giving its value for
    Arrow to cast: text (DuckDB's JSON reader gives a string's text, a number's or a boolean's
    spelling), bytes, TIME, or a list/struct with text leaves; None: read row by row."""
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "VARCHAR", f"from_base64({ref})"
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        return None if getattr(t, "unit", "") == "ns" else ("VARCHAR", f"CAST({ref} AS TIME)")
    if _leaf(t) or (pa.types.is_dictionary(t) and any(is_(t.value_type) for is_ in _TEXT)):
        return "VARCHAR", ref
    nested = _nested_type(t) if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t)) else None
    return None if nested is None else (nested, ref)


def read_plan(schema: pa.Schema) -> str | None:
    """The SELECT list reading ``schema``'s columns of a JSONL file, or None (read row by row): also
    for names DuckDB's reader cannot hold apart (empty, or equal but for case)."""
    if not _distinct_names([f.name for f in schema]):
        return None
    parts = []
    for f in schema:
        reading = _reading(f.type, quote(f.name))
        if reading is None:
            return None
        parts.append(f"{reading[1]} AS {quote(f.name)}")
    return ", ".join(parts)


def _read_json(path: Path, schema: pa.Schema) -> str:
    """DuckDB's newline-delimited JSON reader with every column read as text (or a list/struct of
    text): one parse per line, in parallel; a line that is not JSON, not an object or repeats a key
    raises, naming the line."""
    columns = ", ".join(f"{_literal(f.name)}: {_literal(_reading(f.type, '')[0])}" for f in schema)  # type: ignore[index]
    return f"read_json({_literal(str(path))}, columns = {{{columns}}}, format = 'newline_delimited', records = true)"


def read_batches(path: Path, schema: pa.Schema, select: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows as batches of ``schema``, parsed by DuckDB and cast by Arrow (strictly: a value
    that is not its column's spelling raises). ValueError for a line that is not a JSON object."""
    import duckdb

    from syncer._memory import format_size, read_limit
    from syncer.formats.base import decimal_array

    con = connection()
    try:
        try:
            # DuckDB's JSON reader holds a vector of every column per thread: in parallel for narrow
            # files (2M lines of 9 columns: 1.8 s -> 1.1 s), on one thread for wide ones (300
            # columns: 2 threads peaked 200 MiB higher for a tenth of the time)
            con.execute(f"SET threads = {THREADS if len(schema) <= WIDE_COLUMNS else 1}")
            con.execute(f"SET memory_limit = '{read_limit()}B'")  # the ceiling as it is now
            reader = con.sql(f"SELECT {select} FROM {_read_json(path, schema)}").to_arrow_reader(batch_rows)
            for raw in reader:
                cols = []
                for f, col in zip(schema, raw.columns, strict=True):
                    cols.append(decimal_array(col, f.type) if pa.types.is_decimal(f.type) else col.cast(f.type))
                yield pa.RecordBatch.from_arrays(cols, schema=schema)
        except duckdb.OutOfMemoryException as exc:
            first = str(exc).split("\n")[0]
            raise ValueError(
                f"{path.name} cannot be parsed back inside this container's memory ceiling of {format_size(read_limit())} "
                f"({first}); give the container more memory, or export the table as Parquet or Arrow"
            ) from None
        except duckdb.Error as exc:
            first = str(exc).split("\n")[0].removeprefix("Invalid Input Error: ")
            raise ValueError(f"{path.name} is not valid JSON Lines: {first}") from None
    finally:
        con.close()
