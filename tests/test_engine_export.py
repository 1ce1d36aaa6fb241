"""The engine export path on DuckDB (syncer/export/engine.py): real COPY, real files, real validation."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import syncer
from syncer import ConfigError, read_table
from syncer._exceptions import ValidationError
from syncer.export.engine import ENCODINGS, _check_encodings
from syncer.volume.layout import Volume
from tests.conftest import write_config

ROWS = 300_000  # enough for two threads to write row groups each (122,880 rows: the storage row group)

BIG = """
[[tables]]
name = "big"
source = "big"
primary_key = ["id"]
not_null = ["s"]
export = "{export}"

[[tables]]
name = "small"
source = "small"
primary_key = ["id"]
export = "{export}"
"""


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        f"""CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s, i * 0.5 AS half, (i % 1000)::DECIMAL(12, 2) AS amount,
        CASE WHEN i % 10 = 0 THEN NULL ELSE i % 97 END AS maybe, DATE '2020-01-01' + (i % 3000)::INTEGER AS day,
        TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_microseconds(i) AS at_tz, TIMESTAMP '2020-01-01' + to_seconds(i) AS at,
        i % 2 = 0 AS even, (i % 7)::TINYINT AS tiny, (i % 5)::FLOAT AS f32, encode(md5(i::VARCHAR)) AS raw,
        md5(i::VARCHAR)::UUID AS token
        FROM range({ROWS}) t(i)"""
    )
    con.execute("CREATE TABLE small AS SELECT i AS id, 'row ' || i AS label FROM range(50) t(i)")
    con.close()
    return path


def config(tmp_path: Path, db: Path, export: str = "engine", tables: str = BIG, extra: str = "") -> syncer.Config:
    return syncer.load_config(write_config(tmp_path / "cfg", db, tables=tables.replace("{export}", export), extra=extra))


def test_the_engine_writes_the_same_table_the_stream_path_does(big_db: Path, tmp_path: Path) -> None:
    eng = config(tmp_path / "e", big_db, "engine")
    stream = config(tmp_path / "s", big_db, "stream")
    r1, r2 = syncer.sync(eng), syncer.sync(stream)
    assert r1.status == "ok" and r2.status == "ok", (r1.error, r2.error)
    m1, m2 = Volume(eng.root).current_manifest(), Volume(stream.root).current_manifest()
    assert m1 is not None and m2 is not None
    e, s = m1.tables["big"], m2.tables["big"]
    assert e.export == "engine" and s.export is None
    assert e.parts is None and e.file == "big.parquet"  # one file, every thread writing it (row groups in no order)
    assert e.rows == e.source_rows == ROWS
    assert e.arrow_schema == s.arrow_schema and e.schema == s.schema
    assert {c.name for c in e.checks} >= {"row_count", "schema", "profile", "sha256", "reopen", "primary_key_unique"}
    assert all(c.ok for c in e.checks), [c for c in e.checks if not c.ok]
    unique = next(c for c in e.checks if c.name == "primary_key_unique")
    assert "strictly increasing" in unique.detail  # proven by one pass over the key column, no scan
    assert e.profile == s.profile  # min/max/nulls/sums agree value for value with the streamed files
    a = read_table("big", root=eng.root, as_arrow=True).sort_by("id")
    b = read_table("big", root=stream.root, as_arrow=True).sort_by("id")
    assert a.schema.equals(b.schema) and a.equals(b)
    assert syncer.verify(eng)["ok"]
    for part in e.files:
        md = pq.ParquetFile(Volume(eng.root).snapshot_dir(m1.id) / part).metadata
        used = {
            enc for g in range(md.num_row_groups) for c in range(md.num_columns) for enc in md.row_group(g).column(c).encodings
        }
        assert used <= ENCODINGS, used  # no DELTA_*: every reader decodes it
        assert not any(md.schema.column(c).max_definition_level == 0 for c in range(md.num_columns))  # all nullable
    assert m1.tables["small"].export == "engine" and m1.tables["small"].parts is None  # one file: <table>.parquet
    assert not list(Volume(eng.root).staging.iterdir())


def test_auto_uses_the_engine_above_the_threshold_only(big_db: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, big_db, "auto", extra="engine_min_rows = 1000\n")
    assert cfg.engine_min_rows == 1000
    report = syncer.sync(cfg)
    man = Volume(cfg.root).current_manifest()
    assert report.status == "ok" and man is not None
    assert man.tables["big"].export == "engine" and man.tables["small"].export is None


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        pytest.param("h", "i::HUGEINT", id="hugeint"),
        pytest.param("e", "(['a', 'b'])[1 + i % 2]::ENUM('a', 'b')", id="enum"),
        pytest.param("tm", "TIME '00:00:00' + to_seconds(i % 100)", id="time"),
        pytest.param("ns", "(TIMESTAMP '2020-01-01' + to_seconds(i))::TIMESTAMP_NS", id="timestamp_ns"),
        pytest.param("ts", "(TIMESTAMP '2020-01-01' + to_seconds(i))::TIMESTAMP_S", id="timestamp_s"),
        pytest.param("l", "[i, i + 1]", id="list"),
    ],
)
def test_types_the_engine_would_change_go_through_the_stream_path(tmp_path: Path, column: str, sql: str) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TYPE IF NOT EXISTS mood AS ENUM ('a', 'b')")
    con.execute(f"CREATE TABLE small AS SELECT i AS id, {sql} AS {column} FROM range(100) t(i)")
    con.close()
    tables = '[[tables]]\nname = "small"\nprimary_key = ["id"]\nexport = "engine"\n'
    cfg = config(tmp_path, db, tables=tables)
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    man = Volume(cfg.root).current_manifest()
    assert man is not None and man.tables["small"].export is None  # streamed: its types are the stream path's


def test_nulls_in_not_null_columns_are_quarantined_through_the_stream_path(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE small AS SELECT i AS id, CASE WHEN i IN (3, 7) THEN NULL ELSE 'x' END AS s FROM range(100) t(i)")
    con.close()
    tables = '[[tables]]\nname = "small"\nprimary_key = ["id"]\nnot_null = ["s"]\nmax_bad_rows = 5\nexport = "engine"\n'
    cfg = config(tmp_path, db, tables=tables)
    report = syncer.sync(cfg)
    t = report.table("small")
    assert t is not None and t.ok and t.quarantined == 2 and t.status == "quarantined"
    man = Volume(cfg.root).current_manifest()
    assert man is not None and man.tables["small"].export is None and man.tables["small"].rows == 98


def test_a_failure_mid_unload_publishes_nothing_and_keeps_the_old_data(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s FROM range({ROWS}) t(i)")
    con.close()
    tables = '[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n'
    cfg = config(tmp_path, db, tables=tables)
    first = syncer.sync(cfg)
    assert first.status == "ok"
    # The same table, now failing part-way through the unload: row 250,000 holds a value DuckDB
    # cannot cast, found only when the COPY reaches it.
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE OR REPLACE VIEW broken AS SELECT id, CASE WHEN id = 250000 THEN (s || 'x')::INTEGER::VARCHAR ELSE s END AS s FROM big"
    )
    con.close()
    cfg2 = config(tmp_path, db, tables=tables.replace("primary_key", 'source = "broken"\nprimary_key'))
    second = syncer.sync(cfg2)
    assert second.status == "failed"
    t = second.table("big")
    assert t is not None and not t.ok and "big" in (t.error or "")
    vol = Volume(cfg.root)
    assert vol.current_id() == first.snapshot_id and syncer.verify(cfg)["ok"]
    assert list(vol.staging.iterdir()) == []


KILL_AFTER_UNLOAD = """
import os, signal, sys
import syncer
from syncer.export import engine

