"""Alerts on each change of state, sent once per change, recorded in the run history database.

* :func:`after_run`, :func:`after_startup`, :func:`after_verify` — what the engine calls (one line each);
  they compare what they see with the last known state per subject (:mod:`.observe`) and never raise;
* :class:`AlertStore` — the ``alert_state`` and ``alerts`` tables in ``syncer.db`` (:mod:`.store`);
* channels: webhook (JSON or Slack) and Snowflake notification integrations (:mod:`.channels`);
* delivery on a background thread behind a bounded queue, with :func:`flush` (:mod:`.deliver`).
"""

from __future__ import annotations

from syncer.alerts.channels import DeliveryError, SnowflakeChannel, WebhookChannel, notification_sql
from syncer.alerts.deliver import flush, pending
from syncer.alerts.observe import after_run, after_startup, after_verify, observe, recent_alerts
from syncer.alerts.store import Alert, AlertRow, AlertStore, AlertStoreError, Observation

__all__ = [
    "Alert",
    "AlertRow",
    "AlertStore",
    "AlertStoreError",
    "DeliveryError",
    "Observation",
    "SnowflakeChannel",
    "WebhookChannel",
    "after_run",
    "after_startup",
    "after_verify",
    "flush",
    "notification_sql",
    "observe",
    "pending",
    "recent_alerts",
]
