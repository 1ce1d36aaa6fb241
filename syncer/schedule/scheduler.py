"""The daily refresh: APScheduler with a ``CronTrigger`` from ``[schedule]``.

One :class:`BackgroundScheduler` per server process, started by the admin app's lifespan (never by a
page: a page runs once per browser rerun), or a :class:`BlockingScheduler` in the foreground for
``syncer schedule``. Both run :func:`scheduled_sync`, a normal sync with trigger ``schedule``.

Job settings: ``coalesce`` (runs missed while the process was down collapse into one),
``max_instances = 1`` (never two at once from this scheduler) and ``misfire_grace_time`` from
``[schedule] misfire_grace_seconds`` (a run more than that late is skipped, not started at noon).
A sync already running elsewhere (CLI, an operator) makes the scheduled run step aside: it is
logged and recorded in the audit trail as ``schedule_skipped``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import LockHeldError, SyncError
from syncer.config import Config
from syncer.engine import next_run
from syncer.engine.supervised import sync_in_child
from syncer.schedule.cron import crontab_trigger
from syncer.volume.audit import record_event
from syncer.volume.manifest import RunReport

__all__ = [
    "JOB_ID",
    "build_scheduler",
    "cron_trigger",
    "crontab_trigger",
    "next_fire",
    "run_scheduler",
    "scheduled_sync",
    "scheduler_info",
    "start_scheduler",
    "stop_scheduler",
]

log = logging.getLogger("syncer")

JOB_ID = "daily-sync"


def cron_trigger(cfg: Config) -> CronTrigger:
    return crontab_trigger(cfg.cron, cfg.timezone)


def next_fire(cfg: Config) -> str | None:
    """The next time the cron fires, computed without a scheduler (ISO-8601 UTC)."""
    return next_run(cfg)


def scheduled_sync(cfg: Config) -> RunReport | None:
    """The scheduler's job: one normal sync with trigger ``schedule``; never raises.

    Returns the run report, or None when the run could not start (another writer, a config error).
    """
    log.info("scheduled sync starting", extra={"step": "schedule"})
    try:
        report = sync_in_child(cfg, trigger="schedule", user="scheduler")  # a native abort ends this run, not the scheduler
    except LockHeldError as exc:
        log.warning("scheduled sync skipped: %s", exc, extra={"step": "schedule"})
        record_event(cfg, "schedule_skipped", user="scheduler", reason=str(exc))
        return None
    except SyncError as exc:
        log.error("scheduled sync failed: %s", exc, extra={"step": "schedule"})
        return None
    log.info("scheduled sync %s: snapshot %s", report["status"], report.get("snapshot_id"), extra={"step": "schedule"})
    return report


def build_scheduler(cfg: Config, *, blocking: bool = False) -> BaseScheduler:
    """A scheduler (not started) holding the one daily-sync job."""
    cls = BlockingScheduler if blocking else BackgroundScheduler
    sched = cls(timezone=cfg.timezone)
    sched.add_job(
        scheduled_sync,
        trigger=cron_trigger(cfg),
        args=[cfg],
        id=JOB_ID,
        name=f"daily sync ({cfg.cron} {cfg.timezone})",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=cfg.misfire_grace_seconds,
        replace_existing=True,
    )
    return sched


def _next_fire(sched: BaseScheduler) -> str | None:
    job = sched.get_job(JOB_ID)
    when = getattr(job, "next_run_time", None) if job is not None else None
    return iso(when) if when is not None else None


# --- the one background scheduler of this process -----------------------------------------------------

_lock = threading.Lock()
_scheduler: BackgroundScheduler | None = None
_started_at: str | None = None


def start_scheduler(cfg: Config) -> BackgroundScheduler:
    """Start this process's background scheduler, or return the one already running (idempotent)."""
    global _scheduler, _started_at
    with _lock:
        if _scheduler is not None and _scheduler.running:
            return _scheduler
        sched = build_scheduler(cfg)
        assert isinstance(sched, BackgroundScheduler)
        sched.start()
        _scheduler, _started_at = sched, iso(clock.utcnow())
        log.info("scheduler started: next run %s", _next_fire(sched), extra={"step": "schedule"})
        return sched


def stop_scheduler() -> None:
    """Shut the background scheduler down without waiting for a running sync (it is safe to abandon)."""
    global _scheduler, _started_at
    with _lock:
        if _scheduler is not None and _scheduler.running:
            _scheduler.shutdown(wait=False)
            log.info("scheduler stopped", extra={"step": "schedule"})
        _scheduler, _started_at = None, None


def scheduler_info() -> dict[str, Any] | None:
    """The running background scheduler of this process: next run, cron, since when; None if none."""
    with _lock:
        sched = _scheduler
        if sched is None or not sched.running:
            return None
        job = sched.get_job(JOB_ID)
        return {
            "pid": os.getpid(),
            "started_at": _started_at,
            "next_run": _next_fire(sched),
            "job": job.name if job is not None else None,
        }


# --- `syncer schedule`: the same job in the foreground -----------------------------------------------


def run_scheduler(cfg: Config, *, on_start: Callable[[str | None], None] | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM or SIGINT (then return normally)."""
    sched = build_scheduler(cfg, blocking=True)

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s; stopping the scheduler", signal.Signals(signum).name, extra={"step": "schedule"})
        sched.shutdown(wait=False)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_start is not None:
            on_start(next_fire(cfg))
        sched.start()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
