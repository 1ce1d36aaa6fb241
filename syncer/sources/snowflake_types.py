"""Snowflake types to one Arrow schema, the SQL text the Snowflake source sends, and its profile aggregates.

Every batch of a table is given the one target schema derived from the Snowflake schema (the
connector alone would hand out ``int8`` in one batch and ``int64`` in the next, ``float64`` for
``NUMBER(p,s)``, and nanosecond timestamps that wrap around outside 1677-2262):

| Snowflake (Snowpark type)                       | Arrow                          |
|-------------------------------------------------|--------------------------------|
| NUMBER(p,0), INT… (LongType, DecimalType(p,0))  | int64                          |
| NUMBER(p,s>0) (DecimalType(p,s))                | decimal128(p,s)                |
| FLOAT / DOUBLE / REAL                           | float64                        |
| VARCHAR / TEXT                                  | string                         |
| BINARY                                          | binary                         |
| BOOLEAN                                         | bool                           |
| DATE                                            | date32                         |
| TIME                                            | time64[us]                     |
| TIMESTAMP_NTZ (and TIMESTAMP without a zone)    | timestamp[us]                  |
| TIMESTAMP_LTZ, TIMESTAMP_TZ                     | timestamp[us, tz=UTC]          |
| VARIANT, OBJECT, ARRAY, MAP                     | string (JSON text), marked json|

Columns whose values change kind on the way are marked in the manifest's schema (``converted``):
VARIANT / OBJECT / ARRAY become JSON text, TIMESTAMP_TZ the same instant in UTC (its offset is not
kept).

A value that does not fit (a NUMBER(38,0) beyond int64, a sub-microsecond timestamp) is an error
naming the table, the column and the value: never a silent change. Other types (GEOGRAPHY,
GEOMETRY, VECTOR, DECFLOAT, FILE) are refused with a way out (cast them in a ``query``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from snowflake.snowpark import functions as F
from snowflake.snowpark import types as T

from syncer._exceptions import BadRowsError, SourceError
from syncer.config import TableConfig
from syncer.sources.base import quote_ident
from syncer.validate.profile import CONVERTED, JSON_META, ColumnPlan, is_json

__all__ = [
    "aggregates",
    "arrow_schema",
    "fit_batch",
    "minify_json",
    "precision_guard_sql",
    "py_value",
    "range_sql",
    "rows_to_batch",
    "sf_table_name",
    "stat_value",
    "stream_sql",
    "time_travel_clause",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
UTC = "UTC"

# Whitespace outside JSON string literals (the string alternative is matched first and kept).
_JSON_WS = r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+'


# --- schema ------------------------------------------------------------------------------------------


def arrow_type(dtype: T.DataType) -> tuple[pa.DataType, bool] | None:
    """The Arrow type of a Snowpark type, and whether it holds JSON text; None when unsupported."""
    if isinstance(dtype, T.LongType | T.IntegerType | T.ShortType | T.ByteType):
        return pa.int64(), False
    if isinstance(dtype, T.DecimalType):
        if dtype.scale == 0:
            return pa.int64(), False
        return pa.decimal128(dtype.precision, dtype.scale), False
    if isinstance(dtype, T.DoubleType | T.FloatType):
        return pa.float64(), False
    if isinstance(dtype, T.StringType):
        return pa.string(), False
    if isinstance(dtype, T.BinaryType):
        return pa.binary(), False
    if isinstance(dtype, T.BooleanType):
        return pa.bool_(), False
    if isinstance(dtype, T.DateType):
        return pa.date32(), False
    if isinstance(dtype, T.TimeType):
        return pa.time64("us"), False
    if isinstance(dtype, T.TimestampType):
        if dtype.tz in (T.TimestampTimeZone.LTZ, T.TimestampTimeZone.TZ):
            return pa.timestamp("us", tz=UTC), False
        # NTZ, and DEFAULT (TIMESTAMP_TYPE_MAPPING's default is TIMESTAMP_NTZ)
        return pa.timestamp("us"), False
    if isinstance(dtype, T.VariantType | T.MapType | T.ArrayType | T.StructType):
        return pa.string(), True
    return None


def arrow_schema(table: TableConfig, struct: T.StructType) -> pa.Schema:
    """The one target schema of ``table``, from the Snowpark schema of the relation."""
    fields = []
    for f in struct.fields:
        name = unquote(f.name)
        mapped = arrow_type(f.datatype)
        if mapped is None:
            raise SourceError(
                f"table {table.name!r}: column {name!r} has Snowflake type {f.datatype.simple_string().upper()}, "
                "which has no exact Arrow type here; export it through a query that casts it "
                f'(e.g. query = "select ..., TO_VARCHAR({quote_ident(name)}) AS {quote_ident(name)} from ...") '
                "or add it to exclude_columns"
            )
        typ, json_text = mapped
        meta = {**JSON_META, CONVERTED: f"{_sf_name(f.datatype)} -> string (JSON text)".encode()} if json_text else {}
        if isinstance(f.datatype, T.TimestampType) and f.datatype.tz == T.TimestampTimeZone.TZ:
            meta[CONVERTED] = f"TIMESTAMP_TZ -> {typ} (the same instant; the offset is not kept)".encode()
        fields.append(pa.field(name, typ, nullable=f.nullable, metadata=meta or None))
    return pa.schema(fields)


def _sf_name(dtype: T.DataType) -> str:
    """The Snowflake name of a semi-structured type (Snowpark's MapType is an OBJECT unless structured)."""
    names = {T.VariantType: "VARIANT", T.ArrayType: "ARRAY", T.MapType: "OBJECT", T.StructType: "OBJECT"}
    return next((n for t, n in names.items() if isinstance(dtype, t)), dtype.simple_string().upper())


def unquote(name: str) -> str:
    """Snowpark reports case-sensitive names quoted ("name"); the export uses the plain name."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


# --- values --------------------------------------------------------------------------------------


def _not_representable(table: str, column: str, value: Any, typ: pa.DataType, why: str) -> BadRowsError:
    # carried by rows: the export can isolate the rows carrying such values (quarantine) or fail the table.
    return BadRowsError(
        f"table {table!r}: column {column!r}: value {value!r} cannot be represented exactly as {typ} ({why}); "
        "nothing was changed or rounded. Cast the column in a query (e.g. to VARCHAR) or exclude it"
    )


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(v, int):
        out = v
    elif isinstance(v, decimal.Decimal | float) or hasattr(v, "__index__"):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("not a finite number")
        out = int(v)
        if out != v:
            raise ValueError("has a fractional part")
    else:
        raise ValueError(f"a {type(v).__name__} is not an integer")
    if not _INT64_MIN <= out <= _INT64_MAX:
        raise ValueError("outside the int64 range")
    return out


def _to_decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, decimal.Decimal):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return decimal.Decimal(v)
    raise ValueError(f"a {type(v).__name__} is not an exact decimal")


def _to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        # np.float64 is a float; a Decimal here would be a rounding, not a conversion
        raise ValueError(f"a {type(v).__name__} is not a float")
    return float(v)


def _to_datetime(v: Any) -> Any:
    # pandas.Timestamp (Snowpark local testing) is a datetime subclass; hand pyarrow the plain type.
    if isinstance(v, dt.datetime) and type(v) is not dt.datetime:
        return dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=v.tzinfo)
    return v


def minify_json(arr: pa.Array) -> pa.Array:
    """Drop the whitespace outside string literals (Snowflake pretty-prints VARIANT text)."""
    if len(arr) == arr.null_count:
        return arr.cast(pa.string())
    return pc.replace_substring_regex(arr.cast(pa.string()), _JSON_WS, r"\1")


def column_from_values(table: str, field: pa.Field, values: Sequence[Any]) -> pa.Array:
    """An exact Arrow array of ``field``'s type, or an error naming the first value that does not fit."""
    t = field.type
    convert: Callable[[Any], Any] | None = None
    if pa.types.is_int64(t):
        convert = _to_int
    elif pa.types.is_decimal(t):
        convert = _to_decimal
    elif pa.types.is_float64(t):
        convert = _to_float
    elif pa.types.is_timestamp(t):
        convert = _to_datetime
    prepared: Sequence[Any] = values
    if convert is not None:
        prepared = []
        for v in values:
            if v is None:
                prepared.append(None)
                continue
            try:
                prepared.append(convert(v))
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _not_representable(table, field.name, v, t, str(exc)) from None
    try:
        arr = pa.array(prepared, type=t)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        bad, why = _first_misfit(prepared, t, exc)
        raise _not_representable(table, field.name, bad, t, why) from exc
    if is_json(field):
        arr = minify_json(arr)
    return arr


def _first_misfit(values: Sequence[Any], t: pa.DataType, exc: BaseException) -> tuple[Any, str]:
    for v in values:
        try:
            pa.array([v], type=t)
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as one:
            return v, str(one)
    return "?", str(exc)


def rows_to_batch(table: str, schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """Rows (Snowpark ``Row`` objects or connector tuples, in schema order) as one exact batch."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [column_from_values(table, f, col) for f, col in zip(schema, columns, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def fit_batch(table: str, schema: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast one Arrow batch from the connector to ``schema`` exactly (safe casts only)."""
    if batch.num_columns != len(schema):
        raise SourceError(
            f"table {table!r}: Snowflake returned {batch.num_columns} columns, expected {len(schema)} ({', '.join(schema.names)})"
        )
    arrays = []
    for arr, field in zip(batch.columns, schema, strict=True):
        if arr.type == field.type:
            arrays.append(arr)
            continue
        try:
            arrays.append(arr.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            # Find the value (the cast only fails on a misfit), and name it.
            for v in arr.to_pylist():
                if v is None:
                    continue
                try:
                    pa.array([v], type=arr.type).cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as one:
                    raise _not_representable(table, field.name, v, field.type, str(one)) from exc
            raise _not_representable(table, field.name, "?", field.type, str(exc)) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def rows_in_batches(table: str, schema: pa.Schema, rows: Iterable[Any], batch_rows: int) -> Iterable[pa.RecordBatch]:
    """Gather rows into exact batches of at most ``batch_rows`` rows (the row-wise fallback)."""
    pending: list[Any] = []
    for row in rows:
        pending.append(row)
        if len(pending) >= batch_rows:
            yield rows_to_batch(table, schema, pending)
            pending = []
    if pending:
        yield rows_to_batch(table, schema, pending)


# --- SQL text (what a real account runs; Snowpark local testing cannot run SQL text) --------------


def sf_table_name(source: str) -> str:
    """``db.schema.table`` from the config as Snowflake resolves unquoted identifiers (upper case).

    The config admits only plain identifier characters, so upper-casing and quoting each part is
    exactly what Snowflake does with the unquoted name, and leaves nothing to inject.
    """
    return ".".join(quote_ident(part.upper()) for part in source.split("."))


def time_travel_clause(as_of: dt.datetime) -> str:
    """``AT(TIMESTAMP => ...)``, spelled like Snowpark's own ``session.table(..., time_travel_mode="at")``."""
    if as_of.tzinfo is None:
        raise ValueError("the pinned moment must carry its time zone")
    stamp = as_of.astimezone(dt.UTC).isoformat(sep=" ")
    return f"AT (TIMESTAMP => TO_TIMESTAMP_TZ('{stamp}'))"


def relation_sql(table: TableConfig, as_of: dt.datetime | None) -> str:
    if table.query is not None:
        # Time Travel attaches to tables, not to a query's text: queries are read unpinned.
        return f"({table.query}) AS {quote_ident('q')}"
    assert table.source is not None
    name = sf_table_name(table.source)
    return f"{name} {time_travel_clause(as_of)}" if as_of is not None else name


def _select_item(field: pa.Field) -> str:
    c = quote_ident(field.name)
    if is_json(field):
        # One compact JSON text per value, whatever the column's (semi-)structured type.
        return f"TO_JSON({c}::VARIANT) AS {c}"
    return c


def stream_sql(table: TableConfig, schema: pa.Schema, as_of: dt.datetime | None) -> str:
    """The SELECT the real account streams (through the connector's ``fetch_arrow_batches``)."""
    cols = ", ".join(_select_item(f) for f in schema)
    return f"SELECT {cols} FROM {relation_sql(table, as_of)}"


def range_sql(table: TableConfig, schema: pa.Schema, as_of: dt.datetime | None, where: Any) -> tuple[str, list[Any]]:
    """``stream_sql`` restricted by a row filter of the export (``?`` placeholders, qmark binding)."""
    sql = stream_sql(table, schema, as_of)
    if where is None:
        return sql, []
    cond, params = where.sql()
    return f"{sql} WHERE {cond}", list(params)


def _fraction_format(field: pa.Field) -> str | None:
    t = field.type
    if pa.types.is_time(t):
        return "HH24:MI:SS.FF9"
    if pa.types.is_timestamp(t):
        return "YYYY-MM-DD HH24:MI:SS.FF9" + (" TZH:TZM" if t.tz else "")
    return None


def precision_guard_sql(table: TableConfig, schema: pa.Schema, as_of: dt.datetime | None) -> str | None:
    """One scan that finds a sub-microsecond value per TIME/TIMESTAMP column (None: no such column).

    The connector truncates TIME(7-9) and, with ``force_microsecond_precision``, TIMESTAMP(7-9) to
    microseconds without a word; this query makes that truncation an error that names the value.
    """
    items = []
    for i, f in enumerate(schema):
        fmt = _fraction_format(f)
        if fmt is None:
            continue
        c = quote_ident(f.name)
        items.append(
            f"MIN(IFF(DATE_PART(NANOSECOND, {c}) % 1000 <> 0, TO_VARCHAR({c}, '{fmt}'), NULL)) AS {quote_ident(f'c{i}')}"
        )
    if not items:
        return None
    return f"SELECT {', '.join(items)} FROM {relation_sql(table, as_of)}"


# --- the profile: DataFrame aggregates and their values ------------------------------------------


def aggregates(plan: ColumnPlan, field: pa.Field) -> list[Any]:
    """The DataFrame aggregates of one column, in the order the profile reads them back."""
    c = F.col(quote_ident(field.name))
    # NULL and NaN are told apart explicitly (Snowpark local testing counts NaN as NULL in COUNT(c));
    # NaN is excluded from min/max/sum and counted apart (Snowflake orders NaN above every number).
    is_nan = F.coalesce(c.equal_nan(), F.lit(False))
    value = F.iff(is_nan, F.lit(None), c) if plan.floating else c
    out = [F.sum(F.iff(c.is_null(), F.lit(1), F.lit(0)))]
    if plan.minmax:
        # MIN/MAX of BOOLEAN go through 0/1 (BOOLEAN casts to a number explicitly).
        ordered = value.cast(T.IntegerType()) if pa.types.is_boolean(field.type) else value
        out += [F.min(ordered), F.max(ordered)]
    if plan.total:
        # Integer sums in NUMBER(38,0): exact far beyond int64.
        out.append(F.sum(value.cast(T.DecimalType(38, 0))) if plan.integer else F.sum(value))
    if plan.floating:
        out.append(F.sum(F.iff(is_nan, F.lit(1), F.lit(0))))
    return out


def py_value(v: Any) -> Any:
    """numpy/pandas scalars (Snowpark local testing) as plain Python values."""
    if v is None:
        return None
    item = getattr(v, "item", None)
    if item is not None and type(v).__module__ == "numpy":
        return item()
    if isinstance(v, dt.datetime) and type(v) is not dt.datetime:
        return dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=v.tzinfo)
    return v


def stat_value(v: Any, field: pa.Field, plan: ColumnPlan) -> Any:
    """A MIN/MAX/SUM from Snowflake in the type the written side's Arrow compute returns."""
    v = py_value(v)
    if v is None:
        return None
    t = field.type
    if plan.integer:
        return int(v)
    if pa.types.is_boolean(t):
        return bool(int(v))
    if plan.floating:
        return float(v)
    if pa.types.is_decimal(t):
        return v if isinstance(v, decimal.Decimal) else decimal.Decimal(int(v))
    if pa.types.is_timestamp(t) and isinstance(v, dt.datetime):
        if t.tz and v.tzinfo is None:
            return v.replace(tzinfo=dt.UTC)  # the session runs with TIMEZONE = UTC
        return v
    if pa.types.is_date(t) and isinstance(v, dt.datetime):
        return v.date()
    return v
