"""The CSV and JSONL readers with exactly the options README "Reading CSV and JSONL with other tools"
gives, for the reader matrix's "(documented)" columns: what a user following our docs gets.

Each takes the published file and the table's schema (the manifest's ``arrow_schema``; an app knows
its columns, the matrix reads them from the manifest) and returns the columns as the reader gives
them. The rules are the README's, column by column:

CSV -- every reader: NULL is the unquoted ``\\N``; a quoted field is never NULL where the reader can
tell (DuckDB ``allow_quoted_nulls = false``, pyarrow ``quoted_strings_can_be_null=False``); every
column gets its type from the manifest's schema (pandas: nullable ``Int64``/``boolean`` dtypes,
decimals as ``str`` then ``Decimal``); binary columns are base64 text, decoded after reading
(DuckDB ``from_base64``); a column the manifest marks ``"converted": "HUGEINT -> ..."`` (up to 39
digits, more than a decimal(38) holds) is read as text and converted with ``int`` (DuckDB: its own
``HUGEINT``); pandas ``keep_default_na=False`` with ``\\N`` (and ``nan`` in float columns) as its
only NA spellings.

JSONL -- decimal columns (and float columns, except in pyarrow, whose JSON reader cannot take a
column of strings and numbers) are read as strings, then cast (``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` cast to floats); binary and HUGEINT columns as above; DuckDB is given every column's
type (``columns = {...}``), a MAP back with ``map_from_entries`` and an INTERVAL as a STRUCT of
months, days and nanoseconds; pandas ``dtype=False, precise_float=True``, then ``float(...)`` /
``Decimal(...)``.
"""

from __future__ import annotations

import base64
import decimal
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
from compare_values import arrow_columns

NULL = "\\N"

#: (format, catalogue table, reader) cells the documented options still do not give exactly or
#: converted: each is one of README's "still do not give" notes (and the matrix's reader limits)
KNOWN_DIFFERENCES = {
    ("csv", "timestamp_ns", "polars"): "Python datetimes of ns timestamps hold microseconds",
    ("csv", "timestamp_ns", "duckdb"): "Python datetimes of ns timestamps hold microseconds",
    ("csv", "odd_names", "polars"): "polars keeps the doubled quote of a header name",
    ("jsonl", "timestamp_ns", "duckdb"): "Python datetimes of ns timestamps hold microseconds",
    ("csv", "time_ns", "polars"): "Python times of ns times hold microseconds",
    ("csv", "time_ns", "duckdb"): "Python times of ns times hold microseconds",
    ("jsonl", "time_ns", "duckdb"): "Python times of ns times hold microseconds",
    ("jsonl", "bigint", "pandas"): "read_json: integers of a column with nulls become float64",
    ("jsonl", "ubigint", "pandas"): "read_json: integers of a column with nulls become float64",
    ("jsonl", "double", "pandas"): "read_json(precise_float=True) refuses a subnormal double",
    ("jsonl", "float", "pyarrow"): "pyarrow's JSON reader refuses NaN/inf strings among numbers",
    ("jsonl", "double", "pyarrow"): "pyarrow's JSON reader refuses NaN/inf strings among numbers",
}

#: how README spells the options these readers use (tests/test_reader_matrix.py checks README has them)
README_SPELLINGS = (
    "nullstr = '\\N', allow_quoted_nulls = false",
    "quoted_strings_can_be_null=False",
    'null_values=[r"\\N"]',
    "keep_default_na=False",
    '"Int64"',
    "from_base64(payload)",
    "int(...)",
    "lines=True, dtype=False, precise_float=True",
    "map_from_entries(m)",
    "STRUCT(months INTEGER, days INTEGER, nanoseconds BIGINT)",
    'unexpected_field_behavior="infer"',
    'pl.col("score").cast(pl.Float64)',
)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _cols(schema: pa.Schema, test: Any) -> list[str]:
    return [f.name for f in schema if test(f.type)]


def _quoted(text: str, q: str = "'") -> str:
    return q + text.replace(q, q + q) + q


