"""Where alerts go: a webhook (JSON, or Slack's ``{"text": ...}``) and Snowflake notification integrations.

Each channel's :meth:`send` makes ONE attempt and raises :class:`DeliveryError` naming what went
wrong; retries, back-off and the time limits live in :mod:`syncer.alerts.deliver`, off the sync's
critical path.

The Snowflake channel builds one ``CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(<message>, <integration
configuration>)`` statement with the ``SNOWFLAKE.NOTIFICATION`` helper functions and runs it on a
session opened exactly like the Snowflake source's (SPCS token, named connection, explicit config):
no outbound network from the container is needed, Snowflake sends the e-mail or the webhook call.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
from typing import Any, Protocol

from syncer.alerts.store import Alert
from syncer.config.model import SnowflakeNotifyConfig, SourceConfig, WebhookConfig

__all__ = ["Channel", "DeliveryError", "SnowflakeChannel", "WebhookChannel", "notification_sql", "sql_string"]


class DeliveryError(Exception):
    """One delivery attempt failed (the message says how)."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert, timeout: float) -> None: ...


class WebhookChannel:
    def __init__(self, cfg: WebhookConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name

    def body(self, alert: Alert) -> dict[str, Any]:
        return {"text": alert.text()} if self.cfg.format == "slack" else alert.to_json()

    def send(self, alert: Alert, timeout: float) -> None:
        # here, not at the top: http.client, email and ssl are ~20 ms of every command otherwise (a
        # sync with webhooks loads it before the volume lock, syncer.engine.preload)
        import urllib.request

        data = json.dumps(self.body(alert)).encode("utf-8")
        req = urllib.request.Request(
            self.cfg.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "volume-data-sync-alerts"},
        )
        where = _where(self.cfg.url)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read(1024)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"{where} answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{where} could not be reached: {reason}") from None


def _where(url: str) -> str:
    """The webhook's scheme, host and port only: the path of a Slack URL is its secret."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"webhook {parts.scheme}://{parts.hostname}{port}"


def sql_string(text: str) -> str:
    """``text`` as a single-quoted Snowflake string literal (backslash escapes are live there)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def notification_sql(cfg: SnowflakeNotifyConfig, alert: Alert) -> str:
    """The one ``CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(...)`` statement for ``alert``."""
    fn = "SNOWFLAKE.NOTIFICATION"
    if cfg.type == "email":
        message = f"{fn}.TEXT_PLAIN({sql_string(alert.text())})"
    elif cfg.type == "webhook":
        # the integration's WEBHOOK_BODY_TEMPLATE places it (SNOWFLAKE_WEBHOOK_MESSAGE); sanitized for JSON
        message = f"{fn}.TEXT_PLAIN({fn}.SANITIZE_WEBHOOK_CONTENT({sql_string(alert.text())}))"
    else:
        message = f"{fn}.APPLICATION_JSON({sql_string(json.dumps(alert.to_json()))})"
    if cfg.type == "email" and cfg.recipients:
        to = ", ".join(sql_string(r) for r in cfg.recipients)
        target = (
            f"{fn}.EMAIL_INTEGRATION_CONFIG({sql_string(cfg.integration)}, "
            f"{sql_string(f'{cfg.subject}: {alert.title()}'[:256])}, ARRAY_CONSTRUCT({to}))"
        )
    else:
        target = f"{fn}.INTEGRATION({sql_string(cfg.integration)})"
    return f"CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION({message}, {target})"


class SnowflakeChannel:
    def __init__(self, cfg: SnowflakeNotifyConfig, source: SourceConfig) -> None:
        self.cfg = cfg
        self.source = source
        self.name = cfg.name

    def send(self, alert: Alert, timeout: float) -> None:
        from syncer.sources.snowflake_connect import session_factory

        sql = notification_sql(self.cfg, alert)
        try:
            factory, _plan = session_factory(self.source)
            session = factory()
        except Exception as exc:  # SourceUnavailableError or a connector error: one line
            raise DeliveryError(f"cannot open a Snowflake session for integration {self.cfg.integration}: {exc}") from None
        try:
            session.sql(sql).collect(statement_params={"QUERY_TAG": "volume-data-sync-alert"})
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DeliveryError(f"SYSTEM$SEND_SNOWFLAKE_NOTIFICATION via {self.cfg.integration} failed: {first}") from None
        finally:
            with contextlib.suppress(Exception):  # the notification is sent (or not) either way
                session.close()
