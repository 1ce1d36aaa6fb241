"""Column profiles: what DuckDB computes in SQL equals what ProfileAccumulator computes on the batches."""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from syncer.config import SourceConfig, TableConfig
from syncer.sources.duckdb import DuckDBSource
from syncer.validate.profile import JSON_META, ProfileAccumulator, canonical, compare_profiles, plan_for

ROWS = 60
BIG = 2**62  # ten of these overflow int64 when summed

WAREHOUSE_SQL = f"""
CREATE TABLE t (
    id BIGINT, small INTEGER, big BIGINT, amount DECIMAL(12, 2), wide DECIMAL(38, 10), precise DECIMAL(38, 10),
    score DOUBLE, measure DOUBLE, flag BOOLEAN, name VARCHAR, day DATE, ts TIMESTAMP, tstz TIMESTAMPTZ,
    doc JSON, nothing INTEGER
);
INSERT INTO t SELECT
    i,
    (i % 7) - 3,
    CASE WHEN i <= 10 THEN {BIG} WHEN i % 6 = 0 THEN NULL ELSE -i END,
    CASE WHEN i % 8 = 0 THEN NULL ELSE (i * 1.25 - 20)::DECIMAL(12, 2) END,
    (i / 3)::DECIMAL(38, 10),
    123456789012345678901.0000000000::DECIMAL(38, 10) + i * 0.0000000001::DECIMAL(38, 10),
    CASE WHEN i % 11 = 0 THEN 'NaN'::DOUBLE WHEN i = 5 THEN 'inf'::DOUBLE WHEN i = 6 THEN '-inf'::DOUBLE
         WHEN i % 13 = 0 THEN NULL ELSE i * 0.1 END,
    CASE WHEN i % 17 = 0 THEN 'NaN'::DOUBLE WHEN i % 4 = 0 THEN NULL ELSE i * 0.1 + 1.0 / i END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE i % 2 = 0 END,
    CASE WHEN i % 9 = 0 THEN NULL
         ELSE ['', 'apple', 'Zebra', 'Äpfel', '😀 emoji', 'مرحبا', 'name ' || i][i % 7 + 1] END,
    CASE WHEN i = 1 THEN DATE '0001-01-01' WHEN i = 2 THEN DATE '9999-12-31' WHEN i % 10 = 0 THEN NULL
         ELSE DATE '2024-01-01' + i::INTEGER END,
    CASE WHEN i % 12 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00.123456' + INTERVAL (i) MINUTE END,
    CASE WHEN i % 14 = 0 THEN NULL ELSE TIMESTAMPTZ '2024-01-01 00:30:00+02:00' + INTERVAL (i) HOUR END,
    CASE WHEN i % 4 = 0 THEN NULL ELSE ('{{"i": ' || i || ', "tags": ["a", "b"]}}') END::JSON,
    NULL
FROM range(1, {ROWS + 1}) r(i);
CREATE TABLE empty AS SELECT * FROM t LIMIT 0;
"""


@pytest.fixture(scope="module")
def warehouse_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute(WAREHOUSE_SQL)
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def src(warehouse_db):
    with DuckDBSource(SourceConfig(kind="duckdb", path=warehouse_db)) as source:
        yield source


T = TableConfig(name="t", source="t", primary_key=("id",))
EMPTY = TableConfig(name="empty", source="empty", primary_key=("id",))


def _accumulate(src: DuckDBSource, table: TableConfig, schema: pa.Schema, batch_rows: int) -> dict:
    acc = ProfileAccumulator(schema)
    for batch in src.stream(table, schema, batch_rows=batch_rows):
        assert batch.num_rows <= batch_rows
        acc.update(batch)
    return acc.result()


@pytest.mark.parametrize(
    "batch_rows",
    [
        pytest.param(1, id="one-row-batches"),
        pytest.param(7, id="7-row-batches"),
        pytest.param(ROWS, id="one-batch"),
        pytest.param(100_000, id="batch-larger-than-table"),
    ],
)
def test_accumulated_profile_equals_source_profile(src, batch_rows):
    schema = src.schema(T)
    source = src.profile(T, schema)
    written = _accumulate(src, T, schema, batch_rows)
    assert compare_profiles(source, written, schema) == []
    assert written["rows"] == source["rows"] == ROWS


