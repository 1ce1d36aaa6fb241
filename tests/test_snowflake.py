"""The Snowflake source (syncer/_snowflake*.py) on Snowpark's real local testing mode.

Tables are built with ``create_dataframe(...).save_as_table(...)`` in a
``Session.builder.config("local_testing", True)`` session and handed to the engine through
``use_session_factory``; ``syncer.sync(cfg)`` then runs unchanged. What local testing cannot run is
listed in one place, ``LOCAL_TESTING_GAPS`` (section "What only a real account runs"), where the
SQL text that a real account would run is checked instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from snowflake.snowpark import Session
from snowflake.snowpark import types as T
from snowflake.snowpark.mock import ColumnEmulator, ColumnType, patch

import syncer
from syncer import ConfigError, SourceError, load_config
from syncer.config import SourceConfig, TableConfig
from syncer.sources.base import Exclusion, KeyRange, quote_ident
from syncer.sources.snowflake import SnowflakeSource, describe_config
from syncer.sources.snowflake_connect import (
    ConnectionPlan,
    connection_plan,
    connections_file,
    use_session_factory,
)
from syncer.sources.snowflake_types import (
    arrow_schema,
    fit_batch,
    minify_json,
    precision_guard_sql,
    range_sql,
    rows_in_batches,
    sf_table_name,
    stream_sql,
    time_travel_clause,
)
from syncer.validate.profile import JSON_META, TEXT_BOUND, ProfileAccumulator, compare_profiles

UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
MINUS530 = dt.timezone(-dt.timedelta(hours=5, minutes=30))


# --- Snowpark local testing: exact aggregates ------------------------------------------------------
#
# Local testing emulates SUM through float and rounds numeric MIN/MAX to 5 decimal places
# (snowflake/snowpark/mock/_functions.py: mock_sum, mock_min, mock_max). A real account computes
# them exactly, and so must the emulation for the profile check to mean anything: these exact
# versions are registered through ``snowflake.snowpark.mock.patch``, Snowpark's documented hook for
# emulated functions. They change nothing but the rounding.


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _present(column: ColumnEmulator) -> list[Any]:
    return [v for v in column if v is not None and not _is_nan(v)]


def _exact_min(column: ColumnEmulator) -> ColumnEmulator:
    vals = _present(column)
    return ColumnEmulator(data=[min(vals) if vals else None], sf_type=column.sf_type)


def _exact_max(column: ColumnEmulator) -> ColumnEmulator:
    vals = _present(column)
    # Snowflake orders NaN above every number
    res = math.nan if any(_is_nan(v) for v in column) else (max(vals) if vals else None)
    return ColumnEmulator(data=[res], sf_type=column.sf_type)


def _exact_sum(column: ColumnEmulator) -> ColumnEmulator:
    dtype = column.sf_type.datatype
    vals = _present(column)
    if any(_is_nan(v) for v in column):
        res: Any = math.nan
    elif not vals:
        res = None
    elif isinstance(dtype, T.DecimalType):
        exact = decimal.Context(prec=100)  # decimal's default context rounds to 28 digits
        res = decimal.Decimal(0)
        for v in vals:
            res = exact.add(res, decimal.Decimal(v))
        dtype = T.DecimalType(min(38, dtype.precision + 12), dtype.scale)
    else:
        res = sum(vals)
    return ColumnEmulator(data=[res], sf_type=ColumnType(dtype, column.sf_type.nullable))


@pytest.fixture(scope="session", autouse=True)
def exact_local_aggregates() -> None:
    patch("min")(_exact_min)
    patch("max")(_exact_max)
    patch("sum")(_exact_sum)


# --- sessions and tables ---------------------------------------------------------------------------


def close_local(session: Session) -> None:
    session.close()
    # Local testing keeps a stage folder per session; remove it now rather than at interpreter exit.
    registry = getattr(session._conn, "stage_registry", None)
    root = getattr(registry, "_root_dir", None)
    if root is not None:
        root.cleanup()


@pytest.fixture
def local_session() -> Iterator[Session]:
    session = Session.builder.config("local_testing", True).create()
    yield session
    close_local(session)


ALL_TYPES = T.StructType(
    [
        T.StructField("ID", T.LongType(), nullable=False),
        T.StructField("BIG", T.DecimalType(38, 0)),  # NUMBER(38,0): int64 at both ends of its range
        T.StructField("SMALL", T.DecimalType(4, 0)),  # NUMBER(4,0): int64 too, never int16
        T.StructField("INTEGER", T.IntegerType()),
        T.StructField("AMOUNT", T.DecimalType(12, 2)),
        T.StructField("PRECISE", T.DecimalType(38, 10)),
        T.StructField("RATIO", T.DoubleType()),
        T.StructField("NTZ", T.TimestampType(T.TimestampTimeZone.NTZ)),
        T.StructField("LTZ", T.TimestampType(T.TimestampTimeZone.LTZ)),
        T.StructField("TZ", T.TimestampType(T.TimestampTimeZone.TZ)),
        T.StructField("DAY", T.DateType()),
        T.StructField("CLOCK", T.TimeType()),
        T.StructField("FLAG", T.BooleanType()),
        T.StructField("BLOB", T.BinaryType()),
        T.StructField("TEXT", T.StringType()),
        T.StructField('"mixedCase"', T.StringType()),
        T.StructField("DOC", T.VariantType()),
        T.StructField("OBJ", T.MapType()),
        T.StructField("ARR", T.ArrayType()),
    ]
)

TARGET = pa.schema(
    [
        pa.field("ID", pa.int64(), nullable=False),
        pa.field("BIG", pa.int64()),
        pa.field("SMALL", pa.int64()),
        pa.field("INTEGER", pa.int64()),
        pa.field("AMOUNT", pa.decimal128(12, 2)),
        pa.field("PRECISE", pa.decimal128(38, 10)),
        pa.field("RATIO", pa.float64()),
        pa.field("NTZ", pa.timestamp("us")),
        pa.field("LTZ", pa.timestamp("us", tz="UTC")),
        pa.field(
            "TZ",
            pa.timestamp("us", tz="UTC"),
            metadata={b"syncer.converted": b"TIMESTAMP_TZ -> timestamp[us, tz=UTC] (the same instant; the offset is not kept)"},
        ),
        pa.field("DAY", pa.date32()),
        pa.field("CLOCK", pa.time64("us")),
        pa.field("FLAG", pa.bool_()),
        pa.field("BLOB", pa.binary()),
        pa.field("TEXT", pa.string()),
        pa.field("mixedCase", pa.string()),
        pa.field("DOC", pa.string(), metadata={**JSON_META, b"syncer.converted": b"VARIANT -> string (JSON text)"}),
        pa.field("OBJ", pa.string(), metadata={**JSON_META, b"syncer.converted": b"OBJECT -> string (JSON text)"}),
        pa.field("ARR", pa.string(), metadata={**JSON_META, b"syncer.converted": b"ARRAY -> string (JSON text)"}),
    ]
)
JSON_COLUMNS = ("DOC", "OBJ", "ARR")

D = decimal.Decimal
# fmt: off
SPECIAL_ROWS: list[tuple[Any, ...]] = [
    # the edges: int64 limits, years 1400 and 9999 (outside the nanosecond range), NaN and infinities
    (1, 2**63 - 1, 9999, 2**31 - 1, D("9999999999.99"), D("12345.1234567891"), 0.1,
     dt.datetime(1400, 1, 1, 1, 2, 3, 456789), dt.datetime(1400, 1, 1, tzinfo=UTC),
     dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=PLUS2), dt.date(1400, 1, 1), dt.time(0, 0, 0),
     True, b"\x00\xff", "héllo wörld", "Mixed", {"a": 1, "b": [1, 2, {"c": "x y"}], "s": "two  spaces\nand a newline"},
     {"k": [1, 2]}, [1, "a", None]),
    (2, -(2**63), -9999, -(2**31), D("-9999999999.99"), D("-0.0000000001"), 1 / 3,
     dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(9999, 12, 31, 12, 0, tzinfo=UTC),
     dt.datetime(1400, 1, 1, 12, 0, tzinfo=MINUS530), dt.date(9999, 12, 31), dt.time(23, 59, 59, 999999),
     False, b"", "", "", "just text", {}, []),
    (3, 0, 0, 0, D("0.00"), D("0E-10"), math.nan,
     dt.datetime(1970, 1, 1), dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(1970, 1, 1, tzinfo=UTC),
     dt.date(1970, 1, 1), dt.time(12, 30, 15, 5), None, None, 'quote " and \\ backslash', "日本", 42,
     {"nested": {"deep": True}}, [[1], [2, 3]]),
    (4, None, None, None, None, None, math.inf, None, None, None, None, None, True, None, None, None, None, None, None),
    (5, 7, 1, 1, D("0.01"), D("1E-10"), -math.inf, dt.datetime(2026, 11, 25, 3, 15), None, None, None, None,
     False, b"\x01", "  padded  ", None, [1, 2], None, None),
    (6, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
]
# fmt: on


def generated_rows(n: int, start: int = 100) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(start, start + n):
        rows.append(
            (i, i * 1_000_003, i % 97, -i, D(i) / 4, D(i) / D(1024), i / 7, dt.datetime(2000, 1, 1) + dt.timedelta(hours=i),
             dt.datetime(2001, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=i), dt.datetime(2002, 1, 1, tzinfo=PLUS2) + dt.timedelta(seconds=i),
             dt.date(2003, 1, 1) + dt.timedelta(days=i), dt.time(i % 24, i % 60, i % 60, i), i % 2 == 0, bytes([i % 256]),
             f"row {i}", f"m{i}", {"i": i}, {"k": str(i)}, [i, i + 1])
        )  # fmt: skip
    return rows


ALL_ROWS = SPECIAL_ROWS + generated_rows(40)


def save(session: Session, name: str, rows: list[tuple[Any, ...]], schema: T.StructType) -> None:
    session.create_dataframe(rows, schema=schema).write.save_as_table(name, mode="overwrite")


def build_warehouse(session: Session) -> Session:
    save(session, "ALL_TYPES", ALL_ROWS, ALL_TYPES)
    save(
        session,
        "TOO_BIG",
        [(1, D(5)), (2, D(10) ** 30), (3, D(-7))],
        T.StructType([T.StructField("ID", T.LongType()), T.StructField("BIG", T.DecimalType(38, 0))]),
    )
    return session


@pytest.fixture
def warehouse_session(local_session: Session) -> Session:
    return build_warehouse(local_session)


def write_config(folder: Path, tables: str, *, source: str = "", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sync.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [source]
            kind = "snowflake"
            {source}

            [volume]
            root = "data"
            retain = 3

            [export]
            batch_rows = 7
            {extra}
            """
        )
        + textwrap.dedent(tables),
        encoding="utf-8",
    )
    return path


