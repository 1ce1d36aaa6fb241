"""The ``[alerts]`` section of ``sync.toml``: channels and delivery limits, validated at load.

```toml
[alerts]
timeout_seconds = 5          # per HTTP attempt
retries = 3                  # attempts after the first one
backoff_seconds = 1          # doubled after each failed attempt
exit_deadline_seconds = 10   # how long a finishing process waits for undelivered alerts

[[alerts.webhooks]]
url_env = "SYNCER_ALERT_WEBHOOK"   # or url = "https://..." (a Slack URL is a secret: prefer url_env)
format = "slack"                   # "json" (default): the alert record; "slack": {"text": "..."}

[[alerts.snowflake]]               # with [source] kind = "snowflake" only
integration = "SYNC_ALERTS_EMAIL"  # a notification integration (spcs/setup.sql creates it)
type = "email"                     # email | webhook | queue
recipients = ["ops@example.com"]   # email only; verified users of the account
```

Every mistake is one line naming the key; numbers must be finite; URLs must be http(s) with a host.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from typing import Any

from syncer._exceptions import ConfigError
from syncer.config.model import AlertsConfig, SnowflakeNotifyConfig, WebhookConfig, suggest

__all__ = ["ALERTS_KEYS", "parse_alerts"]

ALERTS_KEYS = {
    "enabled",
    "timeout_seconds",
    "retries",
    "backoff_seconds",
    "exit_deadline_seconds",
    "queue_size",
    "webhooks",
    "snowflake",
}
_WEBHOOK_KEYS = {"url", "url_env", "format", "name"}
_SNOWFLAKE_KEYS = {"integration", "type", "subject", "recipients"}
_WEBHOOK_FORMATS = ("json", "slack")
_SNOWFLAKE_TYPES = ("email", "webhook", "queue")
# an unquoted Snowflake identifier, optionally database.schema.name (integrations are account-level)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}\Z")
_EMAIL = re.compile(r"^[^@\s'\"]+@[^@\s'\"]+\.[^@\s'\"]+\Z")


def parse_alerts(sec: dict[str, Any], where: str, source_kind: str, environ: dict[str, str] | None = None) -> AlertsConfig:
    """``[alerts]`` as an :class:`AlertsConfig` (the keys of the section are checked by the caller)."""
    env = os.environ if environ is None else environ
    enabled = sec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: [alerts] enabled must be true or false, got {enabled!r}")
    webhooks = tuple(_webhook(w, i, where, env) for i, w in enumerate(_array(sec, "webhooks", where), 1))
    snowflake = tuple(_snowflake(s, i, where) for i, s in enumerate(_array(sec, "snowflake", where), 1))
    if snowflake and source_kind != "snowflake":
        raise ConfigError(
            f'{where}: [[alerts.snowflake]] needs [source] kind = "snowflake" (the notification is sent through '
            "the source's session); remove it or use [[alerts.webhooks]]"
        )
    return AlertsConfig(
        enabled=enabled,
        timeout_seconds=_finite(sec, "timeout_seconds", 5.0, where, low=0.001, high=300),
        retries=_int(sec, "retries", 3, where, low=0, high=20),
        backoff_seconds=_finite(sec, "backoff_seconds", 1.0, where, low=0, high=600),
        exit_deadline_seconds=_finite(sec, "exit_deadline_seconds", 10.0, where, low=0, high=600),
        queue_size=_int(sec, "queue_size", 100, where, low=1, high=100_000),
        webhooks=webhooks,
        snowflake=snowflake,
    )


def _array(sec: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    val = sec.get(key, [])
    if not isinstance(val, list) or not all(isinstance(v, dict) for v in val):
        raise ConfigError(f"{where}: [alerts] {key} must be written as [[alerts.{key}]] sections")
    return val


def _check_keys(d: dict[str, Any], known: set[str], where: str, label: str) -> None:
    for key in d:
        if key not in known:
            raise ConfigError(f"{where}: {label}: unknown key {key!r}{suggest(key, sorted(known))}")


def _webhook(raw: dict[str, Any], i: int, where: str, env: Any) -> WebhookConfig:
    label = f"[[alerts.webhooks]] #{i}"
    _check_keys(raw, _WEBHOOK_KEYS, where, label)
    if ("url" in raw) == ("url_env" in raw):
        raise ConfigError(f'{where}: {label}: set exactly one of url = "https://..." or url_env = "ENV_VAR_NAME"')
    if "url_env" in raw:
        var = raw["url_env"]
        if not isinstance(var, str) or not var:
            raise ConfigError(f"{where}: {label}: url_env must name an environment variable, got {var!r}")
        url = env.get(var)
        if not url:
            raise ConfigError(f"{where}: {label}: url_env = {var!r} but ${var} is not set; export it or remove the webhook")
        shown = f"${var}"
    else:
        url, shown = raw["url"], "url"
    if not isinstance(url, str) or not _http_url(url):
        # never the whole value: the path of a webhook URL is often its secret
        raise ConfigError(
            f"{where}: {label}: {shown} is not an http(s) URL with a host ({_outline(url)}); e.g. https://alerts.example.com/hook"
        )
    fmt = raw.get("format", "json")
    if fmt not in _WEBHOOK_FORMATS:
        raise ConfigError(
            f"{where}: {label}: format = {fmt!r} is not supported; choose one of: {', '.join(_WEBHOOK_FORMATS)}"
            f"{suggest(str(fmt), list(_WEBHOOK_FORMATS))}"
        )
    name = raw.get("name", f"webhook-{i}")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: {label}: name must be a non-empty string, got {name!r}")
    return WebhookConfig(url=url, format=fmt, name=name)


def _outline(url: object) -> str:
    """What is wrong with ``url`` without echoing it: its scheme and host only."""
    if not isinstance(url, str):
        return f"got a {type(url).__name__}"
    try:
        parts = urllib.parse.urlsplit(url)
        return f"scheme {parts.scheme!r}, host {parts.hostname or ''!r}"
    except ValueError:
        return "not parseable"


def _http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(ord(c) <= 32 for c in url)


def _snowflake(raw: dict[str, Any], i: int, where: str) -> SnowflakeNotifyConfig:
    label = f"[[alerts.snowflake]] #{i}"
    _check_keys(raw, _SNOWFLAKE_KEYS, where, label)
    integration = raw.get("integration")
    if not isinstance(integration, str) or not _IDENT.match(integration):
        raise ConfigError(
            f"{where}: {label}: integration must be the name of a notification integration "
            f"(letters, digits, _ and $), got {integration!r}"
        )
    kind = raw.get("type", "email")
    if kind not in _SNOWFLAKE_TYPES:
        raise ConfigError(f"{where}: {label}: type = {kind!r} is not supported; choose one of: {', '.join(_SNOWFLAKE_TYPES)}")
    subject = raw.get("subject", "Volume Data Sync alert")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 256:
        raise ConfigError(f"{where}: {label}: subject must be a non-empty string of at most 256 characters")
    recipients = raw.get("recipients", [])
    if not isinstance(recipients, list) or not all(isinstance(r, str) and _EMAIL.match(r) for r in recipients):
        raise ConfigError(f"{where}: {label}: recipients must be a list of e-mail addresses, got {recipients!r}")
    if recipients and kind != "email":
        raise ConfigError(f'{where}: {label}: recipients apply to type = "email" only; remove them')
    return SnowflakeNotifyConfig(integration=integration, type=kind, subject=subject, recipients=tuple(recipients))


def _finite(sec: dict[str, Any], key: str, default: float, where: str, *, low: float, high: float) -> float:
    val = sec.get(key, default)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise ConfigError(f"{where}: [alerts] {key} must be a number, got {val!r}")
    if not math.isfinite(val):
        raise ConfigError(f"{where}: [alerts] {key} must be a finite number, got {val!r}")
    if not low <= val <= high:
        raise ConfigError(f"{where}: [alerts] {key} must be between {low:g} and {high:g}, got {val:g}")
    return float(val)


def _int(sec: dict[str, Any], key: str, default: int, where: str, *, low: int, high: int) -> int:
    val = sec.get(key, default)
    if isinstance(val, bool) or not isinstance(val, int) or not low <= val <= high:
        raise ConfigError(f"{where}: [alerts] {key} must be a whole number from {low} to {high}, got {val!r}")
    return val
