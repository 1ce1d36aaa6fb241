"""Every value of a Parquet export read back exactly by every reader of the volume: pyarrow, polars,
DuckDB and fastparquet (pandas' other Parquet engine), from a single file and from a table in parts.

The tables are exported by the real sync from a DuckDB warehouse built here with edge values
(int64 min/max, 2**53 + 1, -1 in an INTEGER, timestamps at 0001-01-01 and 9999-12-31, DECIMAL(18,4)
extremes, nulls). fastparquet runs in a child process (``tests/_cells.py``): a crash of its decoder
is then a failed test with the child's exit code, not a dead test run.

What fastparquet itself converts (not the file): DECIMAL becomes float64, DATE becomes
datetime64[ns] (dates outside 1677-09-22..2262-04-11 do not fit), and ``pandas.read_parquet(...,
engine="fastparquet")`` turns integer columns holding nulls into float64. Those cells are compared
the way fastparquet documents them; every other cell must be equal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import syncer
from syncer.formats import file_schema, open_writer, parquet_files, read_file, stored_schema
from syncer.volume.layout import Volume
from tests._cells import cell
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

EDGE_DDL = """
CREATE TABLE edge (
    id BIGINT PRIMARY KEY, hash BIGINT NOT NULL, big BIGINT, small INTEGER, grade INTEGER, bucket BIGINT,
    ts TIMESTAMP, ts_s TIMESTAMP_S, ts_ms TIMESTAMP_MS, ts_ns TIMESTAMP_NS, ts_tz TIMESTAMPTZ,
    day DATE, amount DECIMAL(18,4), wide DECIMAL(38,10), label VARCHAR, ratio DOUBLE
);
INSERT INTO edge SELECT
    i + 10,
    (hash(i)::HUGEINT - 9223372036854775808)::BIGINT,
    CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1000003 - 500000000 END,
    CASE WHEN i % 5 = 0 THEN NULL ELSE i - 500 END,
    i % 4,
    CASE i % 3 WHEN 0 THEN -9223372036854775808 WHEN 1 THEN 9223372036854775807 ELSE NULL END,
    TIMESTAMP '2000-01-01' + INTERVAL (i) HOUR + INTERVAL (i) MICROSECOND,
    (TIMESTAMP '1990-01-01' + INTERVAL (i) DAY)::TIMESTAMP_S,
    (TIMESTAMP '2010-06-01' + INTERVAL (i * 7000) MICROSECOND)::TIMESTAMP_MS,
    ('2020-01-01 00:00:00.000000001'::TIMESTAMP_NS + INTERVAL (i) SECOND)::TIMESTAMP_NS,
    TIMESTAMPTZ '2021-03-04 05:06:07+00' + INTERVAL (i) MINUTE,
    DATE '1999-12-31' + i::INTEGER,
    CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 12345.6789)::DECIMAL(18,4) END,
    (i * 1234567.0123456789)::DECIMAL(38,10),
    ['north', 'south', 'east', 'west'][i % 4 + 1],
    i / 8
