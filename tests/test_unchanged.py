"""Unchanged tables are not re-exported (syncer/export/unchanged.py, the markers of the sources).

Real DuckDB warehouses and real volumes; the only instrument is a spy on the real
``DuckDBSource.stream`` that counts calls and passes them through.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import syncer
from syncer import History, read_table
from syncer._clock import frozen
from syncer.engine.state import status
from syncer.sources.duckdb import DuckDBSource
from syncer.sources.snowflake_marker import marker_sql, marker_token
from syncer.volume.layout import Volume
from tests.conftest import DEFAULT_TABLES, write_config

T0 = dt.datetime(2025, 12, 1, 3, 0, tzinfo=dt.UTC)
NAMES = ["participants", "courses", "enrollments", "daily_metrics"]


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables the real DuckDB source streamed (each call passes through to it)."""
    calls: list[str] = []
    real = DuckDBSource.stream

    def spy(self: DuckDBSource, table: Any, schema: Any, batch_rows: int) -> Iterator[Any]:
        calls.append(table.name)
        return real(self, table, schema, batch_rows)

    monkeypatch.setattr(DuckDBSource, "stream", spy)
    return calls


def statuses(report: syncer.RunReport) -> dict[str, str]:
    return {t.table: t.status for t in report.tables}


def test_a_second_sync_of_an_unchanged_warehouse_exports_nothing(warehouse: Path, tmp_path: Path, streamed: list[str]) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    with frozen(T0) as clock:
        first = syncer.sync(cfg)
        assert first.status == "ok" and sorted(streamed) == sorted(NAMES)
        streamed.clear()
        clock.advance(hours=20)
        second = syncer.sync(cfg)
        served = read_table("participants", root=cfg.root)
    assert second.status == "ok", second.error
    assert streamed == [], "an unchanged table was streamed from the source"
    assert statuses(second) == dict.fromkeys(NAMES, "unchanged")
    hist = {r["table_name"]: r["status"] for r in History(Volume(cfg.root).db_path).table_results(second.run_id)}
    assert hist == dict.fromkeys(NAMES, "unchanged")
    vol = Volume(cfg.root)
    man = vol.current_manifest()
    assert man is not None and man.id == second.snapshot_id
    for name in NAMES:
        e = man.tables[name]
        assert e.status == "unchanged" and e.exported_in == first.run_id
        assert e.confirmed_at is not None and e.confirmed_at.startswith("2025-12-01T23:00")
        old, new = vol.snapshot_dir(first.run_id) / e.files[0], vol.snapshot_dir(second.run_id) / e.files[0]
        assert os.stat(old).st_ino == os.stat(new).st_ino, "the kept file is not a hard link"
    # one cut: confirmed at the run's moment, not "from an earlier run"
    assert man.consistency is not None and man.consistency.consistent, man.consistency
    assert len(served) == man.tables["participants"].rows


def test_an_unchanged_table_is_fresh_from_its_confirmation(warehouse: Path, tmp_path: Path) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    with frozen(T0) as clock:
        syncer.sync(cfg)
        clock.advance(hours=20)
        syncer.sync(cfg)
        clock.advance(hours=10)  # 30 h after the export, 10 h after the confirmation (SLA 24 h)
        st = status(cfg)
        for t in st.tables:
            assert t.status == "unchanged" and not t.stale and t.age_seconds == pytest.approx(36_000, abs=1)
        assert not st.stale
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no StaleDataWarning
            read_table("courses", root=cfg.root)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            ["UPDATE courses SET title = title || '!' WHERE course_id = (SELECT min(course_id) FROM courses)"], id="update"
        ),
        pytest.param(["CREATE TABLE unrelated AS SELECT 1 AS x"], id="another-table"),
        pytest.param(["ALTER TABLE courses ALTER COLUMN title SET DEFAULT 'untitled'"], id="alter-table"),
        # the same rows in a table dropped and made again: nothing in the data changed, the file did
        pytest.param(
            ["CREATE TABLE keep AS SELECT * FROM courses", "DROP TABLE courses", "ALTER TABLE keep RENAME TO courses"],
            id="dropped-and-recreated",
        ),
        # a write left in a WAL (the writer checkpoints on close; the file's identity moves either way)
        pytest.param(
            ["SET wal_autocheckpoint = '1TB'", "UPDATE courses SET title = upper(title)", "CHECKPOINT"], id="wal-then-checkpoint"
        ),
    ],
)
def test_a_write_anywhere_in_the_warehouse_exports_every_table(
    warehouse: Path, tmp_path: Path, streamed: list[str], change: list[str]
) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    syncer.sync(cfg)
    con = duckdb.connect(str(warehouse))
    for sql in change:
        con.execute(sql)
    con.close()
    streamed.clear()
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    assert sorted(streamed) == sorted(NAMES)  # DuckDB's marker is the file: any write exports all tables
    assert statuses(report) == dict.fromkeys(NAMES, "fresh")


