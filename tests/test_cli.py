"""The ``syncer`` command line, end to end: real subprocesses, real DuckDB files, real volumes.

Each test runs ``python -m syncer --config <tmp sync.toml> ...`` and checks what an operator sees:
the exit code, stdout/stderr, and the files on the volume. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.conftest import DEFAULT_TABLES, write_config

COMMANDS = ("demo", "startup", "sync", "status", "snapshots", "rollback", "verify", "repair")
TABLES = ("participants", "courses", "enrollments", "daily_metrics")
# build_demo(rows=3000): participants max(100, rows // 10), courses and daily_metrics at their minimum.
DEMO_3000_COUNTS = {"participants": 300, "courses": 20, "enrollments": 3000, "daily_metrics": 30}

FAILING_TABLE = """
[[tables]]
name = "broken"
source = "nope"
primary_key = ["id"]
"""


def syncer(config: Path | None, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as an operator would; ``config=None`` leaves ``--config`` off."""
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    # Plain log lines on stderr even on a host that looks like SPCS, so stdout stays parseable.
    env["SYNCER_LOG_FORMAT"] = "text"
    cmd = [sys.executable, "-m", "syncer"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def syncer_json(config: Path, *args: str) -> object:
    res = syncer(config, *args, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def ok(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = syncer(config, *args)
    assert res.returncode == 0, f"syncer {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def volume(config_path: Path) -> Path:
    return config_path.parent / "data"  # write_config puts the volume at <folder>/data


def current_id(config_path: Path) -> str:
    return os.readlink(volume(config_path) / "current").rsplit("/", 1)[-1]


def warehouse_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


def assert_one_clean_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- demo --------------------------------------------------------------------------------------------


def test_demo_creates_the_warehouse_and_rerunning_replaces_it(tmp_path: Path) -> None:
    db = tmp_path / "wh" / "warehouse.duckdb"
    db.parent.mkdir()
    cfg = write_config(tmp_path / "cfg", db)

    first = ok(cfg, "demo", "--rows", "3000")

    assert db.is_file()
    assert warehouse_counts(db) == DEMO_3000_COUNTS
    assert str(db) in first.stdout
    for table, n in DEMO_3000_COUNTS.items():
        assert f"{table} {n:,}" in first.stdout

    # Change the warehouse; a re-run must replace it whole with the same deterministic contents.
    con = duckdb.connect(str(db))
    con.execute("delete from enrollments where enrollment_id % 2 = 0")
    con.close()
    inode = db.stat().st_ino

    second = ok(cfg, "demo", "--rows", "3000")

    assert second.stdout == first.stdout
    assert warehouse_counts(db) == DEMO_3000_COUNTS
    assert db.stat().st_ino != inode  # a new file moved into place, not an edit in place
    assert sorted(p.name for p in db.parent.iterdir()) == ["warehouse.duckdb"]  # no temp files left


# --- sync + status -----------------------------------------------------------------------------------


def test_sync_publishes_and_status_json_has_the_documented_shape(config_path: Path, demo_db: Path) -> None:
    ok(config_path, "sync")
    st = syncer_json(config_path, "status")

    assert {"snapshot", "tables", "last_run", "next_run"} <= set(st)
    assert {"id", "created_at"} <= set(st["snapshot"])
    assert st["snapshot"]["id"] == current_id(config_path)
    assert st["snapshot"]["created_at"].endswith("Z")

    counts = warehouse_counts(demo_db)
    assert [t["name"] for t in st["tables"]] == list(TABLES)
    for t in st["tables"]:
        assert {"name", "rows", "exported_at", "age_seconds", "stale", "status"} <= set(t), t
        assert t["stale"] is False
        assert t["status"] == "fresh"
        assert t["rows"] == counts[t["name"]]
        assert t["exported_at"].endswith("Z")
        assert 0 <= t["age_seconds"] < 600

    assert st["last_run"]["status"] == "ok"
    assert st["last_run"]["trigger"] == "cli"
    assert st["last_run"]["snapshot_id"] == st["snapshot"]["id"]

    assert isinstance(st["next_run"], str) and st["next_run"].endswith("Z")
    assert datetime.fromisoformat(st["next_run"]) > datetime.now(UTC)


def test_sync_json_prints_the_run_report(config_path: Path) -> None:
    report = syncer_json(config_path, "sync")

    assert report["status"] == "ok"
    assert report["snapshot_id"] == current_id(config_path)
    assert [t["table"] for t in report["tables"]] == list(TABLES)
    for t in report["tables"]:
        assert t["ok"] is True
        assert isinstance(t["rows_per_s"], int | float) and t["rows_per_s"] > 0, t


def test_sync_with_a_failing_table_publishes_the_others_and_exits_1(tmp_path: Path, demo_db: Path) -> None:
    cfg = write_config(tmp_path / "cfg", demo_db, tables=DEFAULT_TABLES + FAILING_TABLE)

    res = syncer(cfg, "sync")

    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "'broken'" in res.stderr and "nope" in res.stderr
    assert "broken" in res.stdout and "FAILED" in res.stdout

    published = volume(cfg) / "current"
    for table in TABLES:
        assert (published / f"{table}.parquet").is_file()
    assert not (published / "broken.parquet").exists()

    st = syncer_json(cfg, "status")
    by_name = {t["name"]: t for t in st["tables"]}
    assert all(by_name[t]["status"] == "fresh" for t in TABLES)
    assert by_name["broken"]["status"] == "missing"
    assert st["last_run"]["status"] == "partial"


def test_sync_of_one_table_hard_links_the_others_to_the_previous_snapshot(config_path: Path) -> None:
    ok(config_path, "sync")
    first = volume(config_path) / "snapshots" / current_id(config_path)
    ok(config_path, "sync", "participants", "--force")  # --force: the unchanged source is exported again
    second = volume(config_path) / "snapshots" / current_id(config_path)

    assert second != first
    for table in ("courses", "enrollments", "daily_metrics"):
        old, new = (first / f"{table}.parquet").stat(), (second / f"{table}.parquet").stat()
        assert new.st_ino == old.st_ino, table
        assert new.st_nlink >= 2, table
    assert (second / "participants.parquet").stat().st_ino != (first / "participants.parquet").stat().st_ino


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        pytest.param("nosuchtable", None, id="far-no-suggestion"),
        pytest.param("participant", "participants", id="close-suggests"),
    ],
)
def test_sync_of_an_unknown_table_exits_2(config_path: Path, name: str, suggestion: str | None) -> None:
    res = syncer(config_path, "sync", name)

    assert res.returncode == 2
    line = assert_one_clean_error_line(res.stderr)
    assert f"unknown table {name!r}" in line
    if suggestion:
        assert f"did you mean {suggestion!r}" in line
    else:
        assert "did you mean" not in line
    assert not (volume(config_path) / "current").exists()


# --- verify ------------------------------------------------------------------------------------------


def test_verify_passes_then_fails_after_a_published_file_is_tampered_with(config_path: Path) -> None:
    ok(config_path, "sync")
    ok(config_path, "verify")
    assert syncer_json(config_path, "verify")["ok"] is True

    target = volume(config_path) / "current" / "courses.parquet"
    mode = target.stat().st_mode
    target.chmod(0o644)
    with target.open("ab") as f:
        f.write(b"x")
    target.chmod(mode)

    res = syncer(config_path, "verify")

    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "courses" in res.stderr and "courses.parquet" in res.stderr
    report = json.loads(syncer(config_path, "verify", "--json").stdout)
    assert report["ok"] is False
    assert report["tables"]["courses"]["ok"] is False
    assert report["tables"]["participants"]["ok"] is True


# --- snapshots + rollback ------------------------------------------------------------------------------


def test_snapshots_lists_both_and_rollback_moves_current(config_path: Path) -> None:
    ok(config_path, "sync")
    first = current_id(config_path)
    ok(config_path, "sync", "participants")
    second = current_id(config_path)

    snaps = syncer_json(config_path, "snapshots")
    assert [(s["id"], s["current"]) for s in snaps] == [(first, False), (second, True)]

    res = ok(config_path, "rollback")
    assert f"{second} -> {first}" in res.stdout
    assert current_id(config_path) == first
    assert syncer_json(config_path, "status")["snapshot"]["id"] == first

    ok(config_path, "rollback", second)
    assert current_id(config_path) == second
    snaps = syncer_json(config_path, "snapshots")
    assert [(s["id"], s["current"]) for s in snaps] == [(first, False), (second, True)]


def test_rollback_to_an_unknown_snapshot_exits_1_naming_it(config_path: Path) -> None:
    ok(config_path, "sync")
    before = current_id(config_path)

    res = syncer(config_path, "rollback", "nosuch")

    assert res.returncode == 1
    assert "nosuch" in assert_one_clean_error_line(res.stderr)
    assert current_id(config_path) == before


# --- repair + startup ----------------------------------------------------------------------------------


def test_repair_reports_nothing_on_a_healthy_volume_and_restores_a_deleted_current(config_path: Path) -> None:
    ok(config_path, "sync")
    snap = current_id(config_path)

    assert "nothing to repair" in ok(config_path, "repair").stdout

    (volume(config_path) / "current").unlink()
    res = ok(config_path, "repair")

    assert "current was missing" in res.stdout and snap in res.stdout
    assert (volume(config_path) / "current").is_dir()
    assert current_id(config_path) == snap


def test_startup_syncs_an_empty_volume_then_skips_while_fresh(config_path: Path) -> None:
    first = ok(config_path, "startup")
    snap = current_id(config_path)
    assert "startup: synced" in first.stdout
    assert f"serving snapshot {snap}" in first.stdout

    second = ok(config_path, "startup")
    assert "skipped" in second.stdout
    assert f"serving snapshot {snap}" in second.stdout
    assert [p.name for p in (volume(config_path) / "snapshots").iterdir()] == [snap]


# --- config errors and help ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "tables", "key", "suggestion"),
    [
        pytest.param('compresion = "zstd"\n', DEFAULT_TABLES, "compresion", "compression", id="section-key"),
        pytest.param(
            "",
            DEFAULT_TABLES.replace('primary_key = ["course_id"]', 'primary_keys = ["course_id"]'),
            "primary_keys",
            "primary_key",
            id="table-key",
        ),
    ],
)
def test_config_with_a_typo_key_exits_2_naming_the_key(
    tmp_path: Path, demo_db: Path, extra: str, tables: str, key: str, suggestion: str
) -> None:
    cfg = write_config(tmp_path / "cfg", demo_db, tables=tables, extra=extra)

    res = syncer(cfg, "status")

    assert res.returncode == 2
    line = assert_one_clean_error_line(res.stderr)
    assert f"unknown key {key!r}" in line
    assert f"did you mean {suggestion!r}" in line