def _duck(sql: str) -> dict[str, list[Any]]:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.sql(sql)
        names = [d[0] for d in rel.description]
        rows = rel.fetchall()
    finally:
        con.close()
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _duck_types(schema: pa.Schema) -> dict[str, str]:
    """Each column's DuckDB type, as DuckDB maps the Arrow type (an app writes them by hand)."""
    import duckdb

    rel = duckdb.from_arrow(schema.empty_table())
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ == "NAType"


def _decimal(v: Any) -> Any:
    return None if _null(v) else decimal.Decimal(v)


def _hugeint(schema: pa.Schema, converted: dict[str, str]) -> list[str]:
    """Columns the manifest marks as a HUGEINT converted to decimal128(38, 0): up to 39 digits."""
    return [f.name for f in schema if converted.get(f.name, "").startswith("HUGEINT ->")]


def _after(out: dict[str, list[Any]], schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    """What the README says to do after reading: base64 text to bytes, HUGEINT text to int."""
    for name in _cols(schema, lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        if name in out:
            out[name] = [None if _null(v) else base64.b64decode(v) for v in out[name]]
    for name in _hugeint(schema, converted):
        if name in out:
            out[name] = [None if _null(v) else int(v) for v in out[name]]
    return out


def _binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


# --- CSV ----------------------------------------------------------------------------------------------


def csv_duckdb(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    types = _duck_types(schema)
    huge = _hugeint(schema, converted)
    types |= {n: "HUGEINT" for n in huge}
    binary = _cols(schema, _binary)
    types |= dict.fromkeys(binary, "VARCHAR")
    spec = "{" + ", ".join(f"{_quoted(n)}: {_quoted(t)}" for n, t in types.items()) + "}"
    idents = {f.name: _quoted(f.name, '"') for f in schema}
    select = ", ".join(f"from_base64({q}) AS {q}" if n in binary else q for n, q in idents.items())
    opts = f"header = true, nullstr = {_quoted(NULL)}, allow_quoted_nulls = false, types = {spec}"
    return _duck(f"SELECT {select} FROM read_csv({_quoted(str(path))}, {opts})")


def csv_pyarrow(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import pyarrow.csv as pcsv

    text = set(_cols(schema, _binary)) | set(_hugeint(schema, converted))
    types = {f.name: pa.string() if f.name in text else f.type for f in schema}
    got = pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            null_values=[NULL], strings_can_be_null=True, quoted_strings_can_be_null=False, column_types=types
        ),
    )
    return _after(arrow_columns(got), schema, converted)


def _polars_types(schema: pa.Schema, text: set[str]) -> dict[str, Any]:
    import polars as pl

    types = dict(pl.from_arrow(schema.empty_table()).schema)
    return {n: pl.String if n in text else t for n, t in types.items()}


def csv_polars(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import polars as pl

    text = set(_cols(schema, _binary)) | set(_hugeint(schema, converted))
    got = pl.read_csv(path, null_values=[NULL], schema_overrides=_polars_types(schema, text))
    return _after(got.to_dict(as_series=False), schema, converted)


_PANDAS_INTS = {"int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64"}


def _pandas_dtype(t: pa.DataType) -> Any:
    if pa.types.is_integer(t):
        return ("U" if pa.types.is_unsigned_integer(t) else "") + _PANDAS_INTS[str(t).lstrip("u")]
    if pa.types.is_floating(t):
        return {"halffloat": "float16", "float": "float32", "double": "float64"}[str(t)]
    if pa.types.is_boolean(t):
        return "boolean"
    return str


def csv_pandas(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import pandas as pd

    na = {f.name: [NULL, "nan"] if pa.types.is_floating(f.type) else [NULL] for f in schema}
    text = set(_cols(schema, _binary)) | set(_hugeint(schema, converted))
    dtypes = {f.name: str if f.name in text else _pandas_dtype(f.type) for f in schema}
    df = pd.read_csv(path, keep_default_na=False, na_values=na, dtype=dtypes)
    out = {str(c): df[c].tolist() for c in df.columns}
    for name in _cols(schema, pa.types.is_decimal):
        if name not in text:
            out[name] = [_decimal(v) for v in out[name]]  # "then Decimal(...) for exact decimals"
    return _after(out, schema, converted)


# --- JSONL --------------------------------------------------------------------------------------------


def _floats_and_decimals(schema: pa.Schema, converted: dict[str, str]) -> tuple[list[str], list[str]]:
    huge = set(_hugeint(schema, converted))
    return _cols(schema, pa.types.is_floating), [n for n in _cols(schema, pa.types.is_decimal) if n not in huge]


def jsonl_polars(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import polars as pl

    floats, decimals = _floats_and_decimals(schema, converted)
    df = pl.read_ndjson(path, schema_overrides=dict.fromkeys(floats + decimals + _hugeint(schema, converted), pl.String))
    casts = [pl.col(n).cast(pl.Float64) for n in floats]
    casts += [pl.col(n).cast(pl.Decimal(schema.field(n).type.precision, schema.field(n).type.scale)) for n in decimals]
    return _after((df.with_columns(casts) if casts else df).to_dict(as_series=False), schema, converted)


_INTERVAL = "STRUCT(months INTEGER, days INTEGER, nanoseconds BIGINT)"


def jsonl_duckdb(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    types = _duck_types(schema)
    huge = set(_hugeint(schema, converted))
    select = []
    for f in schema:
        col = _quoted(f.name, '"')
        if f.name in huge:
            select.append(col)
            types[f.name] = "HUGEINT"
        elif pa.types.is_floating(f.type) or pa.types.is_decimal(f.type):
            select.append(f"{col}::{types[f.name]} AS {col}")
            types[f.name] = "VARCHAR"
        elif _binary(f.type):
            select.append(f"from_base64({col}) AS {col}")
            types[f.name] = "VARCHAR"
        elif pa.types.is_map(f.type):
            key, value = _duck_types(pa.schema([("k", f.type.key_type), ("v", f.type.item_type)])).values()
            select.append(f"map_from_entries({col}) AS {col}")
            types[f.name] = f"STRUCT(key {key}, value {value})[]"
        elif f.type == pa.month_day_nano_interval():
            select.append(col)
            types[f.name] = _INTERVAL
        else:
            select.append(col)
    spec = "{" + ", ".join(f"{_quoted(n)}: {_quoted(t)}" for n, t in types.items()) + "}"
    return _duck(f"SELECT {', '.join(select)} FROM read_json({_quoted(str(path))}, columns = {spec})")


def jsonl_pandas(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import pandas as pd

    df = pd.read_json(path, lines=True, dtype=False, precise_float=True)
    out = {str(c): df[c].tolist() for c in df.columns}
    floats, decimals = _floats_and_decimals(schema, converted)
    for name in floats:  # "then float(...)": the strings "NaN", "Infinity", "-Infinity" too
        out[name] = [None if v is None else float(v) for v in out[name]]
    for name in decimals:
        out[name] = [_decimal(v) for v in out[name]]
    return _after(out, schema, converted)


def jsonl_pyarrow(path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    import pyarrow.json as pjson

    _, decimals = _floats_and_decimals(schema, converted)
    text = decimals + _hugeint(schema, converted)
    explicit = [pa.field(n, pa.string()) for n in text]
    explicit += [f for f in schema if pa.types.is_unsigned_integer(f.type)]  # else 2^64 - 1 is a double
    opts = pjson.ParseOptions(explicit_schema=pa.schema(explicit), unexpected_field_behavior="infer")
    tbl = pjson.read_json(path, parse_options=opts)
    for name in decimals:
        tbl = tbl.set_column(tbl.schema.get_field_index(name), name, tbl.column(name).cast(schema.field(name).type))
    return _after(arrow_columns(tbl), schema, converted)


READERS = {
    "csv": {"pyarrow": csv_pyarrow, "pandas": csv_pandas, "polars": csv_polars, "duckdb": csv_duckdb},
    "jsonl": {"pyarrow": jsonl_pyarrow, "pandas": jsonl_pandas, "polars": jsonl_polars, "duckdb": jsonl_duckdb},
}


def read_documented(reader: str, fmt: str, path: Path, schema: pa.Schema, converted: dict[str, str]) -> dict[str, list[Any]]:
    """``reader`` (pyarrow, pandas, polars, duckdb) reading ``path`` with the README's options;
    ``converted`` is the manifest's ``converted`` note per column."""
    return READERS[fmt][reader](path, schema, converted)