ALL_TYPES_TABLE = """
[[tables]]
name = "all_types"
source = "all_types"
primary_key = ["ID"]
format = "{fmt}"
"""


def table_config(**kw: Any) -> TableConfig:
    return TableConfig(name=kw.pop("name", "all_types"), source=kw.pop("source", "all_types"), primary_key=("ID",), **kw)


def comparable(value: Any, column: str) -> Any:
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def expected_rows(rows: list[tuple[Any, ...]], names: list[str]) -> list[dict[str, Any]]:
    # a VARIANT/OBJECT/ARRAY input is the value itself; the file holds its JSON text
    return [{n: v if n in JSON_COLUMNS else comparable(v, n) for n, v in zip(names, r, strict=True)} for r in rows]


def read_back(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: comparable(v, k) for k, v in row.items()} for row in table.to_pylist()]


# --- type mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snowpark", "arrow"),
    [
        pytest.param(T.LongType(), pa.int64(), id="NUMBER(38,0)-as-LongType"),
        pytest.param(T.DecimalType(38, 0), pa.int64(), id="NUMBER(38,0)"),
        pytest.param(T.DecimalType(4, 0), pa.int64(), id="NUMBER(4,0)-never-int16"),
        pytest.param(T.IntegerType(), pa.int64(), id="INT"),
        pytest.param(T.ByteType(), pa.int64(), id="BYTEINT"),
        pytest.param(T.DecimalType(12, 2), pa.decimal128(12, 2), id="NUMBER(12,2)"),
        pytest.param(T.DecimalType(38, 37), pa.decimal128(38, 37), id="NUMBER(38,37)"),
        pytest.param(T.DoubleType(), pa.float64(), id="FLOAT"),
        pytest.param(T.FloatType(), pa.float64(), id="FLOAT4"),
        pytest.param(T.StringType(16), pa.string(), id="VARCHAR(16)"),
        pytest.param(T.BinaryType(), pa.binary(), id="BINARY"),
        pytest.param(T.BooleanType(), pa.bool_(), id="BOOLEAN"),
        pytest.param(T.DateType(), pa.date32(), id="DATE"),
        pytest.param(T.TimeType(), pa.time64("us"), id="TIME"),
        pytest.param(T.TimestampType(T.TimestampTimeZone.NTZ), pa.timestamp("us"), id="TIMESTAMP_NTZ"),
        pytest.param(T.TimestampType(), pa.timestamp("us"), id="TIMESTAMP-default-mapping-NTZ"),
        pytest.param(T.TimestampType(T.TimestampTimeZone.LTZ), pa.timestamp("us", tz="UTC"), id="TIMESTAMP_LTZ"),
        pytest.param(T.TimestampType(T.TimestampTimeZone.TZ), pa.timestamp("us", tz="UTC"), id="TIMESTAMP_TZ"),
        pytest.param(T.VariantType(), pa.string(), id="VARIANT"),
        pytest.param(T.MapType(), pa.string(), id="OBJECT"),
        pytest.param(T.ArrayType(), pa.string(), id="ARRAY"),
        pytest.param(T.StructType(), pa.string(), id="structured-OBJECT"),
    ],
)
def test_every_snowflake_type_maps_to_one_arrow_type(snowpark: T.DataType, arrow: pa.DataType) -> None:
    schema = arrow_schema(table_config(), T.StructType([T.StructField("C", snowpark)]))
    assert schema.field("C").type == arrow
    json_text = isinstance(snowpark, T.VariantType | T.MapType | T.ArrayType | T.StructType)
    meta = schema.field("C").metadata or {}
    assert (JSON_META.items() <= meta.items()) is json_text
    assert (b"syncer.converted" in meta) is (json_text or getattr(snowpark, "tz", None) == T.TimestampTimeZone.TZ)