@pytest.mark.parametrize("explicit", [pytest.param(True, id="--config"), pytest.param(False, id="default-sync.toml")])
def test_missing_config_file_exits_2_with_the_way_out(tmp_path: Path, explicit: bool) -> None:
    missing = tmp_path / "absent.toml"

    res = syncer(missing if explicit else None, "status", cwd=tmp_path)

    assert res.returncode == 2
    line = assert_one_clean_error_line(res.stderr)
    assert ("absent.toml" if explicit else "sync.toml") in line
    assert "not found" in line and "--config" in line and "SYNCER_CONFIG" in line


def test_help_lists_every_command() -> None:
    res = syncer(None, "--help")

    assert res.returncode == 0
    listed = res.stdout.split("Commands:", 1)[1].split()
    for command in COMMANDS:
        assert command in listed, command


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_cli_process_uses_arrows_system_allocator_unless_told_otherwise(preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = "import syncer.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected


# --- one line for every failure, the unexpected ones included ---------------------------------------------


def test_a_volume_root_that_is_a_file_is_one_line_naming_it(config_path: Path) -> None:
    volume(config_path).write_text("not a folder")

    res = syncer(config_path, "sync")

    assert res.returncode == 1
    line = assert_one_clean_error_line(res.stderr)
    assert str(volume(config_path)) in line and "[volume] root" in line


def test_a_config_that_is_not_utf8_exits_2_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.toml"
    cfg.write_bytes(b"\xff\xfe[source]\n")

    res = syncer(cfg, "status")

    assert res.returncode == 2
    line = assert_one_clean_error_line(res.stderr)
    assert str(cfg) in line and "UTF-8" in line


def test_a_corrupt_run_history_is_one_line_naming_it(config_path: Path) -> None:
    ok(config_path, "sync")
    db = volume(config_path) / "syncer.db"
    for leftover in (db.with_name("syncer.db-wal"), db.with_name("syncer.db-shm")):
        leftover.unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)

    # the history is a record, not a gate (issue 13): sync publishes, with one warning line naming it
    res = syncer(config_path, "sync")
    assert res.returncode == 0 and "Traceback" not in res.stdout + res.stderr, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("warning: ")]
    assert str(db) in line and "syncer repair" in line, line

    # status still says what is published (that is on the volume), and warns about the history
    res = syncer(config_path, "status")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert str(db) in res.stdout + res.stderr and "syncer repair" in res.stdout + res.stderr
    assert "fresh" in res.stdout


