"""``GET /metrics``: the sync's state in Prometheus' text exposition format, read at scrape time.

A custom collector (:class:`SyncCollector`) reads the volume and the run history on every scrape
and is registered in a registry of its own per scrape (:func:`render`): nothing is kept in
``prometheus_client``'s global registry, so servers and tests in one process never see each
other's values. What it exposes (every name starts with ``syncer_``):

| metric | type | labels |
|---|---|---|
| ``table_age_seconds``, ``table_rows``, ``table_bytes``, ``table_quarantined_rows`` | gauge | table |
| ``table_stale`` (1 = older than the SLA, exported in the future, or missing) | gauge | table |
| ``table_status`` (fresh, carried_over, quarantined, future, missing) | stateset | table |
| ``table_last_export_duration_seconds`` | gauge | table |
| ``runs`` (count and total seconds, per result: ok, partial, failed, aborted, running) | summary | status |
| ``last_run_duration_seconds``, ``last_run_finished_timestamp_seconds`` | gauge | |
| ``last_run_status`` | stateset | |
| ``snapshot`` (the served snapshot's id, created_at, fallback) | info | |
| ``snapshot_created_timestamp_seconds``, ``sla_seconds`` | gauge | |
| ``startup_phase`` (idle, starting, done, unservable, error) | stateset | |
| ``scrape_error`` (1 when the volume or history could not be read; the log says why) | gauge | |

Prometheus' client library is imported here only, so ``import syncer`` stays light for apps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._clock import parse_iso
from syncer._exceptions import ConfigError, SyncError
from syncer.config import Config, load_config
from syncer.volume.layout import Volume
from syncer.volume.manifest import Manifest

__all__ = ["CONTENT_TYPE", "SyncCollector", "config_loader", "metrics_endpoint", "render", "serve_metrics_port"]

log = logging.getLogger("syncer")

#: Prometheus' text exposition format, version 0.0.4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TABLE_STATES = ("fresh", "unchanged", "carried_over", "quarantined", "future", "missing")
RUN_STATES = ("ok", "partial", "failed", "aborted", "running")
STARTUP_PHASES = ("idle", "starting", "done", "unservable", "error")
#: an export time further ahead than this is "future" (same tolerance as alerting)
_FUTURE_S = 300.0


class SyncCollector:
    """Reads the current state when Prometheus scrapes (``collect``); holds no values itself.

    ``load`` gives the config at scrape time (None: it could not be loaded), ``phase`` the admin
    server's startup phase (None outside the server)."""

    def __init__(self, load: Callable[[], Config | None], phase: Callable[[], str] | None = None) -> None:
        self.load = load
        self.phase = phase

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, StateSetMetricFamily

        if self.phase is not None:
            phase = self.phase()
            yield _stateset(
                StateSetMetricFamily, "syncer_startup_phase", "the admin server's startup step", STARTUP_PHASES, phase
            )
        cfg = self.load()
        failed = cfg is None
        if cfg is not None:
            try:
                yield from _snapshot_metrics(cfg)
            except (SyncError, OSError, ValueError) as exc:
                log.warning("metrics: the volume could not be read: %s", exc, extra={"step": "metrics"})
                failed = True
            try:
                yield from _history_metrics(Volume(cfg.root).db_path)
            except (sqlite3.Error, OSError, ValueError) as exc:
                log.warning("metrics: the run history could not be read: %s", exc, extra={"step": "metrics"})
                failed = True
        yield GaugeMetricFamily(
            "syncer_scrape_error", "1 when the config, the volume or the run history could not be read", value=int(failed)
        )


def render(load: Callable[[], Config | None], phase: Callable[[], str] | None = None) -> bytes:
    """One scrape: a fresh registry holding only :class:`SyncCollector`, in the text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(load, phase))
    return generate_latest(registry)


def config_loader(config_path: Path) -> Callable[[], Config | None]:
    """Load the config at each scrape (it may be fixed while the server runs); None, logged, when it is broken."""

    def load() -> Config | None:
        try:
            return load_config(config_path)
        except ConfigError as exc:
            log.warning("metrics: %s", exc, extra={"step": "metrics"})
            return None

    return load


def metrics_endpoint(config_path: Path, phase: Callable[[], str] | None = None) -> Callable[[Any], Any]:
    """The ``GET /metrics`` handler (a Starlette endpoint) of the admin app's server; ``phase`` gives
    the startup step's phase (``syncer.admin.startup_state()["phase"]``)."""
    load = config_loader(config_path)

    async def metrics(_request: Any) -> Any:
        from starlette.responses import Response

        body = await asyncio.to_thread(render, load, phase)
        return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return metrics


