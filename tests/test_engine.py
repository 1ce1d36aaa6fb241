"""The sync engine end to end on a real DuckDB warehouse and real files (syncer/_engine.py, _export.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import History, LockHeldError, load_config
from syncer.volume.layout import Volume
from tests.conftest import DEFAULT_TABLES, DEMO_ROWS

CHECKS = {"row_count", "schema", "primary_key_not_null", "primary_key_unique", "non_empty", "profile", "sha256", "reopen"}


def current_file(cfg: syncer.Config, table: str) -> Path:
    vol = Volume(cfg.root)
    man = vol.current_manifest()
    assert man is not None
    return vol.snapshot_dir(man["id"]) / man["tables"][table]["file"]


def unconstrain(db: Path, table: str, *statements: str) -> None:
    """Recreate ``table`` without its PRIMARY KEY (so bad rows can be inserted), then run statements."""
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE tmp_copy AS SELECT * FROM {table}")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE tmp_copy RENAME TO {table}")
    for s in statements:
        con.execute(s)
    con.close()


def test_full_sync_passes_every_check_and_publishes_every_table(config: syncer.Config, demo_db: Path) -> None:
    report = syncer.sync(config)
    assert report["status"] == "ok", report.get("error")
    man = Volume(config.root).current_manifest()
    assert man is not None and man["id"] == report["snapshot_id"]
    con = duckdb.connect(str(demo_db), read_only=True)
    for t in config.tables:
        entry = man["tables"][t.name]
        names = {c["name"] for c in entry["checks"]}
        assert names >= CHECKS, f"{t.name} misses checks {CHECKS - names}"
        assert all(c["ok"] for c in entry["checks"]), entry["checks"]
        expected = con.execute(f"select count(*) from {t.source}").fetchall()[0][0]
        assert entry["rows"] == entry["source_rows"] == expected
        assert entry["status"] == "fresh"
        assert len(entry["sha256"]) == 64
        assert (Volume(config.root).snapshot_dir(man["id"]) / entry["file"]).stat().st_size == entry["bytes"]
    assert man["tables"]["enrollments"]["rows"] == DEMO_ROWS
    assert man["run_checks"][0]["name"] == "time_budget" and man["run_checks"][0]["ok"]
    assert syncer.verify(config)["ok"]


def test_excluded_column_never_reaches_disk(make_config, demo_db: Path) -> None:
    tables = DEFAULT_TABLES.replace('primary_key = ["participant_id"]', 'primary_key = ["participant_id"]\nformat = "csv"', 1)
    cfg = make_config(tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    path = current_file(cfg, "participants")
    assert path.suffix == ".csv"
    text = path.read_text(encoding="utf-8")
    assert "password_hash" not in text.splitlines()[0]
    one_hash = (
        duckdb.connect(str(demo_db), read_only=True).execute("select password_hash from participants limit 1").fetchall()[0][0]
    )
    assert one_hash not in text
    assert "email" in text.splitlines()[0]


def test_rows_per_step_are_timed_and_recorded_in_history(config: syncer.Config) -> None:
    report = syncer.sync(config, trigger="manual", user="alice")
    hist = History(Volume(config.root).db_path)
    run = hist.last_run()
    assert run["id"] == report["run_id"] and run["status"] == "ok" and run["trigger"] == "manual" and run["user"] == "alice"
    assert run["rows"] == report["rows"] > 0 and run["duration_s"] > 0
    results = {r["table_name"]: r for r in hist.table_results(run["id"])}
    assert set(results) == {t.name for t in config.tables}
    assert all(r["export_s"] > 0 and r["rows_per_s"] > 0 for r in results.values())
    names = {(c["table_name"], c["name"]) for c in hist.checks(run["id"])}
    assert ("enrollments", "profile") in names and (None, "time_budget") in names
    assert hist.events()[0]["kind"] == "manual_sync" and hist.events()[0]["user"] == "alice"


def test_time_budget_overrun_is_a_warning_not_a_failure(make_config) -> None:
    cfg = dataclasses.replace(make_config(), time_budget_seconds=0.0001)
    report = syncer.sync(cfg)
    assert report["status"] == "ok"
    assert report["budget"]["ok"] is False and report["budget"]["severity"] == "warning"
    assert "over budget" in report["budget"]["detail"]


# --- failures keep the old data ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "statements", "check", "message"),
    [
        pytest.param(
            "courses", ["ALTER TABLE courses ADD COLUMN discount DOUBLE"], "schema", "added discount (double)", id="column-added"
        ),
        pytest.param(
            "courses", ["ALTER TABLE courses DROP COLUMN level"], "schema", "removed level (string)", id="column-removed"
        ),
        pytest.param(
            "courses",
            ["ALTER TABLE courses ALTER COLUMN duration_hours TYPE VARCHAR"],
            "schema",
            "retyped duration_hours: double -> string",
            id="column-retyped",
        ),
        pytest.param(
            "participants",
            ["INSERT INTO participants SELECT * FROM participants WHERE participant_id IN (1, 2)"],
            "primary_key_unique",
            "2 duplicate participant_id",
            id="duplicate-key",
        ),
        pytest.param(
            "participants",
            ["UPDATE participants SET participant_id = NULL WHERE participant_id = 3"],
            "primary_key_not_null",
            "participant_id has 1",
            id="null-key",
        ),
        pytest.param(
            "participants",
            ["UPDATE participants SET email = NULL WHERE participant_id < 6"],
            "not_null",
            "email has 5",
            id="null-in-not-null-column",
        ),
        pytest.param("daily_metrics", ["DELETE FROM daily_metrics"], "non_empty", "allow_empty = true", id="empty-table"),
    ],
)
def test_failed_check_keeps_previous_file_published(make_config, warehouse: Path, table, statements, check, message) -> None:
    cfg = make_config(db=warehouse)
    first = syncer.sync(cfg)
    assert first["status"] == "ok"
    old = current_file(cfg, table)
    old_ino, old_sha = old.stat().st_ino, Volume(cfg.root).current_manifest()["tables"][table]["sha256"]

    unconstrain(warehouse, table, *statements)
    report = syncer.sync(cfg)

    assert report["status"] == "partial"
    tr = next(t for t in report["tables"] if t["table"] == table)
    assert tr["ok"] is False and tr["status"] == "carried_over"
    failed = {c["name"]: c["detail"] for c in tr["checks"] if not c["ok"]}
    assert check in failed and message in failed[check], failed
    # current moved to a new snapshot, but the failed table is the very same file as before
    man = Volume(cfg.root).current_manifest()
    assert man["id"] == report["snapshot_id"] != first["snapshot_id"]
    entry = man["tables"][table]
    assert entry["status"] == "carried_over" and entry["sha256"] == old_sha and check in entry["error"]
    assert current_file(cfg, table).stat().st_ino == old_ino
    assert syncer.verify(cfg)["ok"]
    # the other tables were re-exported fresh
    assert all(man["tables"][t.name]["status"] == "fresh" for t in cfg.tables if t.name != table)
    st = syncer.status(cfg)
    assert any("kept its previous data" in w for w in st["warnings"])


def test_schema_change_accepted_by_operator_becomes_the_new_contract(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse)
    syncer.sync(cfg)
    unconstrain(warehouse, "courses", "ALTER TABLE courses ADD COLUMN discount DOUBLE")
    assert syncer.sync(cfg, ["courses"])["status"] == "failed"
    report = syncer.sync(cfg, ["courses"], accept_schema_change=True)
    assert report["status"] == "ok"
    schema_check = next(c for c in report["tables"][0]["checks"] if c["name"] == "schema")
    assert "accepted" in schema_check["detail"]
    assert syncer.sync(cfg, ["courses"])["status"] == "ok"  # the new contract holds


def test_empty_table_passes_when_allowed(make_config, warehouse: Path) -> None:
    tables = DEFAULT_TABLES.replace('primary_key = ["metric_date"]', 'primary_key = ["metric_date"]\nallow_empty = true')
    cfg = make_config(db=warehouse, tables=tables)
    unconstrain(warehouse, "daily_metrics", "DELETE FROM daily_metrics")
    report = syncer.sync(cfg)
    assert report["status"] == "ok"
    assert syncer.read_table("daily_metrics", config=cfg).empty


def test_all_tables_failing_publishes_nothing(make_config, tmp_path: Path) -> None:
    cfg = make_config(db=tmp_path / "missing.duckdb")
    report = syncer.sync(cfg)
    assert report["status"] == "failed" and report["snapshot_id"] is None
    assert "syncer demo" in report["error"]
    assert Volume(cfg.root).current_id() is None
    assert list(Volume(cfg.root).staging.iterdir()) == []
    assert History(Volume(cfg.root).db_path).last_run()["status"] == "failed"


def test_missing_source_table_fails_only_that_table(make_config) -> None:
    cfg = make_config(tables=DEFAULT_TABLES + '\n[[tables]]\nname = "ghost"\nsource = "no_such_table"\nprimary_key = ["id"]\n')
    report = syncer.sync(cfg)
    assert report["status"] == "partial"
    ghost = next(t for t in report["tables"] if t["table"] == "ghost")
    assert "no_such_table" in ghost["error"] and "not found" in ghost["error"]
    assert "ghost" not in Volume(cfg.root).current_manifest()["tables"]
    assert syncer.status(cfg)["tables"][-1] | {"age_seconds": None} == {
        "name": "ghost",
        "rows": None,
        "exported_at": None,
        "age_seconds": None,
        "stale": True,
        "status": "missing",
        "format": "parquet",
        "file": None,
    }


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param('primary_key = ["course_id"]', "primary_key names column 'course_idd'", id="pk-column-missing"),
        pytest.param('not_null = ["title"]', "not_null names column 'titel'", id="not-null-column-missing"),
    ],
)
def test_config_naming_a_column_the_source_lacks_fails_the_table(make_config, patch, message) -> None:
    bad = patch.replace("course_id", "course_idd").replace("title", "titel")
    cfg = make_config(tables=DEFAULT_TABLES.replace(patch, bad))
    report = syncer.sync(cfg)
    courses = next(t for t in report["tables"] if t["table"] == "courses")
    assert message in courses["error"] and "did you mean" in courses["error"]


def test_excluding_a_misspelled_column_fails_instead_of_leaking_it(make_config) -> None:
    cfg = make_config(tables=DEFAULT_TABLES.replace('"password_hash"', '"password_hsh"'))
    report = syncer.sync(cfg)
    p = next(t for t in report["tables"] if t["table"] == "participants")
    assert not p["ok"] and "did you mean 'password_hash'" in p["error"]


def test_query_table_is_exported_like_a_table(make_config) -> None:
    tables = textwrap.dedent("""
        [[tables]]
        name = "completed-by-course"
        query = "select course_id, count(*) as completions, avg(score) as avg_score from enrollments where status = 'completed' group by course_id"
        primary_key = ["course_id"]
        format = "arrow"
    """)
    cfg = make_config(tables=tables)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    df = syncer.read_table("completed-by-course", config=cfg)
    assert df["completions"].sum() > 0 and df["course_id"].is_unique


# --- crash leftovers, partial syncs, rollback, retention ---------------------------------------------


def test_exception_mid_export_leaves_current_untouched(config: syncer.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    first = syncer.sync(config)
    from syncer.sources import duckdb as _duckdb

    real = _duckdb.DuckDBSource.stream

    def broken(self, table, schema, batch_rows):
        for i, b in enumerate(real(self, table, schema, batch_rows)):
            if table.name == "enrollments" and i == 2:
                raise RuntimeError("disk on fire")
            yield b

    monkeypatch.setattr(_duckdb.DuckDBSource, "stream", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        syncer.sync(config, force=True)  # force: the unchanged warehouse would not be read again
    vol = Volume(config.root)
    assert vol.current_id() == first["snapshot_id"]
    assert syncer.verify(config)["ok"]
    assert [p.name for p in vol.staging.iterdir()] == []
    assert History(vol.db_path).last_run()["status"] == "failed"


def test_killed_sync_leaves_leftovers_that_the_next_run_sweeps(config_path: Path, tmp_path: Path) -> None:
    cfg = load_config(config_path)
    first = syncer.sync(cfg)
    script = textwrap.dedent(f"""
        import os, signal, syncer
        from syncer.sources import duckdb as _duckdb
        real = _duckdb.DuckDBSource.stream
        def dying(self, table, schema, batch_rows):
            for i, b in enumerate(real(self, table, schema, batch_rows)):
                if table.name == "enrollments" and i == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield b
        _duckdb.DuckDBSource.stream = dying
        syncer.sync(syncer.load_config({str(config_path)!r}), force=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    vol = Volume(cfg.root)
    leftovers = list(vol.staging.iterdir())
    assert leftovers, "the killed run should have left its staging folder"
    assert vol.current_id() == first["snapshot_id"] and syncer.verify(cfg)["ok"]
    assert History(vol.db_path).last_run()["status"] == "running"

    second = syncer.sync(cfg)
    assert second["status"] == "ok"
    assert not any(p.exists() for p in leftovers)
    runs = History(vol.db_path).runs()
    assert [r["status"] for r in runs[:3]] == ["ok", "aborted", "ok"]


def test_partial_sync_hard_links_untouched_tables(config: syncer.Config) -> None:
    first = syncer.sync(config)
    second = syncer.sync(config, ["participants"], force=True)  # force: re-export an unchanged table
    vol = Volume(config.root)
    a, b = vol.snapshot_dir(first["snapshot_id"]), vol.snapshot_dir(second["snapshot_id"])
    for t in ("courses", "enrollments", "daily_metrics"):
        fa, fb = a / f"{t}.parquet", b / f"{t}.parquet"
        assert fa.stat().st_ino == fb.stat().st_ino and fb.stat().st_nlink >= 2
    assert (a / "participants.parquet").stat().st_ino != (b / "participants.parquet").stat().st_ino
    man = vol.current_manifest()
    assert (
        man["tables"]["courses"]["exported_at"] == vol.inspect(first["snapshot_id"]).manifest["tables"]["courses"]["exported_at"]
    )


def test_rollback_returns_to_the_previous_snapshot_and_is_audited(config: syncer.Config) -> None:
    first = syncer.sync(config)
    second = syncer.sync(config, ["courses"])
    res = syncer.rollback(config, user="bob")
    assert res.to_json() == {"from": second["snapshot_id"], "to": first["snapshot_id"]}
    assert Volume(config.root).current_id() == first["snapshot_id"]
    ev = History(Volume(config.root).db_path).events()[0]
    assert ev["kind"] == "rollback" and ev["user"] == "bob" and ev["detail"]["to"] == first["snapshot_id"]
    syncer.rollback(config, second["snapshot_id"])
    assert Volume(config.root).current_id() == second["snapshot_id"]
    with pytest.raises(syncer.NoSnapshotError, match="nosuch"):
        syncer.rollback(config, "nosuch")
    with pytest.raises(syncer.PublishError, match="already current"):
        syncer.rollback(config, second["snapshot_id"])


def test_retention_keeps_retain_snapshots_and_never_the_current_or_its_predecessor(config: syncer.Config) -> None:
    ids = [syncer.sync(config, ["daily_metrics"])["snapshot_id"] for _ in range(4)]
    vol = Volume(config.root)
    assert [i.id for i in vol.list_snapshots()] == ids[-3:]  # retain = 3
    syncer.rollback(config, ids[1])
    new = syncer.sync(config, ["daily_metrics"])["snapshot_id"]
    kept = [i.id for i in vol.list_snapshots()]
    assert new in kept and ids[3] in kept  # the newest three
    assert kept[-1] == new and len(kept) == 3
    syncer.rollback(config, ids[3])
    syncer.sync(config, ["daily_metrics"])
    assert ids[3] in [i.id for i in vol.list_snapshots()]


def test_published_files_and_folders_are_read_only(config: syncer.Config) -> None:
    syncer.sync(config)
    vol = Volume(config.root)
    snap = vol.snapshot_dir(vol.current_id())
    assert oct(snap.stat().st_mode & 0o777) == oct(0o555)
    for f in snap.iterdir():
        assert oct(f.stat().st_mode & 0o777) == oct(0o444), f


def test_second_writer_in_the_same_process_is_refused(config: syncer.Config) -> None:
    import threading

    from syncer.volume.lock import volume_lock

    Volume(config.root).ensure()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with volume_lock(Volume(config.root).lock_path, {"trigger": "schedule", "user": None, "started_at": "now"}):
            held.set()
            release.wait(10)

    th = threading.Thread(target=hold)
    th.start()
    held.wait(5)
    try:
        with pytest.raises(LockHeldError, match="trigger schedule"):
            syncer.sync(config)
    finally:
        release.set()
        th.join()
    assert syncer.sync(config)["status"] == "ok"


# --- startup -------------------------------------------------------------------------------------------


def test_startup_syncs_an_empty_volume_then_skips_while_fresh(config: syncer.Config) -> None:
    first = syncer.startup(config)
    assert first["action"] == "synced" and first["servable"]
    second = syncer.startup(config)
    assert second["action"] == "skipped" and second["snapshot_id"] == first["snapshot_id"]


def test_startup_with_source_down_still_serves_previous_data(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse)
    first = syncer.sync(cfg)
    warehouse.unlink()
    cfg = dataclasses.replace(cfg, skip_startup_if_younger_than_hours=0.0)
    res = syncer.startup(cfg)
    assert res["servable"] and res["snapshot_id"] == first["snapshot_id"]
    assert res["run"]["status"] == "failed"


def test_status_json_shape(config: syncer.Config) -> None:
    syncer.sync(config)
    st = json.loads(json.dumps(syncer.status(config).to_json()))
    assert set(st) >= {"snapshot", "tables", "last_run", "next_run"}
    assert set(st["snapshot"]) >= {"id", "created_at"}
    for t in st["tables"]:
        assert set(t) >= {"name", "rows", "exported_at", "age_seconds", "stale", "status"}
        assert t["status"] == "fresh" and t["stale"] is False
    assert st["next_run"].endswith("Z")


def test_status_on_an_empty_volume_says_nothing_is_published(config: syncer.Config) -> None:
    st = syncer.status(config)
    assert st["snapshot"] is None and st["last_run"] is None
    assert all(t["status"] == "missing" for t in st["tables"])
    assert "run `syncer sync`" in st["warnings"][0]
    assert not os.path.exists(Volume(config.root).db_path)


def test_each_table_says_which_run_exported_it(config: syncer.Config) -> None:
    first = syncer.sync(config)
    second = syncer.sync(config, ["courses"], force=True)  # force: re-export an unchanged table
    tables = {t["name"]: t for t in syncer.status(config)["tables"]}
    assert tables["courses"]["exported_in"] == second["snapshot_id"]
    assert tables["participants"]["exported_in"] == first["snapshot_id"]


def test_next_run_reads_weekday_numbers_the_way_cron_does(make_config) -> None:
    import datetime as dt

    cfg = dataclasses.replace(make_config(), cron="0 3 * * 1", timezone="UTC")  # Mondays at 03:00
    nxt = dt.datetime.fromisoformat(syncer.next_run(cfg).replace("Z", "+00:00"))
    assert nxt.weekday() == 0 and (nxt.hour, nxt.minute) == (3, 0)
    sunday = dataclasses.replace(cfg, cron="30 1 * * 7")
    assert dt.datetime.fromisoformat(syncer.next_run(sunday).replace("Z", "+00:00")).weekday() == 6


def test_a_run_history_broken_after_publishing_is_a_warning_and_the_snapshot_stays_published(config) -> None:
    db = Path(config.root) / "syncer.db"
    last = config.tables[-1].name

    def break_history_at_the_end(event: dict) -> None:
        # After the last table is exported and before the run is recorded: a real, corrupt file.
        if event.get("event") == "table_done" and event.get("table") == last:
            for leftover in (db.with_name("syncer.db-wal"), db.with_name("syncer.db-shm")):
                leftover.unlink(missing_ok=True)
            db.write_bytes(b"not a database any more" * 200)

    report = syncer.sync(config, progress=break_history_at_the_end)

    assert report.status == "ok" and report.snapshot_id is not None
    assert Volume(config.root).current_id() == report.snapshot_id
    assert syncer.verify(config).ok
    assert len(report.warnings) == 1 and "run history could not record run" in report.warnings[0]
    assert str(db) in report.warnings[0]
