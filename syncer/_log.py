"""Logging: the engine logs (never prints). Plain lines on a terminal; JSON lines on stdout in a
container (``SYNCER_LOG_FORMAT=json`` or running in SPCS), one object per event, so the event table
can be queried::

    {"time": "...Z", "level": "INFO", "logger": "syncer", "run_id": "...", "table": "...",
     "step": "export", "message": "..."}

Every object has the same keys (``run_id``, ``table``, ``step`` are null when they do not apply),
plus ``exception`` when there is one. Warnings of the Snowflake connector and Snowpark go through
the same handler, so stdout stays one JSON object per line. Secrets the process learns (the SPCS
token, a password from the environment) are registered with :func:`register_secret` and replaced
by ``***`` in every line, whatever logger wrote it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncer._child import say

__all__ = ["SPCS_TOKEN_PATH", "JsonFormatter", "configure_logging", "json_wanted", "register_secret", "scrub"]

_FIELDS = ("run_id", "table", "step")
#: where SPCS mounts the service's OAuth token (refreshed by the platform); it means "running in SPCS"
SPCS_TOKEN_PATH = Path("/snowflake/session/token")
# Third-party loggers whose warnings should reach the same (JSON) stream.
_THIRD_PARTY = ("snowflake",)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Never show ``value`` in a log line or message passed through :func:`scrub`."""
    # Short values would blank out ordinary words; real secrets are long.
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        for key in _FIELDS:
            obj[key] = getattr(record, key, None)
        obj["message"] = scrub(record.getMessage())
        if record.exc_info:
            obj["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(obj, default=str, ensure_ascii=False)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def json_wanted(environ: Mapping[str, str] | None = None, token_path: Path = SPCS_TOKEN_PATH) -> bool:
    """JSON when ``SYNCER_LOG_FORMAT=json``; plain when it is set to anything else; else JSON in SPCS."""
    env = os.environ if environ is None else environ
    fmt = env.get("SYNCER_LOG_FORMAT", "").lower()
    if fmt:
        return fmt == "json"
    # SPCS mounts the session token here; its log collection wants one JSON object per line.
    return token_path.exists()


class _StreamHandler(logging.StreamHandler):
    """A stream handler whose failure to write is never a traceback: logging's default prints
    "--- Logging error ---" and the whole stack on stderr when a record cannot be written (under a
    libc write fault the random-fault sweep met it) -- a log line that cannot go out is dropped; one
    that cannot be formatted (a bug) is said in one line."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            return  # the stream is broken: nothing can be said on it
        say(f"warning: a log line could not be written: {type(exc).__name__}: {exc}")


def configure_logging(level: str | int = "INFO", *, json_lines: bool | None = None) -> None:
    """Install one handler on the ``syncer`` logger (idempotent); warnings of Snowflake's libraries too."""
    use_json = json_wanted() if json_lines is None else json_lines
    if use_json:
        handler = _StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
    else:
        handler = _StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler._syncer = True  # type: ignore[attr-defined]
    for name, lvl in (("syncer", level), *((n, logging.WARNING) for n in _THIRD_PARTY)):
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if getattr(h, "_syncer", False):
                logger.removeHandler(h)
        logger.addHandler(handler)
        logger.setLevel(lvl)
        logger.propagate = False
