"""The type catalogue: one small DuckDB table per type family, each with its edge values and nulls.

Every entry declares the DuckDB SQL type, each value twice (the SQL literal that builds it and the
Python value it means: the source truth the readers are compared with, independent of any Arrow
conversion), and the formats in which the project means to write it exactly (``exact_in``: what
``read_table`` should give back). Tables are ``t_<name>`` with an integer key ``k`` (1, 2, ...) and
one column ``v`` (``odd_names`` has several). ``scripts/reader_matrix.py`` builds this warehouse,
syncs every table in every format and reads it back with every reader.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

FORMATS = ("parquet", "csv", "jsonl", "arrow")
ALL = frozenset(FORMATS)
NOT_CSV = frozenset({"parquet", "jsonl", "arrow"})  # nested types: CSV refuses them by design

D = decimal.Decimal
UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))


@dataclass(frozen=True)
class Entry:
    """One catalogue table: ``values`` are (SQL literal, Python value) pairs, one row each."""

    name: str
    sql_type: str
    values: tuple[tuple[str, Any], ...]
    exact_in: frozenset[str] = ALL
    note: str = ""
    #: extra columns (name -> (sql type, values)) for tables with more than ``v``
    columns: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"t_{self.name}"

    def all_columns(self) -> dict[str, tuple[str, tuple[tuple[str, Any], ...]]]:
        return self.columns or {"v": (self.sql_type, self.values)}

    def expected(self) -> dict[str, list[Any]]:
        """Column -> Python values in key order (``k`` first)."""
        cols = self.all_columns()
        n = len(next(iter(cols.values()))[1])
        out: dict[str, list[Any]] = {"k": list(range(1, n + 1))}
        for name, (_, vals) in cols.items():
            out[name] = [py for _, py in vals]
        return out


def _null() -> tuple[str, Any]:
    return ("NULL", None)


def _ints(sql: str, lo: int, hi: int) -> tuple[tuple[str, Any], ...]:
    return ((str(lo), lo), (str(hi), hi), ("0", 0), ("-1" if lo < 0 else "1", -1 if lo < 0 else 1), _null())


def _ns(at: dt.datetime, ns: int) -> Any:
    import pandas as pd

    seconds = (at - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1)
    return pd.Timestamp(seconds * 10**9 + ns, unit="ns")


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _s(text: str) -> tuple[str, Any]:
    return (_q(text), text)


LONG = "long " * 2000  # 10 kB

CATALOGUE: tuple[Entry, ...] = (
    Entry("tinyint", "TINYINT", _ints("TINYINT", -128, 127)),
    Entry("smallint", "SMALLINT", _ints("SMALLINT", -32768, 32767)),
    Entry("integer", "INTEGER", _ints("INTEGER", -(2**31), 2**31 - 1)),
    Entry(
        "bigint",
        "BIGINT",
        (*_ints("BIGINT", -(2**63), 2**63 - 1), ("9007199254740993", 2**53 + 1)),
        note="2^53 + 1 and the int64 limits: a float64 cannot hold them",
    ),
    Entry("utinyint", "UTINYINT", _ints("UTINYINT", 0, 255)),
    Entry("usmallint", "USMALLINT", _ints("USMALLINT", 0, 65535)),
    Entry("uinteger", "UINTEGER", _ints("UINTEGER", 0, 2**32 - 1)),
    Entry("ubigint", "UBIGINT", _ints("UBIGINT", 0, 2**64 - 1)),
    Entry("hugeint", "HUGEINT", _ints("HUGEINT", -(2**127), 2**127 - 1)),
    Entry("uhugeint", "UHUGEINT", _ints("UHUGEINT", 0, 2**128 - 1)),
    Entry(
        "decimal_4_2",
        "DECIMAL(4,2)",
        (("99.99", D("99.99")), ("-99.99", D("-99.99")), ("0.01", D("0.01")), ("0", D("0.00")), _null()),
    ),
    Entry(
        "decimal_18_4",
        "DECIMAL(18,4)",
        (("99999999999999.9999", D("99999999999999.9999")), ("-0.0001", D("-0.0001")), ("0", D("0.0000")), _null()),
    ),
    Entry(
        "decimal_38_10",
        "DECIMAL(38,10)",
        (
            ("9999999999999999999999999999.9999999999", D("9999999999999999999999999999.9999999999")),
            ("-0.0000000001", D("-0.0000000001")),
            ("0", D("0E-10")),
            _null(),
        ),
    ),
    Entry(
        "float",
        "FLOAT",
        (
            ("'nan'", math.nan),
            ("'inf'", math.inf),
            ("'-inf'", -math.inf),
            ("'-0.0'", -0.0),
            ("1.5", 1.5),
            ("1e-45", 1.401298464324817e-45),  # the smallest float32 subnormal, as float32 holds it
            _null(),
        ),
    ),
    Entry(
        "double",
        "DOUBLE",
        (
            ("'nan'", math.nan),
            ("'inf'", math.inf),
            ("'-inf'", -math.inf),
            ("'-0.0'", -0.0),
            ("0.1", 0.1),
            ("5e-324", 5e-324),
            ("1.7976931348623157e308", 1.7976931348623157e308),
            _null(),
        ),
    ),
    Entry("boolean", "BOOLEAN", (("true", True), ("false", False), _null())),
    Entry(
        "date",
        "DATE",
        (
            ("'0001-01-01'", dt.date(1, 1, 1)),
            ("'9999-12-31'", dt.date(9999, 12, 31)),
            ("'1970-01-01'", dt.date(1970, 1, 1)),
            _null(),
        ),
    ),
    Entry(
        "time",
        "TIME",
        (
            ("'00:00:00'", dt.time(0)),
            ("'23:59:59.999999'", dt.time(23, 59, 59, 999999)),
            ("'12:30:15.000005'", dt.time(12, 30, 15, 5)),
            _null(),
        ),
    ),
    Entry(
        "timetz",
        "TIMETZ",
        (("'12:00:00+02'", dt.time(12, tzinfo=PLUS2)), ("'00:00:00+00'", dt.time(0, tzinfo=UTC)), _null()),
        exact_in=frozenset(),
        note="Arrow has no time-with-offset type: the offset is dropped",
    ),
    Entry(
        "timestamp",
        "TIMESTAMP",
        (
            ("'0001-01-01 00:00:00'", dt.datetime(1, 1, 1)),
            ("'9999-12-31 23:59:59.999999'", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
            ("'1970-01-01 00:00:00'", dt.datetime(1970, 1, 1)),
            ("'2026-11-25 03:15:00.123456'", dt.datetime(2026, 11, 25, 3, 15, 0, 123456)),
            _null(),
        ),
    ),
    Entry(
        "timestamp_s",
        "TIMESTAMP_S",
        (
            ("'0001-01-01 00:00:00'", dt.datetime(1, 1, 1)),
            ("'9999-12-31 23:59:59'", dt.datetime(9999, 12, 31, 23, 59, 59)),
            _null(),
        ),
    ),
    Entry(
        "timestamp_ms",
        "TIMESTAMP_MS",
        (
            ("'2026-11-25 03:15:00.123'", dt.datetime(2026, 11, 25, 3, 15, 0, 123000)),
            ("'9999-12-31 23:59:59.999'", dt.datetime(9999, 12, 31, 23, 59, 59, 999000)),
            _null(),
        ),
    ),
    Entry(
        "timestamp_ns",
        "TIMESTAMP_NS",
        (
            ("'2026-11-25 03:15:00.123456789'", _ns(dt.datetime(2026, 11, 25, 3, 15), 123456789)),
            ("'1900-01-01 00:00:00.000000001'", _ns(dt.datetime(1900, 1, 1), 1)),
            ("'1970-01-01 00:00:00'", _ns(dt.datetime(1970, 1, 1), 0)),
            _null(),
        ),
        note="nanoseconds since the epoch, naive",
    ),
    Entry(
        "timestamptz",
        "TIMESTAMPTZ",
        (
            ("'2026-11-25 03:15:00.123456+02'", dt.datetime(2026, 11, 25, 1, 15, 0, 123456, tzinfo=UTC)),
            ("'0001-01-01 00:00:00+00'", dt.datetime(1, 1, 1, tzinfo=UTC)),
            ("'9999-12-31 23:59:59.999999+00'", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
            _null(),
        ),
    ),
    Entry(
        "interval",
        "INTERVAL",
        (
            ("INTERVAL '1 month 2 days 3 hours'", pa.MonthDayNano([1, 2, 3 * 3600 * 10**9])),
            ("INTERVAL '90 minutes'", pa.MonthDayNano([0, 0, 90 * 60 * 10**9])),
            ("INTERVAL '-1 year'", pa.MonthDayNano([-12, 0, 0])),
            _null(),
        ),
    ),
    Entry(
        "uuid",
        "UUID",
        (
            ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
            ("'00000000-0000-0000-0000-000000000000'", uuid.UUID(int=0)),
            _null(),
        ),
        exact_in=frozenset(),
        note="written as its text (recorded as converted, UUID -> string): every reader gives a string",
    ),
    Entry(
        "varchar",
        "VARCHAR",
        (
            _s("héllo wörld ✓ 日本"),
            _s("😀🎉 👩🏽‍💻"),
            _s("line1\r\nline2\nline3"),
            _s("quote \" and ' and \\ backslash"),
            _s("tab\there"),
            _s(""),
            _null(),
            _s("NULL"),
            _s("NA"),
            _s("007"),
            _s("nan"),
            _s("  padded  "),
            _s(LONG),
        ),
    ),
    Entry(
        "blob",
        "BLOB",
        (("'\\x00\\x00\\xFF'::BLOB", b"\x00\x00\xff"), ("''::BLOB", b""), ("'abc'::BLOB", b"abc"), _null()),
        note="CSV and JSONL hold it as base64 text",
    ),
    Entry(
        "list",
        "INTEGER[]",
        (("[1, 2, NULL]", [1, 2, None]), ("[]", []), _null()),
        exact_in=NOT_CSV,
    ),
    Entry(
        "struct",
        "STRUCT(a INTEGER, b VARCHAR)",
        (("{'a': 1, 'b': 'x'}", {"a": 1, "b": "x"}), ("{'a': NULL, 'b': ''}", {"a": None, "b": ""}), _null()),
        exact_in=NOT_CSV,
    ),
    Entry(
        "map",
        "MAP(VARCHAR, INTEGER)",
        (("MAP {'a': 1, 'b': NULL}", [("a", 1), ("b", None)]), ("MAP {}", []), _null()),
        exact_in=NOT_CSV,
        note="as key/value pairs",
    ),
    Entry(
        "enum",
        "ENUM('red', 'green', 'blue')",
        (("'red'", "red"), ("'blue'", "blue"), _null()),
        exact_in=frozenset({"parquet", "jsonl", "arrow"}),
        note="the labels; CSV refuses dictionary columns",
    ),
    Entry(
        "json",
        "JSON",
        (('\'{"a": [1, 2], "b": null}\'', '{"a": [1, 2], "b": null}'), ("'[]'", "[]"), ("'\"text\"'", '"text"'), _null()),
        note="the JSON text, as DuckDB stores it",
    ),
    Entry(
        "bit",
        "BIT",
        (("'0101'::BIT", "0101"), ("'1'::BIT", "1"), _null()),
        exact_in=frozenset(),
        note="refused: DuckDB's Arrow export hands BIT over as its internal bytes; cast it to VARCHAR in a query",
    ),
    Entry(
        "array",
        "INTEGER[3]",
        (("[1, 2, NULL]", [1, 2, None]), ("[-1, 0, 2147483647]", [-1, 0, 2**31 - 1]), _null()),
        exact_in=NOT_CSV,
        note="a fixed-size list",
    ),
    Entry(
        "union",
        "UNION(n INTEGER, s VARCHAR)",
        (("union_value(n := 1)", 1), ("union_value(s := 'x')", "x"), _null()),
        exact_in=frozenset(),
        note="refused: Arrow's union has no NULL of its own, and Parquet, CSV and JSONL hold no union",
    ),
    Entry(
        "time_ns",
        "TIME_NS",
        (("'12:00:00.123456789'", "12:00:00.123456789"), ("'23:59:59.999999999'", "23:59:59.999999999"), _null()),
        note="nanoseconds since midnight: Python times hold microseconds, so the matrix compares the ISO text "
        "of an Arrow time64[ns]; a reader's Python time (polars, DuckDB) shows microseconds only",
    ),
    Entry(
        "bignum",
        "BIGNUM",
        (("123456789012345678901234567890123456789012345", 123456789012345678901234567890123456789012345), ("-1", -1), _null()),
        exact_in=frozenset(),
        note="refused: DuckDB's Arrow export hands BIGNUM over as its internal bytes; cast it to VARCHAR in a query",
    ),
    Entry(
        "odd_names",
        "",
        (),
        columns={
            "with space": ("INTEGER", (("1", 1), ("2", 2))),
            'quote"d': ("VARCHAR", (_s("a"), _null())),
            "it's": ("VARCHAR", (_s("b"), _s(""))),
            "ünïcødé_列": ("DOUBLE", (("1.5", 1.5), _null())),
            "select": ("INTEGER", (("3", 3), _null())),
        },
    ),
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_catalogue(path: Path, entries: tuple[Entry, ...] = CATALOGUE) -> Path:
    """Create the DuckDB warehouse at ``path`` with one table per entry."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for e in entries:
            cols = e.all_columns()
            defs = ", ".join(f"{_ident(n)} {t}" for n, (t, _) in cols.items())
            con.execute(f"CREATE TABLE {e.table} (k INTEGER, {defs})")
            n = len(next(iter(cols.values()))[1])
            for i in range(n):
                lits = ", ".join(vals[i][0] for _, vals in cols.values())
                con.execute(f"INSERT INTO {e.table} VALUES ({i + 1}, {lits})")
    finally:
        con.close()
    return path


def entry(name: str) -> Entry:
    return next(e for e in CATALOGUE if e.name == name)