def test_profile_of_a_column_subset_equals_source_profile(src):
    # The engine profiles the schema left after exclude_columns; only those columns are read.
    full = src.schema(T)
    schema = pa.schema([full.field(n) for n in ("tstz", "amount", "doc", "score")])
    source = src.profile(T, schema)
    written = _accumulate(src, T, schema, 7)
    assert list(source["columns"]) == list(written["columns"]) == ["tstz", "amount", "doc", "score"]
    assert compare_profiles(source, written, schema) == []


def test_query_table_profile_equals_source_profile(src):
    table = TableConfig(name="q", query="SELECT id, name, doc FROM t WHERE id > 20", primary_key=("id",))
    schema = src.schema(table)
    assert schema.field("doc").metadata == JSON_META
    source = src.profile(table, schema)
    assert source["rows"] == ROWS - 20
    assert compare_profiles(source, _accumulate(src, table, schema, 7), schema) == []


def test_source_profile_stats_are_canonical(src):
    schema = src.schema(T)
    cols = src.profile(T, schema)["columns"]
    assert cols["id"] == {"nulls": 0, "min": 1, "max": ROWS, "sum": ROWS * (ROWS + 1) // 2}
    # Decimals as normalised strings.
    assert cols["amount"]["min"] == "-18.75"
    assert isinstance(cols["amount"]["sum"], str)
    assert cols["wide"]["min"] == "0.3333333333"
    assert cols["wide"]["max"] == "20"
    # 31 significant digits: more than Decimal's default context keeps.
    assert (cols["precise"]["min"], cols["precise"]["max"]) == (
        "123456789012345678901.0000000001",
        "123456789012345678901.000000006",
    )
    assert cols["precise"]["sum"] == "7407407340740740734060.000000183"  # 60 * 123456789012345678901 + 1830e-10
    # Floats: NaN counted apart and excluded from min/max; infinities spelled out.
    assert cols["score"]["nans"] == 5
    assert (cols["score"]["min"], cols["score"]["max"]) == ("-Infinity", "Infinity")
    assert cols["score"]["sum"] == "NaN"  # inf + -inf
    assert cols["measure"]["nans"] == 3
    assert isinstance(cols["measure"]["sum"], float)
    # Aware timestamps in UTC with a Z, naive ones without.
    assert cols["tstz"]["min"] == "2023-12-31T23:30:00Z"
    assert cols["ts"]["min"] == "2024-01-01T00:01:00.123456"
    assert (cols["day"]["min"], cols["day"]["max"]) == ("0001-01-01", "9999-12-31")
    assert cols["flag"] == {"nulls": 12, "min": False, "max": True}
    assert cols["name"]["min"] == ""


def test_int64_sum_beyond_int64_is_exact_in_both_profiles(src):
    schema = src.schema(T)
    expected = 10 * BIG - sum(i for i in range(11, ROWS + 1) if i % 6)
    assert expected > 2**63
    assert src.profile(T, schema)["columns"]["big"]["sum"] == expected
    for batch_rows in (1, 7, ROWS):
        assert _accumulate(src, T, schema, batch_rows)["columns"]["big"]["sum"] == expected


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([[BIG + 1], [BIG + 1]], id="each-batch-fits-total-overflows"),
        pytest.param([[BIG, BIG], [BIG, BIG, None]], id="each-batch-overflows"),
        pytest.param([[2**63 - 1, 2**63 - 1], [2**63 - 1]], id="max-int64"),
        pytest.param([[-(2**63), -(2**63)], [-1]], id="min-int64"),
    ],
)
def test_int64_sum_overflow_guard_gives_exact_python_int(batches):
    schema = pa.schema([pa.field("n", pa.int64())])
    acc = ProfileAccumulator(schema)
    for values in batches:
        acc.update(pa.RecordBatch.from_pydict({"n": pa.array(values, pa.int64())}, schema=schema))
    total = sum(v for values in batches for v in values if v is not None)
    assert abs(total) >= 2**63
    got = acc.result()["columns"]["n"]["sum"]
    assert type(got) is int
    assert got == total


