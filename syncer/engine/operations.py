"""The operations: sync, startup, rollback, repair, verify, status, snapshots.

A sync runs under the volume lock: sweep leftovers, export each requested table into
``staging/<id>/``, hard-link the others from ``current``, carry over the previous file of any table
that failed, write the manifest last, publish (rename + atomic ``current`` swap), apply retention,
and record everything in the run history. A failure at any point leaves ``current`` as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._clock import iso, parse_iso
from syncer._exceptions import ConfigError, LockHeldError, NoSnapshotError, PublishError, SourceError, SyncError
from syncer.config import Config
from syncer.export.table import TableOutcome, check, export_table
from syncer.sources import open_source
from syncer.volume.history import History
from syncer.volume.layout import Volume, fsync_dir, permission_problems, seal
from syncer.volume.lock import lock_holder, volume_lock

__all__ = ["next_run", "repair", "rollback", "snapshots", "startup", "status", "sync", "verify"]

log = logging.getLogger("syncer")

Progress = Callable[[dict[str, Any]], None]
TRIGGERS = ("startup", "schedule", "manual", "cli")


def _volume(cfg: Config) -> Volume:
    return Volume(cfg.root)


def _history(cfg: Config) -> History:
    return History(Volume(cfg.root).db_path)


# --- sync --------------------------------------------------------------------------------------------


def sync(
    cfg: Config,
    tables: Sequence[str] | None = None,
    *,
    trigger: str = "cli",
    user: str | None = None,
    progress: Progress | None = None,
    accept_schema_change: bool = False,
) -> dict[str, Any]:
    """Export, validate and publish; returns the run report (status ``ok``, ``partial`` or ``failed``).

    Raises :class:`LockHeldError` when another writer is busy and :class:`ConfigError` for unknown
    tables; every table-level failure is reported in the result instead, with the old data kept.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    selected = [cfg.table(n).name for n in tables] if tables else [t.name for t in cfg.tables]
    vol = _volume(cfg)
    vol.ensure()
    started = clock.utcnow()
    run_id = Volume.new_snapshot_id(started)
    info = {"trigger": trigger, "user": user, "started_at": iso(started), "run_id": run_id}
    with volume_lock(vol.lock_path, info):
        return _sync_locked(cfg, vol, run_id, started, selected, trigger, user, progress, accept_schema_change)