def test_a_changed_table_config_exports_it(warehouse: Path, tmp_path: Path, streamed: list[str]) -> None:
    folder = tmp_path / "cfg"
    syncer.sync(syncer.load_config(write_config(folder, warehouse)))
    tables = DEFAULT_TABLES.replace('not_null = ["title"]', 'not_null = ["title"]\nformat = "csv"')
    streamed.clear()
    report = syncer.sync(syncer.load_config(write_config(folder, warehouse, tables=tables)))
    assert streamed == ["courses"], streamed
    assert statuses(report)["courses"] == "fresh" and statuses(report)["participants"] == "unchanged"


QUERY_AND_VIEW = """
[[tables]]
name = "course_titles"
query = "SELECT course_id, title FROM courses"
primary_key = ["course_id"]

[[tables]]
name = "course_view"
source = "v_courses"
primary_key = ["course_id"]

[[tables]]
name = "courses"
source = "courses"
primary_key = ["course_id"]
"""


def test_query_tables_and_views_are_always_exported(warehouse: Path, tmp_path: Path, streamed: list[str]) -> None:
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE VIEW v_courses AS SELECT * FROM courses")
    con.close()
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=QUERY_AND_VIEW))
    syncer.sync(cfg)
    streamed.clear()
    report = syncer.sync(cfg)
    assert sorted(streamed) == ["course_titles", "course_view"]
    assert statuses(report) == {"course_titles": "fresh", "course_view": "fresh", "courses": "unchanged"}
    man = Volume(cfg.root).current_manifest()
    assert man is not None
    assert man.tables["course_titles"].change_marker is None and man.tables["course_view"].change_marker is None
    assert man.tables["courses"].change_marker is not None


def test_force_exports_every_table(warehouse: Path, tmp_path: Path, streamed: list[str]) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    syncer.sync(cfg)
    streamed.clear()
    report = syncer.sync(cfg, force=True)
    assert sorted(streamed) == sorted(NAMES)
    assert statuses(report) == dict.fromkeys(NAMES, "fresh")


def run_cli(config: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"} | {"SYNCER_LOG_FORMAT": "text"}
    res = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(config), *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_the_cli_force_flag(warehouse: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "cfg", warehouse, tables=QUERY_AND_VIEW.split("[[tables]]", 3)[-1].join(["[[tables]]", ""]))
    run_cli(path, "sync")
    plain = run_cli(path, "sync")
    forced = run_cli(path, "sync", "--force")
    assert [t["status"] for t in plain["tables"]] == ["unchanged"]
    assert [t["status"] for t in forced["tables"]] == ["fresh"]


def test_a_carried_over_table_is_exported_again(warehouse: Path, tmp_path: Path, streamed: list[str]) -> None:
    """A table whose last export failed keeps old files; the next run exports it, whatever the marker."""
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    first = syncer.sync(cfg)
    man_path = Volume(cfg.root).snapshot_dir(first.run_id) / "manifest.json"
    data = json.loads(man_path.read_text())
    data["tables"]["courses"]["status"] = "carried_over"
    os.chmod(man_path, 0o644)
    man_path.write_text(json.dumps(data))
    streamed.clear()
    report = syncer.sync(cfg)
    assert streamed == ["courses"]
    assert statuses(report)["courses"] == "fresh"


# --- Snowflake ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "info", "binds"),
    [
        pytest.param("orders", "INFORMATION_SCHEMA.TABLES", ['"ORDERS"', "ORDERS", None], id="table"),
        pytest.param("sales.orders", "INFORMATION_SCHEMA.TABLES", ['"SALES"."ORDERS"', "ORDERS", "SALES"], id="schema.table"),
        pytest.param(
            "db.sales.orders",
            '"DB".INFORMATION_SCHEMA.TABLES',
            ['"DB"."SALES"."ORDERS"', "ORDERS", "SALES"],
            id="db.schema.table",
        ),
    ],
)
def test_the_snowflake_marker_is_one_metadata_query(source: str, info: str, binds: list[str | None]) -> None:
    sql, params = marker_sql(source)
    assert sql.startswith("SELECT SYSTEM$LAST_CHANGE_COMMIT_TIME(?) AS TOKEN, ")
    assert f"FROM {info} WHERE TABLE_NAME = ? AND TABLE_SCHEMA = COALESCE(?, CURRENT_SCHEMA())" in sql
    assert params == binds
    assert "LAST_ALTERED" not in sql  # moves on background maintenance: not exact for DML