def test_json_column_gets_only_a_null_count(src):
    field = pa.field("doc", pa.string(), metadata=JSON_META)
    plan = plan_for(field)
    assert (plan.minmax, plan.total, plan.floating, plan.integer) == (False, False, False, False)
    assert plan_for(pa.field("doc", pa.string())).minmax  # plain text does get min/max
    assert src.profile(T, src.schema(T))["columns"]["doc"] == {"nulls": ROWS // 4}


@pytest.mark.parametrize(
    ("field", "stats"),
    [
        pytest.param(pa.field("x", pa.int32()), (True, True, False, True), id="int32"),
        pytest.param(pa.field("x", pa.decimal128(38, 10)), (True, True, False, False), id="decimal"),
        pytest.param(pa.field("x", pa.float64()), (True, True, True, False), id="float64"),
        pytest.param(pa.field("x", pa.bool_()), (True, False, False, False), id="bool"),
        pytest.param(pa.field("x", pa.timestamp("us", tz="UTC")), (True, False, False, False), id="timestamptz"),
        pytest.param(pa.field("x", pa.date32()), (True, False, False, False), id="date"),
        pytest.param(pa.field("x", pa.binary()), (False, False, False, False), id="binary"),
    ],
)
def test_plan_depends_only_on_the_arrow_type(field, stats):
    plan = plan_for(field)
    assert (plan.minmax, plan.total, plan.floating, plan.integer) == stats


def test_all_null_column_profiles_agree(src):
    schema = src.schema(T)
    expected = {"nulls": ROWS, "min": None, "max": None, "sum": None}
    assert src.profile(T, schema)["columns"]["nothing"] == expected
    assert _accumulate(src, T, schema, 7)["columns"]["nothing"] == expected


def test_empty_table_profiles_agree(src):
    schema = src.schema(EMPTY)
    source = src.profile(EMPTY, schema)
    written = _accumulate(src, EMPTY, schema, 7)
    assert source["rows"] == written["rows"] == 0
    assert compare_profiles(source, written, schema) == []
    assert written["columns"]["score"] == {"nulls": 0, "min": None, "max": None, "sum": None, "nans": 0}


def test_all_nan_batch_leaves_min_max_to_other_batches():
    schema = pa.schema([pa.field("f", pa.float64())])
    acc = ProfileAccumulator(schema)
    acc.update(pa.RecordBatch.from_pydict({"f": [float("nan"), None]}, schema=schema))
    acc.update(pa.RecordBatch.from_pydict({"f": [2.5, float("nan"), -1.0]}, schema=schema))
    assert acc.result() == {"rows": 5, "columns": {"f": {"nulls": 1, "min": -1.0, "max": 2.5, "sum": 1.5, "nans": 2}}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(True, True, id="bool-stays-bool"),
        pytest.param(2**70, 2**70, id="big-int"),
        pytest.param("text", "text", id="str"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(float("nan"), "NaN", id="nan"),
        pytest.param(float("inf"), "Infinity", id="inf"),
        pytest.param(float("-inf"), "-Infinity", id="minus-inf"),
        pytest.param(Decimal("1.50"), "1.5", id="decimal-trailing-zero"),
        pytest.param(Decimal("1E+3"), "1000", id="decimal-exponent"),
        pytest.param(Decimal("0E-10"), "0", id="decimal-zero-scaled"),
        pytest.param(Decimal("-0.00"), "0", id="decimal-negative-zero"),
        pytest.param(Decimal("-12345678901234567890.0000000001"), "-12345678901234567890.0000000001", id="decimal-wide"),
        pytest.param(
            dt.datetime(2024, 1, 1, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")), "2024-01-01T01:30:00Z", id="aware-datetime"
        ),
        pytest.param(dt.datetime(2024, 1, 1, 1, 30, tzinfo=dt.UTC), "2024-01-01T01:30:00Z", id="utc-datetime"),
        pytest.param(dt.datetime(2024, 1, 1, 1, 30, 0, 5), "2024-01-01T01:30:00.000005", id="naive-datetime"),
        pytest.param(dt.date(1, 1, 1), "0001-01-01", id="date"),
        pytest.param(dt.time(23, 59, 59), "23:59:59", id="time"),
        pytest.param(b"\x00\xff", "00ff", id="bytes"),
    ],
)
def test_canonical_form(value, expected):
    got = canonical(value)
    assert got == expected
    assert type(got) is type(expected)


def test_canonical_decimal_equals_across_scales():
    assert canonical(Decimal("2.500")) == canonical(Decimal("2.5")) == "2.5"


def _profile(**cols: dict) -> dict:
    return {"rows": 3, "columns": cols}


SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("score", pa.float64())])
BASE = {
    "id": {"nulls": 0, "min": 1, "max": 3, "sum": 6},
    "name": {"nulls": 1, "min": "a", "max": "b"},
    "score": {"nulls": 0, "min": 0.1, "max": 0.2, "sum": 0.6, "nans": 0},
}