def _sync_locked(
    cfg: Config,
    vol: Volume,
    run_id: str,
    started: Any,
    selected: list[str],
    trigger: str,
    user: str | None,
    progress: Progress | None,
    accept_schema_change: bool,
) -> dict[str, Any]:
    hist = History(vol.db_path)
    t0 = time.perf_counter()
    hist.abort_running("the process running it stopped before it finished (killed or crashed)", iso(clock.utcnow()))
    swept = vol.sweep()
    if swept:
        log.info("swept leftovers of an interrupted run: %s", ", ".join(swept), extra={"run_id": run_id, "step": "sweep"})
    hist.start_run(
        {
            "id": run_id,
            "trigger": trigger,
            "user": user,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "tables_requested": selected,
            "started_at": iso(started),
        }
    )
    if trigger in ("manual",):
        hist.event("manual_sync", iso(started), user=user, run_id=run_id, tables=selected)
    staging = vol.staging / run_id
    steps: dict[str, float] = {}
    outcomes: dict[str, TableOutcome] = {}
    report: dict[str, Any] = {"run_id": run_id, "snapshot_id": None, "trigger": trigger, "user": user, "tables": []}
    try:
        staging.mkdir(parents=True)
        prev_id = vol.current_id()
        prev = vol.current_manifest()
        if prev is None and prev_id is not None:
            # current is broken: carry over from (and hold drift against) the newest intact snapshot
            best = vol.newest_intact()
            if best is not None:
                log.warning("current (%s) is broken; using snapshot %s as the previous data", prev_id, best.id)
                prev_id, prev = best.id, best.manifest
        prev_dir = vol.snapshot_dir(prev_id) if prev and prev_id else None
        prev_tables = prev["tables"] if prev else {}

        t_exp = time.perf_counter()
        source_desc: dict[str, Any] = {}
        try:
            source = open_source(cfg.source)
        except SourceError as exc:
            for name in selected:
                outcomes[name] = TableOutcome(name, ok=False, error=str(exc), checks=[check("export", False, str(exc))])
        else:
            with source:
                source_desc = source.describe()
                for name in selected:
                    t = cfg.table(name)
                    outcomes[name] = export_table(
                        source,
                        t,
                        cfg,
                        staging,
                        prev_tables.get(name),
                        accept_schema_change=accept_schema_change,
                        progress=progress,
                        spill_dir=vol.staging / f".spill-{run_id}",
                        quarantine_dir=vol.quarantine / run_id,
                    )
                    log.info(
                        "table %s: %s, %s rows in %.2fs",
                        name,
                        "ok" if outcomes[name].ok else "FAILED",
                        f"{outcomes[name].rows:,}",
                        outcomes[name].timings.get("total_s", 0.0),
                        extra={"run_id": run_id, "table": name, "step": "export"},
                    )
        steps["export_validate_s"] = time.perf_counter() - t_exp

        t_pub = time.perf_counter()
        manifest_tables: dict[str, Any] = {}
        table_reports = []
        for t in cfg.tables:
            name = t.name
            out = outcomes.get(name)
            old = prev_tables.get(name)
            if out is not None and out.ok:
                manifest_tables[name] = out.entry
                status = out.entry["status"] if out.entry else "fresh"
            elif old is not None and prev_dir is not None:
                _link(prev_dir / old["file"], staging / old["file"])
                entry = dict(old)
                if out is not None:
                    entry["status"] = "carried_over"
                    entry["error"] = out.error
                    entry["failed_at"] = iso(clock.utcnow())
                    entry["failed_checks"] = [c for c in out.checks if not c["ok"]]
                    if out.quarantine:
                        entry["failed_quarantine"] = out.quarantine
                manifest_tables[name] = entry
                status = entry["status"]
            else:
                status = "failed" if out is not None else "missing"
            if out is not None:
                table_reports.append(
                    {
                        "table": name,
                        "status": status if out.ok or status == "carried_over" else "failed",
                        "ok": out.ok,
                        "rows": out.rows,
                        "bytes": out.bytes,
                        "error": out.error,
                        "checks": out.checks,
                        "export_s": out.timings.get("export_s"),
                        "validate_s": out.timings.get("validate_s"),
                        "total_s": out.timings.get("total_s"),
                        "rows_per_s": (out.rows / out.timings["export_s"]) if out.timings.get("export_s") else None,
                        "attempts": out.attempts,
                        "quarantined": out.quarantined,
                        "quarantine": out.quarantine,
                    }
                )
        report["tables"] = table_reports
        ok_count = sum(1 for o in outcomes.values() if o.ok)
        failed = [n for n, o in outcomes.items() if not o.ok]

        if ok_count == 0:
            run_status = "failed"
            report["error"] = "no table was exported successfully; the published snapshot is unchanged: " + "; ".join(
                f"{n}: {outcomes[n].error}" for n in failed
            )
        else:
            run_status = "partial" if failed else "ok"
            elapsed = time.perf_counter() - t0
            manifest = {
                "id": run_id,
                "created_at": iso(clock.utcnow()),
                "previous": prev_id if prev else None,
                "run": {"trigger": trigger, "user": user, "tables_requested": selected},
                "source": source_desc or _describe_source(cfg),
                "sla_hours": cfg.sla_hours,
                "tables": manifest_tables,
                "run_checks": [_budget_check(cfg, elapsed)],
            }
            vol.write_manifest(staging, manifest)
            vol.publish(run_id)
            report["snapshot_id"] = run_id
            steps["publish_s"] = time.perf_counter() - t_pub
            t_ret = time.perf_counter()
            removed = vol.retention(cfg.retain)
            _prune_quarantine(vol)
            steps["retention_s"] = time.perf_counter() - t_ret
            report["retention_removed"] = removed
            if failed:
                report["error"] = f"{len(failed)} table(s) failed and kept their previous data: " + "; ".join(
                    f"{n}: {outcomes[n].error}" for n in failed
                )
    except BaseException as exc:
        # Nothing was published (or the swap already happened and only bookkeeping failed):
        # either way `current` names a complete snapshot. Record and re-raise.
        with contextlib.suppress(Exception):
            if report["snapshot_id"] is None:
                from syncer.volume.layout import remove_tree

                remove_tree(staging)
            hist.finish_run(
                run_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                finished_at=iso(clock.utcnow()),
                duration_s=time.perf_counter() - t0,
                snapshot_id=report["snapshot_id"],
                steps=steps,
            )
        raise
    finally:
        spill = vol.staging / f".spill-{run_id}"
        if spill.exists():
            shutil.rmtree(spill, ignore_errors=True)

    duration = time.perf_counter() - t0
    budget = _budget_check(cfg, duration)
    report.update(
        status=run_status,
        duration_s=duration,
        steps=steps,
        budget=budget,
        rows=sum(o.rows for o in outcomes.values() if o.ok),
        bytes=sum(o.bytes for o in outcomes.values() if o.ok),
    )
    if run_status == "failed":
        from syncer.volume.layout import remove_tree

        remove_tree(staging)
    for tr in table_reports:
        hist.record_table(run_id, tr, tr["checks"])
    hist.record_checks(run_id, None, [budget])
    hist.finish_run(
        run_id,
        status=run_status,
        error=report.get("error"),
        finished_at=iso(clock.utcnow()),
        duration_s=duration,
        snapshot_id=report["snapshot_id"],
        rows=report["rows"],
        bytes=report["bytes"],
        steps=steps,
    )
    log.info("run %s %s in %.2fs", run_id, run_status, duration, extra={"run_id": run_id, "step": "run"})
    return report