def test_an_unexpected_error_is_one_line_and_its_traceback_only_with_v(config_path: Path) -> None:
    # A manifest edited by hand (its tables' export times are not times): nothing in the tree expects
    # that, so it reaches the CLI's last-resort catch.
    ok(config_path, "sync")
    snap = volume(config_path) / "snapshots" / current_id(config_path)
    manifest = snap / "manifest.json"
    data = json.loads(manifest.read_text())
    for t in data["tables"].values():
        t["exported_at"] = "yesterday"
    snap.chmod(0o755)
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(data))

    res = syncer(config_path, "status")

    assert res.returncode == 1
    line = assert_one_clean_error_line(res.stderr)
    assert line.startswith("error: ValueError:") and "yesterday" in line and "-v" in line

    verbose = syncer(config_path, "-v", "status")
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and verbose.stderr.strip().splitlines()[-1] == line


def test_ctrl_c_during_a_query_exits_130_with_one_line(tmp_path: Path, demo_db: Path) -> None:
    slow = '[[tables]]\nname = "slow"\nprimary_key = ["i"]\nquery = "select i from range(100000000000) t(i) where md5(i::varchar) = \'x\'"\n'
    cfg = write_config(tmp_path / "cfg", demo_db, tables=slow)
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    env["SYNCER_LOG_FORMAT"] = "text"
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncer", "--config", str(cfg), "sync"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(3)  # well into the table's first query
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in assert_one_clean_error_line(err)
    assert not (volume(cfg) / "current").exists()


