"""Logging: the engine logs (never prints). Plain lines on a terminal; JSON lines on stdout in a
container (``SYNCER_LOG_FORMAT=json`` or running in SPCS), one object per event, so the event table
can be queried."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

__all__ = ["JsonFormatter", "configure_logging"]

_FIELDS = ("run_id", "table", "step")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            val = getattr(record, key, None)
            if val is not None:
                obj[key] = val
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def json_wanted() -> bool:
    fmt = os.environ.get("SYNCER_LOG_FORMAT", "").lower()
    if fmt:
        return fmt == "json"
    # SPCS mounts the session token here; its log collection wants one JSON object per line.
    return os.path.exists("/snowflake/session/token")


def configure_logging(level: str | int = "INFO") -> None:
    """Install one handler on the ``syncer`` logger (idempotent)."""
    logger = logging.getLogger("syncer")
    for h in list(logger.handlers):
        if getattr(h, "_syncer", False):
            logger.removeHandler(h)
    if json_wanted():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler._syncer = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