def _prune_quarantine(vol: Volume) -> None:
    """Quarantine folders older than the oldest retained snapshot go with it."""
    infos = vol.list_snapshots()
    if not infos or not infos[0].created_at or not vol.quarantine.is_dir():
        return
    kept = {i.id for i in infos}
    oldest = parse_iso(infos[0].created_at).timestamp()
    for folder in vol.quarantine.iterdir():
        if folder.is_dir() and folder.name not in kept and folder.stat().st_mtime < oldest:
            shutil.rmtree(folder, ignore_errors=True)


def _budget_check(cfg: Config, seconds: float) -> dict[str, Any]:
    ok = seconds <= cfg.time_budget_seconds
    return check(
        "time_budget",
        ok,
        f"run took {seconds:.1f}s of a {cfg.time_budget_seconds:g}s budget" + ("" if ok else " (over budget)"),
        severity="warning",
    )


def _describe_source(cfg: Config) -> dict[str, Any]:
    if cfg.source.kind == "snowflake":
        # The Snowflake source's own description (connection method, account, database, ...; no secrets).
        from syncer.sources.snowflake import describe_config

        return describe_config(cfg.source)
    d: dict[str, Any] = {"kind": cfg.source.kind}
    if cfg.source.path is not None:
        d["path"] = str(cfg.source.path)
    return d


def _link(src: Path, dst: Path) -> None:
    """Carry a published file (or a folder of parts, file by file) into the staged snapshot."""
    try:
        if src.is_dir() and not src.is_symlink():
            dst.mkdir()
            for f in sorted(src.iterdir()):
                _link(f, dst / f.name)
            return
        os.link(src, dst)
    except PublishError:
        raise
    except OSError as exc:
        if exc.errno in (18,):  # EXDEV: not on the same filesystem; a copy keeps the data all the same
            shutil.copy2(src, dst)
        else:
            raise PublishError(f"cannot carry {src.name} over from the current snapshot: {exc}") from exc


# --- startup, rollback, repair, verify -----------------------------------------------------------------


