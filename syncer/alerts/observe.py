"""What the engine tells alerting: after each run, startup and verify, the states worth watching.

Subjects and their states (bad ones alert; a good one after an alerted bad one is a recovery):

| subject | good | bad |
|---|---|---|
| ``run`` | ok | failed, partial |
| ``table:<name>:freshness`` | fresh | stale (older than the SLA), future (exported after "now"), missing |
| ``table:<name>:quarantine`` | clean | quarantined (rows set aside) |
| ``verify`` | ok | mismatch |
| ``startup`` | servable | unservable |

Each ``after_*`` function never raises and never waits on a channel: a broken run history or
alert log is one warning, and delivery is queued (:mod:`syncer.alerts.deliver`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from syncer import _clock as clock
from syncer._clock import iso, parse_iso
from syncer.alerts.channels import Channel, SnowflakeChannel, WebhookChannel
from syncer.alerts.deliver import Job, submit
from syncer.alerts.store import AlertRow, AlertStore, AlertStoreError, Observation
from syncer.config import Config
from syncer.volume.layout import Volume

if TYPE_CHECKING:
    from syncer.engine.results import StartupResult, VerifyReport
    from syncer.volume.manifest import RunReport

__all__ = ["FUTURE_TOLERANCE_SECONDS", "after_run", "after_startup", "after_verify", "channels", "observe", "recent_alerts"]

log = logging.getLogger("syncer")

#: an export time further ahead of the engine's clock than this is "future" (a clock or data error)
FUTURE_TOLERANCE_SECONDS = 300.0


def after_run(cfg: Config, report: RunReport) -> None:
    """After a sync: the run's result, then every table's freshness and quarantine."""
    detail = report.error or f"run {report.run_id} published snapshot {report.snapshot_id}"
    run = Observation("run", report.status, report.status != "ok", f"run {report.run_id} ({report.trigger}): {detail}")
    observe(cfg, [run, *_tables(cfg)])


def after_startup(cfg: Config, result: StartupResult) -> None:
    state = "servable" if result.servable else "unservable"
    observe(cfg, [Observation("startup", state, not result.servable, result.reason), *_tables(cfg)])


def after_verify(cfg: Config, report: VerifyReport) -> None:
    if report.snapshot is None:
        return  # nothing published: startup / the run say so; verify has nothing to compare
    msg = "; ".join(report.problems) if report.problems else f"snapshot {report.snapshot} matches its manifest"
    observe(cfg, [Observation("verify", "ok" if report.ok else "mismatch", not report.ok, f"verify {report.snapshot}: {msg}")])


def recent_alerts(cfg: Config, limit: int = 200) -> list[AlertRow]:
    """The newest alerts first, one row per channel (raises :class:`AlertStoreError`)."""
    return AlertStore(Volume(cfg.root).db_path).recent(limit)


def channels(cfg: Config) -> list[Channel]:
    out: list[Channel] = [WebhookChannel(w) for w in cfg.alerts.webhooks]
    out += [SnowflakeChannel(s, cfg.source) for s in cfg.alerts.snowflake]
    return out


def observe(cfg: Config, observations: Sequence[Observation]) -> None:
    """Compare, record, queue: never raises (alerting is not a gate)."""
    if not cfg.alerts.enabled:
        return
    try:
        _observe(cfg, observations)
    except AlertStoreError as exc:
        log.warning("alerting skipped: %s", exc, extra={"step": "alerts"})
    except Exception as exc:  # an alerting bug must not fail a sync that already did its work
        log.warning("alerting skipped after an unexpected error: %s: %s", type(exc).__name__, exc, extra={"step": "alerts"})


def _observe(cfg: Config, observations: Sequence[Observation]) -> None:
    vol = Volume(cfg.root)
    if not vol.root.is_dir():
        return
    store = AlertStore(vol.db_path)
    alerts = store.transitions(observations, iso(clock.utcnow()))
    targets = channels(cfg)
    for alert in alerts:
        log.warning("alert: %s", alert.text(), extra={"step": "alerts"})
        if not targets:
            store.record(alert, "log", delivered=True)  # listed in the admin app; logged above
        for ch in targets:
            submit(Job(alert, ch, store.record(alert, ch.name), store, cfg.alerts))


def _tables(cfg: Config) -> list[Observation]:
    """Freshness and quarantine of every configured table in what ``current`` serves."""
    man = Volume(cfg.root).current_manifest()
    if man is None:
        return []  # nothing served at all: the run and startup alerts say so, not one alert per table
    now = clock.utcnow()
    out: list[Observation] = []
    for t in cfg.tables:
        entry = man.tables.get(t.name)
        if entry is None:
            msg = f"table {t.name!r} is not in the served snapshot {man.id}"
            out.append(Observation(f"table:{t.name}:freshness", "missing", True, msg))
            continue
        age = (now - parse_iso(entry.fresh_as_of)).total_seconds()
        if entry.status == "future" or age < -FUTURE_TOLERANCE_SECONDS:
            state, msg = "future", f"table {t.name!r} was exported at {entry.exported_at}, {-age / 3600:.1f} h in the future"
        elif age > cfg.sla_hours * 3600:
            state, msg = "stale", f"table {t.name!r} is {age / 3600:.1f} h old (SLA {cfg.sla_hours:g} h)"
        else:
            state, msg = "fresh", f"table {t.name!r} is {max(age, 0) / 3600:.1f} h old (SLA {cfg.sla_hours:g} h)"
        out.append(Observation(f"table:{t.name}:freshness", state, state != "fresh", msg))
        rows = int((entry.quarantine or {}).get("rows") or 0)
        if entry.status == "quarantined" or rows:
            qmsg = f"table {t.name!r}: {rows} row(s) quarantined in snapshot {man.id}"
            out.append(Observation(f"table:{t.name}:quarantine", "quarantined", True, qmsg))
        else:
            out.append(Observation(f"table:{t.name}:quarantine", "clean", False, f"table {t.name!r}: no quarantined rows"))
    return out