real = engine.unload_table
def unload_then_die(*args, **kwargs):
    written = real(*args, **kwargs)
    print("UNLOADED", written[0], flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
engine.unload_table = unload_then_die
syncer.sync(syncer.load_config(sys.argv[1]), force=True)
"""


def test_a_kill_between_unload_and_publish_leaves_nothing_served_and_the_next_run_sweeps(big_db: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, big_db, "engine")
    first = syncer.sync(cfg)
    assert first.status == "ok"
    assert cfg.path is not None
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_AFTER_UNLOAD), str(cfg.path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    unloaded = Path(proc.stdout.split("UNLOADED ", 1)[1].split()[0])
    assert unloaded.exists() and Volume(cfg.root).staging in unloaded.parents  # the kill left it in staging only
    vol = Volume(cfg.root)
    assert vol.current_id() == first.snapshot_id and syncer.verify(cfg)["ok"]
    again = syncer.sync(cfg, force=True)
    assert again.status == "ok" and not unloaded.exists()
    assert list(vol.staging.iterdir()) == []


def test_delta_encodings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "delta.parquet"
    pq.write_table(
        pa.table({"id": pa.array(range(1000), pa.int64())}),
        path,
        use_dictionary=False,
        column_encoding={"id": "DELTA_BINARY_PACKED"},
    )
    from syncer.config import TableConfig

    with pytest.raises(ValidationError, match=r'DELTA_BINARY_PACKED.*export = "stream"'):
        _check_encodings(TableConfig(name="t", source="t", primary_key=("id",)), path)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        pytest.param('export = "copy"', r"export = 'copy' is not supported; choose one of: stream, engine, auto", id="unknown"),
        pytest.param('export = "engine"\nformat = "csv"', r'export = "engine" writes Parquet only', id="engine-csv"),
    ],
)
def test_bad_export_settings_are_refused_at_load(tmp_path: Path, demo_db: Path, table: str, match: str) -> None:
    tables = f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n{table}\n'
    with pytest.raises(ConfigError, match=match):
        syncer.load_config(write_config(tmp_path, demo_db, tables=tables))


def test_the_stream_path_is_the_default(tmp_path: Path, demo_db: Path) -> None:
    cfg = syncer.load_config(write_config(tmp_path, demo_db))
    assert {t.export for t in cfg.tables} == {"stream"}
    report = syncer.sync(cfg)
    man = Volume(cfg.root).current_manifest()
    assert report.status == "ok" and man is not None and {e.export for e in man.tables.values()} == {None}


# --- Snowflake: the SQL as text, and GET/check/REMOVE against a local folder standing in for the stage


def test_the_snowflake_unload_sql() -> None:
    import datetime as dt

    from syncer.config import TableConfig
    from syncer.sources.snowflake_unload import MAX_FILE_SIZE, unload_sql
    from syncer.validate.profile import JSON_META

    schema = pa.schema(
        [
            pa.field("ID", pa.int64()),
            pa.field("AT", pa.timestamp("ns", "UTC")),
            pa.field("DOC", pa.string(), metadata=JSON_META),
            pa.field("NAME", pa.string()),
        ]
    )
    moment = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
    table = TableConfig(name="orders", source="db.sales.orders", primary_key=("ID",), export="engine")
    pfx, sql = unload_sql(table, schema, moment, "20261201T030000Z-ab12")
    assert pfx == "syncer/20261201T030000Z-ab12/orders/"
    assert sql == (
        'COPY INTO @SYNC_DB.SYNC.SYNCER_UNLOAD/syncer/20261201T030000Z-ab12/orders/ FROM (SELECT "ID", '
        'CONVERT_TIMEZONE(\'UTC\', "AT")::TIMESTAMP_NTZ AS "AT", TO_JSON("DOC"::VARIANT) AS "DOC", "NAME" '
        'FROM "DB"."SALES"."ORDERS" AT (TIMESTAMP => TO_TIMESTAMP_TZ(\'2026-12-01 03:00:00+00:00\'))) '
        "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY) HEADER = TRUE DETAILED_OUTPUT = TRUE "
        f"MAX_FILE_SIZE = {MAX_FILE_SIZE}"
    )
    assert MAX_FILE_SIZE == 268_435_456


def folder_stage(root: Path, rows: int, *, report_rows: int | None = None, report_size: int = 0):  # type: ignore[no-untyped-def]
    from syncer.sources.snowflake_unload import FolderStage, UnloadedFile

    def unload(sql: str, where: Path) -> list[UnloadedFile]:
        out = []
        for i, (lo, hi) in enumerate([(0, rows // 2), (rows // 2, rows)]):
            f = where / f"data_0_0_{i}.snappy.parquet"
            pq.write_table(pa.table({"id": pa.array(range(lo, hi), pa.int64())}), f)
            out.append(UnloadedFile(f"syncer/x/{f.name}", f.stat().st_size + report_size, hi - lo))
        if report_rows is not None:
            out[-1] = UnloadedFile(out[-1].name, out[-1].size, out[-1].rows + report_rows - rows)
        return out

    return FolderStage(root, unload)


def test_get_checks_and_removes_the_prefix(tmp_path: Path) -> None:
    from syncer.sources.snowflake_unload import copy_into_sql, download

    stage = folder_stage(tmp_path / "stage", 1000)
    pfx = "syncer/run-1/t/"
    got = download(stage, copy_into_sql("S", pfx, "SELECT 1"), pfx, tmp_path / "dest", "t", 1000)
    assert sorted(p.name for p in got) == ["data_0_0_0.snappy.parquet", "data_0_0_1.snappy.parquet"]
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in got) == 1000
    assert not (tmp_path / "stage" / pfx).exists(), "the prefix was not removed after the download"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"report_rows": 999}, ValidationError, "the unload wrote 999 rows, count", id="row-count"),
        pytest.param({"report_size": 7}, syncer.SourceError, "sizes differ", id="size"),
    ],
)
def test_a_bad_unload_is_refused_and_its_prefix_removed(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    from syncer.sources.snowflake_unload import copy_into_sql, download

    stage = folder_stage(tmp_path / "stage", 1000, **kwargs)
    pfx = "syncer/run-1/t/"
    with pytest.raises(error, match=match):
        download(stage, copy_into_sql("S", pfx, "SELECT 1"), pfx, tmp_path / "dest", "t", 1000)
    assert not (tmp_path / "stage" / pfx).exists()


def test_prefixes_of_other_runs_are_swept(tmp_path: Path) -> None:
    from syncer.sources.snowflake_unload import sweep

    stage = folder_stage(tmp_path / "stage", 10)
    for run in ("old-1", "old-2", "this"):
        (tmp_path / "stage" / "syncer" / run / "t").mkdir(parents=True)
    (tmp_path / "stage" / "other").mkdir()  # not ours: never touched
    assert sweep(stage, "this") == ["syncer/old-1/", "syncer/old-2/"]
    assert sorted(p.name for p in (tmp_path / "stage" / "syncer").iterdir()) == ["this"]
    assert (tmp_path / "stage" / "other").is_dir()


def test_snowpark_local_testing_streams_an_engine_table() -> None:
    from snowflake.snowpark import Session

    from syncer.config import SourceConfig
    from syncer.sources.snowflake import SnowflakeSource
    from syncer.sources.snowflake_connect import use_session_factory

    session = Session.builder.config("local_testing", True).create()
    try:
        with use_session_factory(lambda: session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
            assert src.supports_unload is False  # COPY INTO runs on a real account only
    finally:
        session.close()


def test_other_readers_read_the_engine_files_as_pyarrow_does(tmp_path: Path) -> None:
    """fastparquet misreads DELTA_* pages (docs/compatibility.md): the engine's files must not need
    them. fastparquet runs in a child process (tests/_cells.py), so a decoder crash fails this test only."""
    import json

    import polars as pl

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        f"""CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s, CASE WHEN i % 10 = 0 THEN NULL ELSE i % 97 END AS maybe,
        DATE '2020-01-01' + (i % 3000)::INTEGER AS day, md5(i::VARCHAR)::UUID AS token FROM range({ROWS}) t(i)"""
    )
    con.close()
    cfg = config(tmp_path, db, tables='[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n')
    assert syncer.sync(cfg).status == "ok"
    man = Volume(cfg.root).current_manifest()
    assert man is not None
    folder = Volume(cfg.root).snapshot_dir(man.id)
    files = [str(folder / f) for f in man.tables["big"].files]
    assert files == [str(folder / "big.parquet")]  # one file, in order
    want = pa.concat_tables([pq.read_table(f) for f in files])
    child = subprocess.run(
        [sys.executable, "-m", "tests._cells", "fastparquet", *files], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr[-2000:]
    got = json.loads(child.stdout)
    for c in ("id", "maybe", "s", "token"):
        i = got["columns"].index(c)
        assert [r[i] for r in got["rows"]] == want[c].to_pylist(), c
    polars = pl.read_parquet(files)
    for c in ("id", "s", "maybe", "day", "token"):  # polars reads text as large_string: compare values
        assert polars[c].to_list() == want[c].to_pylist(), c


def test_a_stage_that_cannot_be_listed_is_not_swept_and_does_not_fail_the_run(tmp_path: Path) -> None:
    from syncer.sources.snowflake_unload import sweep

    class Unlistable:
        def prefixes(self) -> list[str]:
            raise RuntimeError("Stage 'SYNC_DB.SYNC.SYNCER_UNLOAD' does not exist or not authorized.")

        def remove(self, pfx: str) -> None:
            raise AssertionError("nothing may be removed")

    assert sweep(Unlistable(), "run") == []  # type: ignore[arg-type]


def _tamper(kind: str):  # type: ignore[no-untyped-def]
    """A wrapper of engine.unload_table that changes the placed file before it is validated."""
    from syncer.export import engine

    real = engine.unload_table

    def unload_then_tamper(*args, **kwargs):  # type: ignore[no-untyped-def]
        files = real(*args, **kwargs)
        t = pq.read_table(files[0])
        if kind == "value":  # one text value changed: the profile's max differs
            s = t.column("s").to_pylist()
            s[7] = "~ tampered"
            t = t.set_column(t.schema.get_field_index("s"), t.schema.field("s"), pa.array(s, t.schema.field("s").type))
        elif kind == "dropped_row":
            t = t.slice(1)
        elif kind == "duplicate_key":  # the last row's key is the first row's: order broken, sum changed
            ids = t.column("id").to_pylist()
            ids[-1] = ids[0]
            t = t.set_column(0, t.schema.field("id"), pa.array(ids, t.schema.field("id").type))
        pq.write_table(t, files[0], compression="zstd", use_dictionary=True, column_encoding=None)
        return files

    return unload_then_tamper


@pytest.mark.parametrize(
    ("kind", "failed"),
    [
        pytest.param("value", {"profile"}, id="value-changed"),
        pytest.param("dropped_row", {"row_count", "profile"}, id="row-dropped"),
        pytest.param("duplicate_key", {"primary_key_unique", "profile"}, id="duplicate-key"),
    ],
)
def test_a_file_tampered_between_unload_and_validation_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, failed: set[str]
) -> None:
    from syncer.export import engine

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s FROM range(5000) t(i)")
    con.close()
    cfg = config(tmp_path, db, tables='[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n')
    first = syncer.sync(cfg)
    assert first.status == "ok"
    monkeypatch.setattr(engine, "unload_table", _tamper(kind))
    second = syncer.sync(cfg, force=True)
    t = second.table("big")
    assert second.status == "failed" and t is not None and not t.ok
    assert {c.name for c in t.checks if not c.ok} >= failed, t.checks
    if kind == "duplicate_key":
        dup = next(c for c in t.checks if c.name == "primary_key_unique")
        assert "1 duplicate id value(s) covering 2 rows, e.g. (0)" in dup.detail
    vol = Volume(cfg.root)
    assert vol.current_id() == first.snapshot_id and syncer.verify(cfg)["ok"]  # the old data stays, unchanged
    assert list(vol.staging.iterdir()) == []


EDGES = """CREATE TABLE edges AS SELECT i AS id,
    CASE i % 7 WHEN 0 THEN 'nan'::DOUBLE WHEN 1 THEN 'inf'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE WHEN 3 THEN -0.0
        WHEN 4 THEN NULL ELSE i / 3.0 END AS f64,
    CASE WHEN i % 5 = 0 THEN 'nan'::FLOAT ELSE (i * 0.1)::FLOAT END AS f32,
    CASE WHEN i % 3 = 0 THEN NULL ELSE repeat('ü€𝄞', 30) || i::VARCHAR END AS long_text,
    NULL::VARCHAR AS all_null,
    (99999999999999999999999999999999999999 - i)::DECIMAL(38, 0) AS wide,
    (i * 1.25)::DECIMAL(12, 2) AS narrow,
    (9223372036854775807 - i)::BIGINT AS huge_int,
    TIMESTAMPTZ '1970-01-01 00:00:00+00' - to_days(i) AS before_epoch,
    DATE '0001-01-01' + i::INTEGER AS old_day,
    i % 2 = 0 AS flag,
    encode(i::VARCHAR) AS raw
    FROM range(3000) t(i)"""


def test_the_files_profile_has_the_source_profiles_definitions_on_edge_values(tmp_path: Path) -> None:
    """NaN, infinities, -0.0, long multi-byte text, an all-null column, a decimal sum past 38 digits,
    an int64 sum past int64, dates before the epoch: DuckDB's profile of the written files equals the
    source's value for value (floats sums within the tolerance), and the stream path's Arrow profile."""
    from syncer.config import SourceConfig
    from syncer.sources.duckdb import DuckDBSource
    from syncer.validate.files_profile import profile_files
    from syncer.validate.profile import ProfileAccumulator, compare_profiles

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(EDGES)
    con.close()
    cfg = config(tmp_path, db, tables='[[tables]]\nname = "edges"\nprimary_key = ["id"]\nexport = "engine"\n')
    report = syncer.sync(cfg)
    t = report.table("edges")
    assert report.status == "ok" and t is not None and all(c.ok for c in t.checks), t and t.checks
    man = Volume(cfg.root).current_manifest()
    assert man is not None and man.tables["edges"].export == "engine"
    file = Volume(cfg.root).snapshot_dir(man.id) / "edges.parquet"
    src = DuckDBSource(SourceConfig(kind="duckdb", path=db))
    try:
        table = cfg.table("edges")
        schema = src.schema(table)
        source = src.profile(table, schema)
    finally:
        src.close()
    assert source["approx_sum"] == ["wide"]  # the sum past 38 digits: DOUBLE on both sides
    written = profile_files(table, schema, [file], tmp_path / "spill").result()
    arrow = ProfileAccumulator(schema)
    for batch in pq.ParquetFile(file).iter_batches(batch_size=1000):
        arrow.update(batch)
    assert compare_profiles(source, written, schema) == []
    assert compare_profiles(source, arrow.result(), schema) == []
    exact = {k: v for k, v in written["columns"].items() if k not in ("f64", "f32", "wide")}
    assert exact == {k: v for k, v in source["columns"].items() if k in exact}  # not a tolerance: equal
    assert written["columns"]["long_text"]["truncated"] is True and written["columns"]["all_null"]["nulls"] == 3000
    assert written["columns"]["f64"]["nans"] == source["columns"]["f64"]["nans"] > 0


def test_the_files_profile_names_the_table_and_file_when_it_cannot_read_them(tmp_path: Path) -> None:
    from syncer.validate.files_profile import profile_files

    bad = tmp_path / "big.parquet"
    bad.write_bytes(b"PAR1 not a parquet file PAR1")
    table = syncer.load_config(
        write_config(tmp_path / "cfg", tmp_path / "w.duckdb", tables='[[tables]]\nname = "big"\nprimary_key = ["id"]\n')
    ).table("big")
    with pytest.raises(ValidationError, match=r"table 'big': the profile of the unloaded files \(big.parquet\)"):
        profile_files(table, pa.schema([pa.field("id", pa.int64())]), [bad], None)


@pytest.mark.slow
def test_the_engine_benchmark_runs_every_case_and_writes_its_figures(tmp_path: Path) -> None:
    import json

    out = tmp_path / "engine.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "engine.py"),
            "--rows",
            "3000",
            "--repeat",
            "1",
            "--work",
            str(tmp_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1 = a target missed (expected at this size), never a crash
    got = json.loads(out.read_text())
    uuid, plain = got["results"]  # every table reported: with the UUID column and without it
    assert (uuid["table"], plain["table"]) == ("orders", "orders_no_uuid")
    assert uuid["rows"] == plain["rows"] == 3000
    assert set(uuid["samples"]) == {"engine", "stream", "copy", "copy_text"}
    assert set(plain["samples"]) == {"engine", "stream", "copy"}  # no UUID: no text cast to compare with
    assert all(
        s["wall_s"] > 0 and s["cpu_s"] > 0 and s["rss_mib"] > 0 and s["tree_mib"] > 0
        for r in got["results"]
        for xs in r["samples"].values()
        for s in xs
    )
    assert {t["target"] for t in got["targets"]} == {
        f"3,000 rows, {t}: {what}"
        for t in ("orders", "orders_no_uuid")
        for what in ("engine sync ≤ 1.3× DuckDB COPY", "engine peak memory (process tree) ≤ 400 MiB")
    } | {"3,000 rows, orders: engine sync ≤ 1.3× COPY of the published columns (UUID text)"}  # beside the bare one
    assert "| 3,000 | orders | syncer engine |" in proc.stdout and "| 3,000 | orders_no_uuid | syncer engine |" in proc.stdout


def test_the_source_profile_starts_after_the_unload_not_during_it(
    big_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharing DuckDB's bounded memory with the COPY made the COPY up to twice as slow (README)."""
    from syncer.sources.duckdb import DuckDBSource

    events: list[str] = []
    real_unload, real_profile = DuckDBSource.unload, DuckDBSource.profile

    def unload(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("unload start")
        real_unload(self, *args, **kwargs)
        events.append("unload end")

    def profile(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("profile start")
        return real_profile(self, *args, **kwargs)

    monkeypatch.setattr(DuckDBSource, "unload", unload)
    monkeypatch.setattr(DuckDBSource, "profile", profile)
    cfg = config(tmp_path, big_db, "engine", tables=BIG.split('[[tables]]\nname = "small"')[0])
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    assert events == ["unload start", "unload end", "profile start"]


@pytest.mark.parametrize(
    ("rows", "size"),
    [
        pytest.param(131_072, 122_880, id="default-row-group"),
        pytest.param(122_880, 122_880, id="storage-row-group"),
        pytest.param(100_000, 61_440, id="half"),
        pytest.param(30_000, 24_576, id="fifth"),
        pytest.param(1_000, 2_048, id="one-vector"),
    ],
)
def test_the_unload_row_group_divides_duckdbs_storage_row_group(rows: int, size: int) -> None:
    from syncer.sources.duckdb_sql import STORAGE_ROW_GROUP, unload_row_group

    assert unload_row_group(rows) == size
    assert STORAGE_ROW_GROUP % size == 0 and size % 2048 == 0


def _groups_file(path: Path, groups: list[list[int]], *, statistics: bool = True) -> Path:
    schema = pa.schema([pa.field("id", pa.int64())])
    with pq.ParquetWriter(path, schema, write_statistics=statistics) as w:
        for g in groups:
            w.write_table(pa.table({"id": pa.array(g, pa.int64())}))
    return path


@pytest.mark.parametrize(
    ("groups", "statistics", "proven"),
    [
        pytest.param([[20, 21, 22], [0, 1, 2], [10, 11]], True, True, id="groups-out-of-order"),
        pytest.param([[0, 1, 2], [10, 11], [20, 21]], True, True, id="groups-in-order"),
        pytest.param([[0, 5, 9], [3, 4]], True, False, id="ranges-overlap"),
        pytest.param([[20, 21], [0, 21]], True, False, id="duplicate-across-groups"),
        pytest.param([[0, 2, 1]], True, False, id="unordered-inside-a-group"),
        pytest.param([[20, 21], [0, 1]], False, False, id="no-statistics-file-order"),
    ],
)
def test_the_key_pass_proves_uniqueness_over_row_groups_in_key_order(
    tmp_path: Path, groups: list[list[int]], statistics: bool, proven: bool
) -> None:
    """The engine writes its row groups in no particular order (one contiguous run of rows each):
    read in the order of their smallest key, they prove the key unique; overlaps do not. The pass
    profiles the whole column either way (the files profile's query leaves the key out)."""
    from syncer.export.engine import _key_order

    f = _groups_file(tmp_path / "t.parquet", groups, statistics=statistics)
    table = syncer.load_config(
        write_config(tmp_path / "cfg", tmp_path / "w.duckdb", tables='[[tables]]\nname = "t"\nprimary_key = ["id"]\n')
    ).table("t")
    keys, profile = _key_order(pa.schema([pa.field("id", pa.int64())]), table, [f])
    assert keys.proven is proven
    values = [v for g in groups for v in g]
    assert profile is not None and profile.rows == len(values)
    assert profile.result()["columns"]["id"] == {"nulls": 0, "min": min(values), "max": max(values), "sum": sum(values)}


def test_the_unload_writes_without_insertion_order_and_restores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unordered, DuckDB's COPY runs on every thread under the unload's memory limit (ordered it
    ran about one thread's speed); every row group is still one contiguous run of the table's rows
    (the key pass proves the key from them), and the setting is back before anything streams."""
    from syncer.config import SourceConfig
    from syncer.sources.duckdb import DuckDBSource

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s FROM range(1000000) t(i)")
    con.close()
    cfg = config(tmp_path, db, tables='[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n')
    src = DuckDBSource(SourceConfig(kind="duckdb", path=db, threads=2))
    seen: list[Any] = []
    import syncer.sources.duckdb as duckdb_source

    real_copy = duckdb_source.run_copy

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(real_copy(*args, **kwargs))  # the child's answer says what its COPY ran with
        return seen[-1]

    monkeypatch.setattr(duckdb_source, "run_copy", spy)
    try:
        table = cfg.table("big")
        schema = src.schema(table)
        src.unload(table, schema, tmp_path / "out", compression="zstd", row_group_rows=131_072)
        assert [(a["ok"], a["preserve_insertion_order"], a["threads"] >= 2) for a in seen] == [(True, False, True)]
        assert src.con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0] is True
        ids = pa.concat_arrays([b.column(0) for b in src.stream(table, schema, 65_536)])
        assert ids.to_pylist() == list(range(1_000_000))  # the stream after it: the source's order again
    finally:
        src.close()
    md = pq.ParquetFile(tmp_path / "out" / "data_0.parquet").metadata
    for g in range(md.num_row_groups):
        st, n = md.row_group(g).column(0).statistics, md.row_group(g).num_rows
        assert n <= 122_880 and st.max - st.min + 1 == n  # one contiguous run of ids


def test_the_unload_gives_up_early_on_dictionaries_of_many_distinct_values(tmp_path: Path) -> None:
    """A column of unique (or many distinct) values is written PLAIN after the unload's small
    dictionary limit (DuckDB's own lets it fill most of a row group's hash table first: ~13 % of the
    COPY's CPU); a column of few distinct values keeps its dictionary; the table is the same."""
    from syncer.sources.duckdb_sql import UNLOAD_DICTIONARY_LIMIT

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        f"""CREATE TABLE big AS SELECT i AS id, (i % 1000)::BIGINT AS few,
        (i % {2 * UNLOAD_DICTIONARY_LIMIT})::BIGINT AS more, md5(i::VARCHAR)::UUID AS token FROM range(300000) t(i)"""
    )
    con.close()
    cfg = config(tmp_path, db, tables='[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n')
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    man = Volume(cfg.root).current_manifest()
    assert man is not None and man.tables["big"].export == "engine"
    path = cfg.root / "current" / "big.parquet"
    md = pq.ParquetFile(path).metadata
    assert md.num_row_groups >= 2
    for g in range(md.num_row_groups):
        enc = {md.row_group(g).column(j).path_in_schema: md.row_group(g).column(j).encodings for j in range(4)}
        assert "PLAIN_DICTIONARY" in enc["few"], enc  # 1,000 distinct values: a dictionary
        assert "PLAIN_DICTIONARY" not in enc["more"], enc  # 8,192 distinct (DuckDB's default kept a dictionary)
        assert "PLAIN_DICTIONARY" not in enc["token"], enc
    got = read_table("big", root=cfg.root, as_arrow=True).sort_by("id")
    assert got.column("more").to_pylist()[:3] == [0, 1, 2] and got.num_rows == 300_000
    assert got.column("token").type == pa.string()


def test_a_files_profile_column_left_to_the_caller_must_be_filled(tmp_path: Path) -> None:
    """A column the files profile's query leaves out (the key pass profiles it) is never taken for
    "no nulls, no values": the profile refuses to answer until it is filled, then answers with it."""
    from syncer.validate.files_profile import profile_files
    from syncer.validate.profile import ProfileAccumulator

    f = _groups_file(tmp_path / "t.parquet", [[3, 1, 2]])
    schema = pa.schema([pa.field("id", pa.int64())])
    table = syncer.load_config(
        write_config(tmp_path / "cfg", tmp_path / "w.duckdb", tables='[[tables]]\nname = "t"\nprimary_key = ["id"]\n')
    ).table("t")
    prof = profile_files(table, schema, [f], None, elsewhere=frozenset({0}))
    with pytest.raises(RuntimeError, match="never filled"):
        prof.result()
    acc = ProfileAccumulator(schema)
    acc.update(pa.record_batch([pa.array([3, 1, 2], pa.int64())], schema=schema))
    prof.fill(0, acc)
    assert prof.result() == {"rows": 3, "columns": {"id": {"nulls": 0, "min": 1, "max": 3, "sum": 6}}}