# --- display: status, the run summary, repair, progress (issue 15) ---------------------------------


def test_status_json_on_a_config_error_prints_json_with_the_exit_code(tmp_path: Path) -> None:
    res = syncer(tmp_path / "nope.toml", "status", "--json")
    assert res.returncode == 2
    body = json.loads(res.stdout)
    assert "nope.toml not found" in body["error"] and body["exit_code"] == 2


def test_status_prints_the_checks_column_its_help_promises(config_path: Path) -> None:
    assert "failed checks" in ok(config_path, "status", "--help").stdout
    ok(config_path, "sync")
    lines = ok(config_path, "status").stdout.splitlines()
    assert lines[1].split() == ["table", "status", "rows", "age", "fresh?", "checks"]
    assert all(line.split()[-1] == "ok" for line in lines[2:6])


def test_repair_prints_each_change_once(config_path: Path) -> None:
    ok(config_path, "sync")
    snap = current_id(config_path)
    (volume(config_path) / "current").unlink()
    os.symlink("snapshots/20260101T000000Z-dead", volume(config_path) / "current")
    res = ok(config_path, "repair")
    out = res.stdout + res.stderr
    assert out.count(f"now points at {snap}") == 1, out


def test_the_run_summary_lines_up_and_a_carried_over_table_shows_its_published_rows(tmp_path: Path, demo_db: Path) -> None:
    good = write_config(tmp_path / "cfg", demo_db)
    ok(good, "sync")
    published = {n: t["rows"] for n, t in syncer_json(good, "snapshots")[0]["tables"].items()}
    bad = write_config(tmp_path / "cfg", demo_db, tables=DEFAULT_TABLES.replace('source = "courses"', 'source = "nope"'))
    res = syncer(bad, "sync")
    assert res.returncode == 1
    rows = [line for line in res.stdout.splitlines() if line.startswith("  ") and " rows" in line]
    assert len(rows) == 4
    assert len({line.index(" rows") for line in rows}) == 1, "the rows column lines up:\n" + "\n".join(rows)
    (courses,) = [line for line in rows if line.split()[0] == "courses"]
    assert courses.split()[1] == "CARRIED_OVER"
    assert courses.split()[2] == f"{published['courses']:,}", "the rows apps read, not the failed attempt's"


def test_the_run_summary_counts_quarantined_rows(tmp_path: Path, warehouse: Path) -> None:
    from tests.test_engine import unconstrain
    from tests.test_quarantine import with_max_bad_rows

    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id IN (3, 7, 11)")
    cfg = write_config(tmp_path / "cfg", warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 10))
    (line,) = [x for x in ok(cfg, "sync").stdout.splitlines() if x.split()[:1] == ["participants"]]
    assert line.split()[1] == "ok" and line.endswith("3 row(s) quarantined")


def on_a_terminal(*args: str) -> str:
    """Run the CLI with stderr on a pseudo-terminal (progress bars are drawn only there); its output."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # a new pty is 0 columns wide
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"} | {"SYNCER_LOG_FORMAT": "text"}
    proc = subprocess.Popen([sys.executable, "-m", "syncer", *args], stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_sync_on_a_terminal_shows_a_total_bar_weighted_by_rows_and_the_phases(config_path: Path) -> None:
    ok(config_path, "sync")  # the second sync knows every table's rows beforehand
    out = on_a_terminal("--config", str(config_path), "sync", "--force")  # every table exported again
    assert "all tables" in out and "validating…" in out and "publishing…" in out
    for table in TABLES:
        assert table in out


def test_demo_on_a_terminal_shows_its_progress(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg", tmp_path / "demo.duckdb")
    out = on_a_terminal("--config", str(cfg), "demo", "--rows", "3000")
    assert "demo warehouse" in out and "enrollments" in out and "rows" in out