def _changed(column: str, **stats) -> dict:
    cols = {name: dict(s) for name, s in BASE.items()}
    cols[column].update(stats)
    return _profile(**cols)


def test_compare_identical_profiles_is_empty():
    assert compare_profiles(_profile(**BASE), _changed("id"), SCHEMA) == []


def test_compare_reports_a_changed_max_with_the_column_name():
    assert compare_profiles(_profile(**BASE), _changed("id", max=4), SCHEMA) == ["id.max: source 3 vs written 4"]


def test_compare_reports_a_changed_null_count_with_the_column_name():
    assert compare_profiles(_profile(**BASE), _changed("name", nulls=2), SCHEMA) == ["name.nulls: source 1 vs written 2"]


def test_compare_reports_a_changed_row_count():
    written = {**_profile(**BASE), "rows": 4}
    assert compare_profiles(_profile(**BASE), written, SCHEMA) == ["rows: source 3 vs written 4"]


def test_compare_reports_a_missing_column():
    written = _profile(**{k: v for k, v in BASE.items() if k != "name"})
    assert compare_profiles(_profile(**BASE), written, SCHEMA) == ["name: missing from the written profile"]


def test_compare_accepts_float_sums_that_differ_by_summation_order():
    a = 0.1 + 0.2 + 0.3
    b = 0.3 + 0.2 + 0.1
    assert a != b
    assert compare_profiles(_changed("score", sum=a), _changed("score", sum=b), SCHEMA) == []


@pytest.mark.parametrize(
    ("source_sum", "written_sum"),
    [
        pytest.param(0.6, 0.61, id="real-difference"),
        pytest.param(1e6, 1e6 + 1, id="off-by-one-large"),
        pytest.param(0.6, "NaN", id="nan-appeared"),
        pytest.param(0.6, None, id="sum-missing"),
    ],
)
def test_compare_reports_a_real_float_sum_difference(source_sum, written_sum):
    diffs = compare_profiles(_changed("score", sum=source_sum), _changed("score", sum=written_sum), SCHEMA)
    assert diffs == [f"score.sum: source {source_sum!r} vs written {written_sum!r}"]


def test_compare_is_exact_for_integer_sums():
    assert compare_profiles(_changed("id", sum=2**63 + 1), _changed("id", sum=2**63), SCHEMA) == [
        f"id.sum: source {2**63 + 1} vs written {2**63}"
    ]


def test_compare_reports_a_decimal_change_in_the_38th_digit():
    schema = pa.schema([pa.field("d", pa.decimal128(38, 10))])
    source = {"rows": 1, "columns": {"d": {"nulls": 0, "min": None, "max": None, "sum": None}}}
    written = {"rows": 1, "columns": {"d": {"nulls": 0, "min": None, "max": None, "sum": None}}}
    for profile, value in (
        (source, "9999999999999999999999999999.9999999998"),
        (written, "9999999999999999999999999999.9999999999"),
    ):
        acc = ProfileAccumulator(schema)
        acc.update(pa.RecordBatch.from_pydict({"d": pa.array([Decimal(value)], pa.decimal128(38, 10))}, schema=schema))
        profile["columns"] = acc.result()["columns"]
    assert written["columns"]["d"]["max"] == "9999999999999999999999999999.9999999999"
    assert compare_profiles(source, written, schema) == [
        f"d.{stat}: source '9999999999999999999999999999.9999999998' vs written '9999999999999999999999999999.9999999999'"
        for stat in ("max", "min", "sum")
    ]