FROM range(1000) r(i);
INSERT INTO edge VALUES
    (9007199254740993, -9223372036854775808, 9007199254740993, -1, -1, -9223372036854775808,
     TIMESTAMP '0001-01-01 00:00:00', TIMESTAMP_S '0001-01-01 00:00:00', TIMESTAMP_MS '0001-01-01 00:00:00',
     TIMESTAMP_NS '1677-09-22 00:00:00', TIMESTAMPTZ '0001-01-01 00:00:00+00',
     DATE '0001-01-01', -99999999999999.9999, -9999999999999999999999999999.9999999999, 'a', -1.5),
    (2, 9223372036854775807, -9223372036854775808, 2147483647, 2147483647, 9223372036854775807,
     TIMESTAMP '9999-12-31 23:59:59.999999', TIMESTAMP_S '9999-12-31 23:59:59', TIMESTAMP_MS '9999-12-31 23:59:59.999',
     TIMESTAMP_NS '2262-04-11 23:47:16.854775', TIMESTAMPTZ '9999-12-31 23:59:59.999999+00',
     DATE '9999-12-31', 99999999999999.9999, 9999999999999999999999999999.9999999999, 'b', 1e308),
    (3, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (-9223372036854775808, -1, 9223372036854775807, -2147483648, -2147483648, NULL,
     TIMESTAMP '1970-01-01', TIMESTAMP_S '1970-01-01', TIMESTAMP_MS '1970-01-01', TIMESTAMP_NS '1970-01-01',
     TIMESTAMPTZ '1970-01-01 00:00:00+00', DATE '1970-01-01', 0.0001, 0, '', -0.0),
    (9223372036854775807, 1, -1, -1, 0, 0,
     TIMESTAMP '1969-12-31 23:59:59.999999', TIMESTAMP_S '1969-12-31 23:59:59', TIMESTAMP_MS '1969-12-31 23:59:59.999',
     TIMESTAMP_NS '1969-12-31 23:59:59.999999999', TIMESTAMPTZ '1969-12-31 23:59:59.999999+00',
     DATE '1969-12-31', -0.0001, -0.0000000001, 'z', 2.5);
"""

TABLES = """
[[tables]]
name = "edge"
source = "edge"
primary_key = ["id"]
"""

#: 1,005 rows in row groups of 100, two encoders: 11 row groups dealt to 2 parts
PARTED = "row_group_rows = 100\nwriters = 2\n"

#: the edge rows as every reader must give them (cells in tests/_cells.py's form)
SPOT = {
    9007199254740993: {
        "hash": I64_MIN,
        "big": 9007199254740993,
        "small": -1,
        "ts": "0001-01-01T00:00:00",
        "ts_ns": "1677-09-22T00:00:00",
        "day": "0001-01-01",
        "amount": "-99999999999999.9999",
    },
    2: {"hash": I64_MAX, "big": I64_MIN, "small": 2**31 - 1, "ts": "9999-12-31T23:59:59.999999", "amount": "99999999999999.9999"},
    I64_MIN: {"hash": -1, "big": I64_MAX, "small": -(2**31)},
}

DATE_COLUMNS = {"day"}
DECIMAL_COLUMNS = {"amount", "wide"}
NULLABLE_INT_COLUMNS = {"big", "small", "grade", "bucket"}
ZONED_COLUMNS = {"ts_tz"}
#: datetime64[ns] holds these days (fastparquet reads DATE as it)
NS_DAYS = (dt.date(1677, 9, 22), dt.date(2262, 4, 11))


@pytest.fixture(scope="module")
def edge_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "edge.duckdb"
    con = duckdb.connect(str(path))
    con.execute(EDGE_DDL)
    con.close()
    return path


def source_cells(db: Path) -> dict[str, Any]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        table = con.sql("SELECT * FROM edge ORDER BY id").to_arrow_table()
    finally:
        con.close()
    return arrow_cells(table)


def arrow_cells(table: pa.Table) -> dict[str, Any]:
    return {"columns": table.column_names, "rows": [[cell(v) for v in r.values()] for r in table.to_pylist()]}


@pytest.fixture(scope="module", params=[pytest.param("", id="one-file"), pytest.param(PARTED, id="parts")])
def published(request: pytest.FixtureRequest, edge_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The edge table exported by the real sync; the path of its published file (or folder of parts)."""
    folder = tmp_path_factory.mktemp("vol")
    cfg = syncer.load_config(write_config(folder, edge_db, tables=TABLES, extra=request.param))
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    vol = Volume(cfg.root)
    man = vol.current_manifest()
    path = vol.snapshot_dir(man.id) / man.tables["edge"].file
    assert path.is_dir() == bool(request.param)
    return path


def by_id(cells: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out = {}
    for row in cells["rows"]:
        named = dict(zip(cells["columns"], row, strict=True))
        out[named["id"]] = named
    return out


def agree(reader: str, column: str, want: Any, have: Any) -> bool:
    """Equal, or equal as fastparquet documents its conversion of the column."""
    if want == have:
        return True
    if not reader.startswith("fastparquet") or have is None:
        return False
    if want is None:  # pandas' missing value in float64 columns
        return have == "NaN" and (column in DECIMAL_COLUMNS | NULLABLE_INT_COLUMNS or column == "ratio")
    if column in ZONED_COLUMNS:  # the UTC instant, without a zone
        return have + "Z" == want
    if column in DATE_COLUMNS:
        day = dt.date.fromisoformat(want)
        return not NS_DAYS[0] <= day <= NS_DAYS[1] or have == want + "T00:00:00"
    if column in DECIMAL_COLUMNS:  # float64, which cannot hold every 18-digit decimal
        return math.isclose(have, float(decimal.Decimal(want)), rel_tol=1e-15)
    if reader == "fastparquet via pandas" and column in NULLABLE_INT_COLUMNS:  # pandas asks for float64
        return have == float(want)
    return False


def assert_cells(reader: str, got: dict[str, Any], expected: dict[str, Any]) -> None:
    want, have = by_id(expected), by_id(got)
    assert sorted(have) == sorted(want), f"{reader}: other rows than the source's"
    assert set(got["columns"]) == set(expected["columns"]), f"{reader}: columns {got['columns']}"
    wrong = [
        f"id {key} {col}: {have[key][col]!r}, source {value!r}"
        for key, row in want.items()
        for col, value in row.items()
        if not agree(reader, col, value, have[key][col])
    ]
    assert not wrong, f"{reader} reads {len(wrong)} wrong cell(s): " + "; ".join(wrong[:12])
    for key, spot in SPOT.items():
        for col, value in spot.items():
            assert agree(reader, col, value, have[key][col]), f"{reader}: id {key} {col} is {have[key][col]!r}"


def fastparquet_cells(engine: str, files: list[Path]) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tests._cells", engine, *map(str, files)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, f"fastparquet ({engine}) exited with {run.returncode}: {run.stderr[-2000:]}"
    return json.loads(run.stdout)


def test_the_source_holds_the_edge_values(edge_db: Path) -> None:
    assert_cells("source", source_cells(edge_db), source_cells(edge_db))


def test_pyarrow_reads_every_value_exactly(published: Path, edge_db: Path) -> None:
    assert_cells("pyarrow", arrow_cells(pq.read_table(published)), source_cells(edge_db))


def test_polars_reads_every_value_exactly(published: Path, edge_db: Path) -> None:
    frame = pl.read_parquet([str(f) for f in parquet_files(published)])
    assert_cells("polars", arrow_cells(frame.to_arrow()), source_cells(edge_db))


def test_duckdb_reads_every_value_exactly(published: Path, edge_db: Path) -> None:
    files = ", ".join(f"'{f}'" for f in parquet_files(published))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        table = con.sql(f"SELECT * FROM read_parquet([{files}])").to_arrow_table()
    finally:
        con.close()
    assert_cells("duckdb", arrow_cells(table), source_cells(edge_db))


@pytest.mark.parametrize(
    ("engine", "reader"),
    [
        pytest.param("fastparquet", "fastparquet", id="ParquetFile"),
        pytest.param("pandas", "fastparquet via pandas", id="pandas-read_parquet"),
    ],
)
def test_fastparquet_reads_every_value_without_crashing(published: Path, edge_db: Path, engine: str, reader: str) -> None:
    assert_cells(reader, fastparquet_cells(engine, parquet_files(published)), source_cells(edge_db))


def test_read_table_gives_the_exported_arrow_types_and_values_back(published: Path, edge_db: Path) -> None:
    root = published.parents[2]
    table = syncer.read_table("edge", as_arrow=True, root=root)
    con = duckdb.connect(str(edge_db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")  # as the DuckDB source reads
        source = con.sql("SELECT * FROM edge").to_arrow_table()
    finally:
        con.close()
    assert table.schema.equals(source.schema)
    assert table.schema.field("ts_s").type == pa.timestamp("s")
    assert_cells("read_table", arrow_cells(table), source_cells(edge_db))


def test_only_encodings_every_reader_decodes(published: Path) -> None:
    dictionary = set()
    for f in parquet_files(published):
        md = pq.ParquetFile(f).metadata
        for g in range(md.num_row_groups):
            for j in range(md.num_columns):
                col = md.row_group(g).column(j)
                assert set(col.encodings) <= {"PLAIN", "RLE", "RLE_DICTIONARY"}, (col.path_in_schema, col.encodings)
                if col.has_dictionary_page:
                    dictionary.add(col.path_in_schema)
    # few distinct values get a dictionary; keys and hashes do not
    assert {"label", "grade", "bucket"} <= dictionary
    assert not {"id", "hash", "ts"} & dictionary


# --- ENUM and timestamp units through the checks ------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "arrow_type"),
    [
        pytest.param("TIMESTAMP_S", pa.timestamp("s"), id="TIMESTAMP_S"),
        pytest.param("TIMESTAMP_MS", pa.timestamp("ms"), id="TIMESTAMP_MS"),
        pytest.param("TIMESTAMP", pa.timestamp("us"), id="TIMESTAMP"),
        pytest.param("TIMESTAMP_NS", pa.timestamp("ns"), id="TIMESTAMP_NS"),
    ],
)
def test_every_timestamp_unit_passes_the_reopen_check_and_reads_back_exactly(
    tmp_path: Path, ddl: str, arrow_type: pa.DataType
) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE edge (id BIGINT PRIMARY KEY, t {ddl})")
    con.execute(
        "INSERT INTO edge VALUES (1, '1970-01-01 00:00:01'), (2, NULL), (3, '2262-04-11 23:47:16'), (4, '1677-09-22 00:00:00')"
    )
    con.close()
    cfg = syncer.load_config(write_config(tmp_path / "cfg", db, tables=TABLES))
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    checks = {c.name: c for c in report.tables[0].checks}
    assert checks["reopen"].ok and checks["profile"].ok, checks
    table = syncer.read_table("edge", as_arrow=True, root=cfg.root)
    assert table.schema.field("t").type == arrow_type
    assert table.sort_by("id").column("t").to_pylist()[:2] == [dt.datetime(1970, 1, 1, 0, 0, 1), None]


def test_an_enum_column_is_exported_as_a_dictionary_and_its_profile_validates(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    con.execute("CREATE TABLE edge (id BIGINT PRIMARY KEY, m mood)")
    con.execute(
        "INSERT INTO edge SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE ['happy', 'sad', 'ok'][i % 3 + 1] END FROM range(50) r(i)"
    )
    con.close()
    cfg = syncer.load_config(write_config(tmp_path / "cfg", db, tables=TABLES))
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    assert all(c.ok for c in report.tables[0].checks), report.tables[0].checks
    table = syncer.read_table("edge", as_arrow=True, root=cfg.root).sort_by("id")
    assert table.schema.field("m").type == pa.dictionary(pa.uint8(), pa.string())
    assert table.column("m").to_pylist()[:4] == [None, "sad", "ok", "happy"]
    # other readers see the strings
    vol = Volume(cfg.root)
    man = vol.current_manifest()
    path = vol.snapshot_dir(man.id) / man.tables["edge"].file
    assert pl.read_parquet(path).sort("id")["m"].cast(pl.String).to_list()[:4] == [None, "sad", "ok", "happy"]
    assert duckdb.sql(f"SELECT m FROM read_parquet('{path}') ORDER BY id LIMIT 4").fetchall() == [
        (None,),
        ("sad",),
        ("ok",),
        ("happy",),
    ]
    for engine in ("fastparquet", "pandas"):
        assert by_id(fastparquet_cells(engine, [path]))[3]["m"] == "happy"
    assert {"RLE_DICTIONARY"} <= set(pq.ParquetFile(path).metadata.row_group(0).column(1).encodings)


def test_types_parquet_stores_in_another_unit_are_expected_by_the_reopen_check_and_read_back(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("t_s", pa.timestamp("s", "UTC")),
            ("tod", pa.time32("s")),
            ("d64", pa.date64()),
            ("nested", pa.struct([("at", pa.timestamp("s"))])),
            ("many", pa.list_(pa.timestamp("s"))),
        ]
    )
    at = dt.datetime(2026, 12, 1, 10, 0, 1)
    table = pa.table(
        {
            "t_s": [at.replace(tzinfo=dt.UTC), None],
            "tod": [dt.time(23, 59, 59), None],
            "d64": [dt.date(9999, 12, 31), None],
            "nested": [{"at": at}, None],
            "many": [[at, None], []],
        },
        schema=schema,
    )
    path = tmp_path / "t.parquet"
    writer = open_writer("parquet", path, schema)
    writer.write(table.to_batches()[0])
    writer.close()
    assert file_schema("parquet", path).equals(stored_schema("parquet", schema))
    assert stored_schema("parquet", schema).field("t_s").type == pa.timestamp("ms", "UTC")
    back = read_file("parquet", path, schema)
    assert back.schema.equals(schema) and back.equals(table)


def test_an_aborted_writer_whose_file_is_gone_is_left_closed(tmp_path: Path) -> None:
    # abort() after the file's descriptor was lost: pyarrow's close() raises and leaves its writer
    # open, which before made its __del__ raise again at some later garbage collection (in another test).
    schema = pa.schema([("id", pa.int64())])
    path = tmp_path / "t.parquet"
    writer = open_writer("parquet", path, schema, row_group_rows=1)
    writer.write(pa.record_batch([pa.array([1, 2, 3])], schema=schema))
    for _ in range(1000):  # the part's thread encodes the row groups: wait until it has
        if writer._part_rows[0] == 3:
            break
        time.sleep(0.01)
    pw = writer._writers[0]
    assert pw is not None
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split()[3], 8)
            if os.readlink(f"/proc/self/fd/{fd}") == str(path) and flags & 3 != os.O_RDONLY:
                os.close(int(fd))
    writer.abort()
    assert not pw.is_open
