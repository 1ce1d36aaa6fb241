"""What is published and how fresh: ``status``, ``snapshots``, ``next_run``.

A table's age is now minus its ``exported_at`` by the engine's clock (for a table confirmed
``unchanged``, minus its ``confirmed_at``: the source had not changed then, so its data was current). A negative age (the clock was
ahead at the export, moved back since, or the manifest was edited) is the status ``"future"``: an
error state, stale, never fresh. A table whose file holds another row count than the manifest says
(an edited manifest) is ``"mismatch"``, stale, with the file's count.
"""

from __future__ import annotations

from pathlib import Path

from syncer import _clock as clock
from syncer._clock import FUTURE, age_seconds, future_message, iso
from syncer._exceptions import HistoryError
from syncer.config import Config, TableConfig
from syncer.engine.results import SnapshotRef, SnapshotSummary, StatusReport, TableStatus
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.lock import lock_holder
from syncer.volume.manifest import Manifest, ManifestEntry
from syncer.volume.verify import held_rows

__all__ = ["MISMATCH", "is_stale", "next_run", "snapshots", "status", "table_ages"]

#: the status of a table whose file does not hold what the manifest says (rows, schema, parts)
MISMATCH = "mismatch"


def table_ages(manifest: Manifest) -> dict[str, float]:
    """Seconds since each table of the snapshot was exported (by the engine's clock; negative: future)."""
    now = clock.utcnow()
    return {n: age_seconds(t.fresh_as_of, now) for n, t in manifest.tables.items()}


def is_stale(age: float, sla_hours: float) -> bool:
    """Older than the SLA, or from the future (an error state, never fresh)."""
    return age < 0 or age > sla_hours * 3600


def next_run(cfg: Config) -> str | None:
    from syncer.schedule.cron import crontab_trigger

    nxt = crontab_trigger(cfg.cron, cfg.timezone).get_next_fire_time(None, clock.utcnow())
    return iso(nxt) if nxt else None


def status(cfg: Config) -> StatusReport:
    vol = Volume(cfg.root)
    cur = vol.current_id()
    info = vol.inspect(cur) if cur else None
    man = info.manifest if info and info.ok else None
    warnings: list[str] = []
    if cur is None:
        warnings.append("nothing is published yet; run `syncer sync`")
    elif man is None:
        why = f"{info.error or ''}{'; '.join(info.problems)}" if info else ""
        warnings.append(f"current snapshot {cur} is broken ({why}); run `syncer repair`")
    tables = []
    for t in cfg.tables:
        entry = man.tables.get(t.name) if man else None
        row = _missing(t) if entry is None or info is None else _table_status(cfg, t, entry, info.path)
        tables.append(row)
        if entry is not None and row.status in (FUTURE, MISMATCH):
            warnings.append(f"table {t.name!r}: {row.error}")
        elif entry is not None and row.stale:
            warnings.append(
                f"table {t.name!r} is stale: exported {(row.age_seconds or 0) / 3600:.1f} h ago (SLA {cfg.sla_hours:g} h)"
            )
        if entry is not None and entry.carried_over:
            warnings.append(f"table {t.name!r} kept its previous data because the last export failed: {entry.error}")
    try:
        last = History(vol.db_path).last_run()
    except HistoryError as exc:  # what is published is still known; the history is not
        last = None
        warnings.append(str(exc))
    holder = lock_holder(vol.lock_path)
    return StatusReport(
        snapshot=SnapshotRef(man.id, man.created_at) if man else None,
        root=str(cfg.root),
        sla_hours=cfg.sla_hours,
        stale=any(t.stale for t in tables),
        tables=tuple(tables),
        last_run=last,
        running=holder if last and last["status"] == "running" and holder else None,
        next_run=next_run(cfg),
        warnings=tuple(warnings),
        consistency=man.consistency if man else None,
    )


def _missing(t: TableConfig) -> TableStatus:
    return TableStatus(name=t.name, status="missing", stale=True, format=t.format)


def _table_status(cfg: Config, t: TableConfig, entry: ManifestEntry, folder: Path) -> TableStatus:
    age = age_seconds(entry.fresh_as_of)  # an unchanged table: from its confirmation
    status, rows, error = entry.status, entry.rows, entry.error
    held = held_rows(folder, entry)
    if age < 0:
        status, error = FUTURE, future_message(age)
    elif held is not None and held != entry.rows:
        status, rows = MISMATCH, held
        error = f"the manifest says {entry.rows:,} rows, {entry.file} holds {held:,} (edited?); run `syncer verify`"
    return TableStatus(
        name=t.name,
        rows=rows,
        exported_at=entry.exported_at,
        age_seconds=round(age, 1),
        stale=is_stale(age, cfg.sla_hours) or status == MISMATCH,
        status=status,
        exported_in=entry.exported_in,
        format=entry.format,
        file=entry.file,
        bytes=entry.bytes,
        checks_failed=tuple(c.name for c in entry.checks if not c.ok),
        error=error,
    )


def snapshots(cfg: Config) -> list[SnapshotSummary]:
    vol = Volume(cfg.root)
    cur = vol.current_id()
    out = []
    for i in vol.list_snapshots():
        tables = i.manifest.tables if i.manifest else {}
        out.append(
            SnapshotSummary(
                id=i.id,
                created_at=i.created_at or None,
                current=i.id == cur,
                ok=i.ok,
                tables={n: {"rows": t.rows, "status": t.status, "exported_at": t.exported_at} for n, t in tables.items()},
                rows=sum(t.rows for t in tables.values()),
                bytes=sum(t.bytes for t in tables.values()),
                problems=tuple(([i.error] if i.error else []) + i.problems),
            )
        )
    return out