@pytest.mark.parametrize(
    ("precision", "scale", "rows"),
    [
        pytest.param(21, 1, 5000, id="decimal128-sum-fits-38-digits"),
        pytest.param(34, 0, 9999, id="38-digits-exactly"),
        pytest.param(35, 0, 10000, id="past-38-digits-in-decimal256"),
        pytest.param(38, 2, 3, id="precision-38"),
    ],
)
def test_a_decimal_sum_is_exact_at_the_edge_of_38_digits(precision: int, scale: int, rows: int) -> None:
    # the largest values of the type: n of them need p + len(str(n)) digits; past 38 the sum is
    # taken in decimal256, below it in decimal128 (which would wrap silently past 38 digits)
    exact = decimal.Context(prec=100)  # the default context rounds to 28 digits
    top = Decimal(10**precision - 1).scaleb(-scale, exact)
    t = pa.decimal128(precision, scale)
    schema = pa.schema([pa.field("d", t)])
    acc = ProfileAccumulator(schema)
    for sign in (1, -1):
        acc.update(pa.RecordBatch.from_pydict({"d": pa.array([exact.multiply(sign, top)] * rows, t)}, schema=schema))
    acc.update(pa.RecordBatch.from_pydict({"d": pa.array([top] * rows + [None], t)}, schema=schema))
    assert acc.result()["columns"]["d"]["sum"] == canonical(exact.multiply(top, rows))


_ZONED = """
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
from syncer.formats.stats import parquet_ranges
from syncer.validate.profile import ProfileAccumulator
table = pq.ParquetFile(sys.argv[1]).read()  # (read_table imports pyarrow.dataset, which imports pandas)
acc = ProfileAccumulator(table.schema)
for b in table.to_batches():
    acc.update(b)
footer = parquet_ranges(__import__("pathlib").Path(sys.argv[1]), table.schema.names)
print(json.dumps({"profile": acc.result(), "footer": {k: [str(x) for x in v] for k, v in footer.items()},
                  "pandas": "pandas" in sys.modules}))
"""