def serve_metrics_port(config_path: Path, phase: Callable[[], str] | None = None, port: str | None = None) -> Any:
    """With ``$SYNCER_METRICS_PORT`` set, also serve ``/metrics`` on that port (all interfaces), for a
    private SPCS endpoint that Prometheus scrapes without the public ingress' login. Returns the
    HTTP server (``shutdown()`` stops it), or None when no port is asked for or it cannot be served."""
    text = port if port is not None else os.environ.get("SYNCER_METRICS_PORT", "")
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        log.error("SYNCER_METRICS_PORT=%r is not a port number (1-65535); the metrics port is not served", text)
        return None
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(config_loader(config_path), phase))
    try:
        server, _thread = start_http_server(int(text), addr="0.0.0.0", registry=registry)
    except OSError as exc:
        log.error("metrics port %s cannot be served: %s", text, exc.strerror)
        return None
    log.info("metrics served on port %s (/metrics)", text, extra={"step": "metrics"})
    return server


# --- the families ---------------------------------------------------------------------------------


def _stateset(cls: Any, name: str, doc: str, states: tuple[str, ...], now: str) -> Any:
    fam = cls(name, doc)
    fam.add_metric([], {s: s == now for s in (states if now in states else (*states, now))})
    return fam


def _snapshot_metrics(cfg: Config) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, StateSetMetricFamily

    vol = Volume(cfg.root)
    man, fallback = vol.current_manifest(), False
    if man is None and vol.current_id() is not None:
        best = vol.newest_intact()
        man, fallback = (best.manifest, True) if best is not None else (None, False)
    yield GaugeMetricFamily("syncer_sla_seconds", "the freshness SLA ([freshness] sla_hours)", value=cfg.sla_hours * 3600)
    if man is not None:
        info = InfoMetricFamily("syncer_snapshot", "the snapshot read_table serves now")
        info.add_metric([], {"id": man.id, "created_at": man.created_at, "fallback": str(fallback).lower()})
        yield info
        yield GaugeMetricFamily(
            "syncer_snapshot_created_timestamp_seconds",
            "when the served snapshot was created",
            value=parse_iso(man.created_at).timestamp(),
        )
    gauges = {
        key: GaugeMetricFamily(f"syncer_table_{key}", doc, labels=["table"])
        for key, doc in (
            ("age_seconds", "seconds since the table was exported"),
            ("rows", "rows of the table in the served snapshot"),
            ("bytes", "bytes of the table's file(s) in the served snapshot"),
            ("quarantined_rows", "source rows set aside in quarantine by the table's export"),
            ("stale", "1 when the table is older than the SLA, exported in the future, or missing"),
        )
    }
    status = StateSetMetricFamily("syncer_table_status", "the table's state in the served snapshot", labels=["table"])
    for name, state, values in _tables(cfg, man):
        status.add_metric([name], {s: s == state for s in (TABLE_STATES if state in TABLE_STATES else (*TABLE_STATES, state))})
        for key, value in values.items():
            gauges[key].add_metric([name], value)
    yield from gauges.values()
    yield status


def _tables(cfg: Config, man: Manifest | None) -> Iterator[tuple[str, str, dict[str, float]]]:
    now = clock.utcnow()
    for t in cfg.tables:
        entry = man.tables.get(t.name) if man else None
        if entry is None:
            yield t.name, "missing", {"stale": 1}
            continue
        age = (now - parse_iso(entry.fresh_as_of)).total_seconds()
        state = "future" if entry.status == "future" or age < -_FUTURE_S else entry.status
        stale = state in ("future", "carried_over") or age > cfg.sla_hours * 3600
        yield (
            t.name,
            state,
            {
                "age_seconds": age,
                "rows": entry.rows,
                "bytes": entry.bytes,
                "quarantined_rows": int((entry.quarantine or {}).get("rows") or 0),
                "stale": int(stale),
            },
        )


def _history_metrics(db: Path) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily, StateSetMetricFamily, SummaryMetricFamily

    if not db.exists():
        return
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        by_status = con.execute("SELECT status, count(*), coalesce(sum(duration_s), 0) FROM runs GROUP BY status").fetchall()
        last = con.execute("SELECT status, duration_s, finished_at FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        exports = con.execute(
            "SELECT t.table_name, t.total_s FROM table_results t JOIN runs r ON r.id = t.run_id "
            "WHERE t.total_s IS NOT NULL ORDER BY r.started_at DESC"
        ).fetchall()
    finally:
        con.close()
    runs = SummaryMetricFamily("syncer_runs", "sync runs recorded in the run history, by result", labels=["status"])
    for status, count, seconds in by_status:
        runs.add_metric([status], count_value=count, sum_value=seconds)
    yield runs
    if last is not None:
        yield _stateset(StateSetMetricFamily, "syncer_last_run_status", "the result of the last run", RUN_STATES, last[0])
        if last[1] is not None:
            yield GaugeMetricFamily("syncer_last_run_duration_seconds", "how long the last run took", value=last[1])
        if last[2]:
            yield GaugeMetricFamily(
                "syncer_last_run_finished_timestamp_seconds", "when the last run finished", value=parse_iso(last[2]).timestamp()
            )
    durations = GaugeMetricFamily(
        "syncer_table_last_export_duration_seconds",
        "how long the table's last export took (export and validation)",
        labels=["table"],
    )
    seen: set[str] = set()
    for table, seconds in exports:
        if table not in seen:
            seen.add(table)
            durations.add_metric([table], seconds)
    yield durations
