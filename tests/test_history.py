"""Run history in SQLite (WAL): what a sync records, and that readers and writers never wait on each other."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import syncer
from syncer import History
from syncer._clock import iso, utcnow
from syncer._exceptions import HistoryCorruptError
from syncer.volume.layout import Volume


def _run(run_id: str, **extra: object) -> dict:
    return {
        "id": run_id,
        "trigger": "cli",
        "user": "alice",
        "host": "h",
        "pid": 1,
        "tables_requested": ["courses"],
        "started_at": iso(utcnow()),
        **extra,
    }


@pytest.fixture
def history(tmp_path: Path) -> History:
    h = History(tmp_path / "syncer.db")
    h.start_run(_run("20260101T000000Z-0000"))
    return h


@pytest.fixture
def synced(config: syncer.Config) -> tuple[History, dict]:
    report = syncer.sync(config, trigger="manual", user="alice")
    assert report["status"] == "ok"
    return History(Volume(config.root).db_path), report


def test_the_database_is_in_wal_mode(synced):
    history, _ = synced
    con = sqlite3.connect(history.path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_an_open_read_transaction_does_not_block_writes(history):
    reader = sqlite3.connect(history.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # the read transaction is open now

        writes = {
            "start_run": lambda: history.start_run(_run("20260101T000001Z-0001")),
            "finish_run": lambda: history.finish_run("20260101T000001Z-0001", status="ok", rows=5, steps={"a": 1.0}),
            "event": lambda: history.event("rollback", iso(utcnow()), user="bob", **{"from": "a", "to": "b"}),
            "record_table": lambda: history.record_table(
                "20260101T000001Z-0001",
                {"table": "courses", "status": "fresh", "rows": 5},
                [{"name": "row_count", "ok": True, "detail": "5"}],
            ),
            "record_checks": lambda: history.record_checks("20260101T000001Z-0001", None, [{"name": "time_budget", "ok": True}]),
            "abort_running": lambda: history.abort_running("killed", iso(utcnow())),
        }
        for name, write in writes.items():
            t = time.perf_counter()
            write()
            assert time.perf_counter() - t < 1.0, name

        # The reader still sees its snapshot; the writes are there once it ends its transaction.
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    finally:
        reader.close()
    assert {r["id"]: r["status"] for r in history.runs()} == {"20260101T000000Z-0000": "aborted", "20260101T000001Z-0001": "ok"}


def test_reads_do_not_wait_for_an_open_write_transaction(history):
    writer = sqlite3.connect(history.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE runs SET status = 'ok'")
        t = time.perf_counter()
        runs = history.runs()
        assert time.perf_counter() - t < 1.0
        assert [r["status"] for r in runs] == ["running"]  # uncommitted work is invisible
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert [r["status"] for r in history.runs()] == ["ok"]


def test_a_sync_records_its_run(synced, config):
    history, report = synced
    runs = history.runs()
    assert len(runs) == 1
    run = runs[0]
    assert history.last_run() == run
    assert run["id"] == report["run_id"]
    assert run["snapshot_id"] == report["snapshot_id"]
    assert (run["trigger"], run["user"], run["status"]) == ("manual", "alice", "ok")
    assert (run["host"], run["pid"]) == (socket.gethostname(), os.getpid())
    assert run["tables_requested"] == [t.name for t in config.tables]
    assert run["rows"] == report["rows"] > 0
    assert run["bytes"] == report["bytes"] > 0
    assert run["error"] is None
    assert run["finished_at"] >= run["started_at"]
    assert run["duration_s"] == pytest.approx(report["duration_s"])
    assert run["steps"] == pytest.approx(report["steps"])
    assert set(run["steps"]) >= {"export_validate_s", "publish_s", "retention_s"}


def test_a_sync_records_every_table_result(synced):
    history, report = synced
    results = {r["table_name"]: r for r in history.table_results(report["run_id"])}
    assert set(results) == {t["table"] for t in report["tables"]}
    for t in report["tables"]:
        r = results[t["table"]]
        assert r["run_id"] == report["run_id"]
        assert (r["status"], r["rows"], r["bytes"], r["error"]) == (t["status"], t["rows"], t["bytes"], None)
        for key in ("export_s", "validate_s", "total_s", "rows_per_s"):
            assert r[key] == pytest.approx(t[key]), key
            assert r[key] > 0, key
    # Without a run id: newest runs first, with the run's start time.
    recent = history.table_results()
    assert len(recent) == len(report["tables"])
    assert all(r["started_at"] for r in recent)


def test_a_sync_records_every_check(synced):
    history, report = synced
    checks = history.checks(report["run_id"])
    got = Counter((c["table_name"], c["name"], c["ok"], c["severity"], c["detail"]) for c in checks)
    expected = Counter(
        (t["table"], c["name"], bool(c["ok"]), c.get("severity", "error"), c.get("detail"))
        for t in report["tables"]
        for c in t["checks"]
    )
    budget = report["budget"]
    expected[(None, "time_budget", budget["ok"], budget["severity"], budget["detail"])] += 1
    assert got == expected
    assert all(c["run_id"] == report["run_id"] and isinstance(c["ok"], bool) for c in checks)
    assert {"row_count", "schema", "primary_key_unique", "sha256", "reopen"} <= {c["name"] for c in checks}


def test_a_manual_sync_and_a_rollback_are_events(synced, config):
    history, report = synced
    second = syncer.sync(config)
    syncer.rollback(config, user="bob")
    events = history.events()
    assert [e["kind"] for e in events] == ["rollback", "manual_sync"]  # newest first
    rollback, manual = events
    assert rollback["user"] == "bob"
    assert rollback["detail"] == {"from": second["snapshot_id"], "to": report["snapshot_id"]}
    assert manual["user"] == "alice"
    assert manual["run_id"] == report["run_id"]
    assert manual["detail"] == {"tables": [t.name for t in config.tables]}
    assert [r["trigger"] for r in history.runs()] == ["cli", "manual"]


def test_abort_running_marks_leftover_runs_aborted(history):
    history.start_run(_run("20260101T000001Z-0001"))
    history.finish_run("20260101T000001Z-0001", status="ok")
    at = iso(utcnow())
    assert history.abort_running("the process was killed", at) == 1
    runs = {r["id"]: r for r in history.runs()}
    assert runs["20260101T000000Z-0000"]["status"] == "aborted"
    assert runs["20260101T000000Z-0000"]["error"] == "the process was killed"
    assert runs["20260101T000000Z-0000"]["finished_at"] == at
    assert runs["20260101T000001Z-0001"]["status"] == "ok"
    assert runs["20260101T000001Z-0001"]["error"] is None
    assert history.abort_running("again", at) == 0


def test_a_sync_aborts_a_run_left_running_by_a_killed_process(config):
    vol = Volume(config.root)
    vol.ensure()
    History(vol.db_path).start_run(_run("20260101T000000Z-dead"))
    report = syncer.sync(config)
    runs = {r["id"]: r for r in History(vol.db_path).runs()}
    assert runs["20260101T000000Z-dead"]["status"] == "aborted"
    assert "killed or crashed" in runs["20260101T000000Z-dead"]["error"]
    assert runs[report["run_id"]]["status"] == "ok"


def test_reading_a_volume_without_history_does_not_create_it(tmp_path, config):
    path = tmp_path / "empty" / "syncer.db"
    history = History(path)
    assert history.runs() == []
    assert history.last_run() is None
    assert history.table_results() == []
    assert history.table_results("20260101T000000Z-0000") == []
    assert history.checks("20260101T000000Z-0000") == []
    assert history.events() == []
    assert not path.exists()
    assert not path.parent.exists()

    st = syncer.status(config)
    assert st["last_run"] is None
    assert not Volume(config.root).db_path.exists()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda h: h.record_table("r", {"table": "t", "status": "fresh"}, []), id="record_table"),
        pytest.param(lambda h: h.start_run(_run("r")), id="start_run"),
        pytest.param(lambda h: h.runs(), id="runs"),
        pytest.param(lambda h: h.events(), id="events"),
    ],
)
def test_a_corrupt_database_is_a_history_error_naming_the_file(tmp_path, call):
    path = tmp_path / "syncer.db"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(
        HistoryCorruptError, match=rf"run history {path} cannot be .*`syncer repair` \(it keeps the broken"
    ) as err:
        call(History(path))

    assert isinstance(err.value, syncer.HistoryError) and isinstance(err.value.__cause__, sqlite3.Error)


def test_a_write_that_fails_inside_a_transaction_is_a_history_error(history):
    with pytest.raises(syncer.HistoryError, match="cannot be written"):
        # the run was recorded by the fixture: a second start of the same id breaks the primary key
        history.start_run(_run("20260101T000000Z-0000"))


# --- the history is a record, not a gate (issue 13, items 3, 7, 8, 13) ------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database" * 100)


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _bad_header(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[0:16] = b"not SQLite at al"
    db.write_bytes(bytes(data))


def _a_folder(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "someone's file").write_text("kept")


BREAKAGES = [
    pytest.param(_garbage, id="garbage"),
    pytest.param(_truncated, id="truncated"),
    pytest.param(_bad_header, id="bad-header"),
    pytest.param(_a_folder, id="a-folder-in-its-place"),
]


def _cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(config_path), *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_sync_status_and_repair_go_on_without_a_broken_history(config_path: Path, breakage) -> None:
    cfg = syncer.load_config(config_path)
    assert syncer.sync(cfg)["status"] == "ok"
    db = Volume(cfg.root).db_path
    for side in ("-wal", "-shm"):  # the whole database in the main file, as after a clean close
        db.with_name(db.name + side).unlink(missing_ok=True)
    breakage(db)

    sync = _cli(config_path, "sync")
    assert sync.returncode == 0, sync.stderr
    assert "published snapshot" in sync.stdout and "Traceback" not in sync.stderr
    warnings = [line for line in sync.stderr.splitlines() if "run history" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "syncer repair" in warnings[0], sync.stderr
    served = Volume(cfg.root).current_id()
    assert served is not None and syncer.verify(cfg)["ok"]

    status = _cli(config_path, "status")
    assert status.returncode == 0 and served in status.stdout and "Traceback" not in status.stderr + status.stdout
    assert sum("run history" in line for line in status.stdout.splitlines()) == 1

    repair = _cli(config_path, "repair")
    assert repair.returncode == 0 and "Traceback" not in repair.stderr, repair.stderr
    (aside,) = [p for p in db.parent.glob("syncer.db.broken-*") if not p.name.endswith(("-wal", "-shm"))]  # (+ its -wal/-shm)
    assert "kept it as " + aside.name in repair.stdout
    if aside.is_dir():
        assert (aside / "someone's file").read_text() == "kept"

    again = syncer.sync(cfg)
    assert again["status"] == "ok" and not again["warnings"]
    runs = History(db).runs()
    # the new history misses nothing served: the run that published while it was broken is added
    assert [(r["id"], r["status"], r["snapshot_id"]) for r in runs] == [
        (again["run_id"], "ok", again["snapshot_id"]),
        (served, "ok", served),
    ]
    assert "recorded by a later run" in runs[1]["error"]


@pytest.fixture
def read_only_mount(tmp_path: Path):
    """(writable folder, the same folder mounted read-only): a real read-only volume."""
    src, ro = tmp_path / "rw", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    if subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("this sandbox does not allow bind mounts")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("this sandbox does not allow a read-only remount")
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_status_on_a_read_only_volume_reads_the_history(read_only_mount, demo_db: Path) -> None:
    src, ro = read_only_mount
    from tests.conftest import write_config

    rw_cfg = syncer.load_config(write_config(src / "cfg", demo_db))
    report = syncer.sync(rw_cfg)
    assert report["status"] == "ok"
    # the history as a running app finds it: WAL mode, its -wal and -shm files present or not
    ro_path = ro / "cfg" / "sync.toml"
    with pytest.raises(OSError):
        (ro / "cfg" / "probe").write_text("x")  # control: the volume really is read-only
    st = syncer.status(syncer.load_config(ro_path))
    assert st["last_run"] is not None and st["last_run"]["id"] == report["run_id"], st["warnings"]
    assert not any("run history" in w for w in st["warnings"])
    for side in ("-wal", "-shm"):
        (src / "cfg" / "data" / f"syncer.db{side}").unlink(missing_ok=True)
    st = syncer.status(syncer.load_config(ro_path))
    assert st["last_run"]["id"] == report["run_id"]
    proc = _cli(ro_path, "status")
    assert proc.returncode == 0 and report["run_id"] in proc.stdout, proc.stderr


def test_a_run_left_running_whose_snapshot_is_served_is_closed_as_published(config) -> None:
    first = syncer.sync(config)
    history = History(Volume(config.root).db_path)
    # what a sync that published and then lost its history leaves behind: its row still running
    con = sqlite3.connect(history.path)
    con.execute("UPDATE runs SET status = 'running', snapshot_id = NULL, finished_at = NULL WHERE id = ?", (first["run_id"],))
    con.commit()
    con.close()
    syncer.repair(config)
    (run,) = history.runs()
    assert run["status"] == "ok" and run["snapshot_id"] == first["run_id"], run
    assert "published snapshot" in run["error"]


def test_a_run_left_running_that_never_swapped_current_is_closed_as_aborted(config) -> None:
    syncer.sync(config)
    history = History(Volume(config.root).db_path)
    history.start_run(_run("20990101T000000Z-dead"))
    syncer.sync(config)  # the next run closes it: it holds the lock, so nobody else is running
    runs = {r["id"]: r for r in history.runs()}
    assert runs["20990101T000000Z-dead"]["status"] == "aborted" and runs["20990101T000000Z-dead"]["snapshot_id"] is None


def test_a_sync_whose_every_history_write_fails_is_published_and_recorded_by_the_next(config_path: Path) -> None:
    # issue 13, item 13: the WAL cannot grow (pwrite64 ENOSPC, as on a full volume) for the whole run
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    cfg = syncer.load_config(config_path)
    assert syncer.sync(cfg)["status"] == "ok"
    wal = Volume(cfg.root).db_path.with_name("syncer.db-wal").resolve()
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(wal), "-e", "inject=pwrite64:error=ENOSPC"]
    proc = subprocess.run(
        [*argv, sys.executable, "-m", "syncer", "--config", str(config_path), "sync"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (warning,) = [x for x in proc.stderr.splitlines() if x.startswith("warning: ")]
    assert "database or disk is full" in warning or "No space" in warning, warning
    served = Volume(cfg.root).current_id()
    assert f"published snapshot {served}" in proc.stdout
    assert syncer.sync(cfg)["status"] == "ok"
    runs = {r["id"]: r for r in History(Volume(cfg.root).db_path).runs()}
    assert runs[served]["status"] == "ok" and runs[served]["snapshot_id"] == served
    assert not [r for r in runs.values() if r["status"] == "running"]


# --- a run's writes: one connection for its start, one transaction for its outcome (issue 14) ------------


def _outcome_tables(bad_second: bool) -> list[tuple[dict, list[dict]]]:
    detail: object = {"not": "bindable"} if bad_second else "5"  # sqlite3 cannot bind a dict: a real error
    return [
        ({"table": "a", "status": "fresh", "rows": 5}, [{"name": "row_count", "ok": True, "detail": "5"}]),
        ({"table": "b", "status": "fresh", "rows": 7}, [{"name": "row_count", "ok": True, "detail": detail}]),
    ]


def test_the_outcome_is_recorded_in_one_transaction(history):
    run = _run("20260101T000000Z-0000")
    history.record_outcome(run, _outcome_tables(False), [{"name": "time_budget", "ok": True}], status="ok", rows=12)
    assert history.last_run()["status"] == "ok" and history.last_run()["rows"] == 12
    assert sorted(t["table_name"] for t in history.table_results(run["id"])) == ["a", "b"]
    assert {c["name"] for c in history.checks(run["id"])} == {"row_count", "time_budget"}


def test_an_outcome_that_fails_halfway_leaves_nothing_of_it_and_the_run_running(history):
    run = _run("20260101T000000Z-0000")
    with pytest.raises(syncer.HistoryError, match="cannot be written"):
        history.record_outcome(run, _outcome_tables(True), [], status="ok")
    assert history.last_run()["status"] == "running"  # the start's row is still the truth
    assert history.table_results(run["id"]) == []  # not table a alone
    history.record_outcome(run, _outcome_tables(False), [], status="ok")  # the same History writes again
    assert history.last_run()["status"] == "ok"


def test_an_outcome_adds_the_run_row_when_its_start_never_landed(tmp_path):
    history = History(tmp_path / "syncer.db")
    history.record_outcome(_run("20260101T000000Z-0000"), [], [], status="failed", error="boom")
    assert [(r["status"], r["error"]) for r in history.runs()] == [("failed", "boom")]


def test_writes_inside_held_share_one_connection_and_it_closes_at_the_end(history):
    wal = history.path.with_name(history.path.name + "-wal")
    history.event("rollback", iso(utcnow()))
    assert not wal.exists()  # a connection's close checkpoints the WAL and removes it
    with history.held():
        history.start_run(_run("20260101T000001Z-0001"))
        assert wal.exists()  # still open: no checkpoint, no close, no new open for the next write
        history.event("manual_sync", iso(utcnow()), run_id="20260101T000001Z-0001")
        assert wal.exists()
        assert len(history.runs()) == 2 and len(history.events()) == 2  # readers see the commits
    assert not wal.exists()


def test_a_failed_write_inside_held_drops_the_connection_and_the_next_write_opens_anew(history):
    with history.held():
        with pytest.raises(syncer.HistoryError):
            history.record_checks("r", None, [{"name": "x", "ok": True, "detail": {"not": "bindable"}}])
        history.event("rollback", iso(utcnow()))
    assert [e["kind"] for e in history.events()] == ["rollback"]