def test_zoned_timestamps_are_profiled_without_importing_pandas(tmp_path: Path) -> None:
    # pyarrow's first time-zone conversion (as_py, footer statistics) imports pandas: 0.5-2 s a sync
    import json
    import subprocess
    import sys

    import pyarrow.parquet as pq

    values = [-62135596800 + 2 * 86400, 0, None, 1_600_000_000, 253402300799 - 2 * 86400]  # years 1 and 9999
    cols = {
        f"{unit}_{tz or 'naive'}".replace("/", "_"): pa.array(
            [None if v is None else v * {"s": 1, "ms": 1000, "us": 10**6}[unit] for v in values], pa.int64()
        ).cast(pa.timestamp(unit, tz))
        for unit in ("s", "ms", "us")
        for tz in ("UTC", "America/New_York", None)
    }
    table = pa.table(cols)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=2)
    proc = subprocess.run([sys.executable, "-c", _ZONED, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["pandas"] is False
    want = ProfileAccumulator(table.schema)  # here, pyarrow's own conversion (as_py) is fine
    for name, col in cols.items():
        st = want._cols[table.schema.get_field_index(name)]
        st["min"], st["max"] = pc.min_max(col)["min"].as_py(), pc.min_max(col)["max"].as_py()
        st["nulls"] = col.null_count
    want.rows = table.num_rows
    assert got["profile"] == want.result()
    for name, col in cols.items():  # the footer's instants are pyarrow's own
        mm = pc.min_max(col)
        want_range = [canonical(mm["min"].as_py()), canonical(mm["max"].as_py())]
        assert [canonical(dt.datetime.fromisoformat(x)) for x in got["footer"][name]] == want_range, name


def test_a_big_tables_profile_in_its_split_queries_is_the_arrow_profile_of_its_rows(tmp_path: Path) -> None:
    """Above SMALL_ROWS the source's profile runs as several narrow queries, the min/max of numbers,
    dates and times apart from those of text and booleans (DuckDB answers a query's min/max from
    its segment statistics only when it can answer all of them so); every type of the catalogue
    above, nulls, NaN and infinities, an int64 sum past 2**63: value for value the profile the
    stream path computes from the rows."""
    from syncer.sources.duckdb_sql import SMALL_ROWS, profile_groups

    rows = SMALL_ROWS + 7_001
    path = tmp_path / "big.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(WAREHOUSE_SQL.replace(f"range(1, {ROWS + 1})", f"range(1, {rows + 1})"))
    with DuckDBSource(SourceConfig(kind="duckdb", path=path)) as s:
        schema = s.schema(T)
        source = s.profile(T, schema)
        written = _accumulate(s, T, schema, 50_000)
    assert source["rows"] == written["rows"] == rows
    assert compare_profiles(source, written, schema) == []

    plans = [plan_for(f) for f in schema]
    scanned = frozenset(i for i, f in enumerate(schema) if f.name in ("flag", "name"))
    minmax = [
        {i for _, i, stat in g if stat in ("min", "max") and not plans[i].floating}
        for g in profile_groups(plans, set(), scanned=scanned)
    ]
    numbers, texts = [g for g in minmax if g - scanned], [g for g in minmax if g & scanned]
    assert len(numbers) == len(texts) == 1 and not numbers[0] & scanned and texts[0] == scanned
    together = [g for g in profile_groups(plans, set()) if any(stat == "min" and not plans[i].floating for _, i, stat in g)]
    assert len(together) == 1  # a row filter (a bisection's range): one query for them all


def _catalogue_params() -> list:
    from tests.catalogue import CATALOGUE

    return [pytest.param(e, id=e.name) for e in CATALOGUE]


@pytest.mark.parametrize("entry", _catalogue_params())
def test_a_gathered_profile_is_the_profile_of_every_batch_alone(entry, catalogue_source, monkeypatch) -> None:
    """Small batches are profiled together (a Table of them): for every type of the catalogue, in
    batches of one and two rows, gathered by rows, by bytes, across the end of the table and not at
    all, the profile is the one of each batch profiled alone and the source's own."""
    import syncer.validate.profile as profile_mod

    table = TableConfig(name=entry.table, source=entry.table, primary_key=("k",))
    try:
        schema = catalogue_source.schema(table)
    except Exception as exc:  # refused by the source (UHUGEINT, TIMETZ ...): not the profile's business
        pytest.skip(f"the source refuses it: {exc}")
    source = catalogue_source.profile(table, schema)
    results = {}
    for gather_rows, gather_bytes in ((1, 2**40), (3, 2**40), (2**40, 1), (2**40, 2**40)):
        monkeypatch.setattr(profile_mod, "GATHER_ROWS", gather_rows)
        monkeypatch.setattr(profile_mod, "GATHER_BYTES", gather_bytes)
        for batch_rows in (1, 2):
            acc = ProfileAccumulator(schema)
            for batch in catalogue_source.stream(table, schema, batch_rows=batch_rows):
                acc.update(batch)
                if gather_rows > 1 and gather_bytes > 1:
                    assert acc.rows > 0  # counted at once, profiled later
            results[(gather_rows, gather_bytes, batch_rows)] = acc.result()
    alone = results[(1, 2**40, 1)]
    assert compare_profiles(source, alone, schema) == []
    for how, got in results.items():
        assert compare_profiles(alone, got, schema) == [], how
        assert got["rows"] == source["rows"]


def test_gathered_batches_are_profiled_once_they_hold_enough_rows(monkeypatch) -> None:
    import syncer.validate.profile as profile_mod

    monkeypatch.setattr(profile_mod, "GATHER_ROWS", 10)
    calls: list[int] = []
    acc = ProfileAccumulator(pa.schema([("x", pa.int64())]))
    real = acc._observe
    monkeypatch.setattr(acc, "_observe", lambda b: (calls.append(b.num_rows), real(b)))
    for start in range(0, 25, 4):  # 7 batches of 4 rows (the last 1)
        acc.update(pa.record_batch({"x": list(range(start, min(start + 4, 25)))}))
    assert calls == [12, 12]  # 3 batches a pass; the last one waits for the result
    assert acc.column_range(0) == (0, 24)  # reading a column's state profiles what waits
    assert calls == [12, 12, 1]
    assert acc.result()["columns"]["x"] == {"nulls": 0, "min": 0, "max": 24, "sum": sum(range(25))}
    acc.update(pa.record_batch({"x": list(range(100))}))  # a batch of enough rows alone: at once
    assert calls == [12, 12, 1, 100]