def test_only_a_snowflake_base_table_gets_a_marker() -> None:
    assert marker_token((1661920118648000000, "BASE TABLE")) == "sf:1661920118648000000"
    assert marker_token((1661920118648000000, "VIEW")) is None
    assert marker_token((None, "BASE TABLE")) is None
    assert marker_token((1, None)) is None  # not found in INFORMATION_SCHEMA


def test_snowpark_local_testing_confirms_nothing() -> None:
    """Local testing runs no SQL text, so the marker query cannot run there: every table exports."""
    from snowflake.snowpark import Session

    from syncer.config import SourceConfig, TableConfig
    from syncer.sources.snowflake import SnowflakeSource
    from syncer.sources.snowflake_connect import use_session_factory

    session = Session.builder.config("local_testing", True).create()
    try:
        session.create_dataframe([[1, "a"]], schema=["ID", "NAME"]).write.save_as_table("ORDERS")
        with use_session_factory(lambda: session), SnowflakeSource(SourceConfig(kind="snowflake")) as src:
            assert src.local_testing
            assert src.change_marker(TableConfig(name="orders", source="orders", primary_key=("ID",))) is None
    finally:
        session.close()


# --- attacks on the DuckDB marker: a changed warehouse must never be served as unchanged -----------


_RETITLE = "UPDATE courses SET title = ? WHERE course_id = (SELECT min(course_id) FROM courses)"


def _changed_copy(warehouse: Path, folder: Path) -> Path:
    """A copy of the warehouse with one course title changed. The same update, with a title of the
    same length, goes into the warehouse itself first: both files then have the same size."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "changed.duckdb"
    subprocess.run(["cp", "-p", str(warehouse), str(copy)], check=True)
    for path, title in ((warehouse, "ORIGINL"), (copy, "CHANGED")):
        con = duckdb.connect(str(path))
        con.execute(_RETITLE, [title])
        con.close()
    return copy


def _served_titles(cfg: syncer.Config) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return set(read_table("courses", root=cfg.root)["title"])


def test_a_warehouse_replaced_while_the_sync_opens_it_is_not_called_unchanged(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mv changed.duckdb warehouse.duckdb` racing a sync: the sync reads the file it opened (the old
    inode) while the path names the new one. The marker must describe what was read, so the next
    sync sees the new file as a change; a marker of the new file would keep the old data as
    `unchanged` for ever."""
    import syncer.sources.duckdb as duck_mod

    copy = _changed_copy(warehouse, tmp_path / "other")
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    real = duck_mod.duckdb.connect
    swapped: list[bool] = []

    def connect_then_replace(*args: Any, **kwargs: Any) -> Any:
        con = real(*args, **kwargs)
        if not swapped:  # once: right after the first sync opened the old file
            os.replace(copy, warehouse)
            swapped.append(True)
        return con

    monkeypatch.setattr(duck_mod.duckdb, "connect", connect_then_replace)
    first = syncer.sync(cfg)
    assert first.status == "ok", first.error and swapped
    assert "CHANGED" not in _served_titles(cfg)  # it read the file it had opened
    monkeypatch.setattr(duck_mod.duckdb, "connect", real)
    second = syncer.sync(cfg)
    assert second.status == "ok", second.error
    assert statuses(second)["courses"] == "fresh", "the replaced warehouse was served as unchanged"
    assert "CHANGED" in _served_titles(cfg)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("cp -p", id="cp-p-in-place"),
        pytest.param("mv+touch -r", id="mv-copy-touch-r"),
        pytest.param("rm+cp -p", id="rm-then-cp-p-inode-reused"),
    ],
)
def test_a_warehouse_swapped_for_a_same_size_copy_with_its_mtime_restored_is_exported(
    warehouse: Path, tmp_path: Path, streamed: list[str], how: str
) -> None:
    """Between two syncs the file is replaced by a changed copy of the same size whose mtime is
    put back (real `cp -p`, `touch -r`): the ctime (which no user can set) and the inode give it away."""
    copy = _changed_copy(warehouse, tmp_path / "other")
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    assert syncer.sync(cfg).status == "ok"
    assert "ORIGINL" in _served_titles(cfg)
    before = os.stat(warehouse)
    assert os.stat(copy).st_size == before.st_size
    ref = tmp_path / "ref"
    subprocess.run(["touch", "-r", str(warehouse), str(ref)], check=True)
    if how == "cp -p":
        subprocess.run(["cp", "-p", str(copy), str(warehouse)], check=True)
    elif how == "mv+touch -r":
        subprocess.run(["mv", str(copy), str(warehouse)], check=True)
    else:
        warehouse.unlink()
        subprocess.run(["cp", "-p", str(copy), str(warehouse)], check=True)
    subprocess.run(["touch", "-r", str(ref), str(warehouse)], check=True)
    after = os.stat(warehouse)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    streamed.clear()
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    assert statuses(report)["courses"] == "fresh" and "courses" in streamed
    assert "CHANGED" in _served_titles(cfg)


