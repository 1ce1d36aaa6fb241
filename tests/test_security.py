"""Security (issue 5, item 8), on real configs, a real DuckDB warehouse, real files and a real unprivileged user.

* Table names that could escape the volume (``..``, ``/``, ``\\``, NUL, ...) and source identifiers
  that could smuggle SQL are refused when the config is loaded, before anything touches the volume.
* SQL identifiers are always quoted: a column named ``x"; DROP TABLE t; --`` (as key, not-null and
  plain column) and tables/columns named after SQL keywords export exactly, and the source is intact.
* Secrets stay in the warehouse: the values of an excluded column never reach stdout, stderr (even
  at -v, text or JSON logs), error messages, the manifest, the run history or any file on the volume.
* Published files are read-only: modes 0444/0555 everywhere, and an unprivileged user cannot write.
* ``verify`` catches tampering: changed bytes, extra files, links, edited manifests, loosened modes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import ConfigError, SnapshotFallbackWarning, load_config, read_table
from syncer.volume.layout import MANIFEST, Volume, remove_tree
from tests.conftest import DEFAULT_TABLES, write_config

# --- names that could escape the volume, identifiers that could smuggle SQL ---------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("..", id="dot-dot"),
        pytest.param("../../etc/cron.d/x", id="relative-escape"),
        pytest.param("/etc/passwd", id="absolute-path"),
        pytest.param("a/b", id="slash"),
        pytest.param("a\\\\b", id="backslash"),
        pytest.param("..\\\\..\\\\x", id="windows-escape"),
        pytest.param("a\\u0000b", id="nul"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("name\\n", id="trailing-newline"),
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="too-long"),
    ],
)
def test_a_table_name_that_could_escape_the_volume_is_refused_at_load(tmp_path, demo_db, name):
    tables = f'[[tables]]\nname = "{name}"\nsource = "courses"\nprimary_key = ["course_id"]\n'
    path = write_config(tmp_path / "cfg", demo_db, tables=tables)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "is not allowed" in message or "has no name" in message, message
    assert not (tmp_path / "cfg" / "data").exists()  # refused before anything touched the volume


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        pytest.param("source", "courses; DROP TABLE courses", "not a valid table identifier", id="source-statement"),
        pytest.param("source", 'courses\\" --', "not a valid table identifier", id="source-quote"),
        pytest.param("source", "a.b.c.d", "not a valid table identifier", id="source-four-parts"),
        pytest.param("query", "select 1 as id; drop table courses", "must be one statement", id="query-two-statements"),
        pytest.param("query", "drop table courses", "must be a single SELECT", id="query-not-a-select"),
    ],
)
def test_a_source_that_could_smuggle_sql_is_refused_at_load(tmp_path, demo_db, key, value, words):
    tables = f'[[tables]]\nname = "courses"\n{key} = "{value}"\nprimary_key = ["id"]\n'
    with pytest.raises(ConfigError, match=words):
        load_config(write_config(tmp_path / "cfg", demo_db, tables=tables))


def test_syncing_an_unknown_table_name_is_refused_before_the_volume_is_touched(config):
    with pytest.raises(ConfigError, match=r"unknown table '\.\./x'"):
        syncer.sync(config, ["../x"])
    assert not config.root.exists()


# --- identifiers are always quoted ----------------------------------------------------------------------

EVIL = 'x"; DROP TABLE t; --'


def test_a_column_named_like_sql_injection_exports_and_the_source_is_intact(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    q = '"' + EVIL.replace('"', '""') + '"'
    con = duckdb.connect(str(db))
    con.execute(f'CREATE TABLE t ({q} INTEGER, "select" VARCHAR, "from" DOUBLE, "where" DATE)')
    con.execute("INSERT INTO t SELECT i, 'v' || i, i / 2, DATE '2024-01-01' + i::INTEGER FROM range(50) r(i)")
    con.execute('CREATE TABLE "order" ("group" INTEGER)')
    con.execute('INSERT INTO "order" VALUES (1), (2)')
    con.close()
    pk = json.dumps([EVIL])
    tables = (
        f'[[tables]]\nname = "t"\nsource = "t"\nprimary_key = {pk}\nnot_null = {pk}\nformat = "csv"\n'
        '[[tables]]\nname = "order"\nsource = "order"\nprimary_key = ["group"]\n'
    )
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=tables))

    report = syncer.sync(cfg)

    assert report["status"] == "ok", report.get("error")
    got = read_table("t", config=cfg, as_arrow=True)
    assert got.schema.names == [EVIL, "select", "from", "where"]
    assert sorted(got.column(EVIL).to_pylist()) == list(range(50))
    assert read_table("order", config=cfg, as_arrow=True).column("group").to_pylist() == [1, 2]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(50,)]
        assert {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()} == {"t", "order"}
    finally:
        con.close()


# --- secrets never leave the warehouse --------------------------------------------------------------------


def _secrets(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT password_hash FROM participants ORDER BY participant_id LIMIT 50").fetchall()]
    finally:
        con.close()


def test_excluded_secret_values_appear_in_no_log_error_manifest_history_or_file(tmp_path, warehouse):
    # `plain` publishes participants as CSV: plain text, so a leaked value would show in the file's bytes
    # (Parquet compresses it away). `dupes` fails on duplicate keys, so error messages with example values
    # are produced too.
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE dupes AS SELECT * FROM participants")
    con.execute("INSERT INTO dupes SELECT * FROM participants WHERE participant_id <= 3")
    con.close()
    secret_tables = """