@pytest.mark.parametrize(
    "snowpark",
    [
        pytest.param(T.GeographyType(), id="GEOGRAPHY"),
        pytest.param(T.GeometryType(), id="GEOMETRY"),
        pytest.param(T.VectorType(int, 3), id="VECTOR"),
    ],
)
def test_unsupported_type_is_refused_naming_table_column_and_the_way_out(snowpark: T.DataType) -> None:
    with pytest.raises(SourceError, match=r"table 'all_types': column 'PLACE' has Snowflake type .*query.*exclude_columns"):
        arrow_schema(table_config(), T.StructType([T.StructField("PLACE", snowpark)]))


def test_case_sensitive_column_names_keep_their_spelling() -> None:
    schema = arrow_schema(table_config(), T.StructType([T.StructField('"mixedCase"', T.StringType())]))
    assert schema.names == ["mixedCase"]


# --- the whole engine on Snowpark local testing ----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "exclude"),
    [
        pytest.param("parquet", (), id="parquet"),
        pytest.param("arrow", (), id="arrow"),
        # The CSV writer (syncer/formats/csv.py) cannot write non-UTF-8 BINARY values (reported upstream).
        pytest.param("csv", ("BLOB",), id="csv-without-binary"),
        pytest.param("jsonl", (), id="jsonl"),
    ],
)
def test_full_sync_through_snowflake_passes_every_check_and_reads_back_the_inputs(
    warehouse_session: Session, tmp_path: Path, fmt: str, exclude: tuple[str, ...]
) -> None:
    tables = ALL_TYPES_TABLE.format(fmt=fmt) + f"exclude_columns = {json.dumps(list(exclude))}\n"
    cfg = load_config(write_config(tmp_path, tables))
    with use_session_factory(lambda: warehouse_session):
        report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    (table,) = report["tables"]
    assert {c["name"] for c in table["checks"]} >= {"row_count", "schema", "primary_key_unique", "profile", "sha256", "reopen"}
    assert all(c["ok"] for c in table["checks"]), [c for c in table["checks"] if not c["ok"]]

    got = syncer.read_table("all_types", as_arrow=True, config=cfg)
    target = pa.schema([f for f in TARGET if f.name not in exclude])
    assert got.schema.equals(target, check_metadata=True)
    keep = [i for i, name in enumerate(TARGET.names) if name not in exclude]
    assert read_back(got) == expected_rows([tuple(r[i] for i in keep) for r in ALL_ROWS], target.names)


