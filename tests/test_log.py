"""Logging (syncer/_log.py): JSON lines on stdout in containers, plain lines on a terminal, and no
secret in either."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer._log import JsonFormatter, configure_logging, json_wanted, register_secret, scrub
from tests.conftest import BROKEN_STREAM

KEYS = ["time", "level", "logger", "run_id", "table", "step", "message"]


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    names = ("syncer", "snowflake")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("syncer", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_every_json_line_has_the_same_keys() -> None:
    full = json.loads(JsonFormatter().format(record("table %s done", "t", run_id="r1", table="t", step="export")))
    bare = json.loads(JsonFormatter().format(record("run started")))
    assert list(full) == list(bare) == KEYS
    assert (full["run_id"], full["table"], full["step"], full["message"]) == ("r1", "t", "export", "table t done")
    assert (bare["run_id"], bare["table"], bare["step"]) == (None, None, None)
    assert full["level"] == "WARNING" and full["time"].endswith("Z")


def test_exceptions_are_kept_in_the_same_object() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("syncer", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["message"] == "failed" and "ValueError: boom" in obj["exception"]


@pytest.mark.parametrize(
    ("env", "token", "wanted"),
    [
        pytest.param({"SYNCER_LOG_FORMAT": "json"}, False, True, id="asked-for"),
        pytest.param({"SYNCER_LOG_FORMAT": "JSON"}, False, True, id="any-case"),
        pytest.param({"SYNCER_LOG_FORMAT": "text"}, True, False, id="text-even-in-spcs"),
        pytest.param({}, True, True, id="in-spcs"),
        pytest.param({}, False, False, id="terminal"),
    ],
)
def test_json_when_asked_or_in_spcs(tmp_path: Path, env: dict[str, str], token: bool, wanted: bool) -> None:
    token_path = tmp_path / "token"
    if token:
        token_path.write_text("t", encoding="utf-8")
    assert json_wanted(env, token_path) is wanted


def test_registered_secrets_never_reach_a_log_line(capsys: pytest.CaptureFixture[str], restore_loggers: None) -> None:
    secret = "ver:1-hint:99-session-token-value"
    register_secret(secret)
    configure_logging("INFO", json_lines=True)
    logging.getLogger("syncer").warning("connect failed with token %s", secret, extra={"step": "connect"})
    try:
        raise RuntimeError(f"server said: bad token {secret}")
    except RuntimeError:
        logging.getLogger("syncer").exception("crash")
    out = capsys.readouterr().out
    assert secret not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["message"] == "connect failed with token ***" and lines[0]["step"] == "connect"
    assert "bad token ***" in lines[1]["exception"]


def test_plain_lines_are_scrubbed_too(capsys: pytest.CaptureFixture[str], restore_loggers: None) -> None:
    register_secret("plain-line-password-123")
    configure_logging("INFO", json_lines=False)
    logging.getLogger("syncer").info("password is plain-line-password-123")
    err = capsys.readouterr().err
    assert "plain-line-password-123" not in err and "password is ***" in err


def test_short_values_are_not_treated_as_secrets() -> None:
    register_secret("abc")
    assert scrub("abc and abcdef") == "abc and abcdef"


def test_snowflake_library_warnings_become_json_lines_too(capsys: pytest.CaptureFixture[str], restore_loggers: None) -> None:
    configure_logging("INFO", json_lines=True)
    logging.getLogger("snowflake.connector.network").warning("retrying request")
    logging.getLogger("snowflake.connector.network").info("chatter stays out")
    (line,) = capsys.readouterr().out.splitlines()
    obj = json.loads(line)
    assert (obj["logger"], obj["message"]) == ("snowflake.connector.network", "retrying request")


def test_configure_logging_is_idempotent(capsys: pytest.CaptureFixture[str], restore_loggers: None) -> None:
    configure_logging("INFO", json_lines=True)
    configure_logging("INFO", json_lines=True)
    logging.getLogger("syncer").info("once")
    assert len(capsys.readouterr().out.splitlines()) == 1


_FAILING_STREAM = f"""
import logging, sys
{BROKEN_STREAM}sys.stderr = Broken()
from syncer._log import configure_logging
configure_logging(json_lines=sys.argv[1] == "json")
if sys.argv[1] == "json":
    sys.stdout = Broken()
    configure_logging(json_lines=True)
log = logging.getLogger("syncer")
log.warning("a line that cannot go out")
log.warning("a line that cannot be formatted: %d", "not a number")
sys.stderr, sys.stdout = sys.__stderr__, sys.__stdout__  # this script's own exit flushes them
print("done", file=sys.stderr)
"""


@pytest.mark.parametrize("form", ["text", "json"])
def test_a_log_line_that_cannot_be_written_is_never_logging_s_traceback(form: str) -> None:
    """logging prints "--- Logging error ---" and a stack when a record cannot be written (the
    random-fault sweep met it under a write fault): ours drops a line its stream refuses, and says
    a record that cannot be formatted in one line."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _FAILING_STREAM, form], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stderr  # control: the process went on past both records
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("a log line could not be written: TypeError") == 1, proc.stderr