[[tables]]
name = "plain"
source = "participants"
format = "csv"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]

[[tables]]
name = "dupes"
format = "jsonl"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]
"""
    tables = DEFAULT_TABLES + secret_tables
    cfg_path = write_config(tmp_path / "cfg", warehouse, tables=tables)
    secrets = _secrets(warehouse)
    assert len(secrets) == 50 and all(len(s) >= 16 for s in secrets)
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    env["SNOWFLAKE_PASSWORD"] = "hunter2-do-not-log-me"  # a credential in the environment stays there too
    runs = [
        ("text", ["-v", "sync"]),
        ("json", ["-v", "sync", "--json"]),
        ("json", ["-v", "status", "--json"]),
        ("text", ["-v", "verify", "--json"]),
        ("text", ["-v", "snapshots", "--json"]),
    ]
    outputs = []
    for log_format, args in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "syncer", "--config", str(cfg_path), *args],
            capture_output=True,
            text=True,
            env={**env, "SYNCER_LOG_FORMAT": log_format},
            timeout=120,
        )
        outputs += [proc.stdout, proc.stderr]
    everything = "\n".join(outputs)
    assert "dupes" in everything and "duplicate participant_id" in everything  # the failure really was reported
    root = load_config(cfg_path).root
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "plain.csv" for p in files)
    assert any(p.name == "syncer.db" for p in files) and any(p.name == MANIFEST for p in files)
    blobs = {str(p): p.read_bytes() for p in files}
    for secret in [*secrets, "hunter2-do-not-log-me"]:
        assert secret not in everything
        for where, data in blobs.items():
            assert secret.encode() not in data, f"{secret} found in {where}"
    for manifest in root.glob("snapshots/*/" + MANIFEST):
        tables = json.loads(manifest.read_text(encoding="utf-8"))["tables"]
        for name in ("participants", "plain", "dupes"):
            if name in tables:
                assert "password_hash" not in json.dumps(tables[name])


# --- published files are read-only ------------------------------------------------------------------------


def test_every_published_file_is_0444_and_every_folder_0555_including_carried_over_ones(make_config, warehouse):
    cfg = make_config(db=warehouse)
    syncer.sync(cfg)
    con = duckdb.connect(str(warehouse))
    con.execute("DROP TABLE courses")  # courses is carried over (hard link) into the next snapshot
    con.close()
    assert syncer.sync(cfg)["status"] == "partial"
    syncer.sync(cfg, ["daily_metrics"])  # the rest hard-linked
    snaps = Volume(cfg.root).list_snapshots()
    assert len(snaps) == 3
    for info in snaps:
        assert os.stat(info.path).st_mode & 0o7777 == 0o555
        for f in info.path.iterdir():
            assert os.lstat(f).st_mode & 0o7777 == 0o444, f


def _nobody() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the unprivileged user 'nobody'")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run as 'nobody'")
    cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*cmd, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot switch to uid 65534 here: {probe.stderr.strip()}")
    return cmd


@pytest.fixture
def public_folder() -> Iterator[Path]:
    """A folder 'nobody' can traverse (pytest's own tmp root is 0700)."""
    _nobody()
    folder = Path(tempfile.mkdtemp(prefix="vds-security-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        remove_tree(folder)


def test_an_unprivileged_user_can_read_but_not_change_published_files(public_folder, demo_db):
    cfg = load_config(write_config(public_folder / "cfg", demo_db))
    syncer.sync(cfg)
    snap = Volume(cfg.root).snapshot_dir(Volume(cfg.root).current_id())
    script = textwrap.dedent(
        """
        import os, sys
        snap = sys.argv[1]
        attempts = {
            "read": lambda: open(os.path.join(snap, "courses.parquet"), "rb").read(4),
            "overwrite": lambda: open(os.path.join(snap, "courses.parquet"), "r+b").write(b"x"),
            "add": lambda: open(os.path.join(snap, "added.parquet"), "xb").close(),
            "delete": lambda: os.unlink(os.path.join(snap, "courses.parquet")),
            "rename": lambda: os.rename(os.path.join(snap, "courses.parquet"), os.path.join(snap, "c.parquet")),
            "chmod": lambda: os.chmod(os.path.join(snap, "courses.parquet"), 0o666),
        }
        for name, attempt in attempts.items():
            try:
                attempt()
                print(name, "allowed")
            except PermissionError:
                print(name, "refused")
        """
    )
    proc = subprocess.run([*_nobody(), sys.executable, "-c", script, str(snap)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == [
        "read allowed",
        "overwrite refused",
        "add refused",
        "delete refused",
        "rename refused",
        "chmod refused",
    ], proc.stdout + proc.stderr
    assert syncer.verify(cfg)["ok"]


# --- verify catches tampering ---------------------------------------------------------------------------------


def _open(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


def _reseal(path: Path) -> None:
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)


def _flip_last_byte(snap: Path) -> None:
    p = snap / "courses.parquet"
    _open(p)
    data = bytearray(p.read_bytes())
    data[-10] ^= 0x20
    p.write_bytes(bytes(data))
    _reseal(p)


def _append(snap: Path) -> None:
    p = snap / "courses.parquet"
    _open(p)
    with open(p, "ab") as fh:
        fh.write(b"\n")
    _reseal(p)


def _add_file(snap: Path) -> None:
    os.chmod(snap, 0o755)
    (snap / "backdoor.parquet").write_bytes(b"PAR1")
    os.chmod(snap / "backdoor.parquet", 0o444)
    os.chmod(snap, 0o555)


def _swap_for_link(snap: Path) -> None:
    p = snap / "courses.parquet"
    os.chmod(snap, 0o755)
    copy = snap.parent.parent / "elsewhere.parquet"
    shutil.copy(p, copy)
    p.unlink()
    os.symlink(copy, p)
    os.chmod(snap, 0o555)


def _manifest_edit(change) -> object:
    def tamper(snap: Path) -> None:
        p = snap / MANIFEST
        data = json.loads(p.read_text(encoding="utf-8"))
        change(data)
        _open(p)
        p.write_text(json.dumps(data), encoding="utf-8")
        _reseal(p)

    return tamper


def _traversal(data: dict) -> None:
    data["tables"]["courses"]["file"] = "../../syncer.db"


def _other_id(data: dict) -> None:
    data["id"] = "20200101T000000Z-beef"


def _loosen(snap: Path) -> None:
    os.chmod(snap / "courses.parquet", 0o666)


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        pytest.param(_flip_last_byte, "sha256 of courses.parquet", id="bytes-changed-same-size"),
        pytest.param(_append, "truncated or replaced", id="bytes-appended"),
        pytest.param(_add_file, "backdoor.parquet is not listed in the manifest", id="file-added"),
        pytest.param(_swap_for_link, "courses.parquet is a symbolic link", id="file-replaced-by-a-link"),
        pytest.param(_manifest_edit(_traversal), "'../../syncer.db' is not a plain file name", id="manifest-path-traversal"),
        pytest.param(_manifest_edit(_other_id), "names snapshot '20200101T000000Z-beef'", id="manifest-id-changed"),
        pytest.param(_loosen, "courses.parquet has mode 666, expected 444", id="mode-loosened"),
    ],
)
def test_verify_catches_tampering_and_the_cli_exits_1(config_path, tamper, words):
    cfg = load_config(config_path)
    syncer.sync(cfg)
    assert syncer.verify(cfg)["ok"]
    snap = Volume(cfg.root).snapshot_dir(Volume(cfg.root).current_id())

    tamper(snap)

    res = syncer.verify(cfg)
    assert res["ok"] is False
    assert any(words in p for p in res["problems"]), res["problems"]
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(config_path), "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_manifest_pointing_outside_its_snapshot_is_never_read(make_config):
    cfg = make_config()
    old = syncer.sync(cfg)["snapshot_id"]
    new = syncer.sync(cfg, ["courses"])["snapshot_id"]
    _manifest_edit(_traversal)(Volume(cfg.root).snapshot_dir(new))
    with pytest.warns(SnapshotFallbackWarning, match="is not a plain file name"):
        df = read_table("courses", config=cfg)
    assert len(df) > 0  # read from the intact snapshot
    with pytest.warns(SnapshotFallbackWarning):
        assert syncer.current_snapshot(config=cfg)["id"] == old


# --- an app user cannot block the writer (issue 13, item 15) -------------------------------------------------

# Run as 'nobody' (an app user who may read the volume): try every way of holding a lock on the volume
# that the first releases allowed, report which worked, and keep holding them until told to stop.
BLOCKER = r"""
import fcntl, os, sys, time
root, ready, release = sys.argv[1:4]
held = []
for name in (".lock", ".writer/lock", ".writer"):
    path = os.path.join(root, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        print(name, "open refused:", exc.strerror, flush=True)
        continue
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
        print(name, "locked", flush=True)
    except OSError as exc:
        print(name, "flock refused:", exc.strerror, flush=True)
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def test_an_app_user_cannot_block_a_sync_by_locking_anything_on_the_volume(public_folder, demo_db):
    cfg = load_config(write_config(public_folder / "cfg", demo_db))
    assert syncer.sync(cfg)["status"] == "ok"
    root = Path(cfg.root)
    (root / ".lock").touch()  # what the first releases left: a 0644 lock file anyone could open
    os.chmod(root / ".lock", 0o644)
    ready, release = public_folder / "ready", public_folder / "release"
    os.chmod(public_folder, 0o777)  # the blocker says it is ready by creating a file here
    blocker = subprocess.Popen(
        [*_nobody(), "/usr/bin/python3", "-c", BLOCKER, str(root), str(ready), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert blocker.poll() is None, blocker.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        report = syncer.sync(cfg)  # must not be refused with "another sync holds the volume lock"
        assert report["status"] == "ok", report.get("error")
        assert syncer.repair(cfg)["skipped"] is None
    finally:
        release.touch()
        out, err = blocker.communicate(timeout=30)
    lines = out.splitlines()
    assert lines[0] == ".lock locked", "control: the old 0644 lock file is open to app users (and no longer used)"
    assert lines[1].startswith(".writer/lock open refused: Permission denied"), out + err
    assert lines[2].startswith(".writer open refused: Permission denied"), out + err