@pytest.mark.parametrize(
    ("key", "addition"),
    [
        # a new check: every enrollment's participant must be a course id (it is not: orphans)
        pytest.param("references", 'references = { participant_id = "courses.course_id" }', id="a-new-reference-check"),
        pytest.param("export", 'export = "engine"', id="the-export-path"),
    ],
)
def test_a_changed_check_or_export_path_exports_the_table(
    warehouse: Path, tmp_path: Path, streamed: list[str], key: str, addition: str
) -> None:
    """The config fingerprint covers every key that shapes a table's files or its checks: a new
    `references` check is run on a fresh export (and fails it), not waved through as `unchanged`."""
    folder = tmp_path / "cfg"
    assert syncer.sync(syncer.load_config(write_config(folder, warehouse))).status == "ok"
    tables = DEFAULT_TABLES.replace(
        'not_null = ["participant_id", "course_id"]', f'not_null = ["participant_id", "course_id"]\n{addition}'
    )
    assert tables != DEFAULT_TABLES
    cfg = syncer.load_config(write_config(folder, warehouse, tables=tables))
    streamed.clear()
    report = syncer.sync(cfg)
    got = statuses(report)
    assert got["participants"] == "unchanged"
    if key == "references":
        assert got["enrollments"] == "carried_over", got  # exported, and the new check failed it
        assert "references" in (report.error or "") or report.status == "partial"
    else:
        assert got["enrollments"] == "fresh", got
        man = Volume(cfg.root).current_manifest()
        assert man is not None and man.tables["enrollments"].change_marker is not None


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate"])
def test_a_damaged_previous_file_is_exported_again_not_kept_as_unchanged(
    warehouse: Path, tmp_path: Path, streamed: list[str], damage: str
) -> None:
    """A published file changed after its checks (a flipped byte at the same size, a truncation) is
    not hard-linked into the next snapshot as `unchanged`: it fails its sha256, so the table is
    exported again and the new snapshot verifies."""
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse))
    first = syncer.sync(cfg)
    assert first.status == "ok", first.error
    vol = Volume(cfg.root)
    f = vol.snapshot_dir(first.run_id) / "courses.parquet"
    os.chmod(f, 0o644)
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    f.write_bytes(bytes(data))
    os.chmod(f, 0o444)
    assert not syncer.verify(cfg)["ok"]
    streamed.clear()
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    got = statuses(report)
    assert got["courses"] == "fresh" and "courses" in streamed, got
    if damage == "flip-a-byte":  # a truncated file makes the snapshot broken: nothing is kept from it
        assert got["participants"] == "unchanged" and streamed == ["courses"], (got, streamed)
    res = syncer.verify(cfg)
    assert res["ok"], res["problems"]
    assert len(_served_titles(cfg)) > 1
