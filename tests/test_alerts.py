"""Alerts: each change of state sent once through a REAL local HTTP receiver (http.server on a free
port), recoveries once, retries after a receiver error, a hanging receiver never delaying a sync,
a broken alert log never failing one; the Snowflake notification SQL; ``[alerts]`` validation; the
admin app's Alerts page."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import _clock
from syncer.alerts import Alert, AlertStore, flush, notification_sql
from syncer.config.model import SnowflakeNotifyConfig
from tests.conftest import DEFAULT_TABLES, write_config

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Receiver:
    """A real HTTP server: records every POST body; answers with ``codes`` in turn (then 200)."""

    url: str
    bodies: list[dict] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    hang_seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)

    def subjects(self) -> list[tuple[str, str, str]]:
        return [(b["kind"], b["subject"], b["state"]) for b in self.bodies if "subject" in b]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if rec.hang_seconds:
                rec.release.wait(rec.hang_seconds)
            code = rec.codes.pop(0) if rec.codes else 200
            if code == 200:
                rec.bodies.append(body)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        flush(10)
        server.shutdown()
        server.server_close()


def alerts_toml(url: str, *, fmt: str = "json", retries: int = 2, timeout: float = 5, backoff: float = 0.05) -> str:
    return (
        f"[alerts]\nretries = {retries}\ntimeout_seconds = {timeout}\nbackoff_seconds = {backoff}\nexit_deadline_seconds = 5\n"
        f'[[alerts.webhooks]]\nurl = "{url}"\nformat = "{fmt}"\n'
    )


@pytest.fixture
def alerting(tmp_path: Path, warehouse: Path, receiver: Receiver) -> Callable[..., syncer.Config]:
    def make(**kw: object) -> syncer.Config:
        break_codes(warehouse, False)
        toml = alerts_toml(receiver.url, **kw)  # type: ignore[arg-type]
        return syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=TABLES, extra=toml))

    return make


def rows(cfg: syncer.Config) -> list:
    return AlertStore(cfg.root / "syncer.db").recent()


CODES = """
[[tables]]
name = "codes"
query = "select id, cast(code as integer) as code from raw_codes"
primary_key = ["id"]
max_bad_rows = {n}
"""
TABLES = DEFAULT_TABLES + CODES.format(n=0)


def break_codes(db: Path, broken: bool) -> None:
    """``raw_codes`` of 100 rows; broken: one code that is not a number (the export of ``codes`` fails)."""
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE IF NOT EXISTS raw_codes AS SELECT i AS id, (i * 3)::VARCHAR AS code FROM range(100) r(i)")
        con.execute(f"UPDATE raw_codes SET code = '{'x7' if broken else '21'}' WHERE id = 7")


# --- each state change sent once, its recovery once -----------------------------------------------


def test_a_broken_table_alerts_once_and_its_recovery_once(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver
) -> None:
    cfg = alerting()
    assert syncer.sync(cfg).status == "ok"  # a first good state is silent
    break_codes(warehouse, True)
    assert syncer.sync(cfg).status == "partial"
    assert syncer.sync(cfg).status == "partial"  # the same state again: nothing new to say
    assert flush(10)
    assert receiver.subjects() == [("problem", "run", "partial")]
    assert "codes" in receiver.bodies[0]["message"] and receiver.bodies[0]["previous"] == "ok"
    break_codes(warehouse, False)
    assert syncer.sync(cfg).status == "ok"
    assert syncer.sync(cfg).status == "ok"
    assert flush(10)
    assert receiver.subjects() == [("problem", "run", "partial"), ("recovered", "run", "ok")]
    listed = rows(cfg)
    assert [(r.kind, r.subject, r.channel, r.delivered, r.attempts) for r in listed] == [
        ("recovered", "run", "webhook-1", True, 1),
        ("problem", "run", "webhook-1", True, 1),
    ]


def test_stale_tables_alert_once_each_and_recover(alerting: Callable[..., syncer.Config], receiver: Receiver) -> None:
    cfg = alerting()
    with _clock.frozen(dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)) as clock:
        assert syncer.sync(cfg).status == "ok"
        clock.advance(hours=25)
        assert syncer.sync(cfg, ["courses"]).status == "ok"  # the other three are carried over, 25 h old
        assert syncer.sync(cfg, ["courses"]).status == "ok"
        assert flush(10)
        stale = sorted(s for k, s, st in receiver.subjects() if k == "problem" and st == "stale")
        assert stale == [f"table:{t}:freshness" for t in ("codes", "daily_metrics", "enrollments", "participants")]
        assert len(receiver.bodies) == 4
        assert syncer.sync(cfg).status == "ok"
        assert flush(10)
    recovered = sorted(s for k, s, st in receiver.subjects() if k == "recovered" and st == "fresh")
    assert recovered == stale and len(receiver.bodies) == 8


def test_a_table_exported_in_the_future_alerts(alerting: Callable[..., syncer.Config], receiver: Receiver) -> None:
    cfg = alerting()
    with _clock.frozen(dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)) as clock:
        assert syncer.sync(cfg).status == "ok"
        clock.advance(hours=-2)  # the clock jumped back: every table looks exported 2 h ahead
        syncer.verify(cfg)  # verify looks at nothing but the files; freshness is watched by runs and startup
        names = [t.name for t in cfg.tables]
        # a run of one table: the others are kept as they were, exported "in the future"
        syncer.sync(cfg, names[:1])
        assert flush(10)
    future = [s for k, s, st in receiver.subjects() if st == "future"]
    assert sorted(future) == sorted(f"table:{n}:freshness" for n in names[1:])


def test_quarantined_rows_alert(tmp_path: Path, warehouse: Path, receiver: Receiver) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=CODES.format(n=5), extra=alerts_toml(receiver.url)))
    break_codes(warehouse, True)
    assert syncer.sync(cfg).status == "ok"
    assert flush(10)
    assert receiver.subjects() == [("problem", "table:codes:quarantine", "quarantined")]
    assert "1 row(s) quarantined" in receiver.bodies[0]["message"]


def test_verify_mismatch_alerts_once_and_recovers(alerting: Callable[..., syncer.Config], receiver: Receiver) -> None:
    cfg = alerting()
    report = syncer.sync(cfg)
    assert syncer.verify(cfg).ok
    target = cfg.root / "snapshots" / str(report.snapshot_id) / "codes.parquet"
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    with open(target, "ab") as f:
        f.write(b"tampered")
    assert not syncer.verify(cfg).ok
    assert not syncer.verify(cfg).ok
    assert syncer.sync(cfg).status == "ok"  # a new snapshot: verify is happy again
    assert syncer.verify(cfg).ok
    assert flush(10)
    assert [(k, s) for k, s, _ in receiver.subjects()] == [("problem", "verify"), ("recovered", "verify")]


def test_startup_that_cannot_serve_alerts_once_and_recovers(tmp_path: Path, demo_db: Path, receiver: Receiver) -> None:
    db = tmp_path / "later.duckdb"
    cfg = syncer.load_config(write_config(tmp_path / "cfg", db, extra=alerts_toml(receiver.url)))
    assert not syncer.startup(cfg).servable
    assert not syncer.startup(cfg).servable
    assert flush(10)
    # nothing is served: one alert for the run and one for startup, not one more per table
    assert receiver.subjects() == [("problem", "run", "failed"), ("problem", "startup", "unservable")]
    shutil.copy(demo_db, db)
    assert syncer.startup(cfg).servable
    assert flush(10)
    assert receiver.subjects()[2:] == [("recovered", "run", "ok"), ("recovered", "startup", "servable")]


# --- delivery ----------------------------------------------------------------------------------------


def test_a_receiver_error_is_retried(alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver) -> None:
    cfg = alerting(retries=2)
    syncer.sync(cfg)
    break_codes(warehouse, True)
    receiver.codes[:] = [500]
    syncer.sync(cfg)
    assert flush(10)
    assert receiver.subjects() == [("problem", "run", "partial")]
    (row,) = rows(cfg)
    assert (row.delivered, row.attempts, row.error) == (True, 2, None)


def test_a_receiver_that_keeps_failing_is_given_up_with_the_reason(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver
) -> None:
    cfg = alerting(retries=1)
    syncer.sync(cfg)
    break_codes(warehouse, True)
    receiver.codes[:] = [503, 503, 503]
    syncer.sync(cfg)
    assert flush(10)
    (row,) = rows(cfg)
    assert row.delivered is False and row.attempts == 2
    assert (
        row.error
        == f"gave up after 2 attempt(s): webhook http://127.0.0.1:{receiver.url.split(':')[2].split('/')[0]} answered HTTP 503 Service Unavailable"
    )


def test_a_hanging_receiver_never_blocks_a_sync(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver
) -> None:
    cfg = alerting(retries=0, timeout=1)
    syncer.sync(cfg)
    break_codes(warehouse, True)
    receiver.hang_seconds = 30
    t0 = time.monotonic()
    assert syncer.sync(cfg).status == "partial"
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed  # the receiver hangs 30 s; the sync does not wait for it
    (row,) = rows(cfg)
    assert row.delivered is None  # still pending while the sync has already returned
    assert flush(10)
    (row,) = rows(cfg)
    assert row.delivered is False and "timed out" in (row.error or "")


def test_slack_format_posts_text_only(alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver) -> None:
    cfg = alerting(fmt="slack")
    syncer.sync(cfg)
    break_codes(warehouse, True)
    syncer.sync(cfg)
    assert flush(10)
    (body,) = receiver.bodies
    assert list(body) == ["text"] and body["text"].startswith("[Volume Data Sync] PROBLEM run: partial — ")


def test_a_broken_alert_log_is_one_warning_and_the_sync_goes_on(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    cfg = alerting()
    syncer.sync(cfg)
    con = sqlite3.connect(cfg.root / "syncer.db")
    con.execute("DROP TABLE alert_state")
    con.execute("CREATE VIEW alert_state AS SELECT 1 AS subject, 2 AS state")  # cannot be written
    con.commit()
    con.close()
    break_codes(warehouse, True)
    with caplog.at_level(logging.WARNING, logger="syncer"):
        report = syncer.sync(cfg)
    assert report.status == "partial" and report.snapshot_id is not None
    skipped = [r.getMessage() for r in caplog.records if "alerting skipped" in r.getMessage()]
    assert len(skipped) == 1 and "alert log in" in skipped[0] and "syncer.db" in skipped[0]
    assert receiver.bodies == []


def test_a_corrupt_run_history_database_is_one_warning_and_verify_answers(
    alerting: Callable[..., syncer.Config], receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = alerting()
    report = syncer.sync(cfg)
    db = cfg.root / "syncer.db"
    for extra in (db.with_name("syncer.db-wal"), db.with_name("syncer.db-shm")):
        extra.unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    target = cfg.root / "snapshots" / str(report.snapshot_id) / "codes.parquet"
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    target.write_bytes(b"tampered")
    with caplog.at_level(logging.WARNING, logger="syncer"):
        verdict = syncer.verify(cfg)
    assert not verdict.ok and any("codes.parquet" in p for p in verdict.problems)  # the answer is unchanged
    skipped = [r.getMessage() for r in caplog.records if "alerting skipped" in r.getMessage()]
    assert len(skipped) == 1 and "file is not a database" in skipped[0]
    assert flush(5) and receiver.bodies == []


def test_without_channels_alerts_are_still_listed(tmp_path: Path, warehouse: Path) -> None:
    break_codes(warehouse, False)
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=TABLES))
    syncer.sync(cfg)
    break_codes(warehouse, True)
    syncer.sync(cfg)
    (row,) = rows(cfg)
    assert (row.subject, row.state, row.channel, row.delivered) == ("run", "partial", "log", True)


# --- Snowflake notification integrations ---------------------------------------------------------------

ALERT = Alert("2026-12-01T03:00:00Z", "run", "problem", "failed", "ok", "table 'x': it's \\ broken")


def test_snowflake_email_notification_sql() -> None:
    cfg = SnowflakeNotifyConfig("SYNC_ALERTS_EMAIL", "email", "Volume Data Sync", ("ops@example.com", "b@example.com"))
    assert notification_sql(cfg, ALERT) == (
        "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION("
        "SNOWFLAKE.NOTIFICATION.TEXT_PLAIN('[Volume Data Sync] PROBLEM run: failed — table ''x'': it''s \\\\ broken'), "
        "SNOWFLAKE.NOTIFICATION.EMAIL_INTEGRATION_CONFIG('SYNC_ALERTS_EMAIL', 'Volume Data Sync: PROBLEM run: failed', "
        "ARRAY_CONSTRUCT('ops@example.com', 'b@example.com')))"
    )


def test_snowflake_webhook_and_queue_notification_sql() -> None:
    hook = notification_sql(SnowflakeNotifyConfig("SYNC_ALERTS_WEBHOOK", "webhook"), ALERT)
    assert hook.startswith("CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN(")
    assert "SNOWFLAKE.NOTIFICATION.SANITIZE_WEBHOOK_CONTENT('[Volume Data Sync]" in hook
    assert hook.endswith(", SNOWFLAKE.NOTIFICATION.INTEGRATION('SYNC_ALERTS_WEBHOOK'))")
    queue = notification_sql(SnowflakeNotifyConfig("Q", "queue"), ALERT)
    assert queue.startswith("CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.APPLICATION_JSON('{")
    literal = queue.split("APPLICATION_JSON(", 1)[1].rsplit("), SNOWFLAKE.NOTIFICATION.INTEGRATION('Q'))", 1)[0]
    assert literal[0] == literal[-1] == "'"
    unquoted = literal[1:-1].replace("''", "'").replace("\\\\", "\\")
    assert json.loads(unquoted)["message"] == ALERT.message


def test_snowflake_channel_runs_on_a_snowpark_session_and_records_its_error(tmp_path: Path) -> None:
    """Snowpark local testing opens the session the channel asks for, but cannot run Session.sql:
    the delivery is recorded as failed with that one line (the SQL itself is checked above)."""
    from snowflake.snowpark import Session

    from syncer.sources.snowflake_connect import use_session_factory

    text = (
        '[source]\nkind = "snowflake"\naccount = "acct"\nuser = "u"\ndatabase = "APP_DB"\nschema = "PUBLIC"\n'
        '[volume]\nroot = "data"\n[alerts]\nretries = 0\n[[alerts.snowflake]]\nintegration = "SYNC_ALERTS_EMAIL"\n'
        '[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n'
    )
    (tmp_path / "sync.toml").write_text(text, encoding="utf-8")
    cfg = syncer.load_config(tmp_path / "sync.toml")
    cfg.root.mkdir()
    from syncer.alerts import Observation, observe

    with use_session_factory(lambda: Session.builder.config("local_testing", True).create()):
        observe(cfg, [Observation("run", "failed", True, "no table was exported")])
        assert flush(30)
    (row,) = rows(cfg)
    assert row.channel == "snowflake:SYNC_ALERTS_EMAIL" and row.delivered is False
    assert row.error == (
        "gave up after 1 attempt(s): SYSTEM$SEND_SNOWFLAKE_NOTIFICATION via SYNC_ALERTS_EMAIL failed: "
        "[Local Testing] Session.sql is not supported."
    )


# --- [alerts] validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            "[alerts]\ntimeout_secs = 3\n", "[alerts] unknown key 'timeout_secs'; did you mean 'timeout_seconds'?", id="typo"
        ),
        pytest.param("[alerts]\ntimeout_seconds = nan\n", "[alerts] timeout_seconds = nan is not a finite number", id="nan"),
        pytest.param("[alerts]\nbackoff_seconds = inf\n", "[alerts] backoff_seconds = inf is not a finite number", id="inf"),
        pytest.param("[alerts]\nretries = -1\n", "[alerts] retries must be a whole number from 0 to 20, got -1", id="retries"),
        pytest.param(
            '[[alerts.webhooks]]\nurl = "ftp://x/y"\n',
            "[[alerts.webhooks]] #1: url is not an http(s) URL with a host (scheme 'ftp', host 'x')",
            id="url-scheme",
        ),
        pytest.param('[[alerts.webhooks]]\nurl = "https:///path"\n', "url is not an http(s) URL with a host", id="url-no-host"),
        pytest.param(
            '[[alerts.webhooks]]\nurl = "https://x/y"\nformat = "slak"\n',
            "format = 'slak' is not supported; choose one of: json, slack; did you mean 'slack'?",
            id="format",
        ),
        pytest.param(
            '[[alerts.webhooks]]\nurl_env = "SYNCER_TEST_UNSET_HOOK"\n',
            "url_env = 'SYNCER_TEST_UNSET_HOOK' but $SYNCER_TEST_UNSET_HOOK is not set",
            id="url-env-unset",
        ),
        pytest.param(
            '[[alerts.snowflake]]\nintegration = "SYNC_ALERTS_EMAIL"\n',
            '[[alerts.snowflake]] needs [source] kind = "snowflake"',
            id="snowflake-on-duckdb",
        ),
    ],
)
def test_bad_alerts_config_is_one_line_naming_the_key(tmp_path: Path, demo_db: Path, extra: str, message: str) -> None:
    with pytest.raises(syncer.ConfigError) as err:
        syncer.load_config(write_config(tmp_path / "cfg", demo_db, extra=extra))
    text = str(err.value)
    assert message in text and "\n" not in text


def test_webhook_url_from_the_environment_is_never_echoed(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCER_TEST_HOOK", "not a url with secret-123")
    with pytest.raises(syncer.ConfigError) as err:
        syncer.load_config(write_config(tmp_path / "cfg", demo_db, extra='[[alerts.webhooks]]\nurl_env = "SYNCER_TEST_HOOK"\n'))
    assert "$SYNCER_TEST_HOOK is not an http(s) URL" in str(err.value) and "secret-123" not in str(err.value)
    with pytest.raises(syncer.ConfigError) as err:
        syncer.load_config(
            write_config(tmp_path / "cfg", demo_db, extra='[[alerts.webhooks]]\nurl = "htps://hooks.example.com/T0/B0/s3cret"\n')
        )
    assert "(scheme 'htps', host 'hooks.example.com')" in str(err.value) and "s3cret" not in str(err.value)
    monkeypatch.setenv("SYNCER_TEST_HOOK", "https://hooks.example.com/T000/B000/secret")
    cfg = syncer.load_config(write_config(tmp_path / "cfg", demo_db, extra='[[alerts.webhooks]]\nurl_env = "SYNCER_TEST_HOOK"\n'))
    assert cfg.alerts.webhooks[0].url == "https://hooks.example.com/T000/B000/secret"


# --- the admin app's Alerts page ----------------------------------------------------------------------------


def test_alerts_page_lists_when_what_where_and_outcome(tmp_path: Path, warehouse: Path) -> None:
    from streamlit.testing.v1 import AppTest

    break_codes(warehouse, False)
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=TABLES))
    syncer.sync(cfg)
    break_codes(warehouse, True)
    syncer.sync(cfg)
    at = AppTest.from_file(str(ROOT / "pages" / "alerts.py"), default_timeout=30)
    at.session_state["syncer_config"] = cfg
    at.run()
    assert not at.exception
    (table,) = at.dataframe
    df = table.value
    assert list(df.columns) == ["when", "kind", "subject", "state", "message", "channel", "delivery"]
    assert df.iloc[0]["subject"] == "run" and df.iloc[0]["channel"] == "log" and df.iloc[0]["delivery"] == "delivered"


def test_alerts_page_says_when_there_is_nothing_yet(config: syncer.Config) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "alerts.py"), default_timeout=30)
    at.session_state["syncer_config"] = config
    at.run()
    assert not at.exception
    assert any("No alerts yet" in i.value for i in at.info)


# --- a process that ends: `syncer sync` from cron ----------------------------------------------------


def cli_sync(config: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCER_")} | {"SYNCER_LOG_FORMAT": "text"}
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(config), "sync"], capture_output=True, text=True, env=env, timeout=120
    )
    return done, time.monotonic() - t0


def test_the_cli_delivers_its_alerts_before_it_exits(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver
) -> None:
    cfg = alerting()
    assert cfg.path is not None
    assert cli_sync(cfg.path)[0].returncode == 0
    break_codes(warehouse, True)
    done, _ = cli_sync(cfg.path)
    assert receiver.subjects() == [("problem", "run", "partial")], done.stderr  # received before the process ended
    (row,) = rows(cfg)
    assert row.delivered is True


def test_a_hanging_receiver_delays_the_cli_exit_by_the_deadline_at_most(
    alerting: Callable[..., syncer.Config], warehouse: Path, receiver: Receiver
) -> None:
    cfg = alerting(retries=5, timeout=20, backoff=1)
    assert cfg.path is not None
    cli_sync(cfg.path)
    break_codes(warehouse, True)
    receiver.hang_seconds = 60
    text = cfg.path.read_text(encoding="utf-8").replace("exit_deadline_seconds = 5", "exit_deadline_seconds = 1")
    cfg.path.write_text(text, encoding="utf-8")
    done, elapsed = cli_sync(cfg.path)
    assert elapsed < 20, elapsed  # 6 attempts of 20 s each would be two minutes
    assert "1 alert(s) not delivered within the 1s exit deadline; they stay listed as pending" in done.stderr + done.stdout
    (row,) = rows(cfg)
    assert row.delivered is None


def test_the_alerts_page_is_in_the_admin_apps_navigation(
    tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from syncer.admin import server

    monkeypatch.setattr(server, "STEP", server.StartupStep())
    break_codes(warehouse, True)
    path = write_config(tmp_path / "cfg", warehouse, tables=TABLES)
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    syncer.sync(syncer.load_config(path))  # a first run that fails one table: the run, and the table never published
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30).run()
    at.switch_page("pages/alerts.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Alerts"
    (table,) = at.dataframe
    assert sorted(zip(table.value["subject"], table.value["state"], strict=True)) == [
        ("run", "partial"),
        ("table:codes:freshness", "missing"),
    ]
