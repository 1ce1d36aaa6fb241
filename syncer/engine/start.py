"""The startup step: repair, then sync unless every table is younger than the skip window.

It never raises for a broken source, volume or sync: apps must start on whatever is published. The
result says whether data can be served now, which snapshot, and why, in one sentence (the admin
app's banner and ``/ready`` show it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from syncer import _clock as clock
from syncer._clock import parse_iso
from syncer._exceptions import LockHeldError, SyncError
from syncer.alerts import after_startup
from syncer.config import Config
from syncer.engine.maintain import repair
from syncer.engine.results import RepairResult, StartupResult
from syncer.engine.run import Progress, sync
from syncer.engine.state import is_stale, table_ages
from syncer.volume.layout import Volume
from syncer.volume.manifest import Manifest, RunReport

__all__ = ["startup"]

log = logging.getLogger("syncer")


def startup(
    cfg: Config, *, user: str | None = None, progress: Progress | None = None, run_sync: Callable[..., RunReport] = sync
) -> StartupResult:
    """Repair, then sync unless every table is younger than the skip window; says whether data can be served, and why.

    The result carries ``servable`` (can ``read_table`` serve data now), ``snapshot_id`` (what it
    serves), ``fallback`` (``current`` is broken and an older intact snapshot is served), ``stale`` /
    ``stale_tables`` (missing, carried over or older than the SLA), and ``reason``. ``run_sync`` runs the
    sync (the admin app passes :func:`syncer.engine.supervised.sync_in_child`).
    """
    fixed = _repair_first(cfg, user)
    vol = Volume(cfg.root)
    action, run, failure = _sync_unless_fresh(cfg, vol, user, progress, run_sync)
    served, fallback = _served(vol)
    stale = _stale_tables(cfg, served)
    reason = _reason(cfg, action, failure, fixed, served, fallback, stale)
    result = StartupResult(
        action=action,
        repair=fixed,
        run=run,
        servable=served is not None,
        reason=reason,
        snapshot_id=served.id if served else None,
        fallback=fallback,
        stale=bool(stale),
        stale_tables=tuple(stale),
    )
    after_startup(cfg, result)  # "could not serve" and stale tables alert once per change; never raises
    return result


def _repair_first(cfg: Config, user: str | None) -> RepairResult:
    try:
        return repair(cfg, user=user, reason="startup")
    except SyncError as exc:
        # e.g. the volume is not writable: what is there may still be readable, so keep going.
        log.error("startup: repair failed: %s", exc, extra={"step": "startup"})
        return RepairResult(error=str(exc))


def _sync_unless_fresh(
    cfg: Config, vol: Volume, user: str | None, progress: Progress | None, run_sync: Callable[..., RunReport] = sync
) -> tuple[str, RunReport | None, str | None]:
    """(action, the run if one ran, why it did not fully succeed)."""
    man = vol.current_manifest()
    ages = table_ages(man) if man else {}
    window = cfg.skip_startup_if_younger_than_hours * 3600
    # data "from the future" (negative ages: the clock moved) is never young enough to skip the sync
    if man and ages and all(t.name in ages for t in cfg.tables) and min(ages.values()) >= 0 and max(ages.values()) < window:
        return "skipped", None, None
    try:
        run = run_sync(cfg, trigger="startup", user=user, progress=progress)
    except LockHeldError as exc:
        return "busy", None, str(exc)
    except SyncError as exc:
        return "failed", None, str(exc)
    except Exception as exc:  # an engine bug must not keep the app from serving what is published
        log.exception("startup: the sync crashed", extra={"step": "startup"})
        return "failed", None, f"the sync crashed: {type(exc).__name__}: {exc}"
    failure = None if run.status == "ok" else (run.error or f"the sync ended {run.status}")
    return ("failed" if run.status == "failed" else "synced"), run, failure


def _served(vol: Volume) -> tuple[Manifest | None, bool]:
    """What read_table serves now: current, or (when current is broken) the newest intact snapshot."""
    served = vol.current_manifest()
    if served is not None:
        return served, False
    best = vol.newest_intact()
    return (best.manifest, True) if best is not None else (None, False)


def _stale_tables(cfg: Config, served: Manifest | None) -> list[str]:
    if served is None:
        return [t.name for t in cfg.tables]
    ages = table_ages(served)
    return [
        t.name
        for t in cfg.tables
        if t.name not in served.tables or served.tables[t.name].carried_over or is_stale(ages[t.name], cfg.sla_hours)
    ]


def _reason(
    cfg: Config,
    action: str,
    failure: str | None,
    fixed: RepairResult,
    served: Manifest | None,
    fallback: bool,
    stale: list[str],
) -> str:
    """The one sentence for the banner and /ready."""
    stale_note = f"; stale: {', '.join(stale)}" if stale else ""
    if served is None:
        why = failure or fixed.error or "nothing has been published yet"
        return f"no data can be served: no intact snapshot under {cfg.root}; {why}"
    sid = served.id
    serving = f"serving snapshot {sid}"
    if served.created_at:
        serving += f" from {(clock.utcnow() - parse_iso(served.created_at)).total_seconds() / 3600:.1f} h ago"
    if fallback:
        serving += " (current is broken and could not be repaired; the newest intact snapshot is served)"
    if action == "skipped":
        return f"every table is younger than {cfg.skip_startup_if_younger_than_hours:g} h, so no sync ran; {serving}{stale_note}"
    if failure is None:
        return f"the startup sync published snapshot {sid}"
    if action == "synced":  # partial: some tables kept their previous data
        return f"the startup sync published snapshot {sid}, but: {failure}{stale_note}"
    return f"the startup sync did not publish ({failure}); {serving}{stale_note}"