def test_every_batch_has_the_one_target_schema(warehouse_session: Session) -> None:
    with use_session_factory(lambda: warehouse_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config()
        with src.pinned(t):
            schema = src.schema(t)
            batches = list(src.stream(t, schema, 3))
    assert schema.equals(TARGET, check_metadata=True)
    assert [b.num_rows for b in batches] == [3] * (len(ALL_ROWS) // 3) + ([len(ALL_ROWS) % 3] if len(ALL_ROWS) % 3 else [])
    assert all(b.schema.equals(TARGET, check_metadata=True) for b in batches)


def test_source_profile_agrees_with_the_written_profile_value_for_value(warehouse_session: Session) -> None:
    with use_session_factory(lambda: warehouse_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config()
        with src.pinned(t):
            schema = src.schema(t)
            source = src.profile(t, schema)
            acc = ProfileAccumulator(schema)
            for b in src.stream(t, schema, 5):
                acc.update(b)
    written = acc.result()
    assert compare_profiles(source, written, schema) == []
    ratio = source["columns"]["RATIO"]
    assert (ratio["nulls"], ratio["nans"], ratio["min"], ratio["max"]) == (1, 1, "-Infinity", "Infinity")
    assert source["columns"]["BIG"] == {
        "nulls": 2,
        "min": -(2**63),
        "max": 2**63 - 1,
        "sum": sum(r[1] for r in ALL_ROWS if r[1] is not None),
    }
    assert source["columns"]["NTZ"]["min"] == "1400-01-01T01:02:03.456789"
    assert source["columns"]["TZ"]["max"] == "9999-12-31T21:59:59.999999Z"
    assert source["columns"]["FLAG"]["min"] is False and source["columns"]["FLAG"]["max"] is True


def test_long_text_bounds_are_cut_alike_on_both_sides(local_session: Session) -> None:
    schema = T.StructType([T.StructField("ID", T.LongType()), T.StructField("S", T.StringType())])
    save(local_session, "LONG_TEXT", [(1, "a" * 100_000 + "b"), (2, "z" * 100_000), (3, None)], schema)
    with use_session_factory(lambda: local_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config(name="long_text", source="long_text")
        with src.pinned(t):
            arrow = src.schema(t)
            source = src.profile(t, arrow)
            acc = ProfileAccumulator(arrow)
            for b in src.stream(t, arrow, 2):
                acc.update(b)
    assert compare_profiles(source, acc.result(), arrow) == []
    assert source["columns"]["S"] == {"nulls": 1, "min": "a" * TEXT_BOUND, "max": "z" * (TEXT_BOUND - 1) + "{", "truncated": True}


def test_manifest_records_the_source_and_the_moment_read(warehouse_session: Session, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, ALL_TYPES_TABLE.format(fmt="parquet"), source='warehouse = "SYNC_WH"'))
    with use_session_factory(lambda: warehouse_session):
        syncer.sync(cfg)
    man = syncer.current_snapshot(config=cfg)
    assert man["source"] == {
        "kind": "snowflake",
        "method": "injected session factory",
        "warehouse": "SYNC_WH",
        "local_testing": True,  # runtime facts from the open source's describe()
        "snowpark_version": "1.56.0",
    }
    pin = man["tables"]["all_types"]["consistency"]
    assert dt.datetime.fromisoformat(pin["as_of"]).tzinfo is not None
    # Local testing ignores Time Travel, and the manifest says so rather than claiming a pin.
    assert pin["isolation"] == "none" and "local testing" in pin["reason"]


TWO_TABLES = """
[[tables]]
name = "all_types"
source = "all_types"
primary_key = ["ID"]

[[tables]]
name = "second"
source = "second"
primary_key = ["ID"]
references = { ID = "all_types.ID" }
"""


def test_every_table_of_a_run_is_read_at_one_moment_from_one_server_clock_read(
    warehouse_session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncer.sources.snowflake as sf

    save(
        warehouse_session,
        "SECOND",
        [(100, "a"), (101, "b")],
        T.StructType([T.StructField("ID", T.LongType()), T.StructField("S", T.StringType())]),
    )
    reads: list[dt.datetime] = []
    real = sf._server_now
    monkeypatch.setattr(
        sf, "_server_now", lambda session: reads.append(real(session)) or reads[-1]
    )  # counts, then the real clock
    cfg = load_config(write_config(tmp_path, TWO_TABLES))
    with use_session_factory(lambda: warehouse_session):
        report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    assert len(reads) == 1, "the server clock is read once per run, not per table"
    man = syncer.current_snapshot(config=cfg)
    moments = {n: e.consistency["as_of"] for n, e in man.tables.items()}
    assert set(moments.values()) == {reads[0].isoformat().replace("+00:00", "Z")}
    assert dt.datetime.fromisoformat(man.consistency.as_of) == reads[0]
    # Local testing ignores Time Travel: the manifest says so per table, and calls the cut mixed.
    assert man.consistency.cut == "mixed"
    assert {d.table: d.reason for d in man.consistency.differ} == {"all_types": "unpinned", "second": "unpinned"}
    assert next(c for c in man.tables["second"].checks if c.name == "references:ID").ok


def test_the_sql_sent_for_every_table_names_the_run_moment(warehouse_session: Session) -> None:
    # Local testing cannot run SQL text: the statements a real account gets are checked instead.
    schema = pa.schema([pa.field("ID", pa.int64())])
    one, two = table_config(), table_config(name="too_big", source="too_big")
    query = TableConfig(name="q", query="select ID from all_types", primary_key=("ID",))
    sent = {}
    with use_session_factory(lambda: warehouse_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        for t in (one, two, query):
            with src.pinned(t) as pin:
                sent[t.name] = (
                    range_sql(t, schema, src._as_of, None)[0],
                    precision_guard_sql(t, pa.schema([pa.field("TS", pa.timestamp("us"))]), src._as_of),
                    pin,
                )
        moment = src.run_moment
    assert moment is not None
    clause = time_travel_clause(moment)
    assert sent["all_types"][0] == f'SELECT "ID" FROM "ALL_TYPES" {clause}'
    assert sent["too_big"][0] == f'SELECT "ID" FROM "TOO_BIG" {clause}'
    assert f'FROM "TOO_BIG" {clause}' in (sent["too_big"][1] or "")
    assert clause not in sent["q"][0] and sent["q"][2]["pinned"] is False and sent["q"][2]["as_of"] == sent["too_big"][2]["as_of"]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param("Time travel data is not available for table ALL_TYPES.", 707, id="no-time-travel-data"),
        # any other refusal of AT(...) (the wording here is ours: the point is that it names no Time Travel)
        pytest.param("SQL compilation error: AT/BEFORE is not supported for view 'ALL_TYPES'", 2212, id="a-view"),
    ],
)
def test_a_table_that_refuses_time_travel_is_read_unpinned_and_says_so(
    warehouse_session: Session, monkeypatch: pytest.MonkeyPatch, message: str, code: int
) -> None:
    from snowflake.snowpark.exceptions import SnowparkSQLException

    real = warehouse_session.table

    def table(name: str, **kw: Any) -> Any:  # what a real account answers for AT(...) on such an object
        if kw.get("time_travel_mode"):
            raise SnowparkSQLException(message, sql_error_code=code)
        return real(name)

    monkeypatch.setattr(warehouse_session, "table", table)
    with use_session_factory(lambda: warehouse_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config()
        with src.pinned(t) as pin:
            rows = src.count(t)
    assert rows == len(ALL_ROWS)
    assert pin["pinned"] is False and pin["isolation"] == "none"
    assert pin["reason"] == f"Time Travel is not available for this table: {message}"


def test_excluded_columns_are_never_read(warehouse_session: Session, tmp_path: Path) -> None:
    tables = ALL_TYPES_TABLE.format(fmt="parquet") + 'exclude_columns = ["TEXT", "BLOB"]\n'
    cfg = load_config(write_config(tmp_path, tables))
    with use_session_factory(lambda: warehouse_session):
        assert syncer.sync(cfg)["status"] == "ok"
    assert "TEXT" not in syncer.read_table("all_types", as_arrow=True, config=cfg).schema.names


def test_a_value_beyond_int64_fails_the_table_naming_column_and_value(warehouse_session: Session, tmp_path: Path) -> None:
    tables = ALL_TYPES_TABLE.format(fmt="parquet") + '\n[[tables]]\nname = "too_big"\nprimary_key = ["ID"]\n'
    cfg = load_config(write_config(tmp_path, tables))
    with use_session_factory(lambda: warehouse_session):
        report = syncer.sync(cfg)
    assert report["status"] == "partial"
    bad = next(t for t in report["tables"] if t["table"] == "too_big")
    assert not bad["ok"]
    assert "column 'BIG'" in bad["error"] and "1000000000000000000000000000000" in bad["error"]
    assert "int64" in bad["error"]


def test_a_value_beyond_int64_is_quarantined_within_max_bad_rows(warehouse_session: Session, tmp_path: Path) -> None:
    tables = '[[tables]]\nname = "too_big"\nprimary_key = ["ID"]\nmax_bad_rows = 1\n'
    cfg = load_config(write_config(tmp_path, tables))
    with use_session_factory(lambda: warehouse_session):
        report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    with pytest.warns(syncer.QuarantinedRowsWarning, match="outside the int64 range"):
        got = syncer.read_table("too_big", as_arrow=True, config=cfg)
    assert got.to_pylist() == [{"ID": 1, "BIG": 5}, {"ID": 3, "BIG": -7}]
    entry = syncer.current_snapshot(config=cfg)["tables"]["too_big"]
    assert entry["status"] == "quarantined"
    assert any("column 'BIG'" in r and "1000000000000000000000000000000" in r for r in entry["quarantine"]["reasons"])


def test_missing_source_table_is_an_error_naming_it(local_session: Session) -> None:
    with use_session_factory(lambda: local_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config(name="gone", source="no_such_table")
        with pytest.raises(
            SourceError, match=r"source table 'no_such_table' \(\"NO_SUCH_TABLE\"\) not found.*\[\[tables\]\] 'gone'"
        ):
            src.schema(t)


def test_expired_session_is_reopened_for_the_next_call(tmp_path: Path) -> None:
    opened: list[Session] = []

    def factory() -> Session:
        opened.append(build_warehouse(Session.builder.config("local_testing", True).create()))
        return opened[-1]

    try:
        with use_session_factory(factory), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
            t = table_config()
            assert src.count(t) == len(ALL_ROWS)
            opened[0].close()  # what an expired session looks like to Snowpark: error 1404/1402
            assert src.count(t) == len(ALL_ROWS)
        assert len(opened) == 2
    finally:
        for s in opened:
            close_local(s)


def test_a_failing_connection_never_shows_the_secret(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55word-xyz"
    syncer._log.register_secret(secret)

    def factory() -> Session:
        raise RuntimeError(f"login failed for password={secret}")

    with use_session_factory(factory), pytest.raises(SourceError) as err:
        SnowflakeSource(SourceConfig(kind="snowflake"))
    assert secret not in str(err.value) and "***" in str(err.value)


def test_reading_by_key_ranges_and_row_filters(warehouse_session: Session) -> None:
    with use_session_factory(lambda: warehouse_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = table_config()
        with src.pinned(t):
            schema = src.schema(t)
            assert src.key_bounds(t, "ID") == (1, 139)
            rng = KeyRange("ID", 1, 139)
            mid = src.split_key(t, rng)
            assert 1 < mid <= 139
            assert src.count(t, KeyRange("ID", 1, mid, open_hi=True)) + src.count(t, KeyRange("ID", mid, 139)) == len(ALL_ROWS)
            assert src.count(t, KeyRange("ID", None, None)) == 0
            ids = [i for b in src.stream_range(t, schema, 4, KeyRange("ID", 3, 6)) for i in b.column("ID").to_pylist()]
            assert ids == [3, 4, 5, 6]
            assert src.count(t, Exclusion(("ID",), ((1,), (2,)))) == len(ALL_ROWS) - 2
            assert src.count(t, Exclusion(("BIG",))) == len(ALL_ROWS) - 2  # rows with a null BIG excluded
            assert src.profile(t, schema, where=Exclusion(("ID",), ((1,),)))["rows"] == len(ALL_ROWS) - 1


# --- connection order (real files in tmp_path; nothing contacts Snowflake) -------------------------

SPCS_ENV = {
    "SNOWFLAKE_HOST": "abc12345.snowflakecomputing.com",
    "SNOWFLAKE_ACCOUNT": "ABC12345",
    "SNOWFLAKE_DATABASE": "SYNC_DB",
    "SNOWFLAKE_SCHEMA": "SYNC",
}
TOKEN = "ver:1-hint:1234-ETMsDgAAAZ-the-oauth-token-itself"

CONNECTIONS_TOML = """
[default]
account = "default-acct"
user = "default_user"
password = "default-password-secret"

[prod]
account = "prod-acct"
user = "syncer"
authenticator = "SNOWFLAKE_JWT"
private_key_file = "/keys/rsa_key.p8"
warehouse = "PROD_WH"
role = "READER"
"""


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "snowflake" / "session" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


@pytest.fixture
def snowflake_home(tmp_path: Path) -> Path:
    home = tmp_path / "sfhome"
    home.mkdir()
    (home / "connections.toml").write_text(CONNECTIONS_TOML, encoding="utf-8")
    return home


def plan_for(cfg: SourceConfig, env: dict[str, str], tmp_path: Path, token: Path | None = None) -> ConnectionPlan:
    return connection_plan(cfg, environ=env, token_path=token or tmp_path / "absent" / "token", home=tmp_path / "user-home")


def test_inside_spcs_the_token_file_and_environment_win(tmp_path: Path, token_file: Path, snowflake_home: Path) -> None:
    env = {**SPCS_ENV, "SNOWFLAKE_HOME": str(snowflake_home), "SNOWFLAKE_DEFAULT_CONNECTION_NAME": "prod"}
    plan = plan_for(SourceConfig(kind="snowflake", connection_name="prod", account="ignored"), env, tmp_path, token_file)
    assert plan.method == "spcs"
    assert plan.params["host"] == "abc12345.snowflakecomputing.com"
    assert plan.params["account"] == "ABC12345"
    assert plan.params["authenticator"] == "oauth"
    assert plan.params["token_file_path"] == str(token_file)  # the connector reads it at each (re)connect
    assert (plan.params["database"], plan.params["schema"]) == ("SYNC_DB", "SYNC")
    assert "warehouse" not in plan.params  # SPCS injects none: the service's QUERY_WAREHOUSE applies
    assert TOKEN not in json.dumps(plan.params, default=str)


def test_inside_spcs_warehouse_comes_from_config_then_environment(tmp_path: Path, token_file: Path) -> None:
    from_env = plan_for(SourceConfig(kind="snowflake"), {**SPCS_ENV, "SNOWFLAKE_WAREHOUSE": "ENV_WH"}, tmp_path, token_file)
    assert from_env.params["warehouse"] == "ENV_WH"
    cfg = SourceConfig(kind="snowflake", warehouse="CFG_WH", database="DATA_DB", schema="RAW", role="SYNC_READER")
    from_cfg = plan_for(cfg, {**SPCS_ENV, "SNOWFLAKE_WAREHOUSE": "ENV_WH"}, tmp_path, token_file)
    assert from_cfg.params["warehouse"] == "CFG_WH"
    assert (from_cfg.params["database"], from_cfg.params["schema"], from_cfg.params["role"]) == ("DATA_DB", "RAW", "SYNC_READER")


def test_token_file_without_spcs_environment_is_an_error(tmp_path: Path, token_file: Path) -> None:
    with pytest.raises(SourceError, match=r"SNOWFLAKE_HOST and SNOWFLAKE_ACCOUNT is not set") as err:
        plan_for(SourceConfig(kind="snowflake"), {}, tmp_path, token_file)
    assert TOKEN not in str(err.value)


def test_without_token_a_named_connection_from_connections_toml(tmp_path: Path, snowflake_home: Path) -> None:
    env = {"SNOWFLAKE_HOME": str(snowflake_home)}
    plan = plan_for(SourceConfig(kind="snowflake", connection_name="prod", warehouse="OVERRIDE_WH"), env, tmp_path)
    assert plan.method == "connections.toml"
    assert plan.origin == f"{snowflake_home / 'connections.toml'} [prod]"
    assert plan.params["account"] == "prod-acct"
    assert plan.params["authenticator"] == "SNOWFLAKE_JWT"
    assert plan.params["warehouse"] == "OVERRIDE_WH"  # config overrides the connection
    assert plan.params["role"] == "READER"


def test_connection_name_from_the_environment(tmp_path: Path, snowflake_home: Path) -> None:
    env = {"SNOWFLAKE_HOME": str(snowflake_home), "SNOWFLAKE_DEFAULT_CONNECTION_NAME": "prod"}
    assert plan_for(SourceConfig(kind="snowflake"), env, tmp_path).params["account"] == "prod-acct"


def test_the_default_connection_when_nothing_is_named(tmp_path: Path, snowflake_home: Path) -> None:
    plan = plan_for(SourceConfig(kind="snowflake"), {"SNOWFLAKE_HOME": str(snowflake_home)}, tmp_path)
    assert (plan.method, plan.params["account"]) == ("connections.toml", "default-acct")
    assert "default-password-secret" not in json.dumps(plan.describe()) + repr(plan)


def test_connections_toml_in_the_user_home_like_the_connector(tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    (home / ".snowflake").mkdir(parents=True)
    (home / ".snowflake" / "connections.toml").write_text(CONNECTIONS_TOML, encoding="utf-8")
    assert connections_file({}, home) == home / ".snowflake" / "connections.toml"
    assert plan_for(SourceConfig(kind="snowflake", connection_name="prod"), {}, tmp_path).params["account"] == "prod-acct"


def test_unknown_connection_name_lists_the_known_ones_without_secrets(tmp_path: Path, snowflake_home: Path) -> None:
    with pytest.raises(
        SourceError, match=r"connection 'staging' is not in .*connections.toml \(connections there: default, prod\)"
    ) as err:
        plan_for(SourceConfig(kind="snowflake", connection_name="staging"), {"SNOWFLAKE_HOME": str(snowflake_home)}, tmp_path)
    assert "default-password-secret" not in str(err.value)


def test_explicit_config_with_key_pair_and_passphrase_from_the_environment(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "rsa_key.p8"
    cfg = SourceConfig(kind="snowflake", account="xy12345", user="SYNCER", authenticator="SNOWFLAKE_JWT", private_key_file=key)
    plan = plan_for(cfg, {"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "key-passphrase-secret", "SNOWFLAKE_WAREHOUSE": "ENV_WH"}, tmp_path)
    assert plan.method == "config"
    assert plan.params["private_key_file"] == str(key)
    assert plan.params["private_key_file_pwd"] == "key-passphrase-secret"
    assert plan.params["warehouse"] == "ENV_WH"
    assert "key-passphrase-secret" not in json.dumps(plan.describe()) + repr(plan)


def test_explicit_account_from_the_environment_with_password_from_the_environment(tmp_path: Path) -> None:
    env = {"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_USER": "bob", "SNOWFLAKE_PASSWORD": "env-password-secret"}
    plan = plan_for(SourceConfig(kind="snowflake"), env, tmp_path)
    assert (plan.method, plan.params["account"], plan.params["user"], plan.params["password"]) == (
        "config", "xy12345", "bob", "env-password-secret"
    )  # fmt: skip
    assert "env-password-secret" not in json.dumps(plan.describe())


def test_every_plan_asks_for_exact_decimals_and_a_kept_alive_session(tmp_path: Path, token_file: Path) -> None:
    plan = plan_for(SourceConfig(kind="snowflake"), SPCS_ENV, tmp_path, token_file)
    assert plan.params["arrow_number_to_decimal"] is True  # else NUMBER(p,s) arrives as float64
    assert plan.params["client_session_keep_alive"] is True
    assert plan.params["session_parameters"]["TIMEZONE"] == "UTC"


def test_no_connection_at_all_explains_the_three_ways(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"not running in SPCS .*named connection.*\[source\] account"):
        plan_for(SourceConfig(kind="snowflake"), {}, tmp_path)


# --- secrets stay out of config, manifests, logs and errors ---------------------------------------


@pytest.mark.parametrize("key", ["password", "token", "private_key_passphrase", "PASSWORD"])
def test_a_secret_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path, key: str) -> None:
    path = write_config(tmp_path, ALL_TYPES_TABLE.format(fmt="parquet"), source=f'{key} = "hunter2-very-secret"')
    with pytest.raises(ConfigError, match=rf"\[source\] {key} is a secret and is never read from the config file") as err:
        load_config(path)
    assert "hunter2-very-secret" not in str(err.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param('path = "w.duckdb"', r'\[source\] path applies to kind = "duckdb" only', id="duckdb-key-on-snowflake"),
        pytest.param('warehouse = ""', r"\[source\] warehouse must be a non-empty name", id="empty-name"),
        pytest.param("account = 3", r"\[source\] account must be str", id="not-a-string"),
        pytest.param('acount = "x"', r"unknown key 'acount'; did you mean 'account'", id="typo"),
    ],
)
def test_snowflake_source_keys_are_validated(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, ALL_TYPES_TABLE.format(fmt="parquet"), source=source))


def test_snowflake_keys_on_a_duckdb_source_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "sync.toml"
    path.write_text('[source]\nkind = "duckdb"\npath = "w.duckdb"\nwarehouse = "WH"\n' + ALL_TYPES_TABLE.format(fmt="parquet"))
    with pytest.raises(ConfigError, match=r'\[source\] warehouse applies to kind = "snowflake" only'):
        load_config(path)


def test_snowflake_config_keys_load(tmp_path: Path) -> None:
    source = 'connection_name = "prod"\nrole = "R"\nwarehouse = "W"\ndatabase = "D"\nschema = "S"\nprivate_key_file = "keys/k.p8"'
    cfg = load_config(write_config(tmp_path, ALL_TYPES_TABLE.format(fmt="parquet"), source=source))
    assert cfg.source.kind == "snowflake"
    assert (cfg.source.connection_name, cfg.source.role, cfg.source.warehouse) == ("prod", "R", "W")
    assert (cfg.source.database, cfg.source.schema) == ("D", "S")
    assert cfg.source.private_key_file == tmp_path / "keys" / "k.p8"


def test_describe_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "xy12345")
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "env-password-secret")
    monkeypatch.delenv("SNOWFLAKE_DEFAULT_CONNECTION_NAME", raising=False)
    monkeypatch.setenv("SNOWFLAKE_HOME", "/nonexistent-snowflake-home")
    described = describe_config(SourceConfig(kind="snowflake", user="bob", warehouse="W"))
    assert described == {"kind": "snowflake", "method": "config", "origin": "[source] in the config", "account": "xy12345",
                         "user": "bob", "warehouse": "W"}  # fmt: skip
    assert "env-password-secret" not in json.dumps(described)


# --- What only a real account runs ------------------------------------------------------------------
#
# Snowpark local testing emulates DataFrames in pandas: it cannot run SQL text and has no server.
# These parts of the source therefore run only against a real account; here the SQL text they send
# is checked instead, and the pieces around them (batch casting, row fallback) run on real Arrow data.

LOCAL_TESTING_GAPS = {
    "Time Travel AT(TIMESTAMP => ...)": "local testing accepts session.table(time_travel_mode=...) and ignores it",
    "streaming through the connector": "local testing has no connector cursor; fetch_arrow_batches(force_microsecond_precision=True) needs a server",
    "sub-microsecond guard": "a SQL query (DATE_PART(NANOSECOND, ...)); local testing keeps Python datetimes (microseconds)",
    "query tables (query = ...)": "session.sql() is not supported in local testing",
    "session expiry codes 390112/390114": "only a server expires a session; local testing's closed-session error (1404) is used instead",
    "exact SUM/MIN/MAX": "local testing sums through float and rounds MIN/MAX to 5 places; exact versions are patched in above",
    "NUMBER beyond 15 significant digits": "local testing's create_dataframe stores NUMBER(p,s) through float, so the inputs here stay within 15 digits",
    "computed columns after a filter": "local testing misaligns IFF/COALESCE rows after filter(); the source materialises filtered frames there (cache_result)",
    "NaN in COUNT(col)": "local testing counts NaN as NULL; the source counts IS NULL explicitly so both agree",
}

AS_OF = dt.datetime(2026, 11, 25, 3, 15, 0, 123456, tzinfo=UTC)
CLAUSE = "AT (TIMESTAMP => TO_TIMESTAMP_TZ('2026-11-25 03:15:00.123456+00:00'))"


def test_local_testing_gaps_are_listed_once() -> None:
    assert all(reason for reason in LOCAL_TESTING_GAPS.values())


def test_local_testing_cannot_run_query_tables(local_session: Session) -> None:
    with use_session_factory(lambda: local_session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        t = TableConfig(name="q", query="select 1 as id", primary_key=("ID",))
        with pytest.raises(SourceError, match=r"table 'q' is a query; Snowpark local testing cannot run SQL text"):
            src.count(t)


def test_time_travel_clause_is_the_one_snowpark_generates() -> None:
    # Count and profile go through session.table(..., time_travel_mode="at"); the stream sends our
    # own SQL. Both must name the same moment in the same words.
    from snowflake.snowpark._internal.utils import TimeTravelConfig

    stamp = AS_OF.isoformat(sep=" ")
    snowpark = TimeTravelConfig.validate_and_normalize_params(time_travel_mode="at", timestamp=stamp, timestamp_type="TZ")
    assert snowpark is not None
    assert snowpark.generate_sql_clause().strip() == time_travel_clause(AS_OF) == CLAUSE
    assert time_travel_clause(AS_OF.astimezone(PLUS2)) == CLAUSE


def test_stream_sql_pins_the_table_and_sends_json_as_compact_text() -> None:
    schema = pa.schema(
        [pa.field("ID", pa.int64()), pa.field("mixedCase", pa.string()), pa.field("DOC", pa.string(), metadata=JSON_META)]
    )
    sql = stream_sql(table_config(source="sync_db.raw.all_types"), schema, AS_OF)
    assert sql == (f'SELECT "ID", "mixedCase", TO_JSON("DOC"::VARIANT) AS "DOC" FROM "SYNC_DB"."RAW"."ALL_TYPES" {CLAUSE}')


def test_stream_sql_of_a_query_is_not_pinned() -> None:
    t = TableConfig(name="q", query="select id from t where x > 1", primary_key=("ID",))
    assert (
        stream_sql(t, pa.schema([pa.field("ID", pa.int64())]), AS_OF) == 'SELECT "ID" FROM (select id from t where x > 1) AS "q"'
    )


def test_key_range_sql_binds_its_values() -> None:
    schema = pa.schema([pa.field("ID", pa.int64())])
    sql, params = range_sql(table_config(), schema, AS_OF, KeyRange("ID", 10, 20, open_hi=True))
    assert sql == f'SELECT "ID" FROM "ALL_TYPES" {CLAUSE} WHERE "ID" >= ? AND "ID" < ?'
    assert params == [10, 20]
    assert range_sql(table_config(), schema, None, None) == ('SELECT "ID" FROM "ALL_TYPES"', [])


def test_precision_guard_sql_checks_every_time_and_timestamp_column() -> None:
    schema = pa.schema(
        [
            pa.field("ID", pa.int64()),
            pa.field("NTZ", pa.timestamp("us")),
            pa.field("TZ", pa.timestamp("us", tz="UTC")),
            pa.field("CLOCK", pa.time64("us")),
        ]
    )
    assert precision_guard_sql(table_config(), schema, AS_OF) == (
        "SELECT "
        'MIN(IFF(DATE_PART(NANOSECOND, "NTZ") % 1000 <> 0, TO_VARCHAR("NTZ", \'YYYY-MM-DD HH24:MI:SS.FF9\'), NULL)) AS "c1", '
        'MIN(IFF(DATE_PART(NANOSECOND, "TZ") % 1000 <> 0, TO_VARCHAR("TZ", \'YYYY-MM-DD HH24:MI:SS.FF9 TZH:TZM\'), NULL)) AS "c2", '
        'MIN(IFF(DATE_PART(NANOSECOND, "CLOCK") % 1000 <> 0, TO_VARCHAR("CLOCK", \'HH24:MI:SS.FF9\'), NULL)) AS "c3" '
        f'FROM "ALL_TYPES" {CLAUSE}'
    )
    assert precision_guard_sql(table_config(), pa.schema([pa.field("ID", pa.int64())]), AS_OF) is None


def test_table_names_resolve_like_unquoted_snowflake_identifiers() -> None:
    assert sf_table_name("participants") == '"PARTICIPANTS"'
    assert sf_table_name("analytics.public.daily_metrics") == '"ANALYTICS"."PUBLIC"."DAILY_METRICS"'


CONNECTOR_SCHEMA = pa.schema(
    [
        pa.field("N", pa.int64()),
        pa.field("D", pa.decimal128(12, 2)),
        pa.field("LTZ", pa.timestamp("us", tz="UTC")),
        pa.field("NTZ", pa.timestamp("us")),
        pa.field("CLOCK", pa.time64("us")),
    ]
)


@pytest.mark.parametrize(
    "batch",
    [
        # What the connector hands out, batch by batch: the narrowest int that fits, decimal128(38,s)
        # with arrow_number_to_decimal, LTZ in the session zone, TIME(0-3) as time32.
        pytest.param(
            pa.record_batch(
                [
                    pa.array([1, -2], pa.int8()),
                    pa.array([D("1.25"), D("-3.00")], pa.decimal128(38, 2)),
                    pa.array([0, 86_400_000_000], pa.timestamp("us", tz="America/New_York")),
                    pa.array([0, 1], pa.timestamp("us")),
                    pa.array([1000, 2000], pa.time32("ms")),
                ],
                names=CONNECTOR_SCHEMA.names,
            ),
            id="narrow-ints-session-zone-time32",
        ),
        pytest.param(
            pa.record_batch(
                [
                    pa.array([2**62, None], pa.int64()),
                    pa.array([None, D("9999999999.99")], pa.decimal128(38, 2)),
                    pa.array([None, -17987443200000000], pa.timestamp("us", tz="UTC")),
                    pa.array([253402300799999999, -17987443200000000], pa.timestamp("us")),  # 9999-12-31, 1400-01-01
                    pa.array([None, 86_399_999_999], pa.time64("us")),
                ],
                names=CONNECTOR_SCHEMA.names,
            ),
            id="wide-ints-and-out-of-nanosecond-range",
        ),
        pytest.param(
            pa.record_batch(
                [
                    pa.array([5, 6], pa.decimal128(38, 0)),
                    pa.array([D("1.5"), None], pa.decimal128(38, 1)),
                    pa.array([None, None], pa.null()),
                    pa.array([0, 0], pa.timestamp("us")),
                    pa.array([1, 2], pa.time32("s")),
                ],
                names=CONNECTOR_SCHEMA.names,
            ),
            id="decimal-ints-and-all-null",
        ),
    ],
)
def test_connector_batches_are_cast_to_the_one_schema(batch: pa.RecordBatch) -> None:
    fitted = fit_batch("t", CONNECTOR_SCHEMA, batch)
    assert fitted.schema.equals(CONNECTOR_SCHEMA)
    for got, original in zip(fitted.columns, batch.columns, strict=True):
        # the same values (aware datetimes compare as instants); only the representation changed
        assert got.to_pylist() == original.to_pylist()


@pytest.mark.parametrize(
    ("array", "target", "shown"),
    [
        pytest.param(
            pa.array([1, 10**30], pa.decimal128(38, 0)),
            pa.int64(),
            "Decimal('1000000000000000000000000000000')",
            id="NUMBER(38,0)-beyond-int64",
        ),
        pytest.param(
            pa.array([D("1.255")], pa.decimal128(38, 3)), pa.decimal128(12, 2), "Decimal('1.255')", id="more-scale-than-declared"
        ),
        pytest.param(
            pa.array([1_001], pa.timestamp("ns")), pa.timestamp("us"), "1970-01-01 00:00:00.000001001", id="sub-microsecond"
        ),
    ],
)
def test_a_value_the_target_cannot_hold_is_an_error_naming_it(array: pa.Array, target: pa.DataType, shown: str) -> None:
    schema = pa.schema([pa.field("C", target)])
    with pytest.raises(SourceError, match=r"table 't': column 'C': value .* cannot be represented exactly") as err:
        fit_batch("t", schema, pa.record_batch([array], names=["C"]))
    assert isinstance(err.value, syncer.BadRowsError)
    assert shown in str(err.value)


def test_row_fallback_builds_exact_batches_of_batch_rows() -> None:
    schema = pa.schema(
        [pa.field("N", pa.int64()), pa.field("D", pa.decimal128(12, 2)), pa.field("J", pa.string(), metadata=JSON_META)]
    )
    rows = [(D(i), D(i) / 4, '{\n  "i": ' + str(i) + ',\n  "s": "a b"\n}') for i in range(10)]
    batches = list(rows_in_batches("t", schema, rows, 4))
    assert [b.num_rows for b in batches] == [4, 4, 2]
    assert all(b.schema.equals(schema) for b in batches)
    assert batches[0].column("J").to_pylist()[1] == '{"i":1,"s":"a b"}'
    with pytest.raises(SourceError, match=r"column 'N': value Decimal\('1.5'\) .*\(has a fractional part\)"):
        list(rows_in_batches("t", schema, [(D("1.5"), None, None)], 4))


@pytest.mark.parametrize(
    ("text", "compact"),
    [
        pytest.param('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}', '{"a":1,"b":[1,2]}', id="pretty"),
        pytest.param('"two  spaces\\nand \\"quotes\\""', '"two  spaces\\nand \\"quotes\\""', id="string-kept"),
        pytest.param('{ "k" : "v \\\\" }', '{"k":"v \\\\"}', id="escaped-backslash"),
    ],
)
def test_json_text_loses_only_insignificant_whitespace(text: str, compact: str) -> None:
    assert minify_json(pa.array([text, None])).to_pylist() == [compact, None]
    assert json.loads(compact) == json.loads(text)


def test_describe_of_a_source_names_local_testing_and_snowpark(local_session: Session) -> None:
    factory: Callable[[], Session] = lambda: local_session  # noqa: E731 - the factory is the point
    with use_session_factory(factory), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
        d = src.describe()
    assert d["kind"] == "snowflake" and d["local_testing"] is True and d["snowpark_version"].startswith("1.56")


# --- the type catalogue through the Snowflake source ---------------------------------------------------
#
# The catalogue's entries (tests/catalogue.py) that a Snowflake type holds, built in local testing with
# the same values, synced and read back; each cell judged as in the reader matrix (scripts/reader_matrix.py).

CATALOGUE_IN_SNOWFLAKE: dict[str, T.DataType] = {
    "tinyint": T.LongType(),
    "smallint": T.LongType(),
    "integer": T.LongType(),
    "bigint": T.LongType(),
    "utinyint": T.LongType(),
    "usmallint": T.LongType(),
    "uinteger": T.LongType(),
    "float": T.DoubleType(),  # FLOAT is a double in Snowflake: float32 values are doubles exactly
    "timestamp_s": T.TimestampType(T.TimestampTimeZone.NTZ),
    "decimal_4_2": T.DecimalType(4, 2),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "time": T.TimeType(),
    "timestamp": T.TimestampType(T.TimestampTimeZone.NTZ),
    "timestamp_ms": T.TimestampType(T.TimestampTimeZone.NTZ),
    "timestamptz": T.TimestampType(T.TimestampTimeZone.TZ),
    "varchar": T.StringType(),
    "blob": T.BinaryType(),
    # semi-structured: JSON text (converted, and recorded as such in the manifest)
    "list": T.ArrayType(T.LongType()),
    "struct": T.MapType(T.StringType(), T.VariantType()),
    "map": T.MapType(T.StringType(), T.VariantType()),
    "json": T.VariantType(),
}
#: what a Snowflake column of these types holds is JSON text: the values arrive converted
CONVERTED_IN_SNOWFLAKE = {"list": "ARRAY", "struct": "OBJECT", "map": "OBJECT", "json": "VARIANT"}
CATALOGUE_NOT_IN_LOCAL_TESTING = {
    "decimal_18_4": LOCAL_TESTING_GAPS["NUMBER beyond 15 significant digits"],
    "decimal_38_10": LOCAL_TESTING_GAPS["NUMBER beyond 15 significant digits"],
    "timestamp_ns": LOCAL_TESTING_GAPS["sub-microsecond guard"],
    "ubigint": "beyond int64: the Snowflake source refuses it (test_a_value_beyond_int64_fails_the_table_naming_column_and_value)",
    "hugeint": "beyond int64: the Snowflake source refuses it",
    "uhugeint": "beyond int64: the Snowflake source refuses it",
    # no Snowflake column type holds these
    "timetz": "Snowflake's TIME has no offset",
    "interval": "Snowflake has no INTERVAL column type",
    "uuid": "Snowflake has no UUID type (a VARCHAR is the varchar entry)",
    "enum": "Snowflake has no ENUM type",
    "bit": "Snowflake has no BIT type",
    "array": "Snowflake has no fixed-size array (its ARRAY is the list entry)",
    "union": "Snowflake has no UNION type",
    "bignum": "Snowflake's NUMBER stops at 38 digits",
    "time_ns": LOCAL_TESTING_GAPS["sub-microsecond guard"],
}
#: the odd column names, each with its Snowpark type
ODD_NAMES = {"INTEGER": T.LongType(), "VARCHAR": T.StringType(), "DOUBLE": T.DoubleType()}


def _catalogue_params() -> list[Any]:
    from tests.catalogue import CATALOGUE

    names = [e.name for e in CATALOGUE]
    params = [pytest.param(n, id=n) for n in [*CATALOGUE_IN_SNOWFLAKE, "odd_names"]]
    params += [pytest.param(n, id=n, marks=pytest.mark.skip(reason=why)) for n, why in CATALOGUE_NOT_IN_LOCAL_TESTING.items()]
    # every catalogue entry runs, or is skipped with the reason (README says which and why)
    assert set(CATALOGUE_IN_SNOWFLAKE) | set(CATALOGUE_NOT_IN_LOCAL_TESTING) | {"odd_names"} == set(names)
    return params


@pytest.mark.parametrize("name", _catalogue_params())
def test_catalogue_types_go_through_the_snowflake_source_exactly(local_session: Session, tmp_path: Path, name: str) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reader_matrix import judge

    from tests.catalogue import entry

    e = entry(name)
    expected = e.expected()
    columns = {n: list(expected[n]) for n in e.all_columns()}
    if name == "map":  # Snowpark takes an OBJECT as a dict
        columns["v"] = [None if v is None else dict(v) for v in columns["v"]]
    elif name == "json":  # a VARIANT holds the parsed value (a str would be a JSON string)
        columns["v"] = [None if v is None else json.loads(v) for v in columns["v"]]
    types = (
        {n: ODD_NAMES[t] for n, (t, _) in e.all_columns().items()} if name == "odd_names" else {"v": CATALOGUE_IN_SNOWFLAKE[name]}
    )
    rows = list(zip(expected["k"], *columns.values(), strict=True))
    fields = [T.StructField(quote_ident(n) if name == "odd_names" else n.upper(), t) for n, t in types.items()]
    save(local_session, e.table.upper(), rows, T.StructType([T.StructField("K", T.LongType(), nullable=False), *fields]))
    tables = f'[[tables]]\nname = "{name}"\nsource = "{e.table}"\nprimary_key = ["K"]\nformat = "parquet"\n'
    cfg = load_config(write_config(tmp_path, tables))
    with use_session_factory(lambda: local_session):
        report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    got = syncer.read_table(name, as_arrow=True, config=cfg).to_pydict()
    kind, detail = judge(expected, {k.lower() if k in ("K", "V") else k: v for k, v in got.items()})
    column = next(c for c in syncer.current_snapshot(config=cfg).tables[name].schema if c.name in ("V", "with space"))
    if name in CONVERTED_IN_SNOWFLAKE:
        assert kind == "converted", detail
        assert column.extra["converted"] == f"{CONVERTED_IN_SNOWFLAKE[name]} -> string (JSON text)"
    elif name == "timestamptz":  # TIMESTAMP_TZ: the instants exact, the offset not kept (and said so)
        assert kind == "exact", detail
        assert column.extra["converted"].startswith("TIMESTAMP_TZ -> timestamp[us, tz=UTC]")
    else:
        assert kind == "exact", detail
        assert "converted" not in column.extra