def startup(cfg: Config, *, user: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Repair, then sync unless every table is younger than the skip window; says whether data can be served, and why.

    Never raises for a broken source, volume or sync: apps must start on whatever is published. The
    result carries ``servable`` (can ``read_table`` serve data now), ``snapshot_id`` (what it serves),
    ``fallback`` (``current`` is broken and an older intact snapshot is served), ``stale`` /
    ``stale_tables`` (missing, carried over or older than the SLA), and ``reason``: one sentence for
    the banner and ``/ready``.
    """
    result: dict[str, Any] = {}
    try:
        result["repair"] = repair(cfg, user=user, reason="startup")
    except SyncError as exc:
        # e.g. the volume is not writable: what is there may still be readable, so keep going.
        result["repair"] = {"actions": [], "error": str(exc), "current": None}
        log.error("startup: repair failed: %s", exc, extra={"step": "startup"})
    vol = Volume(cfg.root)
    man = vol.current_manifest()
    ages = _table_ages(man) if man else {}
    window = cfg.skip_startup_if_younger_than_hours * 3600
    failure: str | None = None
    if man and ages and all(t.name in ages for t in cfg.tables) and max(ages.values()) < window:
        result["action"] = "skipped"
    else:
        try:
            run = sync(cfg, trigger="startup", user=user, progress=progress)
            result.update(action="failed" if run["status"] == "failed" else "synced", run=run)
            if run["status"] != "ok":
                failure = run.get("error") or f"the sync ended {run['status']}"
        except LockHeldError as exc:
            result["action"], failure = "busy", str(exc)
        except SyncError as exc:
            result["action"], failure = "failed", str(exc)
        except Exception as exc:  # an engine bug must not keep the app from serving what is published
            log.exception("startup: the sync crashed", extra={"step": "startup"})
            result["action"], failure = "failed", f"the sync crashed: {type(exc).__name__}: {exc}"

    # What read_table serves now: current, or (when current is broken) the newest intact snapshot.
    served = vol.current_manifest()
    fallback = False
    if served is None:
        best = vol.newest_intact()
        served, fallback = (best.manifest, True) if best is not None else (None, False)
    stale: list[str] = [t.name for t in cfg.tables]
    if served is not None:
        served_ages = _table_ages(served)
        stale = [
            t.name
            for t in cfg.tables
            if t.name not in served["tables"]
            or served["tables"][t.name].get("status") == "carried_over"
            or served_ages[t.name] > cfg.sla_hours * 3600
        ]
    result.update(
        snapshot_id=served["id"] if served else None,
        servable=served is not None,
        fallback=fallback,
        stale=bool(stale),
        stale_tables=stale,
    )

    # The reason, one sentence.
    stale_note = f"; stale: {', '.join(stale)}" if stale else ""
    if served is None:
        why = failure or result["repair"].get("error") or "nothing has been published yet"
        result["reason"] = f"no data can be served: no intact snapshot under {cfg.root}; {why}"
        return result
    sid = served["id"]
    serving = f"serving snapshot {sid}"
    if served.get("created_at"):
        serving += f" from {(clock.utcnow() - parse_iso(served['created_at'])).total_seconds() / 3600:.1f} h ago"
    if fallback:
        serving += " (current is broken and could not be repaired; the newest intact snapshot is served)"
    if result["action"] == "skipped":
        result["reason"] = (
            f"every table is younger than {cfg.skip_startup_if_younger_than_hours:g} h, so no sync ran; {serving}{stale_note}"
        )
    elif failure is None:
        result["reason"] = f"the startup sync published snapshot {sid}"
    elif result["action"] == "synced":  # partial: some tables kept their previous data
        result["reason"] = f"the startup sync published snapshot {sid}, but: {failure}{stale_note}"
    else:
        result["reason"] = f"the startup sync did not publish ({failure}); {serving}{stale_note}"
    return result


def rollback(cfg: Config, to: str | None = None, *, user: str | None = None) -> dict[str, Any]:
    """Point ``current`` at snapshot ``to`` (default: the one before the current one)."""
    vol = _volume(cfg)
    vol.ensure()
    info = {"trigger": "rollback", "user": user, "started_at": iso(clock.utcnow())}
    with volume_lock(vol.lock_path, info):
        cur = vol.current_id()
        target = to or vol.previous_of(cur)
        if target is None:
            raise NoSnapshotError("there is no earlier snapshot to roll back to; see `syncer snapshots`")
        if target == cur:
            raise PublishError(f"snapshot {target} is already current")
        t = vol.inspect(target)
        if not vol.snapshot_dir(target).is_dir():
            known = ", ".join(i.id for i in vol.list_snapshots()) or "none"
            raise NoSnapshotError(f"snapshot {target} does not exist; retained snapshots: {known}")
        if not t.ok:
            raise PublishError(f"snapshot {target} is not intact ({t.error or '; '.join(t.problems)}); choose another")
        vol.point_current(target)
        History(vol.db_path).event("rollback", iso(clock.utcnow()), user=user, **{"from": cur, "to": target})
        log.info("rolled back current from %s to %s", cur, target, extra={"step": "rollback"})
        return {"from": cur, "to": target}


def repair(cfg: Config, *, user: str | None = None, reason: str = "manual") -> dict[str, Any]:
    """Sweep staging, restore read-only permissions, re-point a broken ``current`` at the newest intact snapshot.

    Runs under the volume lock (a running sync owns staging: then nothing is changed). Every change is
    one line in ``actions``, logged, and recorded as one ``repair`` event in the run history.
    A ``current`` that names an intact snapshot is left alone, even when a newer one exists: that is
    a rollback, or a sync killed between publishing and the swap, and either way it is complete.
    """
    vol = _volume(cfg)
    actions: list[str] = []
    # Layout folders someone made unusable to their owner: give access back first, or nothing below works.
    for d in (vol.root, vol.snapshots, vol.staging, vol.quarantine):
        try:
            mode = os.lstat(d).st_mode & 0o7777
        except OSError:
            continue
        if mode & 0o700 != 0o700:
            try:
                os.chmod(d, mode | 0o755)
                actions.append(f"restored access to {d.name}/ (mode {mode:o} -> {mode | 0o755:o})")
            except OSError as exc:
                actions.append(f"could not restore access to {d}: {exc.strerror}")
    vol.ensure()
    info = {"trigger": "repair", "user": user, "started_at": iso(clock.utcnow())}
    try:
        lock = volume_lock(vol.lock_path, info)
        lock.__enter__()
    except LockHeldError:
        # A sync is running: it owns staging; only report, change nothing.
        return {"actions": [], "skipped": "a sync is running; nothing repaired", "current": vol.current_id()}
    try:
        actions += [f"removed {p}" for p in vol.sweep()]
        hist = History(vol.db_path)
        if vol.db_path.exists():
            aborted = hist.abort_running(
                "the process running it stopped before it finished (killed or crashed)", iso(clock.utcnow())
            )
            if aborted:
                actions.append(f"marked {aborted} interrupted run(s) as aborted")
        # Every snapshot folder, intact or not: a manifest made unreadable is exactly what this fixes.
        try:
            entries = sorted(vol.snapshots.iterdir())
            # Never a link: sealing follows it, and a planted link must not make us chmod what it names.
            folders = [p for p in entries if not p.is_symlink() and p.is_dir() and not p.name.startswith(".")]
        except OSError as exc:
            folders = []
            actions.append(f"could not list {vol.snapshots}: {exc.strerror}")
        for folder in folders:
            try:
                changed = seal(folder)
                if changed:
                    fsync_dir(folder)
                    actions.append(f"reset permissions of snapshot {folder.name} ({changed} entries)")
            except OSError as exc:
                actions.append(f"could not reset permissions of {folder.name}: {exc.strerror}")
        if vol.current.exists() and not vol.current.is_symlink():
            # Not ours to delete (someone's folder or file): move it aside so `current` can be a link again.
            aside = vol.root / f"current.not-a-link-{clock.utcnow().strftime('%Y%m%dT%H%M%SZ')}"
            os.rename(vol.current, aside)
            actions.append(f"current was not a symbolic link; moved it to {aside.name}")
        cur = vol.current_id()
        cur_info = vol.inspect(cur) if cur else None
        if cur_info is None or not cur_info.ok:
            if cur is None:
                why = "missing"
            elif not vol.snapshot_dir(cur).is_dir():
                why = f"pointing at {cur}, which does not exist"
            else:
                problems = cur_info.error or "; ".join(cur_info.problems) if cur_info else "unknown"
                why = f"pointing at {cur}, which is broken ({problems})"
            best = vol.newest_intact()
            if best is not None:
                vol.point_current(best.id)
                actions.append(f"current was {why}; now points at {best.id}")
            elif cur is not None or vol.current.is_symlink():
                actions.append(f"current is {why} and no intact snapshot is left; a sync is needed")
        if actions:
            hist.event("repair", iso(clock.utcnow()), user=user, reason=reason, actions=actions)
            for a in actions:
                log.warning("repair: %s", a, extra={"step": "repair"})
        return {"actions": actions, "current": vol.current_id()}
    finally:
        lock.__exit__(None, None, None)


def verify(cfg: Config) -> dict[str, Any]:
    """Re-check every file of ``current`` against its manifest: presence, size, sha256, permissions, extra files."""
    from syncer.volume.layout import unexpected_files

    vol = _volume(cfg)
    cur = vol.current_id()
    if cur is None:
        what = "is not a symbolic link" if vol.current.exists() else "is missing"
        return {
            "ok": False,
            "snapshot": None,
            "problems": [f"no current snapshot under {cfg.root} (current {what}); run `syncer repair` or `syncer sync`"],
            "tables": {},
        }
    if not vol.snapshot_dir(cur).is_dir():
        return {
            "ok": False,
            "snapshot": cur,
            "problems": [f"current points at snapshot {cur}, which does not exist; run `syncer repair`"],
            "tables": {},
        }
    info = vol.inspect(cur, deep=True)
    problems = [info.error] if info.error else list(info.problems)
    if info.manifest is not None:
        if info.manifest.get("id") != cur:
            problems.append(f"the manifest of snapshot {cur} names snapshot {info.manifest.get('id')!r} (copied or edited)")
        problems += permission_problems(info.path)
        problems += unexpected_files(info.path, info.manifest)
        missing = [t.name for t in cfg.tables if t.name not in info.manifest["tables"]]
        problems += [f"configured table {m!r} is not in snapshot {cur}" for m in missing]
    tables = {}
    if info.manifest:
        for name, t in info.manifest["tables"].items():
            tables[name] = {
                "file": t["file"],
                "rows": t["rows"],
                "sha256": t["sha256"],
                "ok": not any(f"table {name!r}" in p for p in problems),
            }
    return {"ok": not problems, "snapshot": cur, "problems": problems, "tables": tables}


# --- status --------------------------------------------------------------------------------------------


def _table_ages(manifest: dict[str, Any]) -> dict[str, float]:
    now = clock.utcnow()
    return {n: (now - parse_iso(t["exported_at"])).total_seconds() for n, t in manifest["tables"].items()}


def next_run(cfg: Config) -> str | None:
    from syncer.schedule.cron import crontab_trigger

    nxt = crontab_trigger(cfg.cron, cfg.timezone).get_next_fire_time(None, clock.utcnow())
    return iso(nxt) if nxt else None


def status(cfg: Config) -> dict[str, Any]:
    vol = _volume(cfg)
    cur = vol.current_id()
    info = vol.inspect(cur) if cur else None
    man = info.manifest if info and info.ok else None
    warnings: list[str] = []
    if cur is None:
        warnings.append("nothing is published yet; run `syncer sync`")
    elif man is None:
        warnings.append(
            f"current snapshot {cur} is broken ({info.error if info else ''}{'; '.join(info.problems) if info else ''}); run `syncer repair`"
        )
    tables = []
    sla = cfg.sla_hours * 3600
    for t in cfg.tables:
        entry = man["tables"].get(t.name) if man else None
        if entry is None:
            tables.append(
                {
                    "name": t.name,
                    "rows": None,
                    "exported_at": None,
                    "age_seconds": None,
                    "stale": True,
                    "status": "missing",
                    "format": t.format,
                    "file": None,
                }
            )
            continue
        age = (clock.utcnow() - parse_iso(entry["exported_at"])).total_seconds()
        stale = age > sla
        row = {
            "name": t.name,
            "rows": entry["rows"],
            "exported_at": entry["exported_at"],
            "age_seconds": round(age, 1),
            "stale": stale,
            "status": entry.get("status", "fresh"),
            "exported_in": entry.get("exported_in"),
            "format": entry["format"],
            "file": entry["file"],
            "bytes": entry["bytes"],
            "checks_failed": [c["name"] for c in entry.get("checks", []) if not c["ok"]],
        }
        if entry.get("error"):
            row["error"] = entry["error"]
        tables.append(row)
        if stale:
            warnings.append(f"table {t.name!r} is stale: exported {age / 3600:.1f} h ago (SLA {cfg.sla_hours:g} h)")
        if entry.get("status") == "carried_over":
            warnings.append(f"table {t.name!r} kept its previous data because the last export failed: {entry.get('error')}")
    hist = History(vol.db_path)
    last = hist.last_run()
    running = None
    holder = lock_holder(vol.lock_path)
    if last and last["status"] == "running" and holder:
        running = holder
    return {
        "snapshot": {"id": man["id"], "created_at": man["created_at"]} if man else None,
        "root": str(cfg.root),
        "sla_hours": cfg.sla_hours,
        "stale": any(t["stale"] for t in tables),
        "tables": tables,
        "last_run": last,
        "running": running,
        "next_run": next_run(cfg),
        "warnings": warnings,
    }


def snapshots(cfg: Config) -> list[dict[str, Any]]:
    vol = _volume(cfg)
    cur = vol.current_id()
    out = []
    for i in vol.list_snapshots():
        tables = i.manifest["tables"] if i.manifest else {}
        out.append(
            {
                "id": i.id,
                "created_at": i.created_at or None,
                "current": i.id == cur,
                "ok": i.ok,
                "tables": {
                    n: {"rows": t["rows"], "status": t.get("status"), "exported_at": t["exported_at"]} for n, t in tables.items()
                },
                "rows": sum(t["rows"] for t in tables.values()),
                "bytes": sum(t["bytes"] for t in tables.values()),
                "problems": ([i.error] if i.error else []) + i.problems,
            }
        )
    return out


def ensure_known(cfg: Config, names: Sequence[str]) -> None:
    for n in names:
        cfg.table(n)  # raises ConfigError with a suggestion


_ = ConfigError  # re-exported name used by callers of ensure_known
